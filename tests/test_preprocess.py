"""Preprocessing: sep background and noise, arsinh dynamic compression (Sect. 2.3.3)."""

import numpy as np
import pytest

from maximask.preprocess import MAX_NOISE_RATIO, compress, difference_noise, estimate_background, preprocess_image


def test_background_and_noise_of_flat_noisy_sky():
    rng = np.random.default_rng(0)
    image = rng.normal(1000.0, 10.0, (256, 256))
    est = estimate_background(image)
    assert abs(np.median(est.background) - 1000.0) < 1.0
    assert est.sigma == pytest.approx(10.0, rel=0.05)


def test_compression_formula_and_random_offset():
    rng = np.random.default_rng(1)
    image = rng.normal(50.0, 2.0, (64, 64))
    out = compress(image, 50.0, 2.0)
    np.testing.assert_allclose(out, np.arcsinh((image - 50.0) / 2.0), rtol=1e-5, atol=1e-6)
    shifted = compress(image, 50.0, 2.0, offset_sigma=1.0, rng=np.random.default_rng(5))
    offset = np.random.default_rng(5).normal(0.0, 2.0)
    np.testing.assert_allclose(shifted, np.arcsinh((image - 50.0 + offset) / 2.0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="rng"):
        compress(image, 50.0, 2.0, offset_sigma=1.0)


def test_non_finite_pixels_are_excluded_and_neutral():
    rng = np.random.default_rng(2)
    image = rng.normal(100.0, 3.0, (128, 128))
    image[10, 10] = np.nan
    image[20, :5] = np.inf
    image[30, 30] = -np.inf
    out, est = preprocess_image(image)
    assert np.isfinite(out).all()
    assert out[10, 10] == 0 and out[30, 30] == 0 and (out[20, :5] == 0).all()
    assert est.invalid.sum() == 7
    assert est.sigma == pytest.approx(3.0, rel=0.1)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (5, 7), (3, 200)])
def test_tiny_and_degenerate_images(shape):
    image = np.arange(np.prod(shape), dtype=float).reshape(shape)
    out, est = preprocess_image(image)
    assert out.shape == shape and np.isfinite(out).all() and est.sigma > 0
    out, est = preprocess_image(np.full(shape, 7.0))
    assert (out == 0).all()
    out, est = preprocess_image(np.full(shape, np.nan))
    assert (out == 0).all() and est.invalid.all()


def test_difference_noise_ignores_steps_gradients_and_invalid_pixels():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:200, :300]
    image = 500.0 + 2.0 * xx + rng.normal(0.0, 7.0, (200, 300))
    image[:, 150:] -= 3000.0  # a step of 430 sigma
    image[50:60, 40:80] = np.nan
    assert difference_noise(image) == pytest.approx(7.0, rel=0.05)
    bad = np.zeros(image.shape, bool)
    bad[:, :100] = True
    image[:, :100] = rng.normal(0.0, 1000.0, (200, 100))  # excluded: does not count
    assert difference_noise(image, bad) == pytest.approx(7.0, rel=0.05)
    assert difference_noise(np.zeros((1, 50))) == 0.0
    assert difference_noise(np.full((20, 20), 3.0)) == 0.0


def test_noise_of_a_stamp_straddling_an_overscan_edge_is_capped():
    """A 100x100 raw stamp, sky at 4300 ADU on 75 columns and overscan at 2000 on 25: sep's
    mesh rms measures the step; the noise used is capped at MAX_NOISE_RATIO x the pixel noise."""
    rng = np.random.default_rng(4)
    image = rng.normal(4300.0, 28.0, (100, 100))
    image[:, 75:] = rng.normal(2000.0, 6.0, (100, 25))
    est = estimate_background(image)
    assert est.sigma_sep > 10 * 28.0  # what the mesh statistics give
    assert est.noise_capped
    assert est.sigma == pytest.approx(MAX_NOISE_RATIO * difference_noise(image))
    assert est.sigma < MAX_NOISE_RATIO * 28.0
    out, _ = preprocess_image(image)
    assert np.std(out[:, :60]) > 0.25  # the sky keeps visible noise, not a flat (dead-looking) plane


def test_noise_cap_leaves_ordinary_images_alone():
    rng = np.random.default_rng(6)
    image = rng.normal(1000.0, 10.0, (256, 256))
    yy, xx = np.mgrid[:256, :256]
    for y, x in rng.uniform(10, 246, (40, 2)):  # stars
        image += 2000.0 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.5**2))
    est = estimate_background(image)
    assert not est.noise_capped and est.sigma == est.sigma_sep
