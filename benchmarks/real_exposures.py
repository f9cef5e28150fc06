"""Run MaxiMask and MaxiTrack on real exposures and draw their masks in the paper's colour code.

    python benchmarks/real_exposures.py REAL_DIR OUT_DIR [--net_dir MODEL] [--track_dir MODEL]

For every FITS file of ``REAL_DIR`` (e.g. the development exposures of
``shared/realdata/smoke``) and every image HDU (a cube: its first plane), it writes
``OUT_DIR/<file>_<hdu>.png`` (image, predicted classes at the model's default
thresholds after the default prior update, and the CR, SAT, TRL, BBG
probabilities) and ``OUT_DIR/summary.json`` (fraction of pixels flagged per
class, MaxiTrack probability per file, seconds per HDU). The exposures are
only read.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from maximask.api import load_maximask, load_maxitrack, predict_mask, predict_probabilities, predict_tracking
from maximask.classes import CLASS_NAMES, class_index
from maximask.modelfile import ModelFileError
from maximask.visualize import class_map_rgb, display_image, save_panels

SHOWN = ("CR", "SAT", "TRL", "BBG")


def image_hdus(path: Path):
    """(label, 2-D float32 array) of every image HDU of a FITS file (a cube gives its first plane)."""
    with fits.open(path, memmap=False) as hdul:
        for i, hdu in enumerate(hdul):
            if not getattr(hdu, "is_image", False) or hdu.data is None or hdu.data.size == 0:
                continue
            data = np.asarray(hdu.data, dtype=np.float32)
            while data.ndim > 2:
                data = data[0]
            yield f"{i}", data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("real_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--net_dir", help="MaxiMask model (default: the shipped one)")
    p.add_argument("--track_dir", help="MaxiTrack model (default: the shipped one)")
    p.add_argument("--max_hdus", type=int, default=4, help="HDUs drawn per file")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    mm = load_maximask(args.net_dir, device="cpu")
    try:
        mt = load_maxitrack(args.track_dir, device="cpu")
    except ModelFileError as exc:
        print(f"no MaxiTrack model ({exc}): tracking skipped")
        mt = None
    args.out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"model": mm.card.get("training", {}).get("config", {}).get("run_dir", str(args.net_dir)), "files": {}}
    files = sorted(f for f in args.real_dir.iterdir() if ".fits" in f.name)
    for path in files:
        entry = {"hdus": {}}
        with fits.open(path, memmap=False) as hdul:
            entry["maxitrack_probability"] = float(predict_tracking(hdul, mt)) if mt else None
        for k, (label, data) in enumerate(image_hdus(path)):
            t0 = time.perf_counter()
            probs = predict_probabilities(data, mm)
            masks = predict_mask(data, mm)
            dt = time.perf_counter() - t0
            valid = masks != 255
            planes = (masks == 1)
            entry["hdus"][label] = {
                "shape": list(data.shape),
                "seconds": round(dt, 3),
                "flagged_fraction": {n: round(float(planes[i].mean()), 6) for i, n in enumerate(CLASS_NAMES)},
                "invalid_pixels": int((~valid).any(axis=0).sum()),
            }
            if k < args.max_hdus:
                panels = [(f"{path.name} [{label}]", display_image(data)),
                          ("classes (default thresholds)", class_map_rgb(planes))]
                panels += [(f"P({n})", np.nan_to_num(probs[class_index(n)])) for n in SHOWN]
                save_panels(args.out_dir / f"{path.name.split('.fits')[0]}_{label}.png", panels, ncols=3)
        summary["files"][path.name] = entry
        flagged = {n: max(h["flagged_fraction"][n] for h in entry["hdus"].values()) for n in CLASS_NAMES}
        top = ", ".join(f"{n} {v:.4f}" for n, v in sorted(flagged.items(), key=lambda kv: -kv[1])[:6])
        print(f"{path.name}: P(tracking) {entry['maxitrack_probability']}; most flagged: {top}")
    (args.out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
