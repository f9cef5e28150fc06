"""The Python API on numpy arrays, astropy HDUs and CCDData/NDData."""

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.nddata import CCDData, NDData

from maximask.api import (
    load_maximask,
    load_maxitrack,
    make_settings,
    predict_mask,
    predict_probabilities,
    predict_tracking,
)
from maximask.classes import CLASS_NAMES, DEFAULT_PRIORS
from maximask.modelfile import ModelFileError, save_model
from maximask.nets import create_model
from maximask.posterior import INVALID_BIT

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    thresholds = {n: 0.5 for n in CLASS_NAMES}
    save_model(d / "maximask", create_model("maximask", width=0.125),
               {"training_priors": dict(DEFAULT_PRIORS), "thresholds": thresholds})
    save_model(d / "maxitrack", create_model("maxitrack", width=0.125, input_size=64, hidden=8),
               {"training_priors": {"TR": 0.5}, "thresholds": {"TR": 0.5}})
    return d


@pytest.fixture(scope="module")
def mm(models):
    return load_maximask(models, device="cpu")


def _image(shape=(48, 56), seed=0):
    return np.random.default_rng(seed).normal(200.0, 4.0, shape).astype(np.float32)


def test_array_hdu_and_nddata_agree(mm):
    img = _image()
    p = predict_probabilities(img, mm)
    assert p.shape == (14, 48, 56) and p.dtype == np.float32
    assert np.array_equal(predict_probabilities(fits.ImageHDU(img), mm), p)
    assert np.array_equal(predict_probabilities(CCDData(img, unit="adu"), mm), p)
    assert np.array_equal(predict_probabilities(NDData(img), mm), p)
    # masked NDData pixels are invalid, not clean
    mask = np.zeros(img.shape, bool)
    mask[5:8, 9:12] = True
    pm = predict_probabilities(CCDData(img, unit="adu", mask=mask), mm)
    assert np.isnan(pm[:, mask]).all() and np.isfinite(pm[:, ~mask]).all()


def test_classes_priors_and_masks(mm, models):
    img = _image()
    sub = predict_probabilities(img, net_dir=models, classes=["sat", "CR"], device="cpu")
    full = predict_probabilities(img, mm)
    assert sub.shape == (2, 48, 56)
    assert np.allclose(sub, full[[0, 9]])  # class-table order whatever the order asked
    raw = predict_probabilities(img, mm, priors=None)
    assert np.allclose(raw, full, atol=1e-6)  # the card's training priors equal the defaults: no change
    low = predict_probabilities(img, mm, priors={"CR": 1e-6})
    assert np.all(low[0] <= raw[0]) and np.allclose(low[1:], raw[1:], atol=1e-6)

    masks = predict_mask(img, mm)
    assert masks.dtype == np.uint8 and masks.shape == (14, 48, 56)
    assert np.array_equal(masks, (full >= 0.5).astype(np.uint8))
    flags = predict_mask(img, mm, single_mask=True)
    assert flags.dtype == np.int32 and flags.shape == (48, 56)
    bits = np.array([1 << i for i in range(13)] + [0])
    assert np.array_equal(flags, np.tensordot(bits, masks.astype(np.int64), axes=1))
    img[0, 0] = np.nan
    assert predict_mask(img, mm, single_mask=True)[0, 0] & INVALID_BIT
    grown = predict_mask(img, mm, dilate={"CR": 1}, classes=["CR"])
    assert grown.shape == (1, 48, 56)
    with pytest.raises(ValueError):
        predict_mask(img, mm, thresholds=None)
    with pytest.raises(ValueError, match="unknown class"):
        predict_probabilities(img, mm, classes=["XYZ"])


def test_cube_and_settings(mm):
    cube = np.stack([_image(seed=s) for s in range(2)])
    assert predict_mask(cube, mm, single_mask=True).shape == (2, 48, 56)
    assert predict_probabilities(cube, mm, classes=["CR"]).shape == (2, 1, 48, 56)
    s = make_settings(mm.card, thresholds={"CR": 0.9})
    assert s.thresholds[0] == 0.9 and s.thresholds[1] == 0.5


def test_tracking(models):
    mt = load_maxitrack(models, device="cpu")
    img = _image((150, 140))
    p = predict_tracking(img, mt)
    assert 0.0 <= p <= 1.0
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(img), fits.ImageHDU(_image((100, 90), seed=3))])
    p2 = predict_tracking(hdul, mt)
    assert 0.0 <= p2 <= 1.0
    assert predict_tracking([img], mt) == pytest.approx(p)
    # a primary HDU with a (0, 0) array (as some cameras write) is skipped like an empty one
    empty = fits.PrimaryHDU(np.zeros((0, 0), np.int16))
    assert predict_tracking(fits.HDUList([empty, fits.ImageHDU(img)]), mt) == pytest.approx(p)
    assert predict_tracking(img, mt, prior=0.5) >= p  # default prior 0.05 < training prior 0.5


def test_precision_is_passed_through(mm, models):
    img = _image()
    p32 = predict_probabilities(img, mm)
    p16 = predict_probabilities(img, mm, precision="bf16")
    assert p16.dtype == np.float32 and np.abs(p16 - p32).max() < 0.05 and not np.array_equal(p16, p32)
    assert predict_mask(img, mm, single_mask=True, precision="bf16").shape == (48, 56)
    mt = load_maxitrack(models, device="cpu")
    assert predict_tracking(img, mt, precision="bf16") == pytest.approx(predict_tracking(img, mt), abs=0.05)
    with pytest.raises(ValueError, match="precision"):
        predict_probabilities(img, mm, precision="half")


def test_missing_model_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError):
        load_maximask(tmp_path)
