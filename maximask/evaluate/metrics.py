"""Classification metrics from confusion counts (paper Sect. 4.1.1).

For each class, pixels are counted in histograms of their predicted
probability, separately for positive (truth set) and negative pixels; reverse
cumulative sums give, at every bin edge ``t``, the confusion counts of the
decision ``p >= t``: true/false positives and negatives. From these come

    TPR = TP / (TP + FN)                                  (Eq. 18)
    FPR = FP / (FP + TN)                                  (Eq. 19)
    ACC = (TP + TN) / (P + N)                             (Eq. 20)
    PUR = TP / (TP + FP)                                  (Eq. 21)
    MCC = (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))   (Eq. 22)

and the ROC AUC by the trapezoidal rule over the ROC points of all edges.
Probabilities falling in the same bin are tied, and the trapezoid counts a
tie as half a correct ordering, so the histogram AUC equals the exact
rank-based AUC of the binned probabilities.

Bin scales
----------
``linear``: ``n_bins`` edges ``k / n_bins``; resolution ``1/n_bins`` everywhere.
``log``: a first bin ``[0, min_prob)`` then edges evenly spaced in
``log10 p`` from ``min_prob`` to 1, resolving the tiny probabilities of rare
classes after a prior update.
``logit``: a first bin ``[0, min_prob)`` then edges evenly spaced in
``log(p / (1 - p))`` between ``min_prob`` and ``1 - min_prob``, resolving both
ends.

Conventions where a ratio is undefined: TPR and FPR are 0, purity is 1 (no
positive prediction), MCC is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "true_positive_rate",
    "false_positive_rate",
    "accuracy",
    "purity",
    "matthews_corrcoef",
    "exact_auc",
    "roc_curve_exact",
    "bin_edges",
    "ConfusionCurves",
    "ConfusionAccumulator",
]


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def true_positive_rate(tp, fn) -> np.ndarray:
    """TPR = TP / (TP + FN) (Eq. 18); 0 where there is no positive."""
    return _ratio(tp, np.add(tp, fn), 0.0)


def false_positive_rate(fp, tn) -> np.ndarray:
    """FPR = FP / (FP + TN) (Eq. 19); 0 where there is no negative."""
    return _ratio(fp, np.add(fp, tn), 0.0)


def accuracy(tp, fp, tn, fn) -> np.ndarray:
    """ACC = (TP + TN) / (P + N) (Eq. 20)."""
    return _ratio(np.add(tp, tn), np.add(np.add(tp, fp), np.add(tn, fn)), 0.0)


def purity(tp, fp) -> np.ndarray:
    """PUR = TP / (TP + FP) (Eq. 21); 1 where nothing is predicted positive."""
    return _ratio(tp, np.add(tp, fp), 1.0)


def matthews_corrcoef(tp, fp, tn, fn) -> np.ndarray:
    """MCC (Eq. 22); 0 where a factor of the denominator is 0."""
    tp, fp, tn, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, tn, fn))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return _ratio(tp * tn - fp * fn, den, 0.0)


def exact_auc(scores, labels) -> float:
    """ROC AUC from ranks (Mann-Whitney U), ties counted half.

    Parameters
    ----------
    scores : array-like, shape (N,)
    labels : array-like, shape (N,), bool or 0/1

    Returns
    -------
    float, NaN if one of the two classes is empty.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve_exact(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC curve at every distinct score (for small sets, e.g. MaxiTrack).

    Returns
    -------
    fpr, tpr : ndarray, shape (K + 1,)
        Starting at (0, 0) (threshold above every score).
    thresholds : ndarray, shape (K + 1,)
        Decision ``score >= threshold``; the first is ``inf``.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    tpr = np.r_[0.0, true_positive_rate(tp, y.sum() - tp)]
    fpr = np.r_[0.0, false_positive_rate(fp, (~y).sum() - fp)]
    return fpr, tpr, np.r_[np.inf, s[last]]


def bin_edges(n_bins: int, *, scale: str = "linear", min_prob: float = 1e-7) -> np.ndarray:
    """Lower edges of the probability bins, which are also the thresholds.

    Returns
    -------
    ndarray, shape (n_bins,), float64, increasing, first edge 0.
    """
    if n_bins < 2:
        msg = f"n_bins must be at least 2, got {n_bins}"
        raise ValueError(msg)
    if not 0 < min_prob < 0.5:
        msg = f"min_prob must be in (0, 0.5), got {min_prob}"
        raise ValueError(msg)
    if scale == "linear":
        return np.arange(n_bins, dtype=np.float64) / n_bins
    if scale == "log":
        return np.r_[0.0, np.logspace(np.log10(min_prob), 0.0, n_bins - 1, endpoint=False)]
    if scale == "logit":
        lim = np.log(min_prob / (1 - min_prob))
        return np.r_[0.0, 1.0 / (1.0 + np.exp(-np.linspace(lim, -lim, n_bins - 1)))]
    msg = f"unknown bin scale {scale!r}; expected 'linear', 'log' or 'logit'"
    raise ValueError(msg)


@dataclass(frozen=True)
class ConfusionCurves:
    """Confusion counts of ``n_classes`` binary classifiers at ``K`` thresholds.

    Attributes
    ----------
    thresholds : ndarray, shape (K,) or (C, K)
        Decision ``p >= threshold``, increasing along K; per class when 2-D
        (e.g. after mapping through a per-class prior update, Eq. 26).
    tp, fp, tn, fn : ndarray, shape (C, K), int64
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    tn: np.ndarray
    fn: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(self.tp.shape[0])

    def tpr(self) -> np.ndarray:
        return true_positive_rate(self.tp, self.fn)

    def fpr(self) -> np.ndarray:
        return false_positive_rate(self.fp, self.tn)

    def accuracy(self) -> np.ndarray:
        return accuracy(self.tp, self.fp, self.tn, self.fn)

    def purity(self) -> np.ndarray:
        return purity(self.tp, self.fp)

    def mcc(self) -> np.ndarray:
        return matthews_corrcoef(self.tp, self.fp, self.tn, self.fn)

    def n_positive(self) -> np.ndarray:
        """Number of positive samples per class, shape (C,)."""
        return self.tp[:, 0] + self.fn[:, 0]

    def n_negative(self) -> np.ndarray:
        """Number of negative samples per class, shape (C,)."""
        return self.fp[:, 0] + self.tn[:, 0]

    def auc(self) -> np.ndarray:
        """Trapezoidal ROC AUC per class, shape (C,); NaN for a class without positives or negatives."""
        fpr = np.concatenate([self.fpr(), np.zeros((self.n_classes, 1))], axis=1)[:, ::-1]
        tpr = np.concatenate([self.tpr(), np.zeros((self.n_classes, 1))], axis=1)[:, ::-1]
        area = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1)
        valid = (self.n_positive() > 0) & (self.n_negative() > 0)
        return np.where(valid, area, np.nan)

    def best_mcc(self) -> tuple[np.ndarray, np.ndarray]:
        """Best MCC and its threshold per class, two arrays of shape (C,)."""
        m = self.mcc()
        k = np.argmax(m, axis=1)
        rows = np.arange(self.n_classes)
        return m[rows, k], self.class_thresholds()[rows, k]

    def class_thresholds(self) -> np.ndarray:
        """Thresholds per class, shape (C, K)."""
        return np.broadcast_to(self.thresholds, self.tp.shape)

    def with_thresholds(self, thresholds: np.ndarray) -> "ConfusionCurves":
        """The same counts with other (monotonically mapped) thresholds."""
        return ConfusionCurves(np.asarray(thresholds), self.tp, self.fp, self.tn, self.fn)

    def tpr_at_fpr(self, max_fpr: float) -> np.ndarray:
        """Highest TPR reached with FPR <= ``max_fpr``, per class, shape (C,)."""
        ok = self.fpr() <= max_fpr
        return np.where(ok, self.tpr(), 0.0).max(axis=1)

    def at_threshold(self, threshold: float | np.ndarray) -> dict[str, np.ndarray]:
        """Counts and rates at the first edge ``>= threshold`` (one per class)."""
        t = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (self.n_classes,))
        thr = self.class_thresholds()
        k = np.array([np.searchsorted(thr[c], t[c] * (1 - 1e-12), side="left") for c in range(self.n_classes)])
        k = np.clip(k, 0, thr.shape[1] - 1)
        idx = (np.arange(self.n_classes), k)
        tp, fp, tn, fn = self.tp[idx], self.fp[idx], self.tn[idx], self.fn[idx]
        return {
            "threshold": thr[idx],
            "tpr": true_positive_rate(tp, fn),
            "fpr": false_positive_rate(fp, tn),
            "purity": purity(tp, fp),
            "mcc": matthews_corrcoef(tp, fp, tn, fn),
        }

    def summary(self, class_names) -> dict[str, dict[str, float]]:
        """Per-class scalar metrics: AUC, best MCC and its threshold, TPR and purity there, TPR at FPR 1e-3."""
        auc = self.auc()
        mcc, thr = self.best_mcc()
        at = self.at_threshold(thr)
        t3 = self.tpr_at_fpr(1e-3)
        out = {}
        for i, name in enumerate(class_names):
            out[name] = {
                "auc": None if np.isnan(auc[i]) else float(auc[i]),
                "best_mcc": float(mcc[i]),
                "best_mcc_threshold": float(thr[i]),
                "tpr_at_best_mcc": float(at["tpr"][i]),
                "fpr_at_best_mcc": float(at["fpr"][i]),
                "purity_at_best_mcc": float(at["purity"][i]),
                "tpr_at_fpr_1e-3": float(t3[i]),
                "n_positive": int(self.n_positive()[i]),
                "n_negative": int(self.n_negative()[i]),
            }
        return out


class ConfusionAccumulator:
    """Histograms of predicted probabilities for positives and negatives, per class.

    Parameters
    ----------
    n_classes : int
        Number of binary classifiers.
    n_bins : int
        Number of probability bins (= thresholds).
    scale : {"linear", "log", "logit"}
        Spacing of the bin edges (see the module notes).
    min_prob : float
        Lowest resolved probability for the ``log`` and ``logit`` scales.

    Examples
    --------
    >>> acc = ConfusionAccumulator(14, 10_000)
    >>> acc.update(probs, truth)        # (B, 14, H, W) each
    >>> curves = acc.result()
    """

    def __init__(self, n_classes: int, n_bins: int = 10_000, *, scale: str = "linear", min_prob: float = 1e-7):
        self.n_classes = int(n_classes)
        self.edges = bin_edges(n_bins, scale=scale, min_prob=min_prob)
        self.n_bins = int(n_bins)
        self.scale = scale
        self.counts = np.zeros((2, self.n_classes, self.n_bins), dtype=np.int64)

    def bin_index(self, probs: np.ndarray) -> np.ndarray:
        """Bin of each probability (``edges[k] <= p < edges[k+1]``)."""
        p = np.asarray(probs, dtype=np.float64)
        return np.clip(np.searchsorted(self.edges, p, side="right") - 1, 0, self.n_bins - 1)

    def update(self, probs, truth, *, class_axis: int = 1) -> None:
        """Add predictions to the histograms.

        Parameters
        ----------
        probs : array-like, float in [0, 1]
            Probabilities; classes along ``class_axis`` (e.g. (B, C, H, W)),
            or shape (N,) when ``n_classes == 1``.
        truth : array-like, same shape, bool or 0/1
            Ground truth.
        """
        p = _as_numpy(probs)
        y = _as_numpy(truth)
        if p.shape != y.shape:
            msg = f"probabilities {p.shape} and truth {y.shape} differ in shape"
            raise ValueError(msg)
        if p.ndim == 1 and self.n_classes == 1:
            p, y = p[None], y[None]
        else:
            p = np.moveaxis(p, class_axis, 0).reshape(p.shape[class_axis], -1)
            y = np.moveaxis(y, class_axis, 0).reshape(y.shape[class_axis], -1)
        if p.shape[0] != self.n_classes:
            msg = f"expected {self.n_classes} classes, got {p.shape[0]}"
            raise ValueError(msg)
        k = self.bin_index(p)
        idx = k + self.n_bins * np.arange(self.n_classes)[:, None] + self.n_bins * self.n_classes * y.astype(bool)
        self.counts += np.bincount(idx.ravel(), minlength=self.counts.size).reshape(self.counts.shape)

    def merge(self, other: "ConfusionAccumulator") -> None:
        """Add the counts of an accumulator with the same bins."""
        if other.counts.shape != self.counts.shape or not np.array_equal(other.edges, self.edges):
            msg = "cannot merge accumulators with different bins or classes"
            raise ValueError(msg)
        self.counts += other.counts

    def result(self) -> ConfusionCurves:
        """Confusion counts at every bin edge."""
        neg, pos = self.counts
        tp = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1]
        fp = np.cumsum(neg[:, ::-1], axis=1)[:, ::-1]
        fn = pos.sum(axis=1, keepdims=True) - tp
        tn = neg.sum(axis=1, keepdims=True) - fp
        return ConfusionCurves(self.edges.copy(), tp, fp, tn, fn)


def _as_numpy(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().to("cpu").numpy()
    return np.asarray(a)
