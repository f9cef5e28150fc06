"""Preprocessing: sep background and noise, arsinh dynamic compression (Sect. 2.3.3)."""

import numpy as np
import pytest

from maximask.preprocess import compress, estimate_background, preprocess_image


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
