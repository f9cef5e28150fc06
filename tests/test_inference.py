"""Tiling, stitching, the lean forward pass, NaN handling and the MaxiTrack tiles."""

import numpy as np
import pytest
import torch

from maximask.classes import CLASS_NAMES, DEFAULT_PRIORS, N_CLASSES
from maximask.inference import (
    ALIGN,
    DEFAULT_MARGIN,
    MaskPredictor,
    TrackPredictor,
    dihedral_view,
    dihedral_view_inverse,
    forward_views,
    plan_axis,
    plan_tiles,
    predict_logits,
    track_tiles,
)
from maximask.nets import create_model
from maximask.posterior import INVALID_BIT, INVALID_MASK_VALUE, PosteriorSettings

torch.set_num_threads(1)


def _he_init(model, seed=0):
    """Signal-preserving random weights (He init, zero biases): edge effects as strong as a trained net's or more."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.Conv2d):
            fan_in = mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
            with torch.no_grad():
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                mod.bias.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def net():
    return _he_init(create_model("maximask", width=0.125))


def _image(shape, seed=1):
    rng = np.random.default_rng(seed)
    img = rng.normal(100.0, 5.0, shape).astype(np.float32)
    img[rng.random(shape) < 0.005] += 500.0
    return img


@pytest.mark.parametrize("n", [1, 7, 31, 32, 300, 1024, 1056, 1057, 1100, 2048, 4096, 5000, 30000])
@pytest.mark.parametrize("tile,margin", [(1024, 128), (384, 128), (256, 64)])
def test_plan_axis_partitions_and_aligns(n, tile, margin):
    windows = plan_axis(n, tile, margin)
    assert windows[0][0] == 0 and windows[0][2] == 0
    assert windows[-1][1] == n and windows[-1][3] == n
    for k, (s, e, ks, ke) in enumerate(windows):
        assert s % ALIGN == 0
        assert s <= ks < ke <= e
        assert e - s <= tile + ALIGN  # bounded tile size, so bounded memory
        if k > 0:
            assert ks == windows[k - 1][3]  # kept parts partition the axis
            assert ks - s >= margin  # shared sides are cropped by at least the margin
        if k < len(windows) - 1:
            assert e - ke >= margin


def test_plan_tiles_counts():
    tiles = plan_tiles((2048, 4096))
    covered = np.zeros((2048, 4096), np.int32)
    for t in tiles:
        covered[t.ky0 : t.ky1, t.kx0 : t.kx1] += 1
    assert np.all(covered == 1)
    with pytest.raises(ValueError):
        plan_tiles((100, 100), tile=100, margin=8)  # not a multiple of 32


def test_lean_forward_matches_model(net):
    x = torch.from_numpy(np.arcsinh(_image((1, 1, 75, 61)) - 100.0))
    with torch.inference_mode():
        ref, _ = net(x, return_pre=True)  # the plain path (concatenated head)
        lean = net.forward_inference(x.clone())
    assert lean.shape == ref.shape == (1, N_CLASSES, 75, 61)
    assert torch.allclose(lean, ref, atol=1e-5, rtol=1e-5)


def test_tiled_matches_whole_image(net):
    """Seamless stitching: measured max |dp| = 0.0027 with these weights, tile 384 and the default margin 128
    (0.0055 for width 0.25 on 2048x2085 with tile 1024; 0.05 with margin 96): the tolerance is 0.01."""
    img = np.arcsinh(_image((600, 637)) - 100.0).astype(np.float32)
    with torch.inference_mode():
        whole = torch.sigmoid(net(torch.from_numpy(img)[None, None]))[0].numpy()
    tiled = np.full_like(whole, np.nan)
    tiles = 0
    for t, logits in predict_logits(net, img, tile=384, margin=DEFAULT_MARGIN, batch_size=2):
        tiled[:, t.ky0 : t.ky1, t.kx0 : t.kx1] = torch.sigmoid(logits).numpy()
        tiles += 1
    assert tiles == 9
    assert not np.isnan(tiled).any()
    diff = np.abs(tiled - whole)
    assert diff.max() < 0.01
    assert diff.mean() < 1e-4
    # a tile as large as the image is the whole-image prediction
    (t, logits), = list(predict_logits(net, img, tile=640, margin=DEFAULT_MARGIN))
    assert np.allclose(torch.sigmoid(logits).numpy(), whole, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (5, 3), (33, 70)])
def test_any_size(net, shape):
    card = {"training_priors": dict(DEFAULT_PRIORS)}
    pred = MaskPredictor(net, card, PosteriorSettings(thresholds=None))
    out = pred.predict(_image(shape))
    assert out.shape == (13,) + shape and out.dtype == np.float32
    assert np.all((out >= 0) & (out <= 1))


def test_outputs_nan_and_priors(net):
    img = _image((90, 110))
    img[10:14, 20:30] = np.nan
    img[50, 50] = np.inf
    bad = ~np.isfinite(img)
    card = {"training_priors": {n: 0.3 for n in CLASS_NAMES}}
    proba = MaskPredictor(net, card, PosteriorSettings(thresholds=None)).predict(img)
    assert np.isnan(proba[:, bad]).all() and np.isfinite(proba[:, ~bad]).all()
    raw = MaskPredictor(net, card, PosteriorSettings(priors=None, thresholds=None)).predict(img)
    # lowering priors from 0.3 to the published defaults lowers every probability (Eq. 26)
    assert np.all(proba[:, ~bad] <= raw[:, ~bad] + 1e-7)
    same = MaskPredictor(net, card, PosteriorSettings(priors=[0.3] * N_CLASSES, thresholds=None)).predict(img)
    assert np.allclose(same[:, ~bad], raw[:, ~bad], atol=1e-6)

    th = np.full(N_CLASSES, 0.5)
    masks = MaskPredictor(net, card, PosteriorSettings(priors=None, thresholds=th)).predict(img)
    assert masks.dtype == np.uint8 and masks.shape == (13, 90, 110)
    assert np.all(masks[:, bad] == INVALID_MASK_VALUE)
    assert np.array_equal(masks[:, ~bad], (raw[:, ~bad] >= 0.5).astype(np.uint8))

    flags = MaskPredictor(net, card, PosteriorSettings(priors=None, thresholds=th, single_mask=True)).predict(img)
    assert flags.dtype == np.int32 and flags.shape == (1, 90, 110)
    assert np.all(flags[0, bad] & INVALID_BIT)
    bits = np.array([1 << i for i in range(13)])
    expect = np.tensordot(bits, (raw >= 0.5).astype(np.int64), axes=1)
    assert np.array_equal(flags[0, ~bad], expect[~bad])

    grown = MaskPredictor(net, card, PosteriorSettings(priors=None, thresholds=th, dilate={"CR": 2})).predict(img)
    assert np.all(grown[0] >= masks[0]) and np.array_equal(grown[1:], masks[1:])


def test_cube_plane_by_plane(net):
    cube = np.stack([_image((40, 50), seed=s) for s in range(3)])
    pred = MaskPredictor(net, {}, PosteriorSettings(single_mask=True))
    out = pred.predict(cube)
    assert out.shape == (3, 40, 50) and out.dtype == np.int32
    assert np.array_equal(out[1], pred.predict(cube[1])[0])
    pred = MaskPredictor(net, {}, PosteriorSettings())
    assert pred.predict(cube).shape == (3, 13, 40, 50)


def test_maxitrack_tiles_and_prior():
    assert track_tiles((1000, 900), 400) == [(200, 100), (200, 500), (600, 100), (600, 500)]
    assert track_tiles((100, 900), 400) == [(0, 100), (0, 500)]
    torch.manual_seed(0)
    model = create_model("maxitrack", width=0.125, input_size=64, hidden=8).eval()
    img = _image((150, 130))
    raw = TrackPredictor(model, {"training_priors": {"TR": 0.5}}, None).predict(img)
    same = TrackPredictor(model, {"training_priors": {"TR": 0.5}}, 0.5).predict(img)
    low = TrackPredictor(model, {"training_priors": {"TR": 0.5}}, 0.05).predict(img)
    assert 0 <= low < raw <= 1
    assert same == pytest.approx(raw, abs=1e-12)
    probs, weights = TrackPredictor(model, {}, None).tile_probabilities(img)
    assert probs.shape == weights.shape == (4,)
    assert np.allclose(weights, 1.0)
    # an image smaller than a tile is padded, its weight is its valid fraction
    p, w = TrackPredictor(model, {}, None).tile_probabilities(_image((32, 16)))
    assert w[0] == pytest.approx(32 * 16 / 64**2)


def test_row_windows_for_large_images(net, monkeypatch):
    """Images above WINDOW_PIXELS are read and preprocessed by row windows; results match the in-memory path."""
    import maximask.inference as inf

    img = _image((700, 90), seed=3)
    img[5, 7] = np.nan  # in the first window
    img[690, 80] = np.inf  # in the last
    settings = PosteriorSettings(priors=None, thresholds=None)
    pred = MaskPredictor(net, {}, settings, tile=256, margin=64)
    ref = pred.predict(img)
    monkeypatch.setattr(inf, "WINDOW_PIXELS", 1000)

    class Rows:  # reads rows on demand, like an astropy section
        shape = img.shape

        def __getitem__(self, sl):
            return img[sl]

    stats = {}
    win = pred.predict(Rows(), stats=stats)
    assert stats["n_invalid"] == 2
    assert np.isnan(win[:, 5, 7]).all() and np.isnan(win[:, 690, 80]).all()
    ok = np.isfinite(img)
    # Only the per-window background (and the median noise) differ: the compressed inputs by ~1e-3,
    # which this random network, made hypersensitive by its max-unpooling argmax flips, turns into
    # a mean |dp| of 0.004 (median 3e-5): bound the mean and the median.
    d = np.abs(win[:, ok] - ref[:, ok])
    assert d.mean() < 0.01 and np.median(d) < 1e-3
    flags = MaskPredictor(net, {}, PosteriorSettings(single_mask=True, dilate={"CR": 1}), tile=256, margin=64).predict(Rows())
    assert flags.shape == (1, 700, 90) and flags[0, 5, 7] & INVALID_BIT and flags[0, 690, 80] & INVALID_BIT


def test_bf16_probabilities_close_to_fp32(net):
    """bfloat16 autocast of the forward pass gives float32 probabilities close to the float32 ones.

    With the default initialisation, measured max |dp| = 0.009 (bound 0.05). The He-initialised ``net``
    is hypersensitive (bfloat16 rounding flips max-pooling argmaxes, and its unpooling moves values):
    measured max |dp| = 0.61 but median 0.002, so only its median and mean are bounded.
    """
    torch.manual_seed(0)
    default_init = create_model("maximask", width=0.125).eval()
    img = _image((96, 80), seed=4)
    card = {"training_priors": dict(DEFAULT_PRIORS)}
    settings = PosteriorSettings(thresholds=None)
    ref = MaskPredictor(default_init, card, settings).predict(img)
    bf16 = MaskPredictor(default_init, card, settings, precision="bf16").predict(img)
    assert bf16.shape == ref.shape == (13, 96, 80) and bf16.dtype == np.float32
    assert np.isfinite(bf16).all()
    diff = np.abs(bf16 - ref)
    assert diff.max() < 0.05
    assert diff.max() > 0  # the network really ran in bfloat16
    ref = MaskPredictor(net, card, settings).predict(img)
    diff = np.abs(MaskPredictor(net, card, settings, precision="bf16").predict(img) - ref)
    assert np.median(diff) < 0.01 and diff.mean() < 0.05
    # tiled logits are float32 under bf16 too, and the autocast state does not leak out of the generator
    (t, logits), = list(predict_logits(net, np.arcsinh(img - 100.0).astype(np.float32), precision="bf16"))
    assert logits.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")


def test_invalid_precision_is_a_value_error(net):
    model = create_model("maxitrack", width=0.125, input_size=64, hidden=8).eval()
    for make in (lambda: MaskPredictor(net, {}, PosteriorSettings(), precision="fp16"),
                 lambda: TrackPredictor(model, {}, None, precision="float32"),
                 lambda: list(predict_logits(net, np.zeros((32, 32), np.float32), precision="bfloat16"))):
        with pytest.raises(ValueError, match="precision must be one of fp32, bf16") as exc:
            make()
        assert "\n" not in str(exc.value)


def test_maxitrack_bf16_close_to_fp32():
    torch.manual_seed(0)
    model = create_model("maxitrack", width=0.125, input_size=64, hidden=8).eval()
    img = _image((150, 130))
    card = {"training_priors": {"TR": 0.5}}
    ref = TrackPredictor(model, card, 0.05).predict(img)
    bf16 = TrackPredictor(model, card, 0.05, precision="bf16").predict(img)
    assert np.isfinite(bf16) and 0.0 <= bf16 <= 1.0
    assert bf16 == pytest.approx(ref, abs=0.05)


def test_dihedral_views_are_the_eight_orientations():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    views = [dihedral_view(x, k) for k in range(8)]
    flat = {tuple(v.flatten().tolist()) for v in views}
    assert len(flat) == 8  # all distinct
    assert torch.equal(views[1], x.transpose(-2, -1).flip(-2))  # one quarter turn (counter-clockwise)
    assert torch.equal(views[4], x.flip(-1))
    # the set is closed under rotation: rotating the input permutes the views
    rotated = {tuple(dihedral_view(torch.rot90(x, 1, dims=(-2, -1)), k).flatten().tolist()) for k in range(8)}
    assert rotated == flat


def test_maxitrack_views_average_the_log_odds():
    torch.manual_seed(1)
    model = create_model("maxitrack", width=0.125, input_size=64, hidden=8).eval()
    img = _image((64, 64), seed=5)
    card = {"training_priors": {"TR": 0.3}}
    pred8 = TrackPredictor(model, card, 0.05, views=8)
    p8, _ = pred8.compressed_tile_probabilities(img)
    with torch.no_grad():
        x = torch.from_numpy(img[None, None].astype(np.float32))
        z = [model(dihedral_view(x, k).contiguous()) for k in range(8)]
        z = np.mean([float(v[0, 1] - v[0, 0]) for v in z])
    shift = np.log(0.05 / 0.95) - np.log(0.3 / 0.7)
    assert p8[0] == pytest.approx(1 / (1 + np.exp(-(z + shift))), rel=1e-5)
    # a rotated or mirrored image gets the same probability with 8 views, not with 1
    for k in (1, 2, 6):
        img_k = dihedral_view(torch.from_numpy(img)[None, None], k)[0, 0].numpy().copy()
        assert pred8.compressed_tile_probabilities(img_k)[0][0] == pytest.approx(p8[0], rel=1e-5)
    p1 = [TrackPredictor(model, card, 0.05, views=1).compressed_tile_probabilities(
        dihedral_view(torch.from_numpy(img)[None, None], k)[0, 0].numpy().copy())[0][0] for k in range(8)]
    assert np.ptp(p1) > 1e-4
    p2, _ = TrackPredictor(model, card, 0.05, views=2).compressed_tile_probabilities(img)
    with torch.no_grad():
        z2 = np.mean([float((lambda v: v[0, 1] - v[0, 0])(model(dihedral_view(x, k).contiguous()))) for k in (0, 1)])
    assert p2[0] == pytest.approx(1 / (1 + np.exp(-(z2 + shift))), rel=1e-5)
    # the card's test_time_views is the default; other counts are refused
    assert TrackPredictor(model, {"test_time_views": 8}, None).views == 8
    assert TrackPredictor(model, {}, None).views == 1
    with pytest.raises(ValueError, match="views"):
        TrackPredictor(model, {}, None, views=3)


def test_dihedral_view_inverse_and_forward_views_commute_with_turns(net):
    x = torch.randn(2, 1, 64, 96, generator=torch.Generator().manual_seed(3))
    for k in range(8):
        assert torch.equal(dihedral_view_inverse(dihedral_view(x, k), k), x)
    ident = lambda t: torch.cat([t, 2 * t], dim=1)  # noqa: E731 (a per-pixel map aligned with its input)
    assert torch.allclose(forward_views(ident, x, 8), ident(x))
    # with all 8 views, turning the input turns the output: the averaged prediction is invariant
    with torch.no_grad():
        sq = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(4))
        ref = forward_views(net.forward_inference, sq, 8)
        for k in (1, 5):
            turned = forward_views(net.forward_inference, dihedral_view(sq, k).contiguous(), 8)
            assert torch.allclose(dihedral_view_inverse(turned, k), ref, atol=1e-4)
        plain = net.forward_inference(sq)
        assert not torch.allclose(dihedral_view_inverse(net.forward_inference(dihedral_view(sq, 1).contiguous()), 1),
                                  plain, atol=1e-4)
        two = forward_views(net.forward_inference, sq, 2)
        expected = (plain + dihedral_view_inverse(net.forward_inference(dihedral_view(sq, 1).contiguous()), 1)) / 2
        assert torch.allclose(two, expected, atol=1e-5)


def test_mask_predictor_views_on_tiles(net):
    img = _image((200, 160), seed=7)
    settings = PosteriorSettings(priors=None, thresholds=None)
    one = MaskPredictor(net, {}, settings, tile=128, margin=32).predict(img)
    four = MaskPredictor(net, {}, settings, tile=128, margin=32, views=4).predict(img)
    assert four.shape == one.shape and np.isfinite(four).all()
    assert not np.allclose(four, one, atol=1e-4)
    # the card's test_time_views is the default
    eight = MaskPredictor(net, {"test_time_views": 8}, settings, tile=128, margin=32)
    assert eight.views == 8
    with pytest.raises(ValueError, match="views"):
        MaskPredictor(net, {}, settings, views=5)


def test_margin_defaults_to_the_model_cards_tile_margin():
    """MaskPredictor's margin: explicit > the card's tile_margin > DEFAULT_MARGIN; the shipped card records one."""
    from maximask.inference import resolve_margin
    from maximask.modelfile import default_model_path, read_card

    net = create_model("maximask", width=0.125).eval()
    settings = PosteriorSettings(thresholds=None)
    assert MaskPredictor(net, {}, settings, tile=320).margin == DEFAULT_MARGIN == resolve_margin({}, None)
    assert MaskPredictor(net, {"tile_margin": 64}, settings, tile=320).margin == 64
    assert MaskPredictor(net, {"tile_margin": 64}, settings, tile=320, margin=32).margin == 32
    with pytest.raises(ValueError, match="margin"):
        MaskPredictor(net, {"tile_margin": 150}, settings, tile=320)  # 320 cannot hold two margins of 150 + 32
    card = read_card(default_model_path("maximask"))
    assert 64 <= card["tile_margin"] <= DEFAULT_MARGIN  # measured in benchmarks/tile_seams.json


def test_bf16_on_a_cpu_without_native_bfloat16_warns(tmp_path, monkeypatch, caplog):
    """cpu_has_native_bf16 reads the CPU flags; asking for bf16 where it is emulated logs one warning."""
    import logging

    import maximask.inference as inference

    (tmp_path / "bf16").write_text("processor : 0\nflags : fpu avx2 avx512f avx512_bf16\n")
    (tmp_path / "avx2").write_text("processor : 0\nflags : fpu sse avx2 fma\n")
    assert inference.cpu_has_native_bf16(tmp_path / "bf16") is True
    assert inference.cpu_has_native_bf16(tmp_path / "avx2") is False
    assert inference.cpu_has_native_bf16(tmp_path / "missing") is None
    net = create_model("maximask", width=0.125).eval()
    for native, expected in ((False, 1), (True, 0), (None, 0)):
        monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda native=native: native)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="maximask.inference"):
            MaskPredictor(net, {}, PosteriorSettings(), tile=128, margin=32, precision="bf16")
            MaskPredictor(net, {}, PosteriorSettings(), tile=128, margin=32, precision="fp32")
        assert sum("emulated" in r.getMessage() for r in caplog.records) == expected
