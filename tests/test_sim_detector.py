"""Inject and recover: CR, HCL, DCL, HP, DP, OV, SAT and P, with the paper's constants."""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

import maximask.simulate  # noqa: F401  (registers the injectors)
from maximask.classes import class_index
from maximask.simulate import cosmic_rays, detector_defects, persistence
from maximask.simulate.base import get_injector
from maximask.simulate.saturation import bleed_columns
from maximask.simulate.sky import SkyParameters, make_clean_scene

REAL = Path("/work/shared/realdata/calib")


def _scene(seed=0, shape=(64, 64), **kw):
    p = dict(shape=shape, fwhm=2.5, psf_profile="moffat", psf_params={"beta": 3.0}, sky_level=800.0, gain=2.0,
             read_noise=5.0, saturation=20000.0, star_density=3e-3, galaxy_fraction=0.3, max_star_peak=2e5)
    p.update(kw)
    return make_clean_scene(SkyParameters(**p), rng=np.random.default_rng(seed))


def _inject(name, seed=0, scene=None, **opts):
    scene = scene or _scene(seed)
    before = scene.image.copy()
    truth_before = scene.truth.copy()
    get_injector(name)(scene, rng=np.random.default_rng(seed + 100), **opts)
    changed = scene.image != before
    plane = scene.truth[class_index(name)]
    others = np.delete(np.arange(14), class_index(name))
    assert np.array_equal(scene.truth[others], truth_before[others]), "injector touched another class"
    assert np.isfinite(scene.image).all()
    return scene, before, changed, plane


