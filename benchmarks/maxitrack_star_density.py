"""MaxiTrack probability against the number of bright stars in the field.

    python benchmarks/maxitrack_star_density.py SHARDS [MODEL ...]

SHARDS: MaxiTrack shards drawn with ``maximask-sim maxitrack --min-bright-stars 0`` (any sky,
sparse fields included), e.g. ``maximask-sim maxitrack test/track_sparse --n 512 --size 128
--seed 401 --min-bright-stars 0``. For each model (default: the shipped one) it prints the
mean raw probability (no prior update) of images without and with tracking errors, in bins of
the expected number of stars brighter than 20 sigma (the simulator's
``expected_bright_stars``), and the AUC in each bin. A field without stars shows no smear:
a calibrated classifier gives it about its training prior, not a confident "tracking error".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

BINS = ((0, 1), (1, 4), (4, 8), (8, 30), (30, float("inf")))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shards", type=Path)
    ap.add_argument("models", nargs="*", help="model files (default: the shipped MaxiTrack)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from maximask.api import load_maxitrack
    from maximask.evaluate.metrics import exact_auc

    images, labels, stars = [], [], []
    for f in sorted(args.shards.glob("shard_*.npz")):
        d = np.load(f)
        images.append(d["image"].astype(np.float32))
        labels.append(d["label"].astype(bool))
        stars += [s["expected_bright_stars"] for s in json.loads(str(d["meta"]))["samples"]]
    x = torch.from_numpy(np.concatenate(images))[:, None]
    y = np.concatenate(labels)
    stars = np.asarray(stars, dtype=np.float64)
    for spec in args.models or [None]:
        lm = load_maxitrack(spec, device="cpu")
        with torch.inference_mode():
            p = np.concatenate([torch.softmax(lm.model(x[i:i + 64]), 1)[:, 1].numpy() for i in range(0, len(x), 64)])
        print(f"model {spec or 'shipped'}: {len(y)} images, AUC {exact_auc(p, y):.3f}")
        print("| bright stars | images | mean p (no error) | mean p (error) | AUC |")
        print("|---|---|---|---|---|")
        for lo, hi in BINS:
            s = (stars >= lo) & (stars < hi)
            if not s.any():
                continue
            p0 = p[s & ~y].mean() if (s & ~y).any() else float("nan")
            p1 = p[s & y].mean() if (s & y).any() else float("nan")
            print(f"| {lo:g}-{hi:g} | {int(s.sum())} | {p0:.2f} | {p1:.2f} | {exact_auc(p[s], y[s]):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
