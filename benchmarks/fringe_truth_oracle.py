"""How much of the FR truth can be recovered from the fringes themselves (no network).

    python benchmarks/fringe_truth_oracle.py SHARD_DIR [SHARD_DIR ...] [--n-patterns 48] [--max-images 96]

Two references for the FR AUC of a MaxiMask model (paper Eqs. 9-10: the FR
truth is the polynomial envelope above -0.20, wherever the fringes are faint
or strong):

* **noise-free fringe power**: for ``--n-patterns`` simulated 256x256 fringe
  patterns and envelopes (:mod:`maximask.simulate.fringes`), the local power of
  the injected signal ``F * E_F`` (squared, Gaussian-smoothed with sigma 8 px)
  scored against the truth. This is the best any detector could do without
  noise, sources or other contaminants.
* **band-pass detector**: on the first ``--max-images`` images of each shard
  directory, the local power of a difference of Gaussians (sigma 3 and 10 px)
  of the compressed input, with pixels within 3 px of values above 2.5 set
  to 0 and the power renormalised by the unmasked fraction, Gaussian-smoothed
  with sigma 10 px, scored against the FR truth of the shards.

A network that beats the second number has learnt more than the fringe
energy; one below it has not learnt to see fringes. Prints one line per row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from maximask.classes import CLASS_NAMES
from maximask.evaluate.metrics import exact_auc
from maximask.simulate.fringes import ENVELOPE_THRESHOLD, fringe_pattern, normalised_envelope, polynomial_envelope
from maximask.train.shards import list_shards, load_shards

FR = CLASS_NAMES.index("FR")


def noise_free_auc(n: int, *, size: int = 256, seed: int = 5) -> tuple[float, float]:
    """AUC of the exact local fringe power against the FR truth, and the truth fraction."""
    rng = np.random.default_rng(seed)
    scores, truth = [], []
    for _ in range(n):
        f, _ = fringe_pattern((size, size), rng)
        en = normalised_envelope(polynomial_envelope((size, size), rng))
        ef = 1.0 / (1.0 + np.exp(-5.0 * en))  # Eq. 9
        scores.append(ndimage.gaussian_filter((f / f.std() * ef) ** 2, 8.0))
        truth.append(en > ENVELOPE_THRESHOLD)
    t = np.asarray(truth)
    return exact_auc(np.asarray(scores).ravel(), t.ravel()), float(t.mean())


def band_power(image: np.ndarray) -> np.ndarray:
    """Local band-pass power of one compressed image, shape (H, W), sources masked."""
    x = np.asarray(image, dtype=np.float32)
    sources = ndimage.maximum_filter(x > 2.5, 7)
    xc = np.where(sources, 0.0, np.clip(x, -3.0, 3.0)).astype(np.float32)
    kept = ndimage.gaussian_filter((~sources).astype(np.float32), 10.0) + 1e-3
    band = ndimage.gaussian_filter(xc, 3.0) - ndimage.gaussian_filter(xc, 10.0)
    return ndimage.gaussian_filter(band**2, 10.0) / kept


def detector_auc(directory: str, max_images: int) -> tuple[float, float, int]:
    """AUC of :func:`band_power` against the FR truth of a shard set, truth fraction, images used."""
    arrays = load_shards(list_shards(directory))
    image, truth = arrays["image"][:max_images], arrays["truth"][:max_images]
    t = ((truth >> FR) & 1).astype(bool)
    scores = np.stack([band_power(im) for im in image])
    return exact_auc(scores.ravel(), t.ravel()), float(t.mean()), len(image)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards", nargs="*", help="simulated shard directories (maximask-sim maximask)")
    ap.add_argument("--n-patterns", type=int, default=48)
    ap.add_argument("--max-images", type=int, default=96)
    args = ap.parse_args(argv)
    auc, frac = noise_free_auc(args.n_patterns)
    print(f"noise-free fringe power ({args.n_patterns} patterns, truth fraction {frac:.2f}): AUC {auc:.3f}")
    for d in args.shards:
        auc, frac, n = detector_auc(d, args.max_images)
        print(f"band-pass detector on {d} ({n} images, truth fraction {frac:.2f}): AUC {auc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
