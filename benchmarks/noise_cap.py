"""The noise cap of the preprocessing: held-out quality with and without it, and on real stamps.

    python benchmarks/noise_cap.py MODEL RAW_SET [RAW_SET ...] [--real-stamps FILE] [--noise-ratio FITS ...]
        [--threads 1] [--out F.json]

``maximask.preprocess`` uses ``sigma = min(sep global rms, MAX_NOISE_RATIO x difference
noise)``. For each RAW_SET (shards written with ``maximask-sim maximask ... --with-raw``,
whose ``raw`` arrays are the simulated ADU images), every image is compressed twice with
the same background map, once with sep's rms alone (``BackgroundEstimate.sigma_sep``) and
once with the capped noise, and the MaxiMask model's per-class AUC is measured on both,
over the whole set and over the images where the cap applies.

``--real-stamps FILE``: a FITS file of many small HDUs (e.g. the 70 DECam 100x100 raw
stamps of the development data); per HDU, the fraction of pixels flagged OV at the card's
threshold (default prior update), with and without the cap, and the same over the pixels
left of the overscan (the first 60 columns).

``--noise-ratio FITS ...``: sep's global rms over :func:`maximask.preprocess.difference_noise`
for every image HDU of these files (the cap applies above ``MAX_NOISE_RATIO``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from maximask.classes import CLASS_NAMES
from maximask.evaluate.metrics import ConfusionAccumulator
from maximask.inference import predict_logits
from maximask.api import DEFAULT_PRIORS
from maximask.modelfile import load_model
from maximask.posterior import prior_logit_shift
from maximask.preprocess import MAX_NOISE_RATIO, compress, difference_noise, estimate_background
from maximask.train.calibration import predict_batches
from maximask.train.shards import decode_truth, load_shards

from bench_inference import _machine  # noqa: E402 (benchmarks/ is the script's directory)


def _aucs(model, images: np.ndarray, truths: np.ndarray) -> dict:
    acc = ConfusionAccumulator(len(CLASS_NAMES), 10_000, scale="logit", min_prob=1e-7)
    for sl, probs in predict_batches(model, images, kind="maximask", batch_size=4):
        acc.update(probs, decode_truth(truths[sl]))
    auc = acc.result().auc()
    per_class = {c: (float(a) if np.isfinite(a) else None) for c, a in zip(CLASS_NAMES, auc)}
    finite = [a for a in per_class.values() if a is not None]
    return {"mean_auc": float(np.mean(finite)), "auc": per_class}


def simulated(model, path: str) -> dict:
    arrays = load_shards(path, keys=("raw", "truth"))  # shards of maximask-sim ... --with-raw
    raws, truths = arrays["raw"], arrays["truth"]
    sep_only, capped, applies = [], [], []
    for raw in raws:
        raw = raw.astype(np.float32)
        est = estimate_background(raw, mask_steps=False)  # the single-pass map of the documented figures
        sep_only.append(compress(raw, est.background, est.sigma_sep))
        capped.append(compress(raw, est.background, est.sigma))
        applies.append(est.noise_capped)
    applies = np.asarray(applies)
    row = {"set": path, "n_images": int(len(raws)), "n_capped": int(applies.sum())}
    row.update(paired_aucs(model, truths, {"sep_only": sep_only, "capped": capped}, applies, "capped_images"))
    return row


def paired_aucs(model, truths: np.ndarray, variants: dict, subset: np.ndarray, subset_name: str) -> dict:
    """AUCs of each variant (name: list of compressed images, the same images compressed
    differently) over the whole set, and as ``SUBSET_NAME_<name>`` over the images of ``subset``."""
    out = {}
    for name, images in variants.items():
        images = np.asarray(images)
        out[name] = _aucs(model, images, truths)
        if subset.any():
            out[f"{subset_name}_{name}"] = _aucs(model, images[subset], truths[subset])
    return out


def noise_ratios(paths) -> dict:
    """sep's rms over the pixel-to-pixel noise of every 2-D image HDU (a cube: its first plane)."""
    from astropy.io import fits

    out = {}
    for path in paths:
        ratios = []
        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.data is None or np.ndim(hdu.data) < 2 or min(np.shape(hdu.data)[-2:]) < 8:
                    continue
                raw = np.asarray(hdu.data, dtype=np.float32).reshape(-1, *hdu.data.shape[-2:])[0]
                ratios.append(estimate_background(raw, mask_steps=False).sigma_sep / difference_noise(raw))
        out[str(path)] = {"min": float(min(ratios)), "median": float(np.median(ratios)), "max": float(max(ratios)),
                          "n_hdus": len(ratios)}
    return out


