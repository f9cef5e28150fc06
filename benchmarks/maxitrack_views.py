"""MaxiTrack with test-time views: AUC and cost for 1, 2, 4 and 8 orientations per tile.

    python benchmarks/maxitrack_views.py MODEL SET [SET ...] [--views 1 2 4 8] [--threads 1]

Each SET (MaxiTrack shards, e.g. ``maximask-sim maxitrack test/track --n 512 --size 128
--seed 400``) is scored as ``maxitrack --views N`` scores an exposure
(:func:`maximask.evaluate.report.track_image_scores`) for every N; the AUC and the wall time
per image are printed as a table and written to ``--out`` (JSON) if given. Times are measured
in the same run, one after the other, so compare them as ratios.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from maximask.evaluate.metrics import exact_auc
from maximask.evaluate.report import track_image_scores
from maximask.inference import VIEWS
from maximask.modelfile import load_model
from maximask.train.shards import ShardArrays

from bench_inference import _machine  # noqa: E402 (benchmarks/ is the script's directory)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("sets", nargs="+")
    p.add_argument("--views", type=int, nargs="+", default=list(VIEWS), choices=list(VIEWS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="JSON file of the results")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, card = load_model(args.model, kind="maxitrack")
    rows = []
    for path in args.sets:
        arrays = ShardArrays(path, kind="maxitrack")
        labels = arrays.targets.astype(bool)
        images = np.asarray(arrays.images, dtype=np.float32)
        for views in args.views:
            t = time.perf_counter()
            scores, n_tiles = track_image_scores(model, card, images, views=views)
            dt = time.perf_counter() - t
            rows.append({"set": path, "n_images": int(labels.size), "tiles_per_image": n_tiles, "views": views,
                         "auc": float(exact_auc(scores, labels)), "ms_per_image": 1e3 * dt / labels.size})
            print(f"{path}  views {views}: AUC {rows[-1]['auc']:.4f}, {rows[-1]['ms_per_image']:.1f} ms/image "
                  f"({n_tiles} tiles)", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"model": args.model, "threads": args.threads, "machine": _machine(),
                       "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
