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
    mesh rms measures the step; the noise used is capped at MAX_NOISE_RATIO x the pixel noise.
    (Single-pass map: with the step masking, the default, the strip is left out, next test.)"""
    rng = np.random.default_rng(4)
    image = rng.normal(4300.0, 28.0, (100, 100))
    image[:, 75:] = rng.normal(2000.0, 6.0, (100, 25))
    est = estimate_background(image, mask_steps=False)
    assert est.sigma_sep > 10 * 28.0  # what the mesh statistics give
    assert est.noise_capped
    assert est.sigma == pytest.approx(MAX_NOISE_RATIO * difference_noise(image))
    assert est.sigma < MAX_NOISE_RATIO * 28.0
    out = compress(image, est.background, est.sigma)
    assert np.std(out[:, :60]) > 0.25  # the sky keeps visible noise, not a flat (dead-looking) plane


def test_step_masking_leaves_an_edge_strip_out_of_a_small_stamp():
    """The same stamp: its second mesh column is overscan, so the first map is at the strip's
    level there; the edge strip (column medians 10 sigma below the image median) is left out,
    and the sky gets a flat background and its own noise."""
    rng = np.random.default_rng(4)
    image = rng.normal(4300.0, 28.0, (100, 100))
    image[:, 75:] = rng.normal(2000.0, 6.0, (100, 25))
    single = estimate_background(image, mask_steps=False)
    est = estimate_background(image)
    sky = ((image - est.background) / est.sigma)[:, :75].mean(axis=0)
    ramp = ((image - single.background) / single.sigma)[:, :75].mean(axis=0)
    assert np.ptp(ramp) > 20  # single pass: a ramp across the sky, from the strip's mesh
    assert np.abs(sky).max() < 0.5
    assert est.sigma == pytest.approx(28.0, rel=0.1) and not est.noise_capped


def test_step_masking_does_not_take_an_amplifier_half_for_a_strip():
    """Two amplifiers 800 ADU apart, each half the image: not an edge strip (wider than a third),
    so each half keeps its own background."""
    rng = np.random.default_rng(5)
    image = rng.normal(4300.0, 28.0, (200, 200))
    image[:, 100:] -= 800.0
    single = estimate_background(image, mask_steps=False)
    est = estimate_background(image)
    residual = (image - est.background) / est.sigma
    assert abs(np.median(residual[:, :40])) < 3 and abs(np.median(residual[:, 160:])) < 3  # a step of 28 sigma
    assert np.abs(est.background - single.background).max() < 2 * est.sigma


def test_noise_cap_leaves_ordinary_images_alone():
    rng = np.random.default_rng(6)
    image = rng.normal(1000.0, 10.0, (256, 256))
    yy, xx = np.mgrid[:256, :256]
    for y, x in rng.uniform(10, 246, (40, 2)):  # stars
        image += 2000.0 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.5**2))
    est = estimate_background(image)
    assert not est.noise_capped and est.sigma == est.sigma_sep


def _frame_with_overscan(rng: np.random.Generator) -> np.ndarray:
    """A raw 256x272 frame: sky 5300 ADU (noise 38) and a 16-column overscan at bias 900 (noise 5.6),
    so that the last column of 64 px background meshes holds the overscan alone (as on LCO frames)."""
    image = rng.normal(5300.0, 38.0, (256, 272))
    image[:, 256:] = rng.normal(900.0, 5.6, (256, 16))
    return image


def test_step_masking_removes_the_ringing_next_to_an_overscan():
    """sep's spline rings next to a step of ~115 sigma (module docstring, "Steps of the
    background"); the second pass without the deep pixels gives the sky its own level."""
    image = _frame_with_overscan(np.random.default_rng(8))
    single = estimate_background(image, mask_steps=False)
    masked = estimate_background(image)
    sky = slice(160, 256)  # the 96 sky columns next to the strip
    ring = (image[:, sky] - single.background[:, sky]).mean(axis=0) / single.sigma
    clean = (image[:, sky] - masked.background[:, sky]).mean(axis=0) / masked.sigma
    assert np.abs(ring).max() > 5.0  # what a single pass gives: bands of several sigma
    assert np.abs(clean).max() < 0.5
    assert masked.sigma == pytest.approx(38.0, rel=0.1)
    # the overscan keeps the sky's background, so it comes out as far below it as it is
    assert np.median((image[:, 260:] - masked.background[:, 260:]) / masked.sigma) < -100


def test_step_masking_leaves_images_without_deep_pixels_alone():
    rng = np.random.default_rng(9)
    yy, xx = np.mgrid[:200, :240]
    image = rng.normal(800.0, 12.0, (200, 240)) + 0.3 * xx + 40.0 * np.exp(-((yy - 90) ** 2) / 800.0)
    for y, x in rng.uniform(10, 190, (30, 2)):  # stars (positive: never masked)
        image += 5000.0 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.5**2))
    single = estimate_background(image, mask_steps=False)
    masked = estimate_background(image)
    np.testing.assert_array_equal(masked.background, single.background)
    assert masked.sigma == single.sigma


def test_row_windows_take_the_given_noise():
    image = _frame_with_overscan(np.random.default_rng(10))
    est = estimate_background(image, noise=40.0)
    assert est.sigma == 40.0 and not est.noise_capped
    sky = (image[:, 160:256] - est.background[:, 160:256]).mean(axis=0) / 40.0
    assert np.abs(sky).max() < 0.5  # the step masking works from the given noise too
