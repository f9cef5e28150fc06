"""From network outputs to what users ask for: prior update, thresholds, class selection, flag maps.

Prior update (paper Eq. 26)
---------------------------
A network trained on a set ``T`` whose class proportions are ``P(w|T)``
outputs ``P(w|x, T)``. For data ``O`` where the class has prior ``P(w|O)``:

    P(w|x,O) = 1 / (1 + (1/P(w|x,T) - 1) * P(w|T)/P(w|O) * (1-P(w|O))/(1-P(w|T)))

In log-odds this is a constant shift, ``logit P(w|x,O) = logit P(w|x,T) - log F``
with ``F = P(w|T)/P(w|O) * (1-P(w|O))/(1-P(w|T))``, which is how the
inference applies it (exactly, and without overflow, on the network's logits).

Masks
-----
A class is flagged where its (updated) probability is ``>= threshold``
(the decision rule the default thresholds were chosen with).
Per-class masks are ``uint8`` planes (1: flagged). The single composite mask
is an ``int32`` image whose value is the sum of the bit codes of the flagged
classes (paper Sect. 7; SExtractor ``FLAG_IMAGE``); ``BG`` has code 0.

Non-finite input pixels (NaN, inf) are never reported as clean: probability
planes hold NaN there, per-class masks hold :data:`INVALID_MASK_VALUE` (255)
and the composite mask has :data:`INVALID_BIT` (8192) set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from maximask.classes import BIT_CODES, CLASS_NAMES, DEFAULT_FLAGS, DEFAULT_PRIORS, DEFAULT_THRESHOLDS, N_CLASSES

__all__ = [
    "INVALID_BIT",
    "INVALID_MASK_VALUE",
    "DEFAULT_TRACKING_PRIOR",
    "update_priors",
    "prior_logit_shift",
    "PosteriorSettings",
    "threshold_probabilities",
    "combine_bits",
    "dilate_masks",
    "disk",
    "parse_dilate",
]

#: Bit set in composite masks where the input pixel was NaN or infinite (next free power of 2).
INVALID_BIT = 8192
#: Value of per-class uint8 masks where the input pixel was NaN or infinite.
INVALID_MASK_VALUE = 255
#: Default observation prior of tracking errors (published ``maxitrack --prior``).
DEFAULT_TRACKING_PRIOR = 0.05
_EPS = 1e-12


def update_priors(probs, train_prior, obs_prior):
    """Update posteriors from training priors to observation priors (Eq. 26).

    ``P(c|x,O) = 1 / (1 + (1/P(c|x,T) - 1) * P(c|T)/P(c|O) * (1-P(c|O))/(1-P(c|T)))``

    Parameters
    ----------
    probs : ndarray
        ``P(w_c|x, T)`` in [0, 1].
    train_prior, obs_prior : float or ndarray broadcasting with ``probs``
        ``P(w_c|T)`` and ``P(w_c|O)``, in (0, 1).

    Returns
    -------
    ndarray (float64), same shape as ``probs``; 0 and 1 are kept.
    """
    p = np.asarray(probs, dtype=np.float64)
    pt = np.clip(np.asarray(train_prior, dtype=np.float64), _EPS, 1 - _EPS)
    po = np.clip(np.asarray(obs_prior, dtype=np.float64), _EPS, 1 - _EPS)
    factor = (pt / po) * ((1 - po) / (1 - pt))
    # odds form: odds_O = odds_T / factor, safe at p = 0 and p = 1
    with np.errstate(divide="ignore", invalid="ignore"):
        out = p / (p + (1 - p) * factor)
    return np.where(p <= 0, 0.0, np.where(p >= 1, 1.0, out))


def prior_logit_shift(train_prior, obs_prior) -> np.ndarray:
    """``log F`` of Eq. 26: ``logit P(w|x,O) = logit P(w|x,T) - log F``.

    Parameters
    ----------
    train_prior, obs_prior : float or array_like, in (0, 1)

    Returns
    -------
    ndarray, float64, broadcast shape of the inputs; 0 where the priors are equal.
    """
    pt = np.clip(np.asarray(train_prior, dtype=np.float64), _EPS, 1 - _EPS)
    po = np.clip(np.asarray(obs_prior, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(pt) - np.log(po) + np.log1p(-po) - np.log1p(-pt)


def _per_class(values: Mapping[str, float] | Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    if isinstance(values, Mapping):
        missing = [n for n in CLASS_NAMES if n not in values]
        if missing:
            msg = f"{what}: no value for {', '.join(missing)}"
            raise ValueError(msg)
        return np.array([float(values[n]) for n in CLASS_NAMES], dtype=np.float64)
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size != N_CLASSES:
        msg = f"{what}: expected {N_CLASSES} values, got {arr.size}"
        raise ValueError(msg)
    return arr


@dataclass
class PosteriorSettings:
    """What to make of the 14 network outputs.

    Attributes
    ----------
    flags : ndarray, shape (14,), bool
        Classes to output (``classes.flags``).
    priors : ndarray, shape (14,), or None
        Observation priors ``P(w|O)`` (``classes.priors``); None: no prior update.
    thresholds : ndarray, shape (14,), or None
        Probability thresholds (``classes.thresh``); None: output probabilities.
    single_mask : bool
        Combine the thresholded masks into one bit-coded int32 plane.
    dilate : dict
        Class name -> radius in pixels of the disk each mask is grown by
        (applied to thresholded masks only).
    """

    flags: np.ndarray = field(default_factory=lambda: np.array([DEFAULT_FLAGS[n] for n in CLASS_NAMES]))
    priors: np.ndarray | None = field(default_factory=lambda: _per_class(DEFAULT_PRIORS, "priors"))
    thresholds: np.ndarray | None = field(default_factory=lambda: _per_class(DEFAULT_THRESHOLDS, "thresholds"))
    single_mask: bool = False
    dilate: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.flags = np.asarray(self.flags, dtype=bool).ravel()
        if self.flags.size != N_CLASSES:
            msg = f"flags: expected {N_CLASSES} values, got {self.flags.size}"
            raise ValueError(msg)
        if not self.flags.any():
            msg = "no output class was selected"
            raise ValueError(msg)
        if self.priors is not None:
            self.priors = _per_class(self.priors, "priors")
            if np.any((self.priors <= 0) | (self.priors >= 1)) or not np.all(np.isfinite(self.priors)):
                msg = "priors must lie strictly between 0 and 1"
                raise ValueError(msg)
        if self.thresholds is not None:
            self.thresholds = _per_class(self.thresholds, "thresholds")
            if np.any((self.thresholds < 0) | (self.thresholds > 1)) or not np.all(np.isfinite(self.thresholds)):
                msg = "thresholds must lie between 0 and 1"
                raise ValueError(msg)
        if self.single_mask and self.thresholds is None:
            msg = "a single mask needs thresholds (proba_thresh)"
            raise ValueError(msg)
        dil = {}
        for name, r in dict(self.dilate).items():
            key = name.strip().upper()
            if key not in CLASS_NAMES:
                msg = f"dilate: unknown class {name!r}"
                raise ValueError(msg)
            if int(r) < 0:
                msg = f"dilate: negative radius for {key}"
                raise ValueError(msg)
            if int(r) > 0:
                dil[key] = int(r)
        self.dilate = dil
        if self.dilate and self.thresholds is None:
            msg = "mask growing (dilate) needs thresholds (proba_thresh)"
            raise ValueError(msg)

    @property
    def selected(self) -> np.ndarray:
        """Indices of the output classes, shape (n_selected,), int64."""
        return np.flatnonzero(self.flags)

    @property
    def selected_names(self) -> list[str]:
        return [CLASS_NAMES[i] for i in self.selected]

    @property
    def output_kind(self) -> str:
        """``"proba"`` (float32 planes), ``"masks"`` (uint8 planes) or ``"flags"`` (one int32 plane)."""
        if self.thresholds is None:
            return "proba"
        return "flags" if self.single_mask else "masks"

    @property
    def n_planes(self) -> int:
        return 1 if self.single_mask else int(self.flags.sum())

    @property
    def dtype(self) -> np.dtype:
        return {"proba": np.dtype(np.float32), "masks": np.dtype(np.uint8), "flags": np.dtype(np.int32)}[self.output_kind]

    def logit_shift(self, training_priors: Mapping[str, float] | None) -> np.ndarray:
        """Per selected class ``log F`` (Eq. 26) to subtract from logits, shape (n_selected,).

        Zero when no prior update is asked for or the model has no training priors.
        """
        sel = self.selected
        if self.priors is None or not training_priors:
            return np.zeros(sel.size)
        pt = np.array([float(training_priors.get(CLASS_NAMES[i], self.priors[i])) for i in sel])
        return prior_logit_shift(pt, self.priors[sel])


def threshold_probabilities(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per-class masks ``probs >= thresholds``.

    Parameters
    ----------
    probs : ndarray, shape (C, ...), probabilities (NaN: invalid pixel)
    thresholds : ndarray, shape (C,)

    Returns
    -------
    ndarray, shape of ``probs``, uint8: 1 flagged, 0 not,
    :data:`INVALID_MASK_VALUE` where ``probs`` is NaN.
    """
    probs = np.asarray(probs)
    t = np.asarray(thresholds, dtype=probs.dtype if probs.dtype.kind == "f" else np.float64)
    t = t.reshape((-1,) + (1,) * (probs.ndim - 1))
    out = (probs >= t).astype(np.uint8)
    out[np.isnan(probs)] = INVALID_MASK_VALUE
    return out


