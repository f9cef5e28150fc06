"""Comparison with LA Cosmic (paper Sect. 4.1.3, Fig. 13).

LA Cosmic (van Dokkum 2001), through its Astro-SCRAPPY implementation, is run
on the *uncompressed* images of a cosmic-ray comparison set (``raw``, ADU,
sky included, as LA Cosmic needs for its noise model), with each image's gain
and read noise. Its binary mask is dilated with a 3x3 square, as the cosmic-ray
truth masks are, and compared with the CR truth plane on the same pixels,
which gives one (FPR, TPR) point to draw over MaxiMask's ROC curve.

When a set does not record ``gain``/``read_noise``, the noise is taken as
Poisson-dominated: ``gain = bkg / sigma**2`` (e-/ADU, from the median
background and the background noise, both ADU) and ``read_noise = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation

from maximask.classes import class_index
from maximask.train.shards import list_shards, load_shards

__all__ = ["dilate_mask", "lacosmic_mask", "LaCosmicCounts", "lacosmic_counts", "lacosmic_on_shards"]


def dilate_mask(mask: np.ndarray, *, size: int = 3) -> np.ndarray:
    """Dilate a boolean mask with a ``size`` x ``size`` square (per image).

    Parameters
    ----------
    mask : ndarray, shape (H, W) or (N, H, W), bool
    """
    mask = np.asarray(mask, dtype=bool)
    structure = np.ones((size, size), dtype=bool)
    if mask.ndim == 3:
        structure = structure[None]
    return binary_dilation(mask, structure=structure)


def lacosmic_mask(
    raw: np.ndarray,
    *,
    gain: float = 1.0,
    read_noise: float = 6.5,
    sigclip: float = 4.5,
    sigfrac: float = 0.3,
    objlim: float = 5.0,
    satlevel: float = 65535.0,
    niter: int = 4,
    dilate: bool = True,
) -> np.ndarray:
    """Cosmic-ray mask of one image by LA Cosmic (astroscrappy ``detect_cosmics``).

    Parameters
    ----------
    raw : ndarray, shape (H, W), ADU
        Image with its sky background.
    gain : float, e-/ADU
    read_noise : float, e-
    sigclip, sigfrac, objlim, niter : LA Cosmic parameters (astroscrappy defaults).
    satlevel : float, ADU
        Saturation level.
    dilate : bool
        Dilate the mask with a 3x3 square, like the truth masks.

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    import astroscrappy

    mask, _ = astroscrappy.detect_cosmics(
        np.ascontiguousarray(raw, dtype=np.float32),
        gain=float(gain),
        readnoise=float(read_noise),
        sigclip=sigclip,
        sigfrac=sigfrac,
        objlim=objlim,
        satlevel=satlevel,
        niter=niter,
        verbose=False,
    )
    mask = np.asarray(mask, dtype=bool)
    return dilate_mask(mask) if dilate else mask


@dataclass
class LaCosmicCounts:
    """Confusion counts of LA Cosmic's masks against the CR truth."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
        self.tp += int(np.sum(pred & truth))
        self.fp += int(np.sum(pred & ~truth))
        self.tn += int(np.sum(~pred & ~truth))
        self.fn += int(np.sum(~pred & truth))

    @property
    def tpr(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def fpr(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    def to_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn, "tpr": self.tpr, "fpr": self.fpr}


def _gain_readnoise(arrays: dict, i: int) -> tuple[float, float]:
    if "gain" in arrays and "read_noise" in arrays:
        return float(arrays["gain"][i]), float(arrays["read_noise"][i])
    sky = float(np.median(arrays["bkg"][i]))
    sigma = float(arrays["sigma"][i])
    if sky <= 0 or sigma <= 0:
        return 1.0, max(sigma, 1e-3)
    return sky / sigma**2, 0.0


def lacosmic_counts(
    raw: np.ndarray, truth_cr: np.ndarray, *, gain, read_noise, **kwargs
) -> tuple[LaCosmicCounts, np.ndarray]:
    """Run LA Cosmic on images and count its hits against the CR truth.

    Parameters
    ----------
    raw : ndarray, shape (N, H, W), ADU
    truth_cr : ndarray, shape (N, H, W), bool
        Dilated cosmic-ray truth.
    gain, read_noise : float or array-like of shape (N,)
        e-/ADU and e-.
    **kwargs
        Passed to :func:`lacosmic_mask`.

    Returns
    -------
    counts : LaCosmicCounts
    masks : ndarray, shape (N, H, W), bool
    """
    n = raw.shape[0]
    gain = np.broadcast_to(np.asarray(gain, dtype=float), (n,))
    read_noise = np.broadcast_to(np.asarray(read_noise, dtype=float), (n,))
    counts = LaCosmicCounts()
    masks = np.zeros(raw.shape, dtype=bool)
    for i in range(n):
        masks[i] = lacosmic_mask(raw[i], gain=gain[i], read_noise=read_noise[i], **kwargs)
        counts.add(masks[i], truth_cr[i])
    return counts, masks


def lacosmic_on_shards(paths, *, max_images: int | None = None, **kwargs) -> LaCosmicCounts:
    """LA Cosmic's (FPR, TPR) counts on a cosmic-ray comparison set.

    The shards must hold ``raw``, ``bkg``, ``sigma`` and ``truth`` (and
    optionally ``gain``, ``read_noise``); see :mod:`maximask.train.shards`.
    """
    cr_bit = class_index("CR")
    counts = LaCosmicCounts()
    seen = 0
    for f in list_shards(paths):
        with np.load(f, allow_pickle=False) as z:
            keys = [k for k in ("raw", "bkg", "sigma", "truth", "gain", "read_noise") if k in z.files]
        arrays = load_shards([f], keys=keys)
        for i in range(arrays["raw"].shape[0]):
            if max_images is not None and seen >= max_images:
                return counts
            gain, rn = _gain_readnoise(arrays, i)
            mask = lacosmic_mask(arrays["raw"][i], gain=gain, read_noise=rn, **kwargs)
            counts.add(mask, (arrays["truth"][i] >> cr_bit) & 1)
            seen += 1
    return counts
