"""Training priors (paper Eq. 27) and default thresholds of a trained model.

Training priors
---------------
Because the loss weights pixels (Eqs. 14-15), the network's outputs are not
calibrated to the raw class proportions of the training set. Following the
paper, the prior of class ``c`` that the network has learned is estimated by
the mean posterior over a held-out set ``T'`` drawn like the training set:

    P^(w_c|T) = 1/card(T') sum_{x in T'} P(w_c|x, T')            (Eq. 27)

(a mean over all pixels of all held-out images for MaxiMask, over images for
MaxiTrack).

Default thresholds
------------------
At inference, probabilities are first updated from the training priors to
the observation priors (Eq. 26); the command line applies
:data:`maximask.classes.DEFAULT_PRIORS` by default (0.05 for MaxiTrack). The
default threshold of each class is the one maximising the MCC (Eq. 22) on the
held-out set *after* that default update, as in the paper's Fig. A.2: the
thresholds in the model card apply to probabilities updated to the default
priors. Since Eq. 26 is increasing in the probability, the MCC curve is
counted once on the raw probabilities and its thresholds mapped through
Eq. 26. A class without positive (or negative) held-out pixels, or whose
best MCC is below ``min_mcc`` (default 0.3: the class is not detected
reliably), keeps the threshold of
:data:`maximask.classes.DEFAULT_THRESHOLDS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn

from maximask.classes import CLASS_NAMES, DEFAULT_PRIORS, DEFAULT_THRESHOLDS
from maximask.evaluate.metrics import ConfusionAccumulator
from maximask.inference import check_views, forward_views, resolve_views, track_log_odds
from maximask.train.shards import ShardArrays, ShardSets, decode_truth

__all__ = [
    "DEFAULT_TRACKING_PRIOR",
    "update_priors",
    "predict_batches",
    "training_priors_from_probs",
    "CalibrationResult",
    "calibrate",
    "calibrate_model_file",
]

# Eq. 26 and the default tracking prior live in maximask.posterior (inference uses them too);
# they are re-exported here for the training code and its tests.
from maximask.posterior import DEFAULT_TRACKING_PRIOR, update_priors  # noqa: E402

#: Best held-out MCC below which a class keeps the default threshold (see :func:`calibrate`).
MIN_RELIABLE_MCC = 0.3


def _device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def predict_batches(
    model: nn.Module, images: np.ndarray, *, kind: str = "maximask", batch_size: int = 8, views: int = 1
) -> Iterator[tuple[slice, np.ndarray]]:
    """Run ``model`` on whole images in batches.

    Parameters
    ----------
    images : ndarray, shape (N, H, W)
        Compressed network inputs (any float dtype).
    kind : {"maximask", "maxitrack"}
    views : {1, 2, 4, 8}
        Test-time views, as :class:`maximask.inference.MaskPredictor` (logits of each view
        turned back, averaged) and :class:`maximask.inference.TrackPredictor` (log-odds
        averaged) use them.

    Yields
    ------
    index : slice
        Images of the batch.
    probs : ndarray, float32
        (B, C, H, W) sigmoid probabilities (MaxiMask) or (B,) probability of
        a tracking error (MaxiTrack, softmax).
    """
    check_views(views)
    was_training = model.training
    model.eval()
    device = _device(model)
    try:
        for start in range(0, images.shape[0], batch_size):
            sl = slice(start, min(start + batch_size, images.shape[0]))
            x = torch.from_numpy(np.asarray(images[sl], dtype=np.float32)[:, None]).to(device)
            if kind == "maximask":
                p = torch.sigmoid(forward_views(model, x, views))
            elif views == 1:
                p = torch.softmax(model(x), dim=1)[:, 1]
            else:
                p = torch.sigmoid(track_log_odds(model, x, views))
            yield sl, p.float().cpu().numpy()
    finally:
        model.train(was_training)


def training_priors_from_probs(probs: np.ndarray, *, class_axis: int = 1) -> np.ndarray:
    """Eq. 27: the mean posterior of each class over images (and pixels).

    Parameters
    ----------
    probs : ndarray, shape (N, C, H, W) or (N, C)
        Posteriors ``P(w_c|x, T')`` on a held-out set.

    Returns
    -------
    ndarray, shape (C,), float64
    """
    p = np.moveaxis(np.asarray(probs, dtype=np.float64), class_axis, 0)
    return p.reshape(p.shape[0], -1).mean(axis=1)


@dataclass
class CalibrationResult:
    """Outcome of :func:`calibrate`.

    Attributes
    ----------
    training_priors : dict
        ``P^(w_c|T)`` per class (Eq. 27).
    thresholds : dict
        Best-MCC threshold per class, on probabilities updated to ``observation_priors``.
    observation_priors : dict
        Priors the thresholds assume (the defaults of the command line).
    metrics : dict
        Per-class held-out metrics (AUC, best MCC, ...).
    n_images : int
        Held-out images used.
    """

    training_priors: dict[str, float]
    thresholds: dict[str, float]
    observation_priors: dict[str, float]
    metrics: dict[str, dict] = field(default_factory=dict)
    n_images: int = 0


def calibrate(
    model: nn.Module,
    data,
    *,
    kind: str = "maximask",
    observation_priors: dict[str, float] | None = None,
    batch_size: int = 8,
    max_images: int | None = None,
    n_bins: int = 4000,
    min_mcc: float = MIN_RELIABLE_MCC,
    views: int = 1,
) -> CalibrationResult:
    """Estimate training priors (Eq. 27) and best-MCC thresholds on held-out shards.

    Parameters
    ----------
    model : nn.Module
        Trained network (on its device).
    data : path-like, iterable of path-like, ShardArrays or ShardSets
        Held-out shards drawn like the training set (of one or several
        image sizes; the priors average over all their pixels).
    kind : {"maximask", "maxitrack"}
    observation_priors : dict, optional
        Priors the default thresholds are chosen for; default
        :data:`~maximask.classes.DEFAULT_PRIORS` (``{"TR": 0.05}`` for MaxiTrack).
    max_images : int, optional
        Use only the first ``max_images`` held-out images of each set.
    n_bins : int
        Logit-spaced probability bins of the MCC curve.
    min_mcc : float
        A class whose best held-out MCC is below this keeps the default
        threshold of :data:`~maximask.classes.DEFAULT_THRESHOLDS` instead of
        its best-MCC one: the model does not detect it reliably, and a
        best-MCC threshold of a weak classifier flags large false areas.
    views : {1, 2, 4, 8}
        Test-time views (:func:`predict_batches`).
    """
    if isinstance(data, ShardSets):
        groups = data.groups
    elif isinstance(data, ShardArrays):
        groups = [data]
    else:
        groups = ShardSets(data, kind=kind, max_images=max_images or None).groups
    names = list(CLASS_NAMES) if kind == "maximask" else ["TR"]
    if observation_priors is None:
        observation_priors = dict(DEFAULT_PRIORS) if kind == "maximask" else {"TR": DEFAULT_TRACKING_PRIOR}
    acc = ConfusionAccumulator(len(names), n_bins, scale="logit", min_prob=1e-7)
    sums = np.zeros(len(names), dtype=np.float64)
    n_items = 0
    n = 0
    for arrays in groups:
        if max_images and len(arrays) > max_images:
            index = arrays.first_of_each_entry(max_images)
            images, targets = arrays.images[index], arrays.targets[index]
        else:
            images, targets = arrays.images, arrays.targets
        n += len(images)
        for sl, probs in predict_batches(model, images, kind=kind, batch_size=batch_size, views=views):
            if kind == "maximask":
                truth = decode_truth(targets[sl])
                acc.update(probs, truth)
                sums += probs.astype(np.float64).sum(axis=(0, 2, 3))
                n_items += probs.shape[0] * probs.shape[2] * probs.shape[3]
            else:
                acc.update(probs, targets[sl].astype(bool))
                sums += probs.astype(np.float64).sum()
                n_items += probs.shape[0]
    priors = sums / max(n_items, 1)
    curves = acc.result()
    mcc = curves.mcc()
    has_both = (curves.n_positive() > 0) & (curves.n_negative() > 0)
    thresholds = {}
    for i, name in enumerate(names):
        k = int(np.argmax(mcc[i]))
        if not has_both[i] or mcc[i, k] <= 0 or mcc[i, k] < min_mcc:
            thresholds[name] = float(DEFAULT_THRESHOLDS.get(name, 0.5))
            continue
        thresholds[name] = float(update_priors(curves.thresholds[k], priors[i], observation_priors[name]))
    metrics = curves.summary(names)
    for i, name in enumerate(names):  # report thresholds in the updated-probability space
        metrics[name]["raw_best_mcc_threshold"] = metrics[name].pop("best_mcc_threshold")
        metrics[name]["best_mcc_threshold"] = thresholds[name]
    return CalibrationResult(
        training_priors={name: float(priors[i]) for i, name in enumerate(names)},
        thresholds=thresholds,
        observation_priors={name: float(observation_priors[name]) for name in names},
        metrics=metrics,
        n_images=n,
    )


def calibrate_model_file(
    model_path: str | os.PathLike,
    data,
    *,
    kind: str = "maximask",
    out: str | os.PathLike | None = None,
    device: str = "cpu",
    batch_size: int = 8,
    max_images: int | None = None,
    min_mcc: float = MIN_RELIABLE_MCC,
    views: int | None = None,
) -> tuple[Path, CalibrationResult]:
    """Recompute a model file's training priors and thresholds and write them into its card.

    Parameters
    ----------
    model_path : path-like
        Model file (card, weights or directory; see :func:`maximask.modelfile.load_model`).
    data : path-like or iterable
        Held-out shards.
    out : path-like, optional
        Destination stem; default: overwrite the model file in place.
    views : {1, 2, 4, 8}, optional
        Test-time views (:func:`predict_batches`), recorded in the card as ``test_time_views``,
        the tools' default; None: the card's (1 when absent).

    Returns
    -------
    card_path : Path
    result : CalibrationResult
    """
    from maximask.modelfile import load_model, resolve_model_path, save_model

    card_path = resolve_model_path(model_path, kind=kind)
    model, card = load_model(card_path, kind=kind, device=device)
    views = resolve_views(card, views)
    result = calibrate(model, data, kind=kind, batch_size=batch_size, max_images=max_images, min_mcc=min_mcc,
                       views=views)
    card = dict(card)
    if views != 1 or "test_time_views" in card:
        card["test_time_views"] = views
    card["training_priors"] = result.training_priors
    card["thresholds"] = result.thresholds
    training = dict(card.get("training", {}))
    training["calibration"] = {
        "data": [str(p) for p in ([data] if isinstance(data, (str, os.PathLike)) else data)]
        if not isinstance(data, (ShardArrays, ShardSets))
        else [str(f) for f in data.files],
        "n_images": result.n_images,
        "threshold_priors": result.observation_priors,
        "min_mcc": min_mcc,
        "metrics": result.metrics,
    }
    # the card's held-out metrics describe these weights on this held-out set
    training["heldout_metrics"] = result.metrics
    training["threshold_priors"] = result.observation_priors
    card["training"] = training
    card.pop("weights_sha256", None)
    dest = Path(out) if out is not None else card_path.with_suffix("")
    return save_model(dest, model, card), result
