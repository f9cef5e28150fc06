"""Seams of tiled MaxiMask inference with the shipped model: tiled against whole-image prediction.

    python benchmarks/tile_seams.py REAL_DIR [--margins 32 64 96 128] [--n-sim 3] [--threads 2]
        [--out benchmarks/tile_seams.json]

Each image is predicted once as a single tile (the reference: no seam at all) and then with
small tiles (384 px for images up to 640 px, 512 px above) cropped by each ``margin``, so that
every image has several seams. The background map and noise are computed once on the whole image
either way, so the differences come from the network's zero padding at tile edges alone.

Images: the first image HDU of every FITS file of ``REAL_DIR`` that is at least 500 px on each
side (e.g. ``shared/realdata/smoke``), and ``--n-sim`` simulated 1024x1024 exposures with every
contaminant (seeded). Reported per margin, over all pixels and the 13 contaminant classes: the
largest |delta p|, its 99.99th percentile, and the fraction of mask pixels (default thresholds)
that differ from the whole-image mask.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from maximask.api import load_maximask, predict_mask, predict_probabilities
from maximask.classes import CLASS_NAMES
from maximask.inference import ALIGN, plan_tiles

from bf16_accuracy import first_image


def simulated_images(n: int, size: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """``n`` raw simulated exposures (ADU) with every contaminant, seeded."""
    from maximask.simulate.pipeline import simulate_scene

    rng = np.random.default_rng(seed)
    return [(f"simulated_{i}", simulate_scene((size, size), rng=rng).scene.image.astype(np.float32)) for i in range(n)]


def compare(image: np.ndarray, model, names: list[str], margins: list[int]) -> dict:
    """Whole-image against tiled probabilities and masks for each margin."""
    whole = ALIGN * math.ceil(max(image.shape) / ALIGN)
    tile = 384 if max(image.shape) <= 640 else 512
    ref_p = predict_probabilities(image, model, classes=names, tile=whole)
    ref_m = predict_mask(image, model, classes=names, tile=whole)
    out = {"shape": list(image.shape), "tile": tile}
    for m in margins:
        n_tiles = len(plan_tiles(image.shape, tile, m))
        p = predict_probabilities(image, model, classes=names, tile=tile, margin=m)
        mask = predict_mask(image, model, classes=names, tile=tile, margin=m)
        d = np.abs(p - ref_p)
        d = np.where(np.isfinite(d), d, 0.0)
        out[str(m)] = {
            "tiles": n_tiles,
            "max": float(d.max()),
            "p9999": float(np.quantile(d, 0.9999)),
            "above_0.01": float(np.mean(d > 0.01)),
            "mask_flips": float(np.mean(mask != ref_m)),
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("real_dir", type=Path)
    p.add_argument("--margins", type=int, nargs="+", default=[32, 64, 96, 128])
    p.add_argument("--n-sim", type=int, default=3)
    p.add_argument("--sim-size", type=int, default=1024)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--net_dir", default=None, help="MaxiMask model (default: the shipped one)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_maximask(args.net_dir, device="cpu")
    names = [c for c in CLASS_NAMES if c != "BG"]
    images = []
    for path in sorted(args.real_dir.iterdir()):
        if path.name.endswith((".fits", ".fz", ".gz")):
            image = first_image(path)
            if image is not None and min(image.shape) >= 500:
                images.append((path.name, image))
    images += simulated_images(args.n_sim, args.sim_size, args.seed)
    t0 = time.time()
    results = {name: compare(image, model, names, args.margins) for name, image in images}
    print("| image | shape | tile | " + " | ".join(f"margin {m}: max, 99.99%, mask flips" for m in args.margins) + " |")
    print("|---|---|---|" + "---|" * len(args.margins))
    for name, r in results.items():
        cells = " | ".join(f"{r[str(m)]['max']:.3f}, {r[str(m)]['p9999']:.4f}, {r[str(m)]['mask_flips']:.4%}" for m in args.margins)
        print(f"| {name} | {r['shape'][0]}x{r['shape'][1]} | {r['tile']} | {cells} |")
    worst = {str(m): {k: max(r[str(m)][k] for r in results.values()) for k in ("max", "p9999", "above_0.01", "mask_flips")}
             for m in args.margins}
    cells = " | ".join(f"{worst[str(m)]['max']:.3f}, {worst[str(m)]['p9999']:.4f}, {worst[str(m)]['mask_flips']:.4%}" for m in args.margins)
    print(f"| worst | | | {cells} |")
    print(f"({time.time() - t0:.0f} s)")
    if args.out:
        args.out.write_text(json.dumps({"images": results, "worst": worst, "model": "shipped maximask",
                                        "args": {k: str(v) for k, v in vars(args).items()}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