def combine_bits(masks: np.ndarray, class_indices: Sequence[int]) -> np.ndarray:
    """Bit-coded composite mask (SExtractor ``FLAG_IMAGE``).

    Parameters
    ----------
    masks : ndarray, shape (C, ...), uint8 per-class masks (see :func:`threshold_probabilities`)
    class_indices : sequence of int, length C
        Class index of each plane.

    Returns
    -------
    ndarray, shape ``masks.shape[1:]``, int32: sum of the bit codes of the
    flagged classes, plus :data:`INVALID_BIT` where the masks say invalid.
    """
    masks = np.asarray(masks)
    out = np.zeros(masks.shape[1:], dtype=np.int32)
    for plane, ci in zip(masks, class_indices):
        bit = BIT_CODES[CLASS_NAMES[int(ci)]]
        if bit:
            out |= np.where(plane == 1, np.int32(bit), np.int32(0))
    if masks.shape[0]:
        out[masks[0] == INVALID_MASK_VALUE] |= INVALID_BIT
    return out


def disk(radius: int) -> np.ndarray:
    """Boolean disk structuring element of ``radius`` pixels, shape (2r+1, 2r+1)."""
    r = int(radius)
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    # r*r + r: a round digital disk (radius 1 is the full 3x3 square, 2 the 5x5 without its corners)
    return (x * x + y * y) <= r * r + r


