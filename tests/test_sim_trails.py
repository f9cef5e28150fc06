"""TRL injector (paper Sect. 2.1.6, Eqs. 7-8): inject and recover."""

import numpy as np
import pytest
from scipy import ndimage

from maximask.classes import class_index
from maximask.simulate.base import Scene, get_injector
from maximask.simulate.trails import K_T, TRAIL_KINDS, inject_trails, meteor_defocus_arcsec


def _scene(noise=False, seed=0):
    sc = Scene.empty((128, 160), sky_level=500.0, sigma=4.0, fwhm=3.0, gain=2.0)
    if noise:
        sc.image += np.random.default_rng(seed).normal(0, 4.0, sc.shape)
    return sc


def test_registered_and_constant():
    assert get_injector("TRL") is inject_trails
    assert K_T == 6.0


@pytest.mark.parametrize("kind", list(TRAIL_KINDS))
def test_truth_is_binarised_trail_dilated_7x7(kind):
    sc = _scene()
    inject_trails(sc, rng=np.random.default_rng(3), kind=kind, n_trails=1, snr=2.0, photon_noise=False)
    diff = sc.image - 500.0
    truth = sc.plane("TRL")
    assert truth.any() and np.isfinite(sc.image).all()
    # the image changed only inside the truth ...
    assert not np.any(diff[~truth])
    # ... and the truth is exactly the trail above 0.2 sigma_U, dilated by a 7x7 square
    np.testing.assert_array_equal(truth, ndimage.maximum_filter(diff > 0.2 * sc.sigma, size=7))
    # no other plane touched (BG is finalised later)
    others = np.delete(np.arange(sc.truth.shape[0]), class_index("TRL"))
    assert not sc.truth[others].any()
    assert sc.meta["TRL"][0]["kind"] == kind


def test_eq8_amplitude_k_t_and_snr():
    kw = dict(kind="satellite", n_trails=1, angle=0.3, jitter=0.0, full_crossing=True, photon_noise=False)
    a = _scene()
    inject_trails(a, rng=np.random.default_rng(1), snr=1.0, **kw)
    peak = (a.image - 500.0).max()
    assert 0.85 * K_T * a.sigma <= peak <= K_T * a.sigma * 1.0001
    b = _scene()
    inject_trails(b, rng=np.random.default_rng(1), snr=1.0, k_t=3.0, **kw)
    assert (b.image - 500.0).max() == pytest.approx(peak / 2, rel=1e-9)
    # faint trails down to the noise level
    c = _scene()
    inject_trails(c, rng=np.random.default_rng(1), snr=0.1, **kw)
    assert (c.image - 500.0).max() < 0.61 * c.sigma
    assert c.plane("TRL").any()


def test_eq7_meteor_defocus():
    assert meteor_defocus_arcsec(4.0, 1e5) == pytest.approx(180 / np.pi * 3600 * 4e-5)
    sc = _scene()
    inject_trails(sc, rng=np.random.default_rng(2), kind="meteor", n_trails=1, snr=3.0, photon_noise=False)
    rec = sc.meta["TRL"][0]
    # D in [2, 8] m, d in [80, 120] km: 3.4" to 20.6"; plate scale in [0.15, 0.6] "/px
    assert 3.4 / 0.6 <= rec["defocus_px"] <= 20.7 / 0.15
    assert 0.15 <= rec["plate_scale"] <= 0.6


def test_same_seed_same_output_and_noise_is_finite():
    a, b = _scene(noise=True), _scene(noise=True)
    inject_trails(a, rng=np.random.default_rng(7))
    inject_trails(b, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.truth, b.truth)
    assert np.isfinite(a.image).all()
    c = _scene(noise=True)
    inject_trails(c, rng=np.random.default_rng(8))
    assert not np.array_equal(a.image, c.image)


def test_many_draws_no_nan_and_truth_covers_change():
    for seed in range(12):
        sc = _scene()
        inject_trails(sc, rng=np.random.default_rng(100 + seed))
        diff = sc.image - 500.0
        assert np.isfinite(diff).all()
        assert not np.any(diff[~sc.plane("TRL")])


def test_square_dilation_matches_maximum_filter():
    from maximask.simulate.trails import square_dilate

    m = np.random.default_rng(0).random((40, 50)) > 0.97
    m[0, 0] = m[-1, 10] = m[20, -1] = True
    for size in (3, 5, 7):
        np.testing.assert_array_equal(square_dilate(m, size), ndimage.maximum_filter(m, size=size))