@pytest.mark.parametrize("name", ["HCL", "DCL", "HP", "DP", "OV"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_static_defects_truth_is_exactly_the_changed_pixels(name, seed):
    _, _, changed, plane = _inject(name, seed)
    assert plane.any()
    assert np.array_equal(changed, plane)


def test_hot_pixel_fraction_and_values():
    for seed in range(5):
        scene, before, _, plane = _inject("HP", seed)
        frac = scene.meta["HP"]["fraction"]
        assert 0.0002 <= frac <= 0.0005
        assert plane.sum() == max(1, round(frac * plane.size))
        nu = scene.meta["HP"]["nu_sigma"]
        assert 15 <= nu <= 100
        excess = (scene.image - before)[plane] / scene.sigma
        assert np.all(np.abs(excess - nu) < 0.1 * nu)


def test_dead_value_recipes():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        vals, recipe = detector_defects.dead_values(200, 10.0, 1000.0, rng=rng)
        seen.add(recipe)
        if recipe == 0:
            assert np.all(vals == 0)
        elif recipe == 1:
            assert np.abs(vals).max() < 1.2 and vals.std() == pytest.approx(0.2, rel=0.3)  # N(0, (0.02 sigma)^2)
        else:
            nu = vals.mean()
            assert 100 * 0.98 <= nu <= 700 * 1.02
            assert np.all(np.abs(vals - nu) < 0.1 * nu)
    assert seen == {0, 1, 2}


def test_lines_and_clusters_geometry():
    rng = np.random.default_rng(3)
    for _ in range(50):
        mask, segs = detector_defects.line_masks((100, 80), rng=rng)
        assert 1 <= len(segs) <= 4
        for s in segs:
            assert 30 <= s["length"] <= (100 if s["vertical"] else 80)
            assert 1 <= s["thickness"] <= 3
        poly = detector_defects.convex_polygon_mask(20, int(rng.integers(5, 7)), rng=rng)
        assert poly.shape == (20, 20) and poly.any()
        # convex: every row and column of the polygon is one contiguous run
        for line in list(poly) + list(poly.T):
            idx = np.flatnonzero(line)
            if idx.size:
                assert idx[-1] - idx[0] + 1 == idx.size


def test_overscan_on_image_sides():
    scene, _, _, plane = _inject("OV", 4)
    ny, nx = plane.shape
    edges = plane[:, 0].all() or plane[:, -1].all() or plane[0].all() or plane[-1].all()
    assert edges
    lab, n = ndi.label(plane)
    assert n <= 2


def test_overscan_edge_bands_leave_the_strips_and_the_truth_unchanged():
    """With edge bands the strips are those drawn without (same values, same OV truth); the band
    changes data pixels next to a strip only, as exp(-d / length) of its distance d."""
    for seed in range(6):
        plain, before, _, plane = _inject("OV", seed)
        banded, _, changed, plane_b = _inject("OV", seed, edge_band_probability=1.0)
        assert np.array_equal(plane, plane_b)
        assert np.array_equal(banded.image[plane_b], plain.image[plane])
        bands = banded.meta["OV"]["edge_bands"]
        assert len(bands) == len(banded.meta["OV"]["sides"])
        assert not np.any(changed & ~plane_b & ~_band_support(banded))
        for band, w in zip(bands, banded.meta["OV"]["widths"]):
            assert band["kind"] in ("glow", "rolloff")
            line = _first_data_line(banded.image, band["side"], w)
            ref = _first_data_line(plain.image, band["side"], w)
            first = np.flatnonzero(~_first_data_line(plane_b, band["side"], w))
            if band["kind"] == "glow":
                assert band["amplitude_sigma"] >= 3.0 - 1e-9
                assert np.mean(line[first] - ref[first]) > 0
            elif len(bands) == 1:  # value * (1 - depth) on the first data line, exactly
                np.testing.assert_allclose(line[first], ref[first] * (1 - band["depth"]), rtol=1e-12)
        assert banded.image.max() <= max(before.max(), banded.saturation)


def _band_support(scene):
    """Data pixels within 6 e-folding lengths of a strip that has a band."""
    ny, nx = scene.shape
    out = np.zeros(scene.shape, bool)
    for band, w in zip(scene.meta["OV"]["edge_bands"], scene.meta["OV"]["widths"]):
        n = int(np.ceil(6 * band["length"]))
        s = band["side"]
        if s == 0:
            out[:, w:w + n] = True
        elif s == 1:
            out[:, max(nx - w - n, 0):nx - w] = True
        elif s == 2:
            out[w:w + n, :] = True
        else:
            out[max(ny - w - n, 0):ny - w, :] = True
    return out


def _first_data_line(plane, side, w):
    """The first column or row of ``plane`` (an image or a truth plane) next to a strip of width ``w``."""
    ny, nx = plane.shape
    return {0: plane[:, w], 1: plane[:, nx - w - 1], 2: plane[w], 3: plane[ny - w - 1]}[side]


def test_edge_band_profile():
    d = np.array([-1.0, 0.0, 1.0, 5.0, 11.9, 12.0, 30.0])
    np.testing.assert_allclose(detector_defects.edge_band_profile(d, 2.0), [0, 1, np.exp(-0.5), np.exp(-2.5), np.exp(-5.95), 0, 0])


def test_cosmic_rays_simulated_truth_is_dilated_footprint():
    for seed in range(3):
        scene, before, changed, plane = _inject("CR", seed, library=None)
        assert plane.any()
        assert not np.any(changed & ~plane)  # nothing changed outside the truth
        assert np.all(plane <= ndi.binary_dilation(changed, np.ones((3, 3), bool)))
        assert scene.meta["CR"]["origins"].get("sim", 0) >= 1


def test_simulated_hit_kinds():
    rng = np.random.default_rng(0)
    for kind in ("dot", "double", "track", "worm"):
        hit = cosmic_rays.simulate_hit(rng=rng, kind=kind)
        assert hit.values.shape == hit.truth.shape
        assert np.all(hit.values[~hit.truth] == 0)
        core = hit.values > 0.375
        assert np.all(ndi.binary_dilation(core, np.ones((3, 3), bool)) >= hit.truth)


@pytest.mark.skipif(not REAL.is_dir(), reason="real data folder absent")
def test_cosmic_ray_library_from_real_data():
    lib = cosmic_rays.load_cosmic_ray_library(REAL)
    assert lib is not None and len(lib.dark) > 50 and len(lib.itl) > 500
    assert cosmic_rays.load_cosmic_ray_library(REAL) is lib  # cached per process
    for hit in lib.dark[:50] + lib.itl[:50]:
        assert np.all(hit.values[~hit.truth] == 0)
        core = hit.values >= 3.0  # Eq. 1 threshold, sigma_D units
        assert np.array_equal(ndi.binary_dilation(core, np.ones((3, 3), bool)) & hit.truth, hit.truth) or hit.origin == "itl"
    scene = _scene(1)
    before = scene.image.copy()
    get_injector("CR")(scene, rng=np.random.default_rng(2), library=lib, real_fraction=1.0)
    plane = scene.plane("CR")
    changed = scene.image != before
    assert plane.any() and not np.any(changed & ~plane)
    # Eq. 2 scaling: added = k_C sigma_U * D / sigma_D
    added = (scene.image - before)[plane]
    assert added.max() / scene.sigma <= cosmic_rays.K_C * max(h.values.max() for h in lib.dark + lib.itl) + 1e-6


def test_saturation_clips_bleeds_and_conserves_charge():
    img = np.full((40, 5), 100.0)
    img[18:22, 2] = [500.0, 1500.0, 1500.0, 500.0]
    total = img.sum()
    added = bleed_columns(img, 1000.0)
    assert img.max() <= 1000.0
    assert img.sum() == pytest.approx(total)
    assert added[:, 2].sum() > 0 and added[:, [0, 1, 3, 4]].sum() == 0
    assert np.count_nonzero(img[:, 2] >= 1000.0) >= 3


def test_saturation_truth():
    scene = _scene(2, saturation=2500.0, star_density=5e-3)
    yy, xx = np.mgrid[0:64, 0:64]
    scene.image += 2e4 * np.exp(-((xx - 30.3) ** 2 + (yy - 20.6) ** 2) / 4.0)  # a saturated star
    level = scene.saturation
    assert (scene.image >= level).any()
    scene, before, changed, plane = _inject("SAT", 2, scene=scene)
    assert np.all(scene.image <= level + 1e-6)
    assert np.all(plane[before >= level])
    # pixels changed but not labelled only received a little bled charge
    small = changed & ~plane
    assert np.all(np.abs(scene.image - before)[small] <= scene.sigma + 1e-9)
    assert np.all(plane <= (changed | (scene.image >= level)))


def test_persistence_equations_and_truth():
    assert persistence.K_P == 5.0
    t2 = persistence.TABLE2
    assert (t2["alpha"], t2["gamma"], t2["x_m"], t2["x_0"], t2["dx"]) == (0.178, 1.078, 15e5, 9e4, 18e3)
    # Eq. 5 is the integral of Eq. 3 over [dt, dt + T]
    x_p, x_0, dx, g, T, dt = 1.4e6, 9e4, 1.8e4, 10.0, 100.0, 50.0
    t = np.linspace(dt, dt + T, 200001)
    f = 1.0 / (np.exp(-(x_p - x_0) / dx) + 1) * (x_p / x_0) ** 0.178 * (t / 1000.0) ** -1.078
    integral = np.sum((f[1:] + f[:-1]) / 2 * np.diff(t)) / g
    assert persistence.fermi_persistence(np.array(x_p), t_exp=T, delay=dt, x_0=x_0, dx=dx, gain=g) == pytest.approx(integral, rel=1e-4)
    scene, before, changed, plane = _inject("P", 5)
    assert plane.any() and np.array_equal(changed, plane)
    added = (scene.image - before)[plane]
    assert added.max() == pytest.approx(5.0 * scene.sigma) and added.min() > 0


def test_saturation_near_infrared_clips_without_bleeding():
    scene = _scene(3, saturation=2500.0)
    yy, xx = np.mgrid[0:64, 0:64]
    scene.image += 2e4 * np.exp(-((xx - 40.0) ** 2 + (yy - 30.0) ** 2) / 4.0)
    scene.meta["sky"]["detector"] = "nir"
    scene, before, changed, plane = _inject("SAT", 3, scene=scene)
    assert np.array_equal(plane, before >= scene.saturation)
    assert np.array_equal(changed, before > scene.saturation)