def dilate_masks(masks: np.ndarray, radii: Sequence[int], *, chunk_rows: int = 2048) -> np.ndarray:
    """Grow each flagged region of per-class masks by a disk of the class's radius.

    Parameters
    ----------
    masks : ndarray, shape (C, ny, nx), uint8 (modified in place and returned; may be a memmap)
    radii : sequence of int, length C, pixels (0: unchanged)
    chunk_rows : int
        Rows dilated at a time (memory is bounded by a few chunks of one plane).

    Invalid pixels (:data:`INVALID_MASK_VALUE`) keep their value and do not grow.
    """
    from scipy import ndimage

    for plane, r in zip(masks, radii):
        r = int(r)
        if r <= 0:
            continue
        ny = plane.shape[0]
        step = max(int(chunk_rows), r)
        structure = disk(r)
        tail = None  # original flags of the r rows above the current chunk
        for y0 in range(0, ny, step):
            y1 = min(ny, y0 + step)
            cur = plane[y0 : min(ny, y1 + r)] == 1  # rows >= y0 are not modified yet
            src = cur if tail is None else np.concatenate([tail, cur])
            off = 0 if tail is None else tail.shape[0]
            grown = ndimage.binary_dilation(src, structure=structure)[off : off + (y1 - y0)]
            tail = cur[max(0, (y1 - y0) - r) : y1 - y0].copy()
            block = np.asarray(plane[y0:y1])
            block = np.where(grown & (block == 0), np.uint8(1), block)
            plane[y0:y1] = block
    return masks


def parse_dilate(text: str | int | None) -> dict[str, int]:
    """Parse a ``--dilate`` value: ``"2"`` (all classes) or ``"CR=2,SAT=3"``.

    Returns
    -------
    dict class name -> radius in pixels (an integer alone applies to every class but BG).
    """
    if text is None or text == "":
        return {}
    if isinstance(text, int):
        return {n: int(text) for n in CLASS_NAMES if n != "BG"}
    s = str(text).strip()
    if s.lstrip("-").isdigit():
        return {n: int(s) for n in CLASS_NAMES if n != "BG"}
    out = {}
    for item in s.split(","):
        if "=" not in item:
            msg = f"bad dilate item {item!r}: expected CLASS=PIXELS"
            raise ValueError(msg)
        name, val = item.split("=", 1)
        key = name.strip().upper()
        if key not in CLASS_NAMES:
            msg = f"dilate: unknown class {name.strip()!r}"
            raise ValueError(msg)
        try:
            out[key] = int(val)
        except ValueError:
            msg = f"dilate: {val!r} is not an integer number of pixels"
            raise ValueError(msg) from None
        if out[key] < 0:
            msg = f"dilate: negative radius for {key}"
            raise ValueError(msg)
    return out
