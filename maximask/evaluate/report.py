"""Evaluation reports of MaxiMask and MaxiTrack models on test shards (paper Sect. 4).

MaxiMask
--------
The model is run on the shards' compressed images, whole images in batches.
Per class, probabilities are histogrammed (logit-spaced bins, resolving
probabilities from 1e-7 to 1 - 1e-7) for positive and negative pixels. ROC,
AUC, TPR at FPR = 1e-3 and purity do not depend on the prior update, which is
increasing (Eq. 26); MCC curves and best-MCC thresholds are given on
probabilities updated from the card's training priors to the observation
priors (default :data:`maximask.classes.DEFAULT_PRIORS`), as in the paper's
Fig. A.2, by mapping the bin edges through Eq. 26.

Layouts of the optional sets:

* single-contaminant sets (Table 7): a directory with one subdirectory per
  set, named after the class it tests (``CR/``, ``HCL/``, ...; a set holding
  only saturated and background pixels may be named ``SAT/`` or ``SAT_BG/``);
  the AUC of class ``c`` is taken on the set named ``c``, or else on the first
  set whose name contains ``c`` as an ``_``-separated word;
* cosmic-ray comparison sets (Fig. 13): a directory whose subdirectories
  (e.g. ``well_sampled/``, ``undersampled/``) are sets with ``raw``, ``bkg``,
  ``sigma`` arrays, or a directory of such shards itself.

Outputs in ``out_dir``: ``metrics.json``, ``roc.png``, ``mcc.png``,
``tpr_purity.png``, ``table7.md``, and with CR sets ``cr_lacosmic.png``.

MaxiTrack
---------
Exact ROC over the test images (``roc.png``), AUC, best MCC on probabilities
updated to the observation prior (default 0.05), ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import torch.nn as nn

from maximask.classes import CLASS_NAMES, DEFAULT_PRIORS
from maximask.evaluate import curves as plots
from maximask.evaluate.lacosmic import lacosmic_on_shards
from maximask.evaluate.metrics import ConfusionAccumulator, ConfusionCurves, exact_auc, matthews_corrcoef, roc_curve_exact
from maximask.inference import TrackPredictor, resolve_views, track_tiles
from maximask.train.calibration import DEFAULT_TRACKING_PRIOR, predict_batches, update_priors
from maximask.train.shards import ShardArrays, decode_truth, list_shards

__all__ = [
    "PAPER_TABLE7",
    "accumulate_maximask",
    "prior_updated_curves",
    "evaluate_maximask",
    "evaluate_maxitrack",
    "track_image_scores",
    "table7_markdown",
]

logger = logging.getLogger(__name__)

#: AUCs of paper Table 7: all-contaminant and single-contaminant test sets.
PAPER_TABLE7: dict[str, dict[str, float]] = {
    "all": {"CR": 0.96927, "HCL": 0.99763, "DCL": 0.99872, "HP": 0.99741, "DP": 0.99739, "P": 0.99352,
            "TRL": 0.99511, "FR": 0.98057, "NEB": 0.97895, "SAT": 0.99965, "SP": 0.96125, "OV": 0.99997,
            "BBG": 0.98484, "BG": 0.96895},
    "single": {"CR": 0.98314, "HCL": 0.99957, "DCL": 0.99976, "HP": 0.99965, "DP": 0.99975, "P": 0.99951,
               "TRL": 0.99813, "FR": 0.93326, "NEB": 0.84575, "SAT": 0.99974, "SP": 0.98061, "OV": 1.00000,
               "BBG": 0.99165, "BG": 0.98371},
}


def accumulate_maximask(
    model: nn.Module, data, *, batch_size: int = 4, max_images: int | None = None, n_bins: int = 10_000,
    views: int = 1,
) -> tuple[ConfusionCurves, int]:
    """Confusion counts of a MaxiMask model on shards (raw probabilities, logit-spaced bins).

    ``views``: test-time views (:func:`maximask.train.calibration.predict_batches`).

    Returns
    -------
    curves : ConfusionCurves
        14 classes, thresholds shape (n_bins,).
    n_images : int
    """
    arrays = data if isinstance(data, ShardArrays) else ShardArrays(data, kind="maximask", max_images=max_images)
    acc = ConfusionAccumulator(len(CLASS_NAMES), n_bins, scale="logit", min_prob=1e-7)
    for sl, probs in predict_batches(model, arrays.images, kind="maximask", batch_size=batch_size, views=views):
        acc.update(probs, decode_truth(arrays.targets[sl]))
    return acc.result(), len(arrays)


def prior_updated_curves(
    curves: ConfusionCurves, training_priors: Mapping[str, float], observation_priors: Mapping[str, float],
    names=CLASS_NAMES,
) -> ConfusionCurves:
    """The same counts with thresholds mapped through Eq. 26 (per class)."""
    pt = np.array([training_priors.get(n, observation_priors[n]) for n in names])[:, None]
    po = np.array([observation_priors[n] for n in names])[:, None]
    return curves.with_thresholds(update_priors(curves.class_thresholds(), pt, po))


def _summary(curves: ConfusionCurves, names, card_thresholds: Mapping[str, float] | None) -> dict:
    out = curves.summary(names)
    if card_thresholds:
        at = curves.at_threshold(np.array([card_thresholds.get(n, 0.5) for n in names]))
        for i, n in enumerate(names):
            out[n]["at_card_threshold"] = {k: float(v[i]) for k, v in at.items()}
    return out


def _set_dirs(root: Path) -> dict[str, Path]:
    subs = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and any(p.glob("*.npz"))}
    if subs:
        return subs
    return {root.name: root}


def _single_set_for(name: str, sets: Mapping[str, Path]) -> str | None:
    for key in sets:
        if key.upper() == name:
            return key
    for key in sets:
        if name in re.split(r"[^A-Za-z0-9]+", key.upper()):
            return key
    return None


def table7_markdown(all_auc: Mapping[str, float | None], single_auc: Mapping[str, float | None] | None = None) -> str:
    """Markdown table of AUCs beside the paper's Table 7.

    Parameters
    ----------
    all_auc : mapping
        Class -> AUC on the all-contaminant test set (None: not measured).
    single_auc : mapping, optional
        Class -> AUC on its single-contaminant set.
    """
    fmt = lambda v: "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.5f}"  # noqa: E731
    head = "| Class | All-contaminant AUC (paper) | All-contaminant AUC (ours) |"
    rule = "|---|---|---|"
    if single_auc is not None:
        head += " Single-contaminant AUC (paper) | Single-contaminant AUC (ours) |"
        rule += "---|---|"
    rows = [head, rule]
    for n in CLASS_NAMES:
        row = f"| {n} | {fmt(PAPER_TABLE7['all'][n])} | {fmt(all_auc.get(n))} |"
        if single_auc is not None:
            row += f" {fmt(PAPER_TABLE7['single'][n])} | {fmt(single_auc.get(n))} |"
        rows.append(row)
    return "\n".join(rows) + "\n"


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")


def _clean(v):
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def evaluate_maximask(
    model: nn.Module,
    card: Mapping,
    data,
    *,
    out_dir: str | os.PathLike,
    single_sets: str | os.PathLike | None = None,
    cr_sets: str | os.PathLike | None = None,
    observation_priors: Mapping[str, float] | None = None,
    batch_size: int = 4,
    max_images: int | None = None,
    n_bins: int = 10_000,
    plots_on: bool = True,
    views: int | None = None,
) -> dict:
    """Evaluate a MaxiMask model and write the report files (see the module notes).

    Parameters
    ----------
    model : nn.Module
        The network, in eval mode, on its device.
    card : mapping
        Its model card (training priors and thresholds are used).
    data : path-like or iterable of path-like
        All-contaminant test shards.
    out_dir : path-like
        Where the report goes (created).
    single_sets, cr_sets : path-like, optional
        Single-contaminant and cosmic-ray comparison sets.
    observation_priors : mapping, optional
        Priors of the MCC curves; default :data:`maximask.classes.DEFAULT_PRIORS`.
    max_images : int, optional
        Images per set (all when None).
    views : {1, 2, 4, 8}, optional
        Test-time views of every image (None: the card's ``test_time_views``, as the tool).

    Returns
    -------
    dict
        The content of ``metrics.json``.
    """
    views = resolve_views(card, views)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    obs = dict(observation_priors or DEFAULT_PRIORS)
    train_priors = dict(card.get("training_priors", {}))
    names = list(CLASS_NAMES)

    acc_kw = dict(batch_size=batch_size, max_images=max_images, n_bins=n_bins, views=views)
    raw, n_images = accumulate_maximask(model, data, **acc_kw)
    upd = prior_updated_curves(raw, train_priors, obs)
    report = {
        "model": {k: card.get(k) for k in ("arch", "arch_args", "software_version", "tile")},
        "data": [str(p) for p in list_shards(data)],
        "n_images": n_images,
        "views": views,
        "observation_priors": obs,
        "training_priors": train_priors,
        "classes": _summary(upd, names, card.get("thresholds")),
    }
    if plots_on:
        plots.plot_roc(raw, names, out / "roc.png")
        plots.plot_mcc(upd, names, out / "mcc.png")
        plots.plot_tpr_purity(raw, names, out / "tpr_purity.png")
    all_auc = {n: report["classes"][n]["auc"] for n in names}

    single_auc = None
    if single_sets is not None:
        sets = _set_dirs(Path(single_sets))
        per_set = {}
        for key, path in sets.items():
            c, m = accumulate_maximask(model, path, **acc_kw)
            per_set[key] = {"n_images": m, "auc": dict(zip(names, map(_nan_to_none, c.auc())))}
        single_auc = {}
        for n in names:
            key = _single_set_for(n, sets)
            single_auc[n] = per_set[key]["auc"][n] if key is not None else None
        report["single_sets"] = per_set
        report["single_auc"] = single_auc

    if cr_sets is not None:
        rocs, lac, cr_report = {}, {}, {}
        cr = names.index("CR")
        for key, path in _set_dirs(Path(cr_sets)).items():
            c, m = accumulate_maximask(model, path, **acc_kw)
            counts = lacosmic_on_shards(path, max_images=max_images)
            auc = float(c.auc()[cr])
            rocs[key] = (c.fpr()[cr], c.tpr()[cr], auc)
            lac[key] = (counts.fpr, counts.tpr)
            # MaxiMask's TPR at LA Cosmic's FPR, for a one-number comparison
            ok = c.fpr()[cr] <= counts.fpr
            cr_report[key] = {
                "n_images": m,
                "maximask_auc": _nan_to_none(auc),
                "maximask_tpr_at_lacosmic_fpr": float(np.max(np.where(ok, c.tpr()[cr], 0.0))),
                "lacosmic": counts.to_dict(),
            }
        report["cr_comparison"] = cr_report
        if plots_on:
            plots.plot_cr_comparison(rocs, lac, out / "cr_lacosmic.png")

    (out / "table7.md").write_text(table7_markdown(all_auc, single_auc))
    report = _clean(report)
    _write_json(out / "metrics.json", report)
    return report


def _nan_to_none(v):
    v = float(v)
    return None if np.isnan(v) else v


def track_image_scores(model: nn.Module, card: Mapping, images, *, observation_prior: float = DEFAULT_TRACKING_PRIOR,
                       batch_size: int = 16, views: int | None = None) -> tuple[np.ndarray, int]:
    """Tracking-error probability of each compressed image, as the ``maxitrack`` tool scores an exposure.

    Parameters
    ----------
    model : MaxiTrack network
    card : model card (its ``training_priors["TR"]`` is used; default: ``observation_prior``)
    images : array-like, shape (N, H, W), float
        Compressed images (network inputs), any size.
    observation_prior : float
        Prior of the update (Eq. 26).
    views : {1, 2, 4, 8} or None
        Orientations of each tile (:class:`maximask.inference.TrackPredictor`); None: the card's.

    Returns
    -------
    scores : ndarray, shape (N,)
        Mean probability of the image's input-size tiles
        (:meth:`maximask.inference.TrackPredictor.compressed_tile_probabilities`), weighted by their
        valid fraction (one tile for an image of the network's input size, zero-padded when smaller).
    tiles_per_image : int
    """
    pt = float(card.get("training_priors", {}).get("TR", observation_prior))
    predictor = TrackPredictor(model, {"training_priors": {"TR": pt}}, prior=observation_prior, batch_size=batch_size,
                               views=resolve_views(card, views))
    n_tiles = len(track_tiles(np.shape(images)[-2:], predictor.size))
    scores = np.empty(len(images))
    for i in range(len(images)):
        p, w = predictor.compressed_tile_probabilities(np.asarray(images[i], dtype=np.float32))
        scores[i] = float(np.sum(p * w) / np.sum(w))
    return scores, n_tiles


def evaluate_maxitrack(
    model: nn.Module,
    card: Mapping,
    data,
    *,
    out_dir: str | os.PathLike,
    observation_prior: float = DEFAULT_TRACKING_PRIOR,
    batch_size: int = 16,
    max_images: int | None = None,
    plots_on: bool = True,
    views: int | None = None,
) -> dict:
    """Evaluate a MaxiTrack model: exact ROC, AUC and best MCC; write ``metrics.json`` and ``roc.png``.

    Every image is scored as the ``maxitrack`` tool scores an exposure
    (:meth:`maximask.inference.TrackPredictor.compressed_tile_probabilities`): the mean
    probability, at the observation prior, of its input-size tiles (one tile for an image of
    the network's input size; zero-padded when smaller), each tile seen in ``views``
    orientations (None: the card's ``test_time_views``, as the tool).
    """
    views = resolve_views(card, views)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = ShardArrays(data, kind="maxitrack", max_images=max_images)
    labels = arrays.targets.astype(bool)
    pt = float(card.get("training_priors", {}).get("TR", observation_prior))
    upd, n_tiles = track_image_scores(model, card, arrays.images, observation_prior=observation_prior,
                                      batch_size=batch_size, views=views)
    fpr, tpr, thr_u = roc_curve_exact(upd, labels)
    auc = exact_auc(upd, labels)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    tp = tpr * n_pos
    fp = fpr * n_neg
    mcc = matthews_corrcoef(tp, fp, n_neg - fp, n_pos - tp)
    k = int(np.argmax(mcc))
    card_t = float(card.get("thresholds", {}).get("TR", 0.5))
    pred = upd >= card_t
    report = _clean({
        "model": {k_: card.get(k_) for k_ in ("arch", "arch_args", "software_version")},
        "data": [str(p) for p in arrays.files],
        "n_images": int(labels.size),
        "n_tracking_errors": int(n_pos),
        "image_shape": [int(v) for v in arrays.images.shape[-2:]],
        "tiles_per_image": n_tiles,
        "views": views,
        "auc": _nan_to_none(auc),
        "observation_prior": observation_prior,
        "training_prior": pt,
        "best_mcc": float(mcc[k]),
        "best_mcc_threshold": float(thr_u[k]) if np.isfinite(thr_u[k]) else None,
        "at_card_threshold": {
            "threshold": card_t,
            "tpr": float(np.mean(pred[labels])) if n_pos else None,
            "fpr": float(np.mean(pred[~labels])) if n_neg else None,
        },
    })
    if plots_on:
        plots.plot_maxitrack_roc(fpr, tpr, auc, out / "roc.png")
    _write_json(out / "metrics.json", report)
    return report
