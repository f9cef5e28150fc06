"""Sample pipeline, shards and the maximask-sim command line."""

import json

import numpy as np
import pytest

from maximask.classes import CLASS_NAMES, N_CLASSES, class_index
from maximask.simulate.dataset import ShardJob, generate_shards, make_sample, sample_seeds
from maximask.simulate.pipeline import CONTAMINANT_ORDER, encode_truth, simulate_sample, simulate_scene
from maximask.train.shards import ShardArrays, decode_truth, load_shards


def test_order_puts_static_defects_last():
    assert set(CONTAMINANT_ORDER) == set(CLASS_NAMES) - {"BBG", "BG"}
    static = ("HP", "HCL", "DP", "DCL", "OV")
    last = CONTAMINANT_ORDER[-len(static):]
    assert set(last) == set(static)
    assert CONTAMINANT_ORDER.index("SAT") > CONTAMINANT_ORDER.index("SP")


def test_encode_truth_round_trip():
    planes = np.random.default_rng(0).random((N_CLASSES, 9, 7)) < 0.3
    assert np.array_equal(decode_truth(encode_truth(planes)), planes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_deterministic_finite_and_bg_exclusive(seed):
    a = simulate_sample((64, 64), rng=np.random.default_rng(seed))
    b = simulate_sample((64, 64), rng=np.random.default_rng(seed))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    image, truth, meta = a
    assert image.dtype == np.float32 and truth.dtype == np.uint16 and image.shape == truth.shape == (64, 64)
    assert np.isfinite(image).all()
    planes = decode_truth(truth)
    bg = planes[class_index("BG")]
    others = np.delete(planes, class_index("BG"), axis=0).any(axis=0)
    assert np.array_equal(bg, ~others)
    json.dumps(meta)


def test_single_contaminant_set():
    for seed in range(4):
        s = simulate_scene((64, 64), rng=np.random.default_rng(seed), contaminants=["CR"])
        assert "CR" in s.meta["contaminants"]
        assert set(s.meta["contaminants"]) <= {"CR", "SAT"}
        counts = s.meta["pixel_counts"]
        assert all(counts[c] == 0 for c in CLASS_NAMES if c not in ("CR", "SAT", "BBG", "BG"))
    with pytest.raises(ValueError, match="unknown contaminant"):
        simulate_sample((32, 32), rng=np.random.default_rng(0), contaminants=["XX"])


def test_compression_matches_inference_preprocessing():
    from maximask.preprocess import compress, estimate_background

    s = simulate_scene((64, 64), rng=np.random.default_rng(3), offset_sigma=0.0)
    est = estimate_background(s.scene.image)
    assert np.array_equal(s.compressed, compress(s.scene.image, est.background, est.sigma))


def test_every_class_appears_in_a_small_set():
    seen = np.zeros(N_CLASSES, bool)
    for seed in range(25):
        _, truth, _ = simulate_sample((64, 64), rng=np.random.default_rng(seed))
        seen |= decode_truth(truth).reshape(N_CLASSES, -1).any(axis=1)
    missing = [n for n, ok in zip(CLASS_NAMES, seen) if not ok]
    assert not missing, missing


def test_shards_round_trip_and_seed_regeneration(tmp_path):
    job = ShardJob(kind="maximask", shape=(32, 32), with_raw=True)
    paths = generate_shards(tmp_path, job, n=5, seed=3, shard_size=2, workers=1)
    assert [p.name for p in paths] == ["shard_00000.npz", "shard_00001.npz", "shard_00002.npz"]
    data = ShardArrays(tmp_path)
    assert len(data) == 5 and data.image_shape == (32, 32)
    img, target = data.batch(np.arange(5))
    assert img.shape == (5, 1, 32, 32) and target.shape == (5, N_CLASSES, 32, 32)
    arrays = load_shards(tmp_path, keys=("image", "truth", "seed", "raw", "bkg", "sigma", "gain", "read_noise"))
    assert arrays["image"].dtype == np.float16 and arrays["truth"].dtype == np.uint16
    assert arrays["raw"].dtype == np.float32 and arrays["sigma"].shape == (5,)
    assert np.array_equal(arrays["seed"], sample_seeds(3, 5))
    again = make_sample(job, int(arrays["seed"][3]))
    assert np.array_equal(again["image"].astype(np.float16), arrays["image"][3])
    assert np.array_equal(again["truth"], arrays["truth"][3])
    with np.load(paths[0]) as z:
        meta = json.loads(str(z["meta"]))
    assert len(meta["samples"]) == 2
    assert not list(tmp_path.glob(".*tmp"))
    assert json.loads((tmp_path / "dataset.json").read_text())["complete"] is True


def test_parallel_generation_equals_serial(tmp_path):
    job = ShardJob(kind="maximask", shape=(32, 32))
    generate_shards(tmp_path / "a", job, n=4, seed=9, shard_size=2, workers=1)
    generate_shards(tmp_path / "b", job, n=4, seed=9, shard_size=2, workers=2)
    a, b = load_shards(tmp_path / "a"), load_shards(tmp_path / "b")
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["truth"], b["truth"])


