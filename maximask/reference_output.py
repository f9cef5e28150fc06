"""The documented output of a model on fixed simulated images, stored in its model card.

A shipped model's card holds, under ``reference_output``, the seed and size of
a few images drawn by the simulator (no real data) and, per class, the mean
probability the network gives them and the AUC on their truth. Recomputing
them checks that the weights, the network code and the simulator still agree:

>>> ref = reference_output(model, kind="maximask")
>>> card["reference_output"] = ref
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from maximask.classes import CLASS_NAMES
from maximask.evaluate.metrics import exact_auc
from maximask.train.shards import decode_truth

__all__ = ["REFERENCE_SEED", "reference_images", "reference_output"]

#: Seed of the reference images.
REFERENCE_SEED = 20261125


def reference_images(kind: str, *, n: int = 4, size: int = 128, seed: int = REFERENCE_SEED):
    """Simulated images of the reference set.

    Returns
    -------
    images : ndarray, shape (n, size, size), float32, compressed network inputs
    targets : ndarray, (n, 14, size, size) bool truth (maximask) or (n,) int labels (maxitrack)
    """
    from maximask.simulate.pipeline import simulate_sample
    from maximask.simulate.tracking import simulate_tracking_sample

    images, targets = [], []
    for child in np.random.SeedSequence(seed).spawn(n):
        rng = np.random.default_rng(child)
        if kind == "maximask":
            image, truth, _ = simulate_sample((size, size), rng=rng)
            targets.append(decode_truth(truth))
        else:
            image, label, _ = simulate_tracking_sample((size, size), rng=rng)
            targets.append(int(label))
        images.append(np.asarray(image, np.float32))
    return np.stack(images), np.asarray(targets)


@torch.no_grad()
def reference_output(model: nn.Module, *, kind: str, n: int = 4, size: int = 128, seed: int = REFERENCE_SEED) -> dict:
    """Mean probability per class (and AUC where both labels occur) of ``model`` on the reference images.

    Returns
    -------
    dict with ``seed``, ``n``, ``size``, ``mean_probability`` {class: float} and
    ``auc`` {class: float or None}.
    """
    if kind == "maximask" and getattr(model, "input_size", None):
        msg = "a maximask reference needs a MaxiMask network"
        raise ValueError(msg)
    images, targets = reference_images(kind, n=n, size=size, seed=seed)
    model = model.eval()
    x = torch.from_numpy(images[:, None]).to(next(model.parameters()).device)
    if kind == "maximask":
        probs = torch.sigmoid(model(x)).cpu().numpy().astype(np.float64)
        names = list(CLASS_NAMES)
        per_class = [(probs[:, i], targets[:, i]) for i in range(len(names))]
    else:
        if model.input_size != size:
            msg = f"the MaxiTrack network takes {model.input_size}-px images, not {size}"
            raise ValueError(msg)
        probs = torch.softmax(model(x), dim=1)[:, 1].cpu().numpy().astype(np.float64)
        names = ["TR"]
        per_class = [(probs, targets.astype(bool))]
    mean = {name: float(p.mean()) for name, (p, _) in zip(names, per_class)}
    auc = {}
    for name, (p, t) in zip(names, per_class):
        t = np.asarray(t, bool)
        auc[name] = float(exact_auc(p.ravel(), t.ravel())) if 0 < t.sum() < t.size else None
    return {"seed": seed, "n": n, "size": size, "mean_probability": mean, "auc": auc}
