"""Class proportions of a training set and the class weights of Eq. 15.

``P(w_c|T)`` is the fraction of the training set's pixels labelled with class
``c``; the proportions do not sum to one, since a pixel may carry several
classes. The weights

    w_c = ( P(w_c|T) * sum_i 1/P(w_i|T) )^-1          (Eq. 15)

satisfy ``w_i / w_j = P(w_j|T) / P(w_i|T)`` and ``sum_c w_c = 1`` (Eq. 16).
They are computed once from the whole training set. A class absent from the
training set (proportion 0) gets weight 0: it labels no pixel, so its weight
is never used, and Eq. 15 is applied to the classes present.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from maximask.classes import N_CLASSES
from maximask.train.shards import list_shards, load_shards

__all__ = ["class_proportions", "class_weights", "count_classes"]


def count_classes(truth: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Number of pixels carrying each class bit.

    Parameters
    ----------
    truth : ndarray, shape (N, H, W), unsigned integer bit field

    Returns
    -------
    ndarray, shape (n_classes,), int64
    """
    truth = np.asarray(truth)
    values, counts = np.unique(truth, return_counts=True)
    out = np.zeros(n_classes, dtype=np.int64)
    for i in range(n_classes):
        out[i] = counts[((values >> i) & 1).astype(bool)].sum()
    return out


def class_proportions(shard_paths: str | os.PathLike | Iterable[str | os.PathLike]) -> np.ndarray:
    """Fraction of pixels of each class over all shards, ``P(w_c|T)``.

    Streams over the shards one at a time.

    Returns
    -------
    ndarray, shape (14,), float64
    """
    counts = np.zeros(N_CLASSES, dtype=np.int64)
    n_pix = 0
    for f in list_shards(shard_paths):
        truth = load_shards([f], keys=("truth",))["truth"]
        counts += count_classes(truth)
        n_pix += truth.size
    if n_pix == 0:
        msg = "the shards hold no pixel"
        raise ValueError(msg)
    return counts / n_pix


def class_weights(proportions: np.ndarray) -> np.ndarray:
    """Class weights of Eq. 15 from the class proportions.

    Parameters
    ----------
    proportions : array-like, shape (C,)
        ``P(w_c|T)`` in [0, 1]; at least one must be positive.

    Returns
    -------
    ndarray, shape (C,), float64, summing to 1; 0 for absent classes.
    """
    p = np.asarray(proportions, dtype=np.float64)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        msg = "proportions must be a 1-D array of values in [0, 1]"
        raise ValueError(msg)
    present = p > 0
    if not present.any():
        msg = "no class is present (all proportions are 0)"
        raise ValueError(msg)
    w = np.zeros_like(p)
    inv_sum = np.sum(1.0 / p[present])
    w[present] = 1.0 / (p[present] * inv_sum)
    return w
