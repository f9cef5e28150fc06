"""Input preprocessing (paper Sect. 2.3.3): background, noise and dynamic compression.

The network sees ``arsinh((I - B) / sigma)``, where ``B`` is a SExtractor-like
background map and ``sigma`` the background noise, both measured with ``sep``.
Non-finite pixels are excluded from the background and replaced by a neutral
value (0 after compression, i.e. exactly the background).

Noise cap
---------
SExtractor's global rms is the mean of the clipped rms of the background
meshes. A mesh that straddles a step of the background (the edge of an
overscan strip, of a chip, of a masked region) holds two populations that
clipping cannot separate, and its rms measures the step, not the noise: on
100x100 raw stamps, a quarter overscan, it comes out up to 80 times the noise,
and the sky then looks noiseless to the network (like dead pixels or an
overscan). The pixel-to-pixel noise (:func:`difference_noise`, from
differences of adjacent pixels) does not see steps or gradients, so the noise
used is ``min(sep rms, MAX_NOISE_RATIO * difference noise)``. On ordinary
images sep's rms is 0.9 to 1.3 times the difference noise and nothing
changes. The simulator compresses with the same function, so training and
inference see the same inputs.

Steps of the background
-----------------------
sep interpolates its mesh values with a bicubic spline. Where a mesh holds a
large negative step (an overscan strip at bias level next to the sky, a dead
cluster), its value lies between the two levels and the spline rings: on a raw
LCO frame with a 16-column overscan 115 sigma below the sky, the background
overshoots the sky by 11 sigma 60 px from the edge and falls 40 sigma below it
next to the strip, so the network sees a bright band 30 px wide along the edge,
like a trail. Pixels more than ``DEAD_DEPTH`` times the noise below that first
map (no sky source is that far below the background) are therefore left out of
a second sep pass, which gives the sky next to a step its own level; they
keep the interpolated sky background, so an overscan comes out as far below the
background as it is. Where a whole mesh is overscan (a 100x100 stamp with a
25-column strip has two meshes per row), the first map is at the overscan's
level there and its pixels are not below it; so every edge strip of columns or
rows whose medians all lie ``DEAD_DEPTH`` times the noise below the image's
median, up to a third of the image wide, is left out too. Images without such
pixels get the first map unchanged.
"""

from __future__ import annotations

import numpy as np
import sep

__all__ = ["BackgroundEstimate", "DEAD_DEPTH", "MAX_NOISE_RATIO", "difference_noise", "estimate_background", "compress",
           "preprocess_image"]

#: Smallest noise level accepted, relative to the image's dynamic range, to avoid division by 0.
_MIN_SIGMA = 1e-12
#: The noise used is at most this multiple of :func:`difference_noise` (module docstring, "Noise cap").
MAX_NOISE_RATIO = 3.0
#: Pixels this many times the noise below the first background map are left out of the second
#: (module docstring, "Steps of the background").
DEAD_DEPTH = 10.0
#: The second pass is skipped when it would keep less than this fraction of the valid pixels.
_MIN_KEPT_FRACTION = 0.1
#: Adjacent-pixel differences used by :func:`difference_noise`, at most (rows are subsampled beyond).
_MAX_DIFFERENCES = 2_000_000


class BackgroundEstimate:
    """Background map and noise of one image.

    Attributes
    ----------
    background : ndarray, shape (ny, nx), float32, image units
        Smooth background map B.
    sigma : float, image units
        Global background noise: SExtractor's ``globalrms``, capped at ``MAX_NOISE_RATIO``
        times :func:`difference_noise` (module docstring, "Noise cap").
    invalid : ndarray, shape (ny, nx), bool
        Pixels that were NaN or infinite in the input.
    sigma_sep : float, image units
        The noise before the cap (sep's global rms, or the MAD fallback where sep fails);
        equal to ``sigma`` when the cap did not apply.
    """

    def __init__(self, background: np.ndarray, sigma: float, invalid: np.ndarray, sigma_sep: float | None = None):
        self.background = background
        self.sigma = sigma
        self.invalid = invalid
        self.sigma_sep = sigma if sigma_sep is None else sigma_sep

    @property
    def noise_capped(self) -> bool:
        """Whether the noise cap (module docstring) lowered sep's rms."""
        return self.sigma < self.sigma_sep


