"""Input forms, output layout, headers/WCS, atomic writing, bad inputs and configuration files."""

import gzip
import hashlib
import os

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS

from maximask import io as mio
from maximask.api import process_file, track_file
from maximask.classes import CLASS_NAMES, DEFAULT_PRIORS, N_CLASSES
from maximask.config_files import ConfigFileError, read_config_dir, read_config_file, write_config_file
from maximask.inference import MaskPredictor, TrackPredictor
from maximask.nets import create_model
from maximask.posterior import PosteriorSettings

torch.set_num_threads(1)
CARD = {"training_priors": dict(DEFAULT_PRIORS), "thresholds": {}}
INFO = {"name": "test.json", "sha256": "0123456789abcdef" * 4, "arch": "maximask width=0.125"}


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return create_model("maximask", width=0.125).eval()


def _pred(net, **kw):
    return MaskPredictor(net, CARD, PosteriorSettings(**kw))


def _image(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(1000.0, 10.0, shape).astype(np.float32)


def _wcs_header(ny, nx):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [nx / 2, ny / 2]
    w.wcs.cd = [[-7.3e-5, 1e-6], [1e-6, 7.3e-5]]
    return w.to_header()


def _mef(path, *, compressed=False):
    """Empty primary, two CCD images with WCS, a table, a cube and a tiny image."""
    hdus = [fits.PrimaryHDU(header=fits.Header([("OBSERVER", "test"), ("EXPTIME", 30.0)]))]
    for k, name in enumerate(("CCD1", "CCD2")):
        h = _wcs_header(60, 70)
        h["EXTNAME"] = name
        h["GAIN"] = 1.5 + k
        data = np.round(_image((60, 70), seed=k)).astype(np.uint16)
        hdus.append(fits.CompImageHDU(data, header=h) if compressed else fits.ImageHDU(data, header=h))
    hdus.append(fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=np.arange(3.0))], name="CAT"))
    hdus.append(fits.ImageHDU(_image((2, 20, 30), seed=5), name="CUBE"))
    hdus.append(fits.ImageHDU(_image((3, 4), seed=6), name="TINY"))
    fits.HDUList(hdus).writeto(path)
    return path


def _md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def test_parse_input_forms(tmp_path):
    a = tmp_path / "a.fits"
    fits.PrimaryHDU(_image((8, 8))).writeto(a)
    b = tmp_path / "b.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(_image((8, 8)))]).writeto(b)
    (tmp_path / "a.mask.fits").write_bytes(a.read_bytes())  # our own output: skipped in directories
    (tmp_path / "a.mask2.fits").write_bytes(a.read_bytes())
    (tmp_path / "notes.txt").write_text("x")
    assert [s.path.name for s in mio.parse_im_path(tmp_path)] == ["a.fits", "b.fits.fz"]
    assert mio.parse_im_path(f"{a}[0]")[0].hdu == 0
    assert mio.parse_im_path(f"{b}[sci]")[0].hdu == "SCI"
    lst = tmp_path / "in.list"
    lst.write_text(f"# inputs\n{a}\n\nb.fits.fz[1]  # relative to the list\n")
    specs = mio.parse_im_path(lst)
    assert [(s.path, s.hdu) for s in specs] == [(a, None), (tmp_path / "b.fits.fz", 1)]
    for bad in (tmp_path / "nope.fits", f"{tmp_path / 'nope.fits'}[1]", tmp_path / "empty"):
        with pytest.raises(mio.InputError, match="no such file|no FITS file"):
            if str(bad).endswith("empty"):
                (tmp_path / "empty").mkdir()
            mio.parse_im_path(bad)


def test_output_names(tmp_path):
    S = mio.InputSpec
    assert mio.output_path(S(tmp_path / "x.fits")).name == "x.mask.fits"
    assert mio.output_path(S(tmp_path / "x.fits.fz")).name == "x.mask.fits"
    assert mio.output_path(S(tmp_path / "x.fits.gz")).name == "x.mask.fits"
    assert mio.output_path(S(tmp_path / "x.fits", 3)).name == "x.mask3.fits"
    assert mio.output_path(S(tmp_path / "x.fit", "SCI")).name == "x.maskSCI.fits"
    assert mio.output_path(S(tmp_path / "x.fits"), tmp_path / "out") == tmp_path / "out" / "x.mask.fits"


