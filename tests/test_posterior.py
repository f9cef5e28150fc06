"""Prior update (Eq. 26), thresholds, class selection, bit-coded flag maps and mask growing."""

import numpy as np
import pytest

from maximask.classes import BIT_CODES, CLASS_NAMES, DEFAULT_PRIORS, N_CLASSES
from maximask.posterior import (
    INVALID_BIT,
    INVALID_MASK_VALUE,
    PosteriorSettings,
    combine_bits,
    dilate_masks,
    disk,
    parse_dilate,
    prior_logit_shift,
    threshold_probabilities,
    update_priors,
)


def test_eq26_hand_computed():
    # p = 0.5, P(T) = 0.1, P(O) = 0.01: F = (0.1/0.01) * (0.99/0.9) = 11, p_O = 1 / (1 + 11) = 1/12
    assert update_priors(0.5, 0.1, 0.01) == pytest.approx(1 / 12, rel=1e-12)
    # p = 0.9, P(T) = 0.5, P(O) = 0.2: F = (0.5/0.2) * (0.8/0.5) = 4, p_O = 0.9 / (0.9 + 0.1 * 4) = 9/13
    assert update_priors(0.9, 0.5, 0.2) == pytest.approx(9 / 13, rel=1e-12)
    # lowering then raising the prior comes back
    assert update_priors(update_priors(0.3, 0.2, 0.05), 0.05, 0.2) == pytest.approx(0.3)


def test_eq26_identity_monotonic_and_ends():
    p = np.linspace(0, 1, 101)
    assert np.allclose(update_priors(p, 0.37, 0.37), p)
    for pt, po in ((0.1, 0.001), (0.001, 0.3), (0.5, 0.5)):
        out = update_priors(p, pt, po)
        assert np.all(np.diff(out) >= 0)
        assert out[0] == 0 and out[-1] == 1
    # a lower observation prior lowers every probability strictly inside (0, 1)
    assert np.all(update_priors(p[1:-1], 0.1, 0.01) < p[1:-1])


def test_logit_shift_matches_eq26():
    rng = np.random.default_rng(0)
    p = rng.uniform(1e-4, 1 - 1e-4, 1000)
    pt, po = 0.08, 0.0005
    z = np.log(p) - np.log1p(-p) - prior_logit_shift(pt, po)
    assert np.allclose(1 / (1 + np.exp(-z)), update_priors(p, pt, po), rtol=1e-10, atol=1e-15)
    assert prior_logit_shift(0.2, 0.2) == pytest.approx(0.0, abs=1e-15)


def test_calibration_reexports_the_same_function():
    from maximask.train import calibration

    assert calibration.update_priors is update_priors


def test_threshold_is_greater_or_equal_and_nan_is_invalid():
    probs = np.array([[[0.2, 0.5, 0.7, np.nan]], [[0.1, 0.1, 0.9, np.nan]]], dtype=np.float32)
    m = threshold_probabilities(probs, np.array([0.5, 0.95]))
    assert m.dtype == np.uint8
    assert m[0, 0].tolist() == [0, 1, 1, INVALID_MASK_VALUE]
    assert m[1, 0].tolist() == [0, 0, 0, INVALID_MASK_VALUE]


def test_bit_codes_and_composite_mask():
    assert [BIT_CODES[n] for n in CLASS_NAMES] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 0]
    masks = np.zeros((N_CLASSES, 2, 3), np.uint8)
    masks[0, 0, 0] = 1  # CR
    masks[9, 0, 0] = 1  # SAT
    masks[13, 0, 1] = 1  # BG has code 0
    masks[12, 1, 2] = 1  # BBG
    masks[:, 1, 0] = INVALID_MASK_VALUE
    flags = combine_bits(masks, range(N_CLASSES))
    assert flags.dtype == np.int32
    assert flags[0, 0] == 1 + 512
    assert flags[0, 1] == 0
    assert flags[1, 2] == 4096
    assert flags[1, 0] == INVALID_BIT
    # a subset of classes keeps each class's own bit
    sub = combine_bits(masks[[9, 12]], [9, 12])
    assert sub[0, 0] == 512 and sub[1, 2] == 4096


def test_settings_selection_and_validation():
    s = PosteriorSettings()
    assert s.selected_names == list(CLASS_NAMES[:-1])  # published default: all but BG
    assert s.output_kind == "masks" and s.dtype == np.uint8 and s.n_planes == 13
    s = PosteriorSettings(flags=[n in ("CR", "SAT") for n in CLASS_NAMES], thresholds=None)
    assert s.output_kind == "proba" and s.n_planes == 2 and s.dtype == np.float32
    s = PosteriorSettings(single_mask=True)
    assert s.output_kind == "flags" and s.n_planes == 1 and s.dtype == np.int32
    # training priors equal to observation priors: no shift
    assert np.allclose(PosteriorSettings().logit_shift(DEFAULT_PRIORS), 0)
    shift = PosteriorSettings().logit_shift({n: 0.5 for n in CLASS_NAMES})
    assert np.all(shift > 0)  # rarer in the data than in training: lower probabilities
    with pytest.raises(ValueError, match="no output class"):
        PosteriorSettings(flags=[False] * N_CLASSES)
    with pytest.raises(ValueError, match="needs thresholds"):
        PosteriorSettings(thresholds=None, single_mask=True)
    with pytest.raises(ValueError, match="priors"):
        PosteriorSettings(priors=[0.0] * N_CLASSES)
    with pytest.raises(ValueError, match="unknown class"):
        PosteriorSettings(dilate={"XX": 1})


def test_disk_and_dilation():
    assert disk(0).sum() == 1
    assert disk(1).sum() == 9
    assert disk(2).sum() == 21
    masks = np.zeros((2, 9, 9), np.uint8)
    masks[:, 4, 4] = 1
    masks[:, 0, 8] = INVALID_MASK_VALUE
    dilate_masks(masks, [2, 0])
    assert masks[0].astype(bool).sum() - 1 == 21  # 21 flagged + the invalid pixel
    assert (masks[0] == 1).sum() == 21
    assert (masks[1] == 1).sum() == 1
    assert masks[0, 0, 8] == INVALID_MASK_VALUE


def test_parse_dilate():
    assert parse_dilate("CR=2,sat=3") == {"CR": 2, "SAT": 3}
    all2 = parse_dilate("2")
    assert all2["CR"] == 2 and "BG" not in all2 and len(all2) == 13
    assert parse_dilate(None) == {}
    for bad in ("CR", "XX=1", "CR=a", "CR=-1"):
        with pytest.raises(ValueError):
            parse_dilate(bad)
