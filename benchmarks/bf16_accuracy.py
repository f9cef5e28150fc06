"""How much ``--precision bf16`` changes MaxiMask probabilities and masks, and MaxiTrack probabilities.

    python benchmarks/bf16_accuracy.py REAL_DIR [--threads 2]

For every FITS file of ``REAL_DIR`` (e.g. ``shared/realdata/smoke``), the first image HDU (a
cube: its first plane) is run through the shipped models in float32 and in bfloat16 autocast.
Prints, per file and over all pixels, statistics of |p_bf16 - p_fp32| over all pixels and
classes (median, mean, fraction above 0.01, maximum), the classes of the pixels above 0.1,
the fraction of mask pixels that flip at the default thresholds, and the MaxiTrack change.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits

from maximask.api import load_maximask, load_maxitrack, predict_mask, predict_probabilities, predict_tracking
from maximask.classes import CLASS_NAMES


def first_image(path: Path) -> np.ndarray | None:
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            if getattr(hdu, "is_image", False) and hdu.data is not None and hdu.data.size:
                data = np.asarray(hdu.data, dtype=np.float32)
                while data.ndim > 2:
                    data = data[0]
                return data
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("real_dir", type=Path)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    mm, mt = load_maximask(device="cpu"), load_maxitrack(device="cpu")
    names = [c for c in CLASS_NAMES if c != "BG"]
    print("| file | median | mean | > 0.01 | max | classes of pixels > 0.1 | mask flips | MaxiTrack change |")
    print("|---|---|---|---|---|---|---|---|")
    all_diff = []
    for path in sorted(args.real_dir.iterdir()):
        if not path.name.endswith((".fits", ".fz", ".gz")):
            continue
        image = first_image(path)
        if image is None:
            continue
        probs = {pr: predict_probabilities(image, mm, classes=names, precision=pr) for pr in ("fp32", "bf16")}
        masks = {pr: predict_mask(image, mm, classes=names, precision=pr) for pr in ("fp32", "bf16")}
        track = {pr: predict_tracking(image, mt, precision=pr) for pr in ("fp32", "bf16")}
        d = np.abs(probs["bf16"] - probs["fp32"])
        d = np.where(np.isfinite(d), d, 0.0)
        big = Counter(names[k] for k in np.nonzero(d > 0.1)[0])
        flips = float(np.mean(masks["bf16"] != masks["fp32"]))
        all_diff.append(d.ravel())
        top = ", ".join(f"{c} {n}" for c, n in big.most_common(4)) or "none"
        print(f"| {path.name} | {np.median(d):.1e} | {d.mean():.1e} | {np.mean(d > 0.01):.2%} | {d.max():.2f} | {top} | "
              f"{flips:.3%} | {abs(track['bf16'] - track['fp32']):.4f} |")
    d = np.concatenate(all_diff)
    print(f"| all | {np.median(d):.1e} | {d.mean():.1e} | {np.mean(d > 0.01):.2%} | {d.max():.2f} | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
