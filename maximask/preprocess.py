"""Input preprocessing (paper Sect. 2.3.3): background, noise and dynamic compression.

The network sees ``arsinh((I - B) / sigma)``, where ``B`` is a SExtractor-like
background map and ``sigma`` the background noise, both measured with ``sep``.
Non-finite pixels are excluded from the background and replaced by a neutral
value (0 after compression, i.e. exactly the background).
"""

from __future__ import annotations

import numpy as np
import sep

__all__ = ["BackgroundEstimate", "estimate_background", "compress", "preprocess_image"]

#: Smallest noise level accepted, relative to the image's dynamic range, to avoid division by 0.
_MIN_SIGMA = 1e-12


class BackgroundEstimate:
    """Background map and noise of one image.

    Attributes
    ----------
    background : ndarray, shape (ny, nx), float32, image units
        Smooth background map B.
    sigma : float, image units
        Global background noise (SExtractor's ``globalrms``).
    invalid : ndarray, shape (ny, nx), bool
        Pixels that were NaN or infinite in the input.
    """

    def __init__(self, background: np.ndarray, sigma: float, invalid: np.ndarray):
        self.background = background
        self.sigma = sigma
        self.invalid = invalid


def _box_size(n: int, preferred: int) -> int:
    return int(max(1, min(preferred, n)))


def estimate_background(
    image: np.ndarray, *, box_size: int = 64, filter_size: int = 3
) -> BackgroundEstimate:
    """Measure the SExtractor-like background map and noise of ``image``.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Pixel values in any units; NaN and inf are allowed and excluded.
    box_size : int, pixels
        Background mesh size (clipped to the image size).
    filter_size : int, meshes
        Median filter applied to the mesh grid.

    Returns
    -------
    BackgroundEstimate
    """
    data = np.asarray(image, dtype=np.float32)
    if data.ndim != 2:
        msg = f"expected a 2-D image, got shape {data.shape}"
        raise ValueError(msg)
    invalid = ~np.isfinite(data)
    if invalid.all():
        return BackgroundEstimate(np.zeros(data.shape, np.float32), 1.0, invalid)
    if invalid.any():
        data = np.where(invalid, np.float32(np.median(data[~invalid])), data)
    data = np.ascontiguousarray(data)
    ny, nx = data.shape
    bw, bh = _box_size(nx, box_size), _box_size(ny, box_size)
    try:
        if min(ny, nx) < 8:
            raise ValueError("too small for a background mesh")
        bkg = sep.Background(data, mask=invalid if invalid.any() else None, bw=bw, bh=bh, fw=filter_size, fh=filter_size)
        background = bkg.back().astype(np.float32, copy=False)
        sigma = float(bkg.globalrms)
    except Exception:  # sep refuses some degenerate inputs (constant images, 1 px wide)
        background = np.full(data.shape, np.median(data[~invalid]), np.float32)
        sigma = 0.0
    if not np.isfinite(sigma) or sigma <= 0:
        background = np.full(data.shape, np.median(data[~invalid]), np.float32)
        valid = data[~invalid]
        mad = float(np.median(np.abs(valid - np.median(valid)))) * 1.4826
        sigma = mad if mad > 0 else float(np.std(valid))
    if not np.isfinite(sigma) or sigma <= _MIN_SIGMA:
        sigma = 1.0
    return BackgroundEstimate(background, sigma, invalid)


def compress(
    image: np.ndarray,
    background: np.ndarray | float,
    sigma: float,
    *,
    offset_sigma: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Dynamic compression ``arsinh((I - B + N(0, (offset_sigma*sigma)^2)) / sigma)``.

    With ``offset_sigma > 0`` a single random offset is added to the whole image
    (training-time robustness to background residuals, Sect. 2.3.3); it needs ``rng``.
    Non-finite input pixels come out as 0.

    Returns
    -------
    ndarray, shape of ``image``, float32, dimensionless
    """
    residual = np.asarray(image, dtype=np.float32) - np.asarray(background, dtype=np.float32)
    if offset_sigma:
        if rng is None:
            msg = "a random offset needs an explicit rng"
            raise ValueError(msg)
        residual = residual + np.float32(rng.normal(0.0, offset_sigma * sigma))
    out = np.arcsinh(residual / np.float32(sigma))
    out[~np.isfinite(out)] = 0.0
    return out.astype(np.float32, copy=False)


def preprocess_image(image: np.ndarray) -> tuple[np.ndarray, BackgroundEstimate]:
    """Background-subtract, normalise and compress ``image`` for the networks.

    Returns
    -------
    compressed : ndarray, shape (ny, nx), float32
    estimate : BackgroundEstimate
    """
    est = estimate_background(image)
    return compress(image, est.background, est.sigma), est
