"""NEB injector (paper Sect. 2.1.8, Eq. 11): inject and recover."""

import numpy as np
import pytest
from scipy import ndimage

from maximask.simulate.base import Scene, get_injector
from maximask.simulate.nebulosity import (
    DILATION_DIAMETER,
    EROSION_DIAMETER,
    K_N,
    disk_dilate,
    disk_erode,
    inject_nebulosity,
    nebulosity_pattern,
    nebulosity_truth,
)

SHAPE = (128, 112)


def _scene():
    return Scene.empty(SHAPE, sky_level=200.0, sigma=3.0)


def test_registered_and_constants():
    assert get_injector("NEB") is inject_nebulosity
    assert (K_N, EROSION_DIAMETER, DILATION_DIAMETER) == (1.3, 6, 22)


def test_eq11_addition_and_truth_recipe():
    sc = _scene()
    inject_nebulosity(sc, rng=np.random.default_rng(5), scale=1.0)
    n, _ = nebulosity_pattern(SHAPE, np.random.default_rng(5))
    n = np.rot90(n, sc.meta["NEB"][0]["rotation_deg"] // 90)
    assert sc.meta["NEB"][0]["rotation_deg"] in (0, 180)  # not square: no 90 deg turn
    sigma_n = n.std()
    np.testing.assert_allclose(sc.image - 200.0, K_N * sc.sigma / sigma_n * n, atol=1e-9)
    truth = sc.plane("NEB")
    # 1 sigma threshold, erosion by a 6 px disk, dilation by a 22 px disk (exact Euclidean disks)
    core = ndimage.distance_transform_edt(n > sigma_n) > 3.0
    expected = ndimage.distance_transform_edt(~core) <= 11.0
    np.testing.assert_array_equal(truth, expected)
    np.testing.assert_array_equal(truth, nebulosity_truth(n))
    assert 0 < truth.mean() < 1
    # the nebulosity is brighter inside its truth than outside
    assert (sc.image - 200.0)[truth].mean() > (sc.image - 200.0)[~truth].mean()


def test_background_subtracted():
    n, _ = nebulosity_pattern((128, 128), np.random.default_rng(1), mesh=32)
    # the SExtractor-like background is removed: no large-scale offset left
    blocks = n.reshape(4, 32, 4, 32).mean(axis=(1, 3))
    assert abs(np.median(blocks)) < 0.5 * n.std()


@pytest.mark.parametrize("diameter", [6, 7, 22])
def test_disk_morphology_matches_distance_transform(diameter):
    rng = np.random.default_rng(diameter)
    m = ndimage.gaussian_filter(rng.random((60, 70)), 2) > 0.5
    np.testing.assert_array_equal(disk_dilate(m, diameter), ndimage.distance_transform_edt(~m) <= diameter / 2)
    np.testing.assert_array_equal(disk_erode(m, diameter), ndimage.distance_transform_edt(m) > diameter / 2)


def test_scale_option_same_seed_and_no_nan():
    a, b, c = _scene(), _scene(), _scene()
    inject_nebulosity(a, rng=np.random.default_rng(3), scale=1.0)
    inject_nebulosity(b, rng=np.random.default_rng(3), scale=2.0)
    np.testing.assert_allclose(b.image - 200.0, 2.0 * (a.image - 200.0), atol=1e-9)
    inject_nebulosity(c, rng=np.random.default_rng(3), scale=1.0)
    np.testing.assert_array_equal(a.image, c.image)
    for seed in range(5):
        sc = _scene()
        inject_nebulosity(sc, rng=np.random.default_rng(seed))
        assert np.isfinite(sc.image).all()
        assert 0.5 <= sc.meta["NEB"][0]["scale"] <= 3.0
