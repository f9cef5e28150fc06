"""Steps of the background: held-out quality and real exposures with and without the step masking.

    python benchmarks/background_steps.py MODEL [RAW_SET ...] [--real FITS ...] [--max-hdus N]
        [--threads 1] [--out F.json]

``maximask.preprocess.estimate_background`` makes a second sep pass without the pixels more
than ``DEAD_DEPTH`` times the noise below the first background map (an overscan strip at bias
level, dead clusters), so that the spline of the mesh values does not ring next to them
(module docstring of ``maximask.preprocess``). This script compresses the same images with
the single-pass map (``mask_steps=False``) and with the default, and measures:

* for each RAW_SET (shards written with ``maximask-sim maximask ... --with-raw``): the per-class
  AUC over the whole set and over the images whose background map the masking changed
  (by more than 0.5 sigma somewhere);
* for each ``--real`` file: per image HDU (the first plane of a cube), the fraction of pixels
  flagged per class at the card's thresholds (default prior update), both ways, and how far
  the masking moved the background.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits

from maximask.api import DEFAULT_PRIORS
from maximask.classes import CLASS_NAMES
from maximask.inference import predict_logits
from maximask.modelfile import load_model
from maximask.posterior import prior_logit_shift
from maximask.preprocess import DEAD_DEPTH, compress, estimate_background
from maximask.train.shards import load_shards

from bench_inference import _machine  # noqa: E402 (benchmarks/ is the script's directory)
from noise_cap import paired_aucs  # noqa: E402

#: A background map counts as changed by the masking where it moved by more than this many sigma.
CHANGED_SIGMA = 0.5


def _both(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(single-pass compressed, masked compressed, largest move of the map in sigma)."""
    single = estimate_background(raw, mask_steps=False)
    masked = estimate_background(raw)
    moved = float(np.max(np.abs(masked.background - single.background))) / masked.sigma
    return (compress(raw, single.background, single.sigma), compress(raw, masked.background, masked.sigma),
            moved)


def simulated(model, path: str) -> dict:
    arrays = load_shards(path, keys=("raw", "truth"))  # shards of maximask-sim ... --with-raw
    raws, truths = arrays["raw"], arrays["truth"]
    single, masked, changed = [], [], []
    for raw in raws:
        a, b, moved = _both(raw.astype(np.float32))
        single.append(a)
        masked.append(b)
        changed.append(moved > CHANGED_SIGMA)
    changed = np.asarray(changed)
    row = {"set": path, "n_images": int(len(raws)), "n_changed": int(changed.sum())}
    row.update(paired_aucs(model, truths, {"single_pass": single, "masked": masked}, changed, "changed"))
    return row


def _flagged(model, card: dict, compressed: np.ndarray) -> dict:
    logit = np.zeros((len(CLASS_NAMES),) + compressed.shape, np.float32)
    for t, logits in predict_logits(model, compressed):
        logit[:, t.ky0 : t.ky1, t.kx0 : t.kx1] = logits.numpy()
    out = {}
    for i, c in enumerate(CLASS_NAMES):
        shift = float(prior_logit_shift(card["training_priors"][c], DEFAULT_PRIORS[c]))
        prob = 1.0 / (1.0 + np.exp(-(logit[i] - shift)))
        out[c] = float((prob > float(card["thresholds"][c])).mean())
    return out


def real(model, card: dict, path: str, max_hdus: int) -> list[dict]:
    rows = []
    with fits.open(path) as hdul:
        for index, hdu in enumerate(hdul):
            data = hdu.data
            if data is None or np.ndim(data) < 2:
                continue
            while np.ndim(data) > 2:
                data = data[0]
            if min(data.shape) < 8:
                continue
            raw = np.asarray(data, dtype=np.float32)
            single, masked, moved = _both(raw)
            rows.append({"hdu": index, "shape": list(raw.shape), "background_moved_sigma": moved,
                         "single_pass": _flagged(model, card, single), "masked": _flagged(model, card, masked)})
            if len(rows) >= max_hdus:
                break
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("sets", nargs="*")
    p.add_argument("--real", nargs="+", default=[], metavar="FITS")
    p.add_argument("--max-hdus", type=int, default=8, help="image HDUs measured per real file")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, card = load_model(args.model, kind="maximask")
    model.eval()
    result = {"model": args.model, "dead_depth": DEAD_DEPTH, "machine": _machine(), "sets": [], "real": {}}
    for path in args.sets:
        row = simulated(model, path)
        result["sets"].append(row)
        print(f"{path}: background changed on {row['n_changed']} of {row['n_images']} images; mean AUC "
              f"single pass {row['single_pass']['mean_auc']:.4f}, masked {row['masked']['mean_auc']:.4f}", flush=True)
        if "changed_masked" in row:
            a, b = row["changed_single_pass"]["auc"], row["changed_masked"]["auc"]
            print(f"  on those images: {row['changed_single_pass']['mean_auc']:.4f} -> "
                  f"{row['changed_masked']['mean_auc']:.4f}; "
                  + " ".join(f"{c} {a[c]:.3f}->{b[c]:.3f}" for c in CLASS_NAMES if a[c] is not None), flush=True)
    for path in args.real:
        rows = result["real"][path] = real(model, card, path, args.max_hdus)
        for r in rows:
            a, b = r["single_pass"], r["masked"]
            print(f"{Path(path).name}[{r['hdu']}]: map moved {r['background_moved_sigma']:.1f} sigma; flagged "
                  + " ".join(f"{c} {a[c]:.4f}->{b[c]:.4f}" for c in ("TRL", "OV", "BBG", "SAT", "CR", "DCL")),
                  flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
