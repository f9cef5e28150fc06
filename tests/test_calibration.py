"""Tests of the prior update (Eq. 26), the training-prior estimate (Eq. 27) and card calibration."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from maximask.classes import CLASS_NAMES, DEFAULT_PRIORS
from maximask.evaluate.metrics import ConfusionAccumulator
from maximask.modelfile import load_model, save_model
from maximask.nets import create_model
from maximask.train.calibration import (
    calibrate,
    calibrate_model_file,
    training_priors_from_probs,
    update_priors,
)
from maximask.train.shards import decode_truth


def test_update_priors_matches_eq25():
    rng = np.random.default_rng(0)
    p = rng.random(100)
    pt, po = 0.2, 0.003
    # Eq. 25 written with the complementary class
    num = p * po / pt
    expected = num / (num + (1 - p) * (1 - po) / (1 - pt))
    assert np.allclose(update_priors(p, pt, po), expected, rtol=1e-12)
    assert np.allclose(update_priors(p, 0.3, 0.3), p)
    assert np.allclose(update_priors(update_priors(p, pt, po), po, pt), p)
    assert update_priors(0.0, pt, po) == 0 and update_priors(1.0, pt, po) == 1
    assert np.all(np.diff(update_priors(np.sort(p), pt, po)) >= 0)  # increasing: ROC unchanged


def test_training_priors_are_mean_posteriors_eq27():
    rng = np.random.default_rng(1)
    probs = rng.random((5, 3, 4, 6))
    expected = [probs[:, c].sum() / (5 * 4 * 6) for c in range(3)]
    assert np.allclose(training_priors_from_probs(probs), expected)


class _Scaled(nn.Module):
    """A stand-in network: logit of class c is a_c * x (for a known posterior)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.linspace(-2.0, 3.0, 14).reshape(1, 14, 1, 1))
        self.arch_args = {}

    def forward(self, x):
        return self.a * x


def _write_shard(path, seed, n=6, size=12):
    rng = np.random.default_rng(seed)
    image = rng.normal(0, 1, (n, size, size)).astype(np.float16)
    truth = np.zeros((n, size, size), np.uint16)
    for c in range(14):  # class c more likely where x is large
        on = rng.random((n, size, size)) < 1 / (1 + np.exp(-2 * image.astype(np.float64)))
        truth |= (on.astype(np.uint16) << c)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image=image, truth=truth, seed=np.arange(n), meta=json.dumps({}))
    return image, truth


def test_calibrate_priors_and_thresholds(tmp_path):
    image, truth = _write_shard(tmp_path / "val" / "shard_00000.npz", 3)
    model = _Scaled()
    res = calibrate(model, tmp_path / "val", batch_size=4, n_bins=2000)
    x = image.astype(np.float32)[:, None]
    probs = 1 / (1 + np.exp(-model.a.detach().numpy() * x))
    prior = training_priors_from_probs(probs)
    for i, name in enumerate(CLASS_NAMES):
        assert res.training_priors[name] == pytest.approx(prior[i], rel=1e-5)
    # CR (a < 0) anti-correlates with its truth: best MCC <= 0 -> default threshold kept
    assert res.thresholds["CR"] == 0.5
    # BG (a = 3): the threshold is the best-MCC one on probabilities updated to the default priors
    c = CLASS_NAMES.index("BG")
    upd = update_priors(probs[:, c], prior[c], DEFAULT_PRIORS["BG"])
    acc = ConfusionAccumulator(1, 20_000, scale="logit")
    acc.update(upd.ravel(), decode_truth(truth)[:, c].ravel())
    mcc, thr = acc.result().best_mcc()
    t = res.thresholds["BG"]
    y = decode_truth(truth)[:, c]
    pred = upd >= t
    tp, fp, tn, fn = (np.sum(pred & y), np.sum(pred & ~y), np.sum(~pred & ~y), np.sum(~pred & y))
    got = (tp * tn - fp * fn) / np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    assert got == pytest.approx(mcc[0], abs=2e-3)
    assert res.metrics["BG"]["best_mcc"] == pytest.approx(mcc[0], abs=2e-3)

    # a class whose best MCC is below min_mcc is not reliably detected: default threshold kept
    strict = calibrate(model, tmp_path / "val", batch_size=4, n_bins=2000, min_mcc=mcc[0] + 0.01)
    assert strict.thresholds["BG"] == 0.5
    lax = calibrate(model, tmp_path / "val", batch_size=4, n_bins=2000, min_mcc=mcc[0] - 0.01)
    assert lax.thresholds["BG"] == pytest.approx(t)


def test_calibrate_model_file_writes_a_loadable_card(tmp_path):
    _write_shard(tmp_path / "val" / "shard_00000.npz", 4, n=3, size=16)
    torch.manual_seed(0)
    model = create_model("maximask", width=0.125)
    save_model(tmp_path / "m" / "maximask", model, {"training_priors": {}, "thresholds": {}, "tile": 64})
    card_path, res = calibrate_model_file(tmp_path / "m", tmp_path / "val")
    _, card = load_model(card_path, kind="maximask")
    assert card["training_priors"] == pytest.approx(res.training_priors)
    assert set(card["thresholds"]) == set(CLASS_NAMES)
    assert card["training"]["calibration"]["n_images"] == 3 and card["tile"] == 64
    assert card["training"]["heldout_metrics"] == card["training"]["calibration"]["metrics"]