def real_stamps(model, card, path: str) -> dict:
    from astropy.io import fits

    iov = CLASS_NAMES.index("OV")
    threshold = float(card["thresholds"]["OV"])
    shift = float(prior_logit_shift(card["training_priors"]["OV"], DEFAULT_PRIORS["OV"]))
    out = {"file": str(path), "threshold": threshold, "sep_only": [], "capped": [], "sep_only_left60": [],
           "capped_left60": []}
    with fits.open(path) as hdul:
        for hdu in hdul:
            if hdu.data is None or np.ndim(hdu.data) != 2 or min(hdu.data.shape) < 8:
                continue
            raw = np.asarray(hdu.data, dtype=np.float32)
            est = estimate_background(raw, mask_steps=False)  # the single-pass map of the documented figures
            for name, sigma in (("sep_only", est.sigma_sep), ("capped", est.sigma)):
                logit = np.zeros(raw.shape, np.float32)
                for t, logits in predict_logits(model, compress(raw, est.background, sigma)):
                    logit[t.ky0 : t.ky1, t.kx0 : t.kx1] = logits[iov].numpy()
                flagged = 1.0 / (1.0 + np.exp(-(logit - shift))) > threshold
                out[name].append(float(flagged.mean()))
                out[name + "_left60"].append(float(flagged[:, :60].mean()))
    for key in ("sep_only", "capped", "sep_only_left60", "capped_left60"):
        v = np.asarray(out[key])
        out[key] = {"median": float(np.median(v)), "mean": float(v.mean()), "max": float(v.max()),
                    "n_above_0.9": int((v > 0.9).sum()), "n": int(v.size)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("sets", nargs="*")
    p.add_argument("--real-stamps")
    p.add_argument("--noise-ratio", nargs="+", default=[], metavar="FITS",
                   help="also print sep's rms over the pixel-to-pixel noise of these files' image HDUs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, card = load_model(args.model, kind="maximask")
    model.eval()
    result = {"model": args.model, "max_noise_ratio": MAX_NOISE_RATIO, "machine": _machine(), "sets": []}
    for path in args.sets:
        row = simulated(model, path)
        result["sets"].append(row)
        print(f"{path}: {row['n_capped']} of {row['n_images']} images capped; mean AUC sep only "
              f"{row['sep_only']['mean_auc']:.4f}, capped {row['capped']['mean_auc']:.4f}", flush=True)
        if "capped_images_capped" in row:
            print(f"  on the capped images: {row['capped_images_sep_only']['mean_auc']:.4f} -> "
                  f"{row['capped_images_capped']['mean_auc']:.4f}", flush=True)
    if args.real_stamps:
        result["real_stamps"] = r = real_stamps(model, card, args.real_stamps)
        print(f"{args.real_stamps}: OV fraction per HDU, median {r['sep_only']['median']:.3f} -> "
              f"{r['capped']['median']:.3f}; first 60 columns {r['sep_only_left60']['median']:.3f} -> "
              f"{r['capped_left60']['median']:.3f}; HDUs > 90 % OV {r['sep_only']['n_above_0.9']} -> "
              f"{r['capped']['n_above_0.9']}", flush=True)
    if args.noise_ratio:
        result["noise_ratios"] = ratios = noise_ratios(args.noise_ratio)
        for path, r in ratios.items():
            print(f"{path}: sep rms / pixel-to-pixel noise {r['min']:.2f}-{r['max']:.2f} (median {r['median']:.2f}, "
                  f"{r['n_hdus']} HDUs)", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
