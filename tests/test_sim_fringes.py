"""FR injector (paper Sect. 2.1.7, Eqs. 9-10): inject and recover."""

import numpy as np
import pytest
from scipy import ndimage

from maximask.simulate.base import Scene, get_injector
from maximask.simulate.fringes import (
    ENVELOPE_THRESHOLD,
    K_F,
    fringe_pattern,
    inject_fringes,
    normalised_envelope,
    polynomial_envelope,
    tophat_smooth,
)

SHAPE = (96, 128)


def _scene():
    return Scene.empty(SHAPE, sky_level=300.0, sigma=5.0)


def test_registered_and_constants():
    assert get_injector("FR") is inject_fringes
    assert K_F == 0.6 and ENVELOPE_THRESHOLD == -0.20


def test_eq10_addition_and_envelope_truth():
    ramp = np.tile(np.linspace(0.0, 1.0, SHAPE[1]), (SHAPE[0], 1))  # forced envelope E
    sc = _scene()
    inject_fringes(sc, rng=np.random.default_rng(4), scale=1.0, envelope=ramp)
    f, _ = fringe_pattern(SHAPE, np.random.default_rng(4))
    f = np.rot90(f, sc.meta["FR"][0]["rotation_deg"] // 90)
    en = 2 * ramp - 1.0
    ef = 1.0 / (1.0 + np.exp(-5.0 * en))  # Eq. 9
    expected = K_F * sc.sigma / f.std() * f * ef  # Eq. 10
    np.testing.assert_allclose(sc.image - 300.0, expected, atol=1e-9)
    np.testing.assert_array_equal(sc.plane("FR"), en > -0.20)
    # 60 % of the columns are above -0.2 on a linear ramp
    assert sc.plane("FR").mean() == pytest.approx(0.6, abs=0.02)
    # the fringes are strong inside the truth, faint outside
    diff = np.abs(sc.image - 300.0)
    assert diff[sc.plane("FR")].mean() > 3 * diff[~sc.plane("FR")].mean()


def test_amplitude_scale_option_is_linear():
    a, b = _scene(), _scene()
    inject_fringes(a, rng=np.random.default_rng(2), scale=1.0)
    inject_fringes(b, rng=np.random.default_rng(2), scale=2.5)
    np.testing.assert_allclose(b.image - 300.0, 2.5 * (a.image - 300.0), atol=1e-9)
    np.testing.assert_array_equal(a.truth, b.truth)


def test_polynomial_envelope_is_cubic():
    e = polynomial_envelope((40, 50), np.random.default_rng(0))
    y, x = np.mgrid[-1 : 1 : 40j, -1 : 1 : 50j]
    cols = [x**i * y**j for i in range(4) for j in range(4 - i)]
    a = np.stack([c.ravel() for c in cols], axis=1)
    coef, *_ = np.linalg.lstsq(a, e.ravel(), rcond=None)
    np.testing.assert_allclose(a @ coef, e.ravel(), atol=1e-9)
    en = normalised_envelope(e)
    assert en.min() == pytest.approx(-1.0) and en.max() == pytest.approx(1.0)


def test_tophat_is_a_7px_disk():
    img = np.random.default_rng(1).random((30, 40))
    yy, xx = np.mgrid[-3:4, -3:4]
    disk = (xx**2 + yy**2 <= 3.5**2).astype(float)
    assert disk.sum() == 37
    np.testing.assert_allclose(tophat_smooth(img, 7), ndimage.correlate(img, disk / disk.sum(), mode="reflect"), atol=1e-12)


def test_same_seed_same_output_no_nan():
    a, b, c = _scene(), _scene(), _scene()
    inject_fringes(a, rng=np.random.default_rng(9))
    inject_fringes(b, rng=np.random.default_rng(9))
    inject_fringes(c, rng=np.random.default_rng(10))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.truth, b.truth)
    assert np.isfinite(a.image).all() and not np.array_equal(a.image, c.image)
    # default amplitude: the paper's 0.6 sigma_U times a factor in [0.5, 6.5], log-uniform
    s = a.meta["FR"][0]["scale"]
    assert 0.5 <= s <= 6.5
    scales = []
    for seed in range(200):
        sc = _scene()
        inject_fringes(sc, rng=np.random.default_rng(seed))
        scales.append(sc.meta["FR"][0]["scale"])
    logs = np.log(scales)
    assert 0.5 <= min(scales) and max(scales) <= 6.5
    # log-uniform on [log 0.5, log 6.5]: mean at the log midpoint, a quarter of the draws above 3.4
    assert abs(logs.mean() - np.log(np.sqrt(0.5 * 6.5))) < 0.15
    assert 0.15 < np.mean(np.asarray(scales) > np.exp(np.log(0.5) + 0.75 * np.log(13.0))) < 0.35


def test_fringe_period_option():
    for period in (10.0, 40.0):
        f, info = fringe_pattern((128, 128), np.random.default_rng(3), period=period, smooth=False)
        # zero crossings along rows plus columns: about 2 per period along the gradient
        rows = np.mean(np.sum(np.diff(np.sign(f), axis=1) != 0, axis=1))
        cols = np.mean(np.sum(np.diff(np.sign(f), axis=0) != 0, axis=0))
        assert 0.5 < (rows + cols) / (2 * 128 / period) < 2.5


def test_tiny_and_odd_shapes_are_finite():
    for shape in [(8, 8), (17, 33)]:
        sc = Scene.empty(shape, sky_level=10.0, sigma=1.0)
        inject_fringes(sc, rng=np.random.default_rng(0))
        assert np.isfinite(sc.image).all()