def test_cli_maximask_and_cr_sampling(tmp_path):
    from maximask.cli.sim_cli import main

    assert main(["maximask", str(tmp_path / "m"), "--n", "3", "--size", "32", "--shard-size", "2",
                 "--contaminants", "CR,HP", "--quiet"]) == 0
    arr = load_shards(tmp_path / "m")
    planes = decode_truth(arr["truth"])
    allowed = {class_index(c) for c in ("CR", "HP", "SAT", "BBG", "BG")}
    assert not planes[:, [i for i in range(N_CLASSES) if i not in allowed]].any()
    assert main(["cr-sampling", str(tmp_path / "c"), "--n", "2", "--size", "32", "--quiet"]) == 0
    for sub in ("well_sampled", "undersampled"):
        arr = load_shards(tmp_path / "c" / sub, keys=("image", "truth", "raw", "bkg", "sigma", "gain", "read_noise"))
        assert arr["raw"].shape == (2, 32, 32)
        with np.load(tmp_path / "c" / sub / "shard_00000.npz") as z:
            fwhm = [m["fwhm"] for m in json.loads(str(z["meta"]))["samples"]]
        assert all((f > 2.5) == (sub == "well_sampled") for f in fwhm), fwhm


def test_gallery(tmp_path):
    pytest.importorskip("matplotlib")
    from maximask.cli.sim_cli import main

    out = tmp_path / "g.png"
    assert main(["gallery", str(out), "--n", "2", "--size", "48", "--quiet"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_unknown_contaminant(tmp_path):
    from maximask.cli.sim_cli import main

    with pytest.raises(SystemExit, match="unknown XX"):
        main(["maximask", str(tmp_path), "--n", "1", "--contaminants", "CR,XX", "--quiet"])


def test_generation_resumes_and_replaces_stale_shards(tmp_path):
    job = ShardJob(kind="maximask", shape=(32, 32))
    paths = generate_shards(tmp_path, job, n=4, seed=1, shard_size=2)
    stamp = paths[0].stat().st_mtime_ns
    paths[1].unlink()
    generate_shards(tmp_path, job, n=4, seed=1, shard_size=2)
    assert paths[0].stat().st_mtime_ns == stamp and paths[1].exists()
    generate_shards(tmp_path, job, n=4, seed=2, shard_size=2)  # other seed: rewritten
    assert np.array_equal(load_shards(tmp_path, keys=("seed",))["seed"], sample_seeds(2, 4))


def test_rebinning_augmentation():
    from maximask.simulate.pipeline import rebin2x2_scene
    from maximask.simulate.sky import SkyParameters, make_clean_scene

    p = SkyParameters(shape=(64, 64), fwhm=5.0, psf_profile="moffat", psf_params={"beta": 3.0}, sky_level=400.0,
                      gain=2.0, read_noise=4.0, saturation=50000.0, star_density=3e-3, galaxy_fraction=0.3)
    fine = make_clean_scene(p, rng=np.random.default_rng(0))
    coarse = rebin2x2_scene(fine)
    assert coarse.shape == (32, 32)
    assert coarse.image.sum() == pytest.approx(fine.image.sum())
    assert coarse.sigma == pytest.approx(2 * fine.sigma) and coarse.fwhm == pytest.approx(fine.fwhm / 2)
    assert abs(coarse.psf.sum() - 1) < 1e-9
    assert np.array_equal(coarse.truth[class_index("BBG")], coarse.source_image > 10 * coarse.sigma)
    empty = coarse.source_image < 0.01 * coarse.sigma
    assert np.std((coarse.image - coarse.background)[empty]) == pytest.approx(coarse.sigma, rel=0.15)
    seen = set()
    for seed in range(12):
        s = simulate_scene((32, 32), rng=np.random.default_rng(seed), rebin_probability=1.0, contaminants=["HP"])
        seen.add(s.meta["rebinned"])
        if s.meta["rebinned"]:
            assert s.meta["fwhm"] > 1.8 and s.compressed.shape == (32, 32)
    assert seen == {True, False}


def test_cli_maxitrack(tmp_path):
    from maximask.cli.sim_cli import main

    assert main(["maxitrack", str(tmp_path), "--n", "2", "--size", "32", "--quiet"]) == 0
    data = ShardArrays(tmp_path, kind="maxitrack")
    assert len(data) == 2 and set(np.unique(data.targets)) <= {0, 1}
    assert data.images.dtype == np.float16 and np.isfinite(data.images.astype(np.float32)).all()


def test_cli_maxitrack_min_bright_stars_reaches_the_sample(tmp_path):
    import json

    from maximask.cli.sim_cli import main

    assert main(["maxitrack", str(tmp_path / "any"), "--n", "4", "--size", "32", "--seed", "5",
                 "--min-bright-stars", "0", "--quiet"]) == 0
    meta = json.loads(str(np.load(sorted((tmp_path / "any").glob("shard_*.npz"))[0])["meta"]))
    assert meta["job"]["min_bright_stars"] == 0.0
    # with no minimum the first sky draw is always kept
    assert all(s["sky_draws"] == 1 for s in meta["samples"])


def test_cli_presence_probabilities(tmp_path):
    import json
    import subprocess
    import sys

    from maximask.cli.sim_cli import main

    # FR always present, CR never: every sample carries FR truth, none CR
    assert main(["maximask", str(tmp_path / "fr"), "--n", "3", "--size", "48", "--seed", "2",
                 "--probabilities", "fr=1,CR=0", "--quiet"]) == 0
    data = ShardArrays(tmp_path / "fr", kind="maximask")
    fr, cr = class_index("FR"), class_index("CR")
    assert all(((data.targets[i] >> fr) & 1).any() for i in range(3))
    assert not ((data.targets >> cr) & 1).any()
    meta = json.loads(str(np.load(sorted((tmp_path / "fr").glob("shard_*.npz"))[0])["meta"]))
    assert meta["job"]["probabilities"] == {"FR": 1.0, "CR": 0.0}
    # a malformed value is a one-line usage error, and nothing is written
    r = subprocess.run([sys.executable, "-m", "maximask.cli.sim_cli", "maximask", str(tmp_path / "bad"), "--n", "1",
                        "--probabilities", "FR=2", "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--probabilities" in r.stderr and "FR=0.6" in r.stderr
    assert not (tmp_path / "bad").exists()


def test_cli_overscan_edge_bands(tmp_path):
    import json
    import subprocess
    import sys

    # through the command line, as a user runs it: the option reaches every sample's OV record
    r = subprocess.run([sys.executable, "-m", "maximask.cli.sim_cli", "maximask", str(tmp_path / "ov"), "--n", "3",
                        "--size", "48", "--seed", "4", "--contaminants", "OV", "--overscan-edge-bands", "1",
                        "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    meta = json.loads(str(np.load(sorted((tmp_path / "ov").glob("shard_*.npz"))[0])["meta"]))
    assert meta["job"]["overscan_edge_bands"] == 1.0
    assert all(len(s["OV_info"]["edge_bands"]) == len(s["OV_info"]["sides"]) >= 1 for s in meta["samples"]), meta["samples"]
    # the same set without the option: same OV truth, no bands, and no key in the job record
    from maximask.cli.sim_cli import main

    assert main(["maximask", str(tmp_path / "plain"), "--n", "3", "--size", "48", "--seed", "4",
                 "--contaminants", "OV", "--quiet"]) == 0
    plain = ShardArrays(tmp_path / "plain", kind="maximask")
    banded = ShardArrays(tmp_path / "ov", kind="maximask")
    ov = class_index("OV")
    assert np.array_equal((plain.targets >> ov) & 1, (banded.targets >> ov) & 1)
    meta = json.loads(str(np.load(sorted((tmp_path / "plain").glob("shard_*.npz"))[0])["meta"]))
    assert "overscan_edge_bands" not in meta["job"] and all("edge_bands" not in s["OV_info"] for s in meta["samples"])
    r = subprocess.run([sys.executable, "-m", "maximask.cli.sim_cli", "maximask", str(tmp_path / "bad"), "--n", "1",
                        "--overscan-edge-bands", "1.5", "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--overscan-edge-bands" in r.stderr and "probability" in r.stderr
    assert not (tmp_path / "bad").exists()
