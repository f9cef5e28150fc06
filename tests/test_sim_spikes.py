"""SP injector (paper Sect. 2.1.10): inject and recover."""

import numpy as np
import pytest
from scipy import ndimage

from maximask.simulate.base import Scene, get_injector
from maximask.simulate.spikes import GEOMETRIES, bright_star_threshold, inject_spikes

SHAPE = (160, 160)
DT = np.dtype([("x", "f8"), ("y", "f8"), ("flux", "f8"), ("is_star", "?")])


def _scene(sources=None):
    sc = Scene.empty(SHAPE, sky_level=1000.0, sigma=10.0, fwhm=3.0, gain=1.5, saturation=50000.0)
    sc.clean = sc.image.copy()
    sc.sources = sources
    return sc


def _spike_only(**kw):
    """Spike light alone: same draws with and without spikes (strength 0 draws no spike)."""
    with_sp, without = _scene(), _scene()
    inject_spikes(with_sp, rng=np.random.default_rng(11), photon_noise=False, **kw)
    inject_spikes(without, rng=np.random.default_rng(11), photon_noise=False, **{**kw, "strength": 0.0})
    return with_sp, with_sp.image - without.image


def test_registered():
    assert get_injector("SP") is inject_spikes


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_truth_is_spike_above_threshold_dilated(geometry):
    sc, spike = _spike_only(geometry=geometry, strength=0.02, star_peak=2e5)
    truth = sc.plane("SP")
    assert truth.any() and np.isfinite(sc.image).all()
    assert not np.any(spike[~truth])
    np.testing.assert_array_equal(truth, ndimage.maximum_filter(spike > 1.0 * sc.sigma, size=5))
    assert sc.meta["SP"][0]["geometry"] == geometry


def test_added_star_when_none_is_bright():
    faint = np.array([(40.0, 40.0, 100.0, True)], dtype=DT)
    sc = _scene(faint)
    inject_spikes(sc, rng=np.random.default_rng(0))
    rec = sc.meta["SP"][0]
    assert rec["added_star"] is not None and len(sc.sources) == 2
    x, y = int(rec["added_star"]["x"]), int(rec["added_star"]["y"])
    # the star is part of the sky: in the clean image, flagged BBG above 10 sigma
    assert sc.clean[y, x] - 1000.0 > 10 * sc.sigma and sc.plane("BBG")[y, x]
    assert rec["added_star"]["peak"] >= bright_star_threshold(sc)


def test_uses_existing_bright_star_plus_orientation():
    bright = np.array([(80.0, 80.0, 5e6, True), (20.0, 20.0, 5e6, False)], dtype=DT)
    sc = _scene(bright)
    before = sc.image.copy()
    inject_spikes(sc, rng=np.random.default_rng(1), add_star=False, geometry="cross", orientation="+", photon_noise=False)
    spike = sc.image - before
    assert sc.meta["SP"][0]["n_stars"] == 1 and len(sc.sources) == 2
    assert not sc.plane("BBG").any()  # nothing added to the sky
    # '+': spikes along the row and column through the star, not the diagonals
    assert spike[80, 110] > 10 * spike[101, 101] and spike[50, 80] > 10 * spike[59, 59]
    # no spike on the galaxy
    assert not sc.plane("SP")[20, 20]


def test_length_and_width_grow_with_brightness():
    areas = []
    for peak in (5e3, 5e4, 5e5):
        sc, _ = _spike_only(geometry="cross", orientation="x", strength=0.02, slope=2.0, star_peak=peak)
        areas.append(sc.plane("SP").sum())
    assert areas[0] < areas[1] < areas[2]


def test_no_star_no_spike_and_same_seed():
    sc = _scene(np.array([(40.0, 40.0, 100.0, True)], dtype=DT))
    inject_spikes(sc, rng=np.random.default_rng(0), add_star=False)
    assert not sc.plane("SP").any() and np.all(sc.image == 1000.0)
    a, b = _scene(), _scene()
    inject_spikes(a, rng=np.random.default_rng(5))
    inject_spikes(b, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.truth, b.truth)


def test_band_selection_matches_brute_force():
    from maximask.simulate.spikes import _band

    rng = np.random.default_rng(0)
    for k in range(100):
        bx = np.arange(rng.integers(1, 50)) - rng.uniform(-20, 50)
        by = np.arange(rng.integers(1, 50)) - rng.uniform(-20, 50)
        ang = rng.uniform(0, np.pi) if k % 4 else (0.0, np.pi / 2, np.pi / 4)[k % 3]
        c, s, half = np.cos(ang), np.sin(ang), rng.uniform(0.5, 8.0)
        d = (-s) * bx[None, :] + c * by[:, None]
        assert set(zip(*np.nonzero(np.abs(d) < half))) == set(zip(*_band(bx, by, c, s, half)))
