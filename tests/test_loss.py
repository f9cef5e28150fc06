"""Tests of the MaxiMask/MaxiTrack losses against Eqs. 12-17 and of the class weights (Eqs. 15-16)."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from maximask.train.class_weights import class_proportions, class_weights, count_classes
from maximask.train.loss import (
    MaxiMaskLoss,
    gaussian_kernel,
    l2_regularization,
    maximask_loss,
    maxitrack_loss,
    pixel_weights,
    smooth_weights,
)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _reference_loss(logits, pre, truth, w_c, coefs, normalize):
    """Eq. 12 with Eq. 14 weights smoothed by a 3x3 unit-sigma Gaussian, by explicit loops."""
    B, C, H, W = truth.shape
    k = np.array([[np.exp(-(dy * dy + dx * dx) / 2.0) for dx in (-1, 0, 1)] for dy in (-1, 0, 1)])
    k /= k.sum()
    w = np.zeros((B, H, W))
    for b in range(B):
        for y in range(H):
            for x in range(W):
                w[b, y, x] = sum(w_c[c] for c in range(C) if truth[b, c, y, x] == 1)  # Eq. 14
    ws = np.zeros_like(w)
    for b in range(B):
        for y in range(H):
            for x in range(W):
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        yy, xx = min(max(y + dy, 0), H - 1), min(max(x + dx, 0), W - 1)  # edge replication
                        ws[b, y, x] += k[dy + 1, dx + 1] * w[b, yy, xx]

    def ce(lg):
        total = 0.0
        for b in range(B):
            for y in range(H):
                for x in range(W):
                    s = 0.0
                    for c in range(C):
                        p = _sigmoid(lg[b, c, y, x])
                        t = truth[b, c, y, x]
                        s -= t * np.log(p) + (1 - t) * np.log(1 - p)
                    total += ws[b, y, x] * s
        total /= B
        return total / (H * W) if normalize else total

    return ce(logits) + sum(cf * ce(p) for cf, p in zip(coefs, pre))


@pytest.fixture
def small_case():
    rng = np.random.default_rng(12)
    B, C, H, W = 2, 3, 3, 3
    logits = rng.normal(0, 2, (B, C, H, W))
    pre = [rng.normal(0, 2, (B, C, H, W)) for _ in range(5)]
    truth = (rng.random((B, C, H, W)) < 0.3).astype(np.float64)
    w_c = class_weights(np.array([0.05, 0.2, 0.75]))
    return logits, pre, truth, w_c


def test_gaussian_kernel_is_normalised_unit_sigma():
    k = gaussian_kernel(3, 1.0).double()
    assert torch.isclose(k.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert k[1, 0] / k[1, 1] == pytest.approx(np.exp(-0.5), rel=1e-6)
    assert k[0, 0] / k[1, 1] == pytest.approx(np.exp(-1.0), rel=1e-6)


def test_smoothing_keeps_uniform_maps_and_spreads_a_spike():
    uniform = torch.full((1, 5, 4), 0.3, dtype=torch.float64)
    assert torch.allclose(smooth_weights(uniform), uniform)
    spike = torch.zeros((1, 5, 5), dtype=torch.float64)
    spike[0, 2, 2] = 1.0
    out = smooth_weights(spike)
    assert torch.allclose(out[0, 1:4, 1:4], gaussian_kernel(3, 1.0).double(), atol=1e-7)
    assert out[0, 0].abs().sum() == 0


def test_pixel_weights_sum_class_weights_eq14():
    truth = torch.zeros((1, 3, 1, 2))
    truth[0, 0, 0, 0] = truth[0, 2, 0, 0] = 1
    truth[0, 1, 0, 1] = 1
    w = pixel_weights(truth, torch.tensor([0.5, 0.3, 0.2]))
    assert torch.allclose(w, torch.tensor([[[0.7, 0.3]]]))


@pytest.mark.parametrize("aux,coefs", [("none", ()), ("3x33%", (0.33, 0.33, 0.33)), ("2x50%", (0.5, 0.5))])
@pytest.mark.parametrize("normalize", [True, False])
def test_maximask_loss_matches_hand_computation(small_case, aux, coefs, normalize):
    logits, pre, truth, w_c = small_case
    expected = _reference_loss(logits, pre[: len(coefs)], truth, w_c, coefs, normalize)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    got = maximask_loss(t(logits), [t(p) for p in pre], t(truth), t(w_c), aux=aux, normalize=normalize)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_auxiliary_terms_use_lowest_resolution_first(small_case):
    logits, pre, truth, w_c = small_case
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    pre_t = [t(p) for p in pre]
    base = maximask_loss(t(logits), pre_t, t(truth), t(w_c), aux="2x50%")
    changed = list(pre_t)
    changed[4] = changed[4] + 10.0  # the full-resolution pre-prediction is not in the 2x50% scheme
    assert maximask_loss(t(logits), changed, t(truth), t(w_c), aux="2x50%").item() == base.item()
    changed[0] = changed[0] + 10.0
    assert maximask_loss(t(logits), changed, t(truth), t(w_c), aux="2x50%").item() != base.item()


def test_unknown_aux_scheme_is_refused(small_case):
    logits, pre, truth, w_c = small_case
    t = lambda a: torch.tensor(a)  # noqa: E731
    with pytest.raises(ValueError, match="auxiliary"):
        maximask_loss(t(logits), None, t(truth), t(w_c), aux="4x25%")


def test_l2_regularisation_is_sum_of_kernel_norms_eq17():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3, 2))
    w1, w2 = net[0].weight.detach().numpy(), net[2].weight.detach().numpy()
    expected = 0.7 * (np.sqrt((w1**2).sum()) + np.sqrt((w2**2).sum()))  # biases and Linear excluded
    assert l2_regularization(net, 0.7).item() == pytest.approx(expected, rel=1e-6)


def test_module_wrapper_adds_l2_and_returns_data_term(small_case):
    from maximask.nets import create_model

    torch.manual_seed(0)
    model = create_model("maximask", width=0.125)
    x = torch.randn(2, 1, 16, 16)
    truth = (torch.rand(2, 14, 16, 16) < 0.1).float()
    w = class_weights(np.linspace(0.01, 0.5, 14))
    total, data = MaxiMaskLoss(w, aux="3x33%", l2_lambda=0.01)(model, x, truth)
    assert total.item() == pytest.approx(data.item() + l2_regularization(model, 0.01).item(), rel=1e-5)
    total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_maxitrack_loss_is_softmax_cross_entropy():
    logits = torch.tensor([[2.0, -1.0], [0.5, 1.5]])
    labels = torch.tensor([0, 1])
    p0 = np.exp(2.0) / (np.exp(2.0) + np.exp(-1.0))
    p1 = np.exp(1.5) / (np.exp(0.5) + np.exp(1.5))
    assert maxitrack_loss(logits, labels).item() == pytest.approx(-(np.log(p0) + np.log(p1)) / 2, rel=1e-6)


def test_class_weights_eq15_eq16():
    p = np.array([0.001, 0.02, 0.3, 0.9])
    w = class_weights(p)
    assert w.sum() == pytest.approx(1.0)
    for i in range(4):
        for j in range(4):
            assert w[i] / w[j] == pytest.approx(p[j] / p[i])
    assert w[0] == pytest.approx(1.0 / (p[0] * np.sum(1.0 / p)))


def test_absent_class_gets_zero_weight():
    w = class_weights(np.array([0.0, 0.1, 0.4]))
    assert w[0] == 0 and w.sum() == pytest.approx(1.0) and w[1] / w[2] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="no class"):
        class_weights(np.zeros(3))


def test_class_proportions_stream_over_shards(tmp_path):
    rng = np.random.default_rng(3)
    truths = [rng.integers(0, 1 << 14, size=(3, 8, 8)).astype(np.uint16) for _ in range(2)]
    for k, t in enumerate(truths):
        np.savez(tmp_path / f"shard_{k:05d}.npz", image=np.zeros(t.shape, np.float16), truth=t,
                 seed=np.arange(3), meta=json.dumps({}))
    allt = np.concatenate(truths)
    expected = np.array([((allt >> i) & 1).mean() for i in range(14)])
    assert np.allclose(class_proportions(tmp_path), expected)
    assert np.array_equal(count_classes(allt), [((allt >> i) & 1).sum() for i in range(14)])
