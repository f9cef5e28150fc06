"""The ``maximask`` and ``maxitrack`` command lines, through subprocesses (and in-process for the error table)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits

from maximask.classes import CLASS_NAMES, DEFAULT_PRIORS
from maximask.api import load_maximask
from maximask.cli import maximask_cli, maxitrack_cli
from maximask.config_files import write_config_file
from maximask.modelfile import save_model
from maximask.nets import create_model

torch.set_num_threads(1)
REALDATA = Path("/work/shared/realdata/smoke")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(d / "maximask", create_model("maximask", width=0.125),
               {"training_priors": dict(DEFAULT_PRIORS), "thresholds": {n: 0.5 for n in CLASS_NAMES}})
    save_model(d / "maxitrack", create_model("maxitrack", width=0.125, input_size=64, hidden=8),
               {"training_priors": {"TR": 0.5}, "thresholds": {"TR": 0.5}})
    return d


def _fits(path, shape=(40, 50), seed=0, **hdr):
    data = np.random.default_rng(seed).normal(300.0, 5.0, shape).astype(np.float32)
    h = fits.Header()
    for k, v in hdr.items():
        h[k] = v
    fits.PrimaryHDU(data, header=h).writeto(path)
    return path


def _run(tool, *args, cwd=None):
    module = f"maximask.cli.{tool}_cli"
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=300)


def test_single_file_then_overwrite_refused(tmp_path, models):
    src = _fits(tmp_path / "img.fits", OBJECT="M31")
    r = _run("maximask", src, "--net_dir", models / "maximask.json", "--single_mask", "1", "--threads", "1")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "img.mask.fits"
    with fits.open(out) as h:
        assert h[0].data.shape == (40, 50) and h[0].data.dtype.kind == "i" and h[0].header["OBJECT"] == "M31"


def test_overwrite_refused_then_allowed(tmp_path, models, capsys):
    src = _fits(tmp_path / "img.fits", shape=(20, 20))
    out = tmp_path / "img.mask.fits"
    out.write_text("previous")
    assert maximask_cli.main([str(src), "--net_dir", str(models), "-q"]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err and out.read_text() == "previous"
    assert maximask_cli.main([str(src), "--net_dir", str(models), "-q", "--overwrite", "--compress"]) == 0
    with fits.open(out) as h:
        assert h[1].data.shape == (13, 20, 20)


def _default_installed():
    from maximask.modelfile import ModelFileError, default_model_path

    try:
        default_model_path("maximask")
    except ModelFileError:
        return False
    return True


@pytest.mark.skipif(_default_installed(), reason="a default model is installed")
def test_missing_default_model_says_net_dir(tmp_path):
    src = _fits(tmp_path / "img.fits")
    r = _run("maximask", src)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--net_dir" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "img.mask.fits").exists()


def test_missing_default_model_in_process(tmp_path, monkeypatch, capsys):
    import maximask.api
    from maximask.modelfile import ModelFileError

    def absent(kind="maximask"):
        raise ModelFileError(f"no default {kind} model is installed with maximask; give one with --net_dir")

    monkeypatch.setattr(maximask.api, "default_model_path", absent)
    src = _fits(tmp_path / "img.fits", shape=(10, 10))
    assert maximask_cli.main([str(src), "-q"]) == 2
    assert maxitrack_cli.main([str(src), "-q", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("--net_dir" in line for line in err)


def test_directory_with_a_bad_file_and_maxitrack(tmp_path, models):
    d = tmp_path / "night"
    d.mkdir()
    _fits(d / "a.fits", seed=1)
    _fits(d / "b.fits", shape=(70, 30), seed=2)
    (d / "c.fits").write_text("not FITS at all\n" * 300)
    out = tmp_path / "out"
    r = _run("maximask", d, "--net_dir", models, "-o", out, "--proba_thresh", "0", "--quiet")
    assert r.returncode == 2
    assert "c.fits" in r.stderr and "1 of 3" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.mask.fits", "b.mask.fits"]
    with fits.open(out / "b.mask.fits") as h:
        assert h[0].data.shape == (13, 70, 30) and h[0].data.dtype.kind == "f"
    assert not list(d.glob("*.mask.fits"))  # nothing written beside the inputs
    r = _run("maxitrack", d, "--net_dir", models, "--prior", "0.1", "--precision", "bf16", cwd=tmp_path)
    assert r.returncode == 2 and "c.fits" in r.stderr
    lines = (tmp_path / "maxitrack.out").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == [str(d / "a.fits"), str(d / "b.fits")]
    assert all(0.0 <= float(ln.split()[1]) <= 1.0 for ln in lines)
    assert r.stdout.splitlines() == lines


def test_error_table_in_process(tmp_path, models, capsys):
    good = _fits(tmp_path / "good.fits")
    trunc = tmp_path / "trunc.fits"
    trunc.write_bytes(good.read_bytes()[:3000])
    notfits = tmp_path / "x.fits"
    notfits.write_text("hello\n" * 1000)
    table = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column(name="a", format="J", array=[1])])]).writeto(table)
    empty = tmp_path / "empty.fits"
    fits.PrimaryHDU().writeto(empty)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "classes.priors").write_text("CR 0.5\n")
    cases = [
        ([tmp_path / "missing.fits"], "missing.fits"),
        ([notfits], "not a FITS file"),
        ([trunc], "truncated"),
        ([table], "no image HDU"),
        ([empty], "no image HDU"),
        ([f"{good}[3]"], "does not exist"),
        ([good, "--config_dir", cfg], "classes.priors"),
        ([good, "--net_dir", tmp_path], "model card"),
        ([good, "--dilate", "CR=x"], "dilate"),
    ]
    for argv, pattern in cases:
        args = [str(a) for a in argv]
        if "--net_dir" not in args:
            args += ["--net_dir", str(models)]
        rc = maximask_cli.main(args + ["-q"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, (argv, err)
        assert len(err) == 1 and pattern in err[0] and "Traceback" not in err[0], (argv, err)
    with pytest.raises(SystemExit) as exc:  # usage error from argparse
        maximask_cli.main([str(good), "--net_dir", str(models), "--single_mask", "1", "--proba_thresh", "0"])
    assert exc.value.code == 2
    capsys.readouterr()
    assert maxitrack_cli.main([str(notfits), "--net_dir", str(models), "-o", str(tmp_path)]) == 2
    assert "not a FITS file" in capsys.readouterr().err


def test_config_dir_and_dilate_in_process(tmp_path, models, capsys):
    src = _fits(tmp_path / "img.fits", shape=(30, 30))
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    write_config_file(cfg / "classes.flags", "flags", {n: n in ("CR", "HP", "BG") for n in CLASS_NAMES})
    write_config_file(cfg / "classes.thresh", "thresh", {n: 0.3 for n in CLASS_NAMES})
    rc = maximask_cli.main([str(src), "--net_dir", str(models), "--config_dir", str(cfg), "--dilate", "CR=1", "-q"])
    assert rc == 0, capsys.readouterr().err
    with fits.open(tmp_path / "img.mask.fits") as h:
        hdr = h[0].header
        assert h[0].data.shape == (3, 30, 30) and h[0].data.dtype == np.uint8
        assert [hdr["CLASS1"], hdr["CLASS2"], hdr["CLASS3"]] == ["CR", "HP", "BG"]
        assert hdr["CR_TH"] == 0.3 and hdr["CR_DIL"] == 1 and hdr["CR_PR"] == DEFAULT_PRIORS["CR"]


def test_precision_option():
    for cli in (maximask_cli, maxitrack_cli):
        parser = cli.build_parser()
        assert parser.parse_args(["img.fits"]).precision == "fp32"
        assert parser.parse_args(["img.fits", "--precision", "bf16"]).precision == "bf16"
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["img.fits", "--precision", "fp16"])
        assert exc.value.code == 2


def test_single_file_bf16_in_process(tmp_path, models, capsys):
    src = _fits(tmp_path / "img.fits", shape=(20, 20))
    rc = maximask_cli.main([str(src), "--net_dir", str(models), "--precision", "bf16", "-q"])
    assert rc == 0, capsys.readouterr().err
    with fits.open(tmp_path / "img.mask.fits") as h:
        assert h[0].data.shape == (13, 20, 20) and h[0].data.dtype == np.uint8


@pytest.mark.skipif(not REALDATA.is_dir(), reason="real exposures not available on this machine")
def test_real_exposures(tmp_path, models, capsys):
    """Every smoke exposure (uint16 raw, int16, float32, a 1x1024x1040 cube, a 70-extension DECam .fz, MEFs)."""
    files = sorted(p for p in REALDATA.iterdir() if ".fits" in p.name)
    rc = maximask_cli.main([str(REALDATA), "--net_dir", str(models), "-o", str(tmp_path), "--single_mask", "1", "-q"])
    assert rc == 0, capsys.readouterr().err
    for f in files:
        out = tmp_path / (f.name.split(".fits")[0] + ".mask.fits")
        with fits.open(f) as hin, fits.open(out) as hout:
            assert len(hout) == len(hin), f.name
            for a, b in zip(hin, hout):
                if a.is_image and a.data is not None and a.data.ndim >= 2:
                    assert b.data.shape == a.data.shape, f.name  # the flag map has the image's shape
                    assert b.header.get("EXTNAME") == a.header.get("EXTNAME")


def test_views_option_through_subprocess(tmp_path, models):
    src = _fits(tmp_path / "img.fits", shape=(40, 36), seed=4)
    r = _run("maximask", src, "--net_dir", models, "--proba_thresh", "0", "--views", "4", "-o", tmp_path / "v4", "-q")
    assert r.returncode == 0, r.stderr
    r = _run("maximask", src, "--net_dir", models, "--proba_thresh", "0", "-o", tmp_path / "v1", "-q")
    assert r.returncode == 0, r.stderr
    with fits.open(tmp_path / "v4" / "img.mask.fits") as h4, fits.open(tmp_path / "v1" / "img.mask.fits") as h1:
        assert h4[0].header["MM_VIEWS"] == 4 and h1[0].header["MM_VIEWS"] == 1
        assert h4[0].data.shape == h1[0].data.shape and not np.allclose(h4[0].data, h1[0].data, atol=1e-5)
    r = _run("maxitrack", src, "--net_dir", models, "--views", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 0.0 <= float(r.stdout.split()[-1]) <= 1.0
    r = _run("maximask", src, "--net_dir", models, "--views", "3", "-o", tmp_path / "bad")
    assert r.returncode == 2 and "--views" in r.stderr and not (tmp_path / "bad").exists()


def test_margin_option_in_process(tmp_path, models, capsys):
    """--margin reaches the tiling (header MM_MARGN), changes the probabilities only near seams, and a
    margin the tile cannot hold is a one-line usage error that writes nothing."""
    src = _fits(tmp_path / "img.fits", shape=(64, 300), seed=5)
    outs = {}
    for m in (0, 16):
        rc = maximask_cli.main([str(src), "--net_dir", str(models), "--proba_thresh", "0", "--tile", "64",
                                "--margin", str(m), "-o", str(tmp_path / f"m{m}"), "-q"])
        assert rc == 0, capsys.readouterr().err
        with fits.open(tmp_path / f"m{m}" / "img.mask.fits") as h:
            assert h[0].header["MM_MARGN"] == m and h[0].header["MM_TILE"] == 64
            outs[m] = h[0].data.copy()
    assert outs[0].shape == outs[16].shape == (13, 64, 300)
    assert np.array_equal(outs[0][..., :32], outs[16][..., :32])  # far from any seam: the same tile
    assert not np.allclose(outs[0], outs[16], atol=1e-6)
    # without --margin: the model card's tile_margin
    carded = tmp_path / "carded"
    lm = load_maximask(models)
    save_model(carded / "maximask", lm.model, {**lm.card, "tile_margin": 16})
    rc = maximask_cli.main([str(src), "--net_dir", str(carded), "--proba_thresh", "0", "--tile", "64",
                            "-o", str(tmp_path / "mcard"), "-q"])
    assert rc == 0, capsys.readouterr().err
    with fits.open(tmp_path / "mcard" / "img.mask.fits") as h:
        assert h[0].header["MM_MARGN"] == 16 and np.array_equal(h[0].data, outs[16])
    rc = maximask_cli.main([str(src), "--net_dir", str(models), "--tile", "64", "--margin", "24",
                            "-o", str(tmp_path / "bad"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "margin" in err[0] and not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit) as exc:
        maximask_cli.build_parser().parse_args(["img.fits", "--margin", "-1"])
    assert exc.value.code == 2
