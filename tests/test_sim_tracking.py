"""Tracking errors for MaxiTrack (paper Sect. 2.2): kernels, labels, twins."""

import numpy as np
import pytest

from maximask.simulate.tracking import (
    TRACKING_KINDS,
    draw_tracking_kernel,
    simulate_tracking_pair,
    simulate_tracking_sample,
)


@pytest.mark.parametrize("kind", list(TRACKING_KINDS))
def test_kernel_sums_to_one_and_has_the_drawn_extent(kind):
    for seed in range(5):
        k, info = draw_tracking_kernel(3.0, rng=np.random.default_rng(seed), kind=kind, return_info=True)
        assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert k.sum() == pytest.approx(1.0, abs=1e-12) and (k >= 0).all()
        assert 3.0 <= info["length"] <= 45.0
        ys, xs = np.nonzero(k > 1e-4 * k.max())
        extent = max(np.ptp(xs), np.ptp(ys))
        assert 0.5 * info["length"] - 2 <= extent <= 1.5 * info["length"] + 2
        # centred on the mean position
        c = k.shape[0] // 2
        yy, xx = np.mgrid[: k.shape[0], : k.shape[1]]
        assert abs((k * xx).sum() - c) < 1e-6 and abs((k * yy).sum() - c) < 1e-6


def test_kernel_length_option_and_determinism():
    a = draw_tracking_kernel(2.0, rng=np.random.default_rng(1), kind="drift", length=20.0)
    b = draw_tracking_kernel(2.0, rng=np.random.default_rng(1), kind="drift", length=20.0)
    np.testing.assert_array_equal(a, b)
    assert 19 <= a.shape[0] <= 25


def test_sample_format_balance_and_determinism():
    labels = []
    for seed in range(24):
        img, lab, meta = simulate_tracking_sample((32, 32), rng=np.random.default_rng(seed))
        assert img.dtype == np.float32 and img.shape == (32, 32) and np.isfinite(img).all()
        assert lab in (0, 1) and meta["label"] == lab
        assert (meta["tracking"] is not None) == (lab == 1)
        labels.append(lab)
    assert 6 <= sum(labels) <= 18
    a = simulate_tracking_sample((32, 32), rng=np.random.default_rng(5))
    b = simulate_tracking_sample((32, 32), rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


def test_twins_identical_with_delta_kernel_and_differ_with_a_path():
    delta = np.zeros((3, 3))
    delta[1, 1] = 1.0
    tracked, untracked, _ = simulate_tracking_pair((48, 48), rng=np.random.default_rng(2), kernel=delta)
    np.testing.assert_array_equal(tracked, untracked)
    tracked, untracked, meta = simulate_tracking_pair((48, 48), rng=np.random.default_rng(2), kind="drift")
    assert meta["label"] == 1 and meta["tracking"]["kind"] == "drift"
    assert not np.array_equal(tracked, untracked)
    # label forced, same stream: the twin is the label-0 sample
    img0, lab0, _ = simulate_tracking_sample((48, 48), rng=np.random.default_rng(2), label=0)
    assert lab0 == 0
    np.testing.assert_array_equal(img0, untracked)


def test_fields_have_bright_stars_to_smear():
    for seed in range(3):
        _, _, meta = simulate_tracking_sample((96, 96), rng=np.random.default_rng(seed))
        assert meta["expected_bright_stars"] >= 8 or meta["sky_draws"] == 30
