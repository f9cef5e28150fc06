"""Clean sky scenes: parameters, PSFs, rendering, noise, BBG truth, determinism."""

import numpy as np
import pytest

from maximask.classes import class_index
from maximask.simulate.psf import PSF_PROFILES, draw_psf, render_points
from maximask.simulate.sky import SkyParameters, draw_sky_parameters, make_clean_scene


def _params(**kw):
    base = dict(shape=(64, 64), fwhm=3.0, psf_profile="moffat", psf_params={"beta": 3.0}, sky_level=500.0,
                gain=2.0, read_noise=5.0, saturation=30000.0, star_density=5e-3, galaxy_fraction=0.3)
    base.update(kw)
    return SkyParameters(**base)


def test_parameter_ranges():
    rng = np.random.default_rng(0)
    ps = [draw_sky_parameters((64, 64), rng=rng) for _ in range(300)]
    fwhm = np.array([p.fwhm for p in ps])
    assert fwhm.min() >= 1.2 and fwhm.max() <= 8.0 and (fwhm < 2.0).any()
    assert {p.psf_profile for p in ps} == set(PSF_PROFILES)
    betas = [p.psf_params["beta"] for p in ps if p.psf_profile == "moffat"]
    assert min(betas) >= 2.0 and max(betas) <= 5.0
    sky = np.array([p.sky_level for p in ps])
    assert sky.min() >= 10.0 and sky.max() <= 20000.0
    assert all(0.5 <= p.gain <= 5.0 and 2.0 <= p.read_noise <= 15.0 for p in ps)
    assert all(p.saturation > p.sky_level for p in ps)
    dens = np.array([p.star_density for p in ps])
    assert dens.max() / dens.min() > 20  # sparse to crowded


def test_validate_rejects_bad_parameters():
    with pytest.raises(ValueError, match="saturation"):
        _params(saturation=100.0).validate()
    with pytest.raises(ValueError, match="fwhm"):
        _params(fwhm=0.0).validate()


@pytest.mark.parametrize("profile", PSF_PROFILES)
def test_psf_normalised_and_fwhm(profile):
    psf = draw_psf(profile, 3.0, params={"beta": 3.0, "lam_over_diam": 0.8})
    pix = psf.pixel_psf()
    assert pix.shape[0] % 2 == 1 and abs(pix.sum() - 1) < 1e-9
    k = pix.shape[0] // 2
    assert np.unravel_index(pix.argmax(), pix.shape) == (k, k)
    assert 2.5 < psf.fwhm_eff < 5.0


def test_render_points_flux_and_subpixel_centroid():
    psf = draw_psf("moffat", 2.0, params={"beta": 4.0})
    canvas = np.zeros((41, 41))
    render_points(canvas, psf, np.array([20.25]), np.array([19.75]), np.array([1000.0]))
    assert canvas.sum() == pytest.approx(1000.0, rel=0.01)
    yy, xx = np.mgrid[0:41, 0:41]
    assert (canvas * xx).sum() / canvas.sum() == pytest.approx(20.25, abs=0.07)
    assert (canvas * yy).sum() / canvas.sum() == pytest.approx(19.75, abs=0.07)
    # wide stamp for a bright star keeps its wings beyond the core stamp
    big = np.zeros((101, 101))
    render_points(big, psf, np.array([50.0]), np.array([50.0]), np.array([1e7]), floor=1.0)
    assert big[50, 50 + psf.size] > 0.2  # beyond the core stamp (half-size psf.size // 2)


def test_clean_scene_contents():
    scene = make_clean_scene(_params(), rng=np.random.default_rng(1))
    assert scene.image.shape == (64, 64) and np.isfinite(scene.image).all()
    assert np.array_equal(scene.image, scene.clean)
    assert scene.sources is not None and len(scene.sources) > 0
    assert set(scene.sources.dtype.names) >= {"x", "y", "flux", "is_star"}
    assert abs(scene.psf.sum() - 1) < 1e-9
    bbg = scene.truth[class_index("BBG")]
    assert np.array_equal(bbg, scene.source_image > 10 * scene.sigma)
    assert scene.truth.sum() == bbg.sum()  # nothing but BBG yet
    # sky noise matches sigma_U where there are no sources
    empty = scene.source_image < 0.01 * scene.sigma
    resid = (scene.image - scene.background)[empty]
    assert np.std(resid) == pytest.approx(scene.sigma, rel=0.1)


def test_same_seed_same_scene_and_smear_twin():
    p = _params()
    a = make_clean_scene(p, rng=np.random.default_rng(5))
    b = make_clean_scene(p, rng=np.random.default_rng(5))
    assert np.array_equal(a.image, b.image)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    d = make_clean_scene(p, rng=r1, smear_kernel=np.ones((1, 1)))
    assert np.allclose(d.image, a.image)
    kernel = np.zeros((1, 9))
    kernel[0, :] = 1 / 9
    s = make_clean_scene(p, rng=r2, smear_kernel=kernel)
    assert r1.random() == r2.random()  # same random stream consumed
    assert np.array_equal(s.sources, a.sources)
    assert not np.allclose(s.image, a.image)
    # total source flux is conserved by the smear (away from the borders)
    assert s.source_image.sum() == pytest.approx(a.source_image.sum(), rel=0.05)