def difference_noise(image: np.ndarray, invalid: np.ndarray | None = None) -> float:
    """Background noise from differences of adjacent pixels, image units.

    ``1.4826 * MAD(d) / sqrt(2)`` over the horizontal and vertical differences ``d`` of pairs
    of valid pixels: the rms of white noise, insensitive to steps, gradients and the
    background level (sources and correlated noise bias it, up and down). Rows are
    subsampled evenly beyond about two million differences.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
    invalid : ndarray of bool, shape (ny, nx), optional
        Pixels to leave out (default: the non-finite ones).

    Returns
    -------
    float
        0.0 when undefined (fewer than 2 pixels, or more than half the differences 0).
    """
    data = np.asarray(image, dtype=np.float32)
    ny, nx = data.shape
    if ny < 2 or nx < 2:
        return 0.0
    bad = ~np.isfinite(data) if invalid is None else (np.asarray(invalid, bool) | ~np.isfinite(data))
    stride = max(1, int(np.ceil(2 * ny * nx / _MAX_DIFFERENCES)))
    rows = np.arange(0, ny - 1, stride)
    top, below, bad_top, bad_below = data[rows], data[rows + 1], bad[rows], bad[rows + 1]
    dx = (top[:, 1:] - top[:, :-1])[~(bad_top[:, 1:] | bad_top[:, :-1])]
    dy = (below - top)[~(bad_below | bad_top)]
    d = np.concatenate([dx, dy]).astype(np.float64)
    if d.size == 0:
        return 0.0
    mad = float(np.median(np.abs(d - np.median(d))))
    return 1.4826 * mad / np.sqrt(2.0)


def _box_size(n: int, preferred: int) -> int:
    return int(max(1, min(preferred, n)))


def _sep_background(
    data: np.ndarray, mask: np.ndarray, bw: int, bh: int, filter_size: int
) -> tuple[np.ndarray, float] | None:
    """(background map, global rms) from sep, or None where sep fails or the rms is not positive."""
    try:
        bkg = sep.Background(data, mask=mask if mask.any() else None, bw=bw, bh=bh, fw=filter_size, fh=filter_size)
    except Exception:  # sep refuses some degenerate inputs (constant images, 1 px wide)
        return None
    rms = float(bkg.globalrms)
    if not np.isfinite(rms) or rms <= _MIN_SIGMA:
        return None
    return bkg.back().astype(np.float32, copy=False), rms


def _deep_edge_strips(data: np.ndarray, invalid: np.ndarray, depth: float) -> np.ndarray:
    """Edge columns/rows whose medians are all ``depth`` below the image median (module docstring).

    Lines are examined from each edge inwards and the walk stops at the first line that is not
    that low, so an image without such a strip costs four line medians. A run wider than a
    third of the image is not taken for a strip (two amplifiers of different bias levels, say)
    and is left alone.

    Returns
    -------
    ndarray, shape of ``data``, bool
    """
    ny, nx = data.shape
    level = float(np.median(data[~invalid])) - depth
    out = np.zeros(data.shape, bool)
    sides = (  # (number of lines, the k-th line from this edge as a slice of data)
        (nx, lambda k: np.s_[:, k]), (nx, lambda k: np.s_[:, nx - 1 - k]),
        (ny, lambda k: np.s_[k, :]), (ny, lambda k: np.s_[ny - 1 - k, :]),
    )
    for n, line in sides:
        limit = n // 3
        width = 0
        while width <= limit and np.median(data[line(width)]) < level:
            width += 1
        if width <= limit:
            for k in range(width):
                out[line(k)] = True
    return out


def estimate_background(
    image: np.ndarray, *, box_size: int = 64, filter_size: int = 3, noise: float | None = None,
    mask_steps: bool = True,
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
    noise : float, image units, optional
        A known noise level (a larger image's, for one of its row windows): used as ``sigma``
        and for the step masking, and the pixel-to-pixel noise is not measured.
    mask_steps : bool
        Make the second pass without the pixels far below the first map (module docstring,
        "Steps of the background"; default). False gives sep's single-pass map.

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
    first = _sep_background(data, invalid, bw, bh, filter_size) if min(ny, nx) >= 8 else None
    if first is None:
        valid = data[~invalid]
        background = np.full(data.shape, np.median(valid), np.float32)
        mad = float(np.median(np.abs(valid - np.median(valid)))) * 1.4826
        sigma = mad if mad > 0 else float(np.std(valid))
    else:
        background, sigma = first
    if not np.isfinite(sigma) or sigma <= _MIN_SIGMA:
        sigma = 1.0
    if noise is not None:
        cap = lambda rms: float(noise)  # noqa: E731 (a given noise replaces the measured one)
    else:
        pixel_noise = difference_noise(data, invalid)
        cap = lambda rms: min(rms, MAX_NOISE_RATIO * pixel_noise) if pixel_noise > _MIN_SIGMA else rms  # noqa: E731
    if first is not None and mask_steps:
        # Steps of the background (module docstring): a second pass without the deep pixels.
        depth = DEAD_DEPTH * cap(sigma)
        deep = data < background - np.float32(depth)
        deep |= _deep_edge_strips(data, invalid, depth)
        deep &= ~invalid
        n_deep, n_valid = int(np.count_nonzero(deep)), int(np.count_nonzero(~invalid))
        if n_deep and n_valid - n_deep >= _MIN_KEPT_FRACTION * n_valid:
            second = _sep_background(data, deep | invalid, bw, bh, filter_size)
            if second is not None:
                background, sigma = second
    capped = cap(sigma)
    return BackgroundEstimate(background, capped, invalid, sigma if noise is None else capped)


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
