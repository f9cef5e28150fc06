"""Inject-and-recover test of the LA Cosmic wrapper."""

import json

import numpy as np
import pytest

pytest.importorskip("astroscrappy")

from maximask.evaluate.lacosmic import dilate_mask, lacosmic_counts, lacosmic_mask, lacosmic_on_shards  # noqa: E402


def _scene(rng, size=64, sky=500.0, gain=2.0, read_noise=5.0, n_hits=12):
    """Sky + two well-sampled stars (FWHM 4 px) + single-pixel cosmic-ray hits, ADU."""
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), sky)
    sig = 4.0 / 2.355
    for y0, x0 in ((20, 20), (45, 40)):
        img += 3000 * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * sig**2))
    img = rng.poisson(img * gain) / gain + rng.normal(0, read_noise / gain, img.shape)
    hits = np.zeros((size, size), bool)
    for _ in range(n_hits):
        y, x = rng.integers(3, size - 3, 2)
        if abs(y - 20) + abs(x - 20) > 8 and abs(y - 45) + abs(x - 40) > 8:
            img[y, x] += rng.uniform(800, 3000)
            hits[y, x] = True
    return img.astype(np.float32), hits


def test_dilate_mask_is_a_3x3_square():
    m = np.zeros((2, 5, 5), bool)
    m[0, 2, 2] = True
    d = dilate_mask(m)
    assert d[0, 1:4, 1:4].all() and d[0].sum() == 9 and not d[1].any()


def test_lacosmic_recovers_injected_hits():
    rng = np.random.default_rng(0)
    img, hits = _scene(rng)
    raw_mask = lacosmic_mask(img, gain=2.0, read_noise=5.0, dilate=False)
    assert raw_mask[hits].mean() >= 0.9  # hits found
    assert raw_mask[~dilate_mask(hits)].sum() <= 2  # stars not flagged
    truth = dilate_mask(hits)
    counts, masks = lacosmic_counts(img[None], truth[None], gain=2.0, read_noise=5.0)
    assert np.array_equal(masks[0], dilate_mask(raw_mask))
    assert counts.tp + counts.fp + counts.tn + counts.fn == img.size
    assert counts.tpr > 0.8 and counts.fpr < 0.01


def test_lacosmic_on_shards_reads_the_comparison_format(tmp_path):
    rng = np.random.default_rng(1)
    imgs, truths = zip(*[_scene(rng) for _ in range(2)])
    raw = np.stack(imgs)
    truth = np.where(dilate_mask(np.stack(truths)), 1, 1 << 13).astype(np.uint16)
    np.savez(tmp_path / "shard_00000.npz", image=np.zeros_like(raw, np.float16), truth=truth, raw=raw,
             bkg=np.full_like(raw, 500.0), sigma=np.full(2, np.sqrt(500 / 2.0 + 6.25), np.float32),
             seed=np.arange(2), meta=json.dumps({}))
    counts = lacosmic_on_shards(tmp_path)  # gain estimated from sky / sigma^2
    assert counts.tp + counts.fn == int(np.sum(truth == 1))
    assert counts.tpr > 0.8 and counts.fpr < 0.01