def test_mef_layout_headers_wcs_and_input_untouched(tmp_path, net):
    src = _mef(tmp_path / "mef.fits")
    before = _md5(src)
    out = process_file(mio.InputSpec(src), _pred(net), model_info=INFO)
    assert out == tmp_path / "mef.mask.fits"
    assert _md5(src) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    with fits.open(src) as hin, fits.open(out) as hout:
        assert len(hout) == len(hin)
        assert hout[0].data is None and hout[0].header["OBSERVER"] == "test"
        for k in (1, 2):
            h = hout[k].header
            assert hout[k].data.shape == (13, 60, 70) and hout[k].data.dtype == np.uint8
            assert h["EXTNAME"] == hin[k].header["EXTNAME"] and h["GAIN"] == hin[k].header["GAIN"]
            w_in, w_out = WCS(hin[k].header), WCS(h).celestial
            assert np.allclose(w_out.wcs_pix2world([[10, 20]], 0), w_in.wcs_pix2world([[10, 20]], 0))
            assert [h[f"CLASS{i}"] for i in range(1, 14)] == list(CLASS_NAMES[:-1])
            assert h["CR_DIM"] == 0 and h["CR_PR"] == DEFAULT_PRIORS["CR"] and h["CR_TH"] == 0.5
            assert h["MM_TYPE"] == "MASKS" and h["MM_MHASH"] == INFO["sha256"][:16] and h["PRIORS"] == "Yes"
            assert h["MM_VERS"] and h["MM_MODEL"] == "test.json" and h["MM_PREC"] == "fp32" and h["MM_VIEWS"] == 1
            assert "BZERO" not in h and "BUNIT" not in h
        assert hout[3].name == "CAT" and list(hout[3].data["x"]) == [0.0, 1.0, 2.0]
        assert hout[4].data.shape == (2, 13, 20, 30)  # a cube gets its class axis before the cube axis
        assert hout[5].data.shape == (13, 3, 4)  # small HDUs are processed too


def test_output_kinds_and_compression(tmp_path, net):
    src = tmp_path / "one.fits"
    hdr = _wcs_header(50, 40)
    fits.PrimaryHDU(_image((50, 40)), header=hdr).writeto(src)
    spec = mio.InputSpec(src)
    proba = process_file(spec, _pred(net, thresholds=None), )
    with fits.open(proba) as h:
        assert h[0].data.dtype == np.dtype('>f4') and h[0].data.shape == (13, 50, 40) and h[0].header["THRESH"] == "No"
        ref = h[0].data.copy()
    with pytest.raises(mio.InputError, match="exists"):
        process_file(spec, _pred(net, thresholds=None))
    flags = process_file(spec, _pred(net, single_mask=True), overwrite=True)
    with fits.open(flags) as h:
        assert h[0].data.dtype == np.dtype('>i4') and h[0].data.shape == (50, 40) and h[0].header["CR_SM"] == 1
        assert h[0].header["SMASK"] == "Yes"
        assert WCS(h[0].header).wcs.ctype[0] == "RA---TAN"  # the flag map is a plain 2-D image with the WCS
    os.mkdir(tmp_path / "c")
    comp = process_file(spec, _pred(net, thresholds=None), output_dir=tmp_path / "c", compress=True)
    with fits.open(comp) as h:
        assert isinstance(h[1], fits.CompImageHDU)
        assert np.array_equal(h[1].data, ref)  # lossless


def test_compressed_gzip_and_single_hdu_inputs(tmp_path, net):
    fz = _mef(tmp_path / "m.fits.fz", compressed=True)
    out = process_file(mio.InputSpec(fz, 2, f"{fz}[2]"), _pred(net, single_mask=True))
    assert out.name == "m.mask2.fits"
    with fits.open(out) as h:
        assert len(h) == 1 and h[0].data.shape == (60, 70) and h[0].header["EXTNAME"] == "CCD2"
    named = process_file(mio.InputSpec(fz, "CUBE"), _pred(net, single_mask=True))
    with fits.open(named) as h:
        assert h[0].data.shape == (2, 20, 30)
    gz = tmp_path / "g.fits.gz"
    buf = tmp_path / "g.fits"
    fits.PrimaryHDU(_image((30, 30))).writeto(buf)
    gz.write_bytes(gzip.compress(buf.read_bytes()))
    buf.unlink()
    assert process_file(mio.InputSpec(gz), _pred(net)).name == "g.mask.fits"


def _bad_inputs(tmp_path):
    cases = {}
    cases["missing"] = (tmp_path / "missing.fits", "no such file")
    p = tmp_path / "text.fits"
    p.write_text("this is not a FITS file\n" * 200)
    cases["not fits"] = (p, "not a FITS file|unreadable FITS")
    good = tmp_path / "good.fits"
    fits.PrimaryHDU(_image((100, 100))).writeto(good)
    p = tmp_path / "trunc.fits"
    p.write_bytes(good.read_bytes()[: 2880 + 5000])
    cases["truncated"] = (p, "truncated")
    p = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column(name="a", format="J", array=[1])])]).writeto(p)
    cases["no image"] = (p, "no image HDU")
    p = tmp_path / "empty.fits"
    fits.PrimaryHDU().writeto(p)
    cases["empty image"] = (p, "no image HDU|empty image")
    p = tmp_path / "zero.fits"
    fits.PrimaryHDU(np.zeros((0, 5), np.float32)).writeto(p)
    cases["zero-size axis"] = (p, "empty image|no image HDU")
    p = tmp_path / "empty0.fits"
    p.write_bytes(b"")
    cases["0-byte file"] = (p, "empty file")
    return cases


