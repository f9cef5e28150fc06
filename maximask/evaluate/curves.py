"""Plots of the evaluation (PNG, matplotlib's Agg backend).

* :func:`plot_roc` per-class ROC curves, FPR on a log axis, AUC in the legend (paper Fig. A.1);
* :func:`plot_mcc` MCC against the threshold, best point annotated (Fig. A.2);
* :func:`plot_tpr_purity` TPR against purity, points shaded by threshold (Fig. A.3);
* :func:`plot_cr_comparison` MaxiMask's CR ROC with LA Cosmic's point (Fig. 13);
* :func:`plot_maxitrack_roc` the MaxiTrack ROC curve (Fig. 14).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from maximask.evaluate.metrics import ConfusionCurves

__all__ = ["plot_roc", "plot_mcc", "plot_tpr_purity", "plot_cr_comparison", "plot_maxitrack_roc"]

_MIN_FPR = 1e-7


def _figure(n_panels: int):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cols = min(4, n_panels)
    rows = math.ceil(n_panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return plt, fig, axes.flat


def _save(plt, fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _classes_with_data(curves: ConfusionCurves, names: Sequence[str]) -> list[int]:
    ok = (curves.n_positive() > 0) & (curves.n_negative() > 0)
    return [i for i in range(len(names)) if ok[i]]


def plot_roc(curves: ConfusionCurves, names: Sequence[str], path: str | os.PathLike) -> Path:
    """ROC curve of each class with positives and negatives; log FPR axis."""
    idx = _classes_with_data(curves, names)
    plt, fig, axes = _figure(max(len(idx), 1))
    fpr, tpr, auc = curves.fpr(), curves.tpr(), curves.auc()
    for ax, i in zip(axes, idx):
        ax.plot(np.maximum(fpr[i], _MIN_FPR), tpr[i], color="C0", label=f"AUC = {auc[i]:.5f}")
        grid = np.logspace(math.log10(_MIN_FPR), 0, 200)
        ax.plot(grid, grid, color="purple", lw=0.8, ls="--", label="random")
        ax.set_xscale("log")
        ax.set_xlim(_MIN_FPR, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(names[i])
        ax.set_xlabel("FPR")
        ax.set_ylabel("TPR")
        ax.legend(loc="lower right", fontsize=8)
    return _save(plt, fig, path)


def plot_mcc(curves: ConfusionCurves, names: Sequence[str], path: str | os.PathLike) -> Path:
    """MCC against the threshold (of ``curves.thresholds``), best point annotated."""
    idx = _classes_with_data(curves, names)
    plt, fig, axes = _figure(max(len(idx), 1))
    mcc = curves.mcc()
    best, thr = curves.best_mcc()
    thresholds = np.maximum(curves.class_thresholds(), 1e-8)
    for ax, i in zip(axes, idx):
        ax.plot(thresholds[i], mcc[i], color="C1")
        ax.plot([max(thr[i], 1e-8)], [best[i]], "o", color="k")
        ax.annotate(f"t={thr[i]:.3g}\nMCC={best[i]:.3f}", (max(thr[i], 1e-8), best[i]), fontsize=8,
                    xytext=(5, -25), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_ylim(min(0, float(np.min(mcc[i]))), 1.02)
        ax.set_title(names[i])
        ax.set_xlabel("threshold")
        ax.set_ylabel("MCC")
    return _save(plt, fig, path)


def plot_tpr_purity(curves: ConfusionCurves, names: Sequence[str], path: str | os.PathLike) -> Path:
    """TPR against purity; darker points are lower thresholds; the random classifier's purity dashed."""
    idx = _classes_with_data(curves, names)
    plt, fig, axes = _figure(max(len(idx), 1))
    tpr, pur = curves.tpr(), curves.purity()
    frac = np.arange(curves.thresholds.size) / max(curves.thresholds.size - 1, 1)
    for ax, i in zip(axes, idx):
        step = max(1, curves.thresholds.size // 400)
        ax.scatter(pur[i, ::step], tpr[i, ::step], c=frac[::step], cmap="viridis", s=4)
        base = curves.n_positive()[i] / (curves.n_positive()[i] + curves.n_negative()[i])
        ax.axvline(base, color="purple", lw=0.8, ls="--")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_title(names[i])
        ax.set_xlabel("purity")
        ax.set_ylabel("TPR")
    return _save(plt, fig, path)


def plot_cr_comparison(
    rocs: Mapping[str, tuple[np.ndarray, np.ndarray, float]],
    lacosmic: Mapping[str, tuple[float, float]],
    path: str | os.PathLike,
) -> Path:
    """MaxiMask CR ROC of each comparison set with LA Cosmic's (FPR, TPR) point.

    Parameters
    ----------
    rocs : mapping
        ``set name -> (fpr, tpr, auc)`` of MaxiMask's CR class.
    lacosmic : mapping
        ``set name -> (fpr, tpr)`` of LA Cosmic (dilated masks).
    """
    plt, fig, axes = _figure(max(len(rocs), 1))
    for ax, (name, (fpr, tpr, auc)) in zip(axes, rocs.items()):
        ax.plot(np.maximum(fpr, _MIN_FPR), tpr, color="C0", label=f"MaxiMask (AUC = {auc:.5f})")
        if name in lacosmic:
            f, t = lacosmic[name]
            ax.plot([max(f, _MIN_FPR)], [t], "*", color="C3", ms=12, label=f"LA Cosmic ({f:.2g}, {t:.3f})")
        ax.set_xscale("log")
        ax.set_xlim(_MIN_FPR, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"CR: {name}")
        ax.set_xlabel("FPR")
        ax.set_ylabel("TPR")
        ax.legend(loc="lower right", fontsize=8)
    return _save(plt, fig, path)


def plot_maxitrack_roc(fpr: np.ndarray, tpr: np.ndarray, auc: float, path: str | os.PathLike) -> Path:
    """ROC curve of MaxiTrack (linear axes, as Fig. 14)."""
    plt, fig, axes = _figure(1)
    ax = axes[0]
    ax.plot(fpr, tpr, color="C0", drawstyle="steps-post", label=f"AUC = {auc:.5f}")
    ax.plot([0, 1], [0, 1], color="purple", lw=0.8, ls="--", label="random")
    ax.set_xlabel("FPR")
    ax.set_ylabel("TPR")
    ax.set_title("MaxiTrack: tracking errors")
    ax.legend(loc="lower right", fontsize=8)
    return _save(plt, fig, path)