def test_bad_inputs_give_one_line_errors(tmp_path, net):
    for what, (path, pattern) in _bad_inputs(tmp_path).items():
        with pytest.raises(mio.InputError, match=pattern) as exc:
            process_file(mio.InputSpec(path), _pred(net))
        text = str(exc.value)
        assert "\n" not in text and path.name in text, what
    good = tmp_path / "good.fits"
    with pytest.raises(mio.InputError, match="does not exist"):
        process_file(mio.InputSpec(good, 4), _pred(net))
    with pytest.raises(mio.InputError, match="no HDU named"):
        process_file(mio.InputSpec(good, "SCI"), _pred(net))
    assert not [p for p in tmp_path.iterdir() if ".mask" in p.name]


def test_track_file_combines_hdus(tmp_path):
    torch.manual_seed(0)
    model = create_model("maxitrack", width=0.125, input_size=32, hidden=8).eval()
    pred = TrackPredictor(model, {"training_priors": {"TR": 0.5}}, None)
    src = _mef(tmp_path / "t.fits")
    p_all = track_file(mio.InputSpec(src), pred)
    with fits.open(src) as h:
        planes = [h[1].data, h[2].data, h[4].data[0], h[4].data[1], h[5].data]
        ps, ws = zip(*(pred.tile_probabilities(np.asarray(x, np.float32)) for x in planes))
    expect = np.sum(np.concatenate(ps) * np.concatenate(ws)) / np.sum(np.concatenate(ws))
    assert p_all == pytest.approx(expect)
    p_frac = track_file(mio.InputSpec(src), pred, frac=0.25, rng=np.random.default_rng(0))
    assert 0 <= p_frac <= 1
    with pytest.raises(ValueError):
        track_file(mio.InputSpec(src), pred, frac=0.5)  # no rng


def test_config_files_roundtrip_and_errors(tmp_path):
    write_config_file(tmp_path / "classes.flags", "flags", {n: n in ("CR", "SAT") for n in CLASS_NAMES})
    write_config_file(tmp_path / "classes.priors", "priors", DEFAULT_PRIORS)
    flags = read_config_file(tmp_path / "classes.flags", "flags")
    assert flags.dtype == bool and list(np.flatnonzero(flags)) == [0, 9]
    cfg = read_config_dir(tmp_path)
    assert cfg["thresh"] is None and np.allclose(cfg["priors"], [DEFAULT_PRIORS[n] for n in CLASS_NAMES])
    # published layout: aligned columns, any order accepted
    lines = [f"{n:<4}0.5" for n in reversed(CLASS_NAMES)]
    (tmp_path / "classes.thresh").write_text("\n".join(lines) + "\n")
    assert np.allclose(read_config_file(tmp_path / "classes.thresh", "thresh"), 0.5)
    bad = {
        "short": "\n".join(lines[:13]),
        "value": "\n".join(lines[:13] + ["CR 1.5"]),
        "class": "\n".join(lines[:13] + ["XX 0.5"]),
        "columns": "\n".join(lines[:13] + ["CR"]),
        "twice": "\n".join(lines + ["CR 0.5"]),
    }
    for what, text in bad.items():
        (tmp_path / "bad.thresh").write_text(text)
        with pytest.raises(ConfigFileError, match="bad.thresh") as exc:
            read_config_file(tmp_path / "bad.thresh", "thresh")
        assert "\n" not in str(exc.value), what
    with pytest.raises(ConfigFileError, match="not found"):
        read_config_dir(tmp_path / "nope")
    (tmp_path / "none").mkdir()
    with pytest.raises(ConfigFileError, match="none of"):
        read_config_dir(tmp_path / "none")
    write_config_file(tmp_path / "none" / "classes.flags", "flags", [0] * N_CLASSES)
    with pytest.raises(ConfigFileError, match="no class"):
        read_config_dir(tmp_path / "none")


def test_gzipped_input_is_read_by_rows_like_a_plain_file(tmp_path, net, monkeypatch, caplog):
    import logging

    import maximask.inference as inf

    monkeypatch.setattr(inf, "WINDOW_PIXELS", 1000)  # force the row-window path
    plain = tmp_path / "p.fits"
    fits.PrimaryHDU(_image((90, 70))).writeto(plain)
    gz = tmp_path / "z.fits.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    before = _md5(gz)
    with caplog.at_level(logging.INFO, logger="maximask"):
        out_gz = process_file(mio.InputSpec(gz), _pred(net))
    assert "read by rows" in caplog.text and "reading it whole" not in caplog.text
    out_plain = process_file(mio.InputSpec(plain), _pred(net))
    with fits.open(out_gz) as a, fits.open(out_plain) as b:
        np.testing.assert_array_equal(a[0].data, b[0].data)
    assert _md5(gz) == before
    # a truncated gzip stream: one-line error naming the file
    bad = tmp_path / "t.fits.gz"
    bad.write_bytes(gz.read_bytes()[: len(gz.read_bytes()) // 2])
    with pytest.raises(mio.InputError, match="truncated gzip") as exc:
        process_file(mio.InputSpec(bad), _pred(net))
    assert "\n" not in str(exc.value) and "t.fits.gz" in str(exc.value)
