"""A few-step training run on tiny shards: it learns, resumes to the identical state and exports a model file."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from maximask.modelfile import load_model
from maximask.train.config import ConfigError, TrainConfig
from maximask.train.trainer import train


def _write_maximask_shard(path, n, size, seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(0, 1, (n, size, size)).astype(np.float32)
    truth = np.zeros((n, size, size), np.uint16)
    for i in range(n):
        for _ in range(4):
            y, x = rng.integers(1, size - 1, 2)
            image[i, y, x] += 8
            truth[i, y - 1:y + 2, x - 1:x + 2] |= 1  # CR, dilated 3x3
        c = rng.integers(0, size)
        image[i, :, c] += 3
        truth[i, :, c] |= 2  # HCL
    truth[truth == 0] = 1 << 13  # BG
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image=image.astype(np.float16), truth=truth, seed=np.arange(n, dtype=np.int64),
             meta=json.dumps({"test": True}))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    _write_maximask_shard(root / "train" / "shard_00000.npz", 10, 32, 0)
    _write_maximask_shard(root / "train" / "shard_00001.npz", 6, 32, 1)
    _write_maximask_shard(root / "val" / "shard_00000.npz", 4, 32, 2)
    return root


def _config(shards, run_dir, **kw):
    base = dict(data=(str(shards / "train"),), val=(str(shards / "val"),), run_dir=str(run_dir), width=0.125,
                batch_size=4, lr=2e-3, steps=6, log_every=1, val_every=0, checkpoint_every=0, threads=1,
                device="cpu", seed=7)
    base.update(kw)
    return TrainConfig(**base)


def _log(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("extra", [{}, {"lr_schedule": "cosine", "warmup_steps": 2, "augment": True}],
                         ids=["constant", "cosine-augment"])
def test_training_lowers_loss_and_resume_is_identical(shards, tmp_path, extra):
    straight = tmp_path / "straight"
    r = train(_config(shards, straight, **extra), progress=False)
    assert r.completed and r.step == 6
    losses = [rec["data_loss"] for rec in _log(straight) if "data_loss" in rec]
    assert len(losses) == 6 and losses[-1] < losses[0]

    split = tmp_path / "split"
    r1 = train(_config(shards, split, steps=6, max_wall_minutes=1e-9, **extra), progress=False)
    r2 = train(_config(shards, split, steps=6, **extra), resume=True, progress=False)
    assert r2.wall_s > r1.wall_s  # wall time accumulates over the sessions
    assert r2.step == 6
    a = torch.load(straight / "checkpoint.pt", weights_only=False)
    b = torch.load(split / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 6 and a["epoch"] == b["epoch"] == 1  # 16 images / 4 = 4 steps per epoch
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])

    # the exported model file loads and its card holds priors, thresholds and the run record
    model, card = load_model(straight, kind="maximask")
    assert set(card["training_priors"]) == set(card["thresholds"]) == set(card["classes"])
    assert card["training"]["steps"] == 6 and card["training"]["n_train_images"] == 16
    assert card["training"]["config"]["seed"] == 7
    assert 0 < card["training_priors"]["CR"] < 1
    assert TrainConfig.load(straight / "config.toml") == _config(shards, straight, **extra)


def test_batch_norm_run_exports_the_folded_paper_network(shards, tmp_path):
    from maximask.nets import MaxiMaskNet

    run = tmp_path / "bn"
    r = train(_config(shards, run, batch_norm=True, lr=3e-3), progress=False)
    assert r.completed
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["arch_args"]["batch_norm"] is True
    trained = MaxiMaskNet(**ckpt["arch_args"])
    trained.load_state_dict(ckpt["model"])
    trained.eval()
    model, card = load_model(run, kind="maximask")
    assert card["arch_args"] == {"n_classes": 14, "width": 0.125}  # no batch normalisation left
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), trained(x), rtol=1e-4, atol=1e-4)


def test_cosine_schedule_warms_up_and_decays():
    from maximask.train.trainer import learning_rate

    cfg = TrainConfig(data=("a",), lr=1e-3, lr_schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    lrs = [learning_rate(cfg, s, 110) for s in range(110)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[10] == pytest.approx(1e-3) and lrs[60] == pytest.approx(0.55e-3)
    assert np.all(np.diff(lrs[10:]) <= 0) and lrs[-1] > 1e-4
    assert learning_rate(cfg, 200, 110) == pytest.approx(1e-4)
    assert learning_rate(cfg.replace(lr_schedule="constant"), 50, 110) == 1e-3


def test_dihedral_augment_moves_image_and_truth_together():
    from maximask.train.trainer import dihedral_augment

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(16, 1, 9, 9)).astype(np.float32))
    y = torch.cat([(x > 0.5).float(), (x < -1).float()], dim=1)
    xa, ya = dihedral_augment(x, y, rng=np.random.default_rng(3))
    assert torch.equal(ya, torch.cat([(xa > 0.5).float(), (xa < -1).float()], dim=1))
    assert not torch.equal(xa, x)
    # every output is one of the 8 symmetries of its input
    for xi, xo in zip(x[:, 0], xa[:, 0]):
        variants = [torch.rot90(v, k) for v in (xi, torch.flip(xi, dims=(-1,))) for k in range(4)]
        assert any(torch.equal(xo, v) for v in variants)


def test_resume_refuses_a_changed_configuration(shards, tmp_path):
    run = tmp_path / "run"
    train(_config(shards, run, steps=1), progress=False)
    with pytest.raises(ConfigError, match="lr"):
        train(_config(shards, run, steps=2, lr=1e-2), resume=True, progress=False)


def test_wall_time_limit_stops_with_a_checkpoint(shards, tmp_path):
    run = tmp_path / "run"
    r = train(_config(shards, run, steps=50, max_wall_minutes=1e-9, val=()), progress=False)
    assert not r.completed and r.step == 1 and r.model_path is None
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 1


def test_maxitrack_trains_on_label_shards(tmp_path):
    rng = np.random.default_rng(5)
    label = (np.arange(8) % 2).astype(np.uint8)
    image = rng.normal(0, 1, (8, 32, 32)).astype(np.float16)
    (tmp_path / "tr").mkdir()
    np.savez(tmp_path / "tr" / "shard_00000.npz", image=image, label=label, seed=np.arange(8), meta="{}")
    cfg = TrainConfig(kind="maxitrack", data=(str(tmp_path / "tr"),), run_dir=str(tmp_path / "run"), width=0.25,
                      batch_size=4, steps=2, checkpoint_every=0, threads=1, device="cpu")
    r = train(cfg, progress=False)
    model, card = load_model(r.model_path, kind="maxitrack")
    assert model.input_size == 32 and set(card["training_priors"]) == {"TR"}
    assert card["training"]["calibration_set"] == "training"


def _track_shard(path, n, size, seed):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image=rng.normal(0, 1, (n, size, size)).astype(np.float16), label=(np.arange(n) % 2).astype(np.uint8),
             seed=np.arange(n), meta="{}")


def test_global_pool_maxitrack_fine_tunes_at_another_input_size(tmp_path):
    from maximask.train.trainer import build_model

    _track_shard(tmp_path / "small" / "shard_00000.npz", 8, 32, 1)
    kw = dict(kind="maxitrack", width=0.25, batch_size=4, steps=2, checkpoint_every=0, threads=1, device="cpu",
              batch_norm=True)
    r = train(TrainConfig(data=(str(tmp_path / "small"),), run_dir=str(tmp_path / "a"), global_pool=True, **kw),
              progress=False)
    ckpt = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    big = build_model(TrainConfig(data=("x",), init=str(tmp_path / "a" / "checkpoint.pt"), global_pool=True, **kw), (48, 48))
    assert big.input_size == 48
    for k, v in ckpt["model"].items():
        assert torch.equal(big.state_dict()[k], v), k
    assert r.model_path is not None
    # without global pooling the fully connected layer depends on the input size: refused
    train(TrainConfig(data=(str(tmp_path / "small"),), run_dir=str(tmp_path / "b"), **kw), progress=False)
    with pytest.raises(ConfigError, match="arch_args"):
        build_model(TrainConfig(data=("x",), init=str(tmp_path / "b" / "checkpoint.pt"), **kw), (48, 48))


def test_maxitrack_evaluation_of_larger_images_averages_tiles(tmp_path):
    from maximask.evaluate.report import evaluate_maxitrack
    from maximask.inference import track_tiles
    from maximask.nets.registry import create_model
    from maximask.train.calibration import predict_batches, update_priors

    torch.manual_seed(0)
    model = create_model("maxitrack", width=0.25, input_size=32, global_pool=True).eval()
    _track_shard(tmp_path / "big" / "shard_00000.npz", 6, 70, 2)  # 70 px: 2x2 tiles of 32 anchored bottom-right
    card = {"training_priors": {"TR": 0.3}, "thresholds": {"TR": 0.5}}
    report = evaluate_maxitrack(model, card, tmp_path / "big", out_dir=tmp_path / "out", plots_on=False)
    assert report["tiles_per_image"] == 4 and report["image_shape"] == [70, 70]
    images = np.load(tmp_path / "big" / "shard_00000.npz")["image"].astype(np.float32)
    labels = np.arange(6) % 2 == 1
    origins = track_tiles((70, 70), 32)
    assert origins == [(6, 6), (6, 38), (38, 6), (38, 38)]
    score = []
    for im in images:
        tiles = np.stack([im[y:y + 32, x:x + 32] for y, x in origins])
        p = np.concatenate([q for _, q in predict_batches(model, tiles, kind="maxitrack")])
        score.append(update_priors(p.astype(np.float64), 0.3, report["observation_prior"]).mean())
    score = np.array(score)
    pos, neg = score[labels], score[~labels]
    auc = np.mean([(a > b) + 0.5 * (a == b) for a in pos for b in neg])
    assert report["auc"] == pytest.approx(auc, abs=1e-9)


def test_config_validation_and_toml_round_trip(tmp_path):
    cfg = TrainConfig(data=("a", "b"), val=("c",), width=0.5, steps=3, init="x/y.json")
    path = cfg.dump(tmp_path / "c.toml")
    assert TrainConfig.load(path) == cfg
    with pytest.raises(ConfigError, match="no training data"):
        TrainConfig().validate()
    with pytest.raises(ConfigError, match="aux"):
        TrainConfig(data=("a",), aux="1x100%").validate()
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"data": ["a"], "learning_rate": 1})


def test_command_lines_train_calibrate_and_evaluate(shards, tmp_path, capsys):
    from maximask.cli.evaluate_cli import main as evaluate_main
    from maximask.cli.train_cli import main as train_main
    from maximask.evaluate.report import PAPER_TABLE7

    run = tmp_path / "run"
    assert train_main(["maximask", "--data", str(shards / "train"), "--val", str(shards / "val"), "--run-dir",
                       str(run), "--width", "0.125", "--batch-size", "4", "--steps", "2", "--threads", "1",
                       "--device", "cpu", "--no-progress", "--val-max-images", "2", "--calib-max-images", "3"]) == 0
    saved = TrainConfig.load(run / "config.toml")
    assert saved.val_max_images == 2 and saved.calib_max_images == 3
    _, card = load_model(run, kind="maximask")
    cr = card["training"]["heldout_metrics"]["CR"]
    assert cr["n_positive"] + cr["n_negative"] == 3 * 32 * 32  # the final calibration used 3 held-out images
    assert train_main(["calibrate", str(run), "--data", str(shards / "val"), "--out", str(tmp_path / "m2")]) == 0
    _, card = load_model(tmp_path / "m2.json", kind="maximask")
    assert card["training"]["calibration"]["n_images"] == 4

    single = tmp_path / "single"
    (single / "CR").mkdir(parents=True)
    (single / "CR" / "shard_00000.npz").write_bytes((shards / "val" / "shard_00000.npz").read_bytes())
    out = tmp_path / "eval"
    assert evaluate_main(["maximask", str(run), "--data", str(shards / "val"), "--single-sets", str(single),
                          "--out", str(out), "--device", "cpu", "--bins", "1000"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 4 and 0 <= metrics["classes"]["CR"]["auc"] <= 1
    assert metrics["single_auc"]["CR"] is not None and metrics["single_auc"]["HCL"] is None
    assert all((out / f).stat().st_size > 0 for f in ("roc.png", "mcc.png", "tpr_purity.png"))
    table = (out / "table7.md").read_text()
    assert f"| CR | {PAPER_TABLE7['all']['CR']:.5f} | {metrics['classes']['CR']['auc']:.5f} |" in table
    assert evaluate_main(["maximask", str(tmp_path / "missing"), "--data", str(shards / "val"),
                          "--out", str(out)]) == 2


def test_run_log_wall_time_sums_sessions(tmp_path):
    from maximask.train.runlog import read_run_log

    records = [{"step": 10, "loss": 1.0, "wall_s": 5.0}, {"step": 20, "loss": 0.9, "wall_s": 9.0},
               {"step": 20, "val_loss": 0.5, "val_auc": {"CR": 0.6}},
               {"step": 30, "loss": 0.8, "wall_s": 4.0},  # a session whose clock restarted at 0
               {"step": 40, "loss": 0.7, "wall_s": 7.0}, {"step": 40, "val_loss": 0.4, "val_auc": {"CR": 0.7}}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    wall, vals = read_run_log(tmp_path)
    assert wall == 16.0
    assert [(v["step"], v["wall_s"]) for v in vals] == [(20, 9.0), (40, 16.0)]


@pytest.fixture(scope="module")
def mixed_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    _write_maximask_shard(root / "train32" / "shard_00000.npz", 8, 32, 10)
    _write_maximask_shard(root / "train48" / "shard_00000.npz", 6, 48, 11)
    _write_maximask_shard(root / "val32" / "shard_00000.npz", 4, 32, 12)
    _write_maximask_shard(root / "val48" / "shard_00000.npz", 4, 48, 13)
    return root


def test_mixed_image_sizes_draw_each_batch_from_one_size(mixed_shards):
    from maximask.train.class_weights import count_classes
    from maximask.train.shards import ShardError, ShardSets, load_shards

    sets = ShardSets([mixed_shards / "train32", mixed_shards / "train48"])
    assert sets.image_shapes == [(32, 32), (48, 48)] and len(sets) == 14
    with pytest.raises(ShardError, match="mix image shapes"):
        _ = sets.image_shape
    assert sets.batches_per_epoch(4) == 2 + 1
    batches = sets.epoch_batches(seed=3, epoch=0, batch_size=4)
    assert sorted(g for g, _ in batches) == [0, 0, 1]
    for g, index in batches:
        assert len(index) == 4 and len(set(index.tolist())) == 4 and index.max() < len(sets.groups[g])
    assert [(g, i.tolist()) for g, i in batches] == [(g, i.tolist()) for g, i in sets.epoch_batches(3, 0, 4)]
    # one size: consecutive slices of one permutation of the images (the single-size order)
    single = ShardSets(mixed_shards / "train32").epoch_batches(seed=3, epoch=1, batch_size=4)
    perm = np.random.default_rng([3, 1]).permutation(8)
    assert [i.tolist() for _, i in single] == [perm[:4].tolist(), perm[4:].tolist()]
    # class proportions are over all pixels of all sizes
    truth = [load_shards(mixed_shards / d, keys=("truth",))["truth"] for d in ("train32", "train48")]
    counts = sum(count_classes(g.targets) for g in sets.groups)
    assert np.array_equal(counts, count_classes(truth[0]) + count_classes(truth[1]))
    assert sets.n_pixels == 8 * 32 * 32 + 6 * 48 * 48


def test_mixed_size_run_resumes_identically_and_calibrates_on_all_sizes(mixed_shards, tmp_path):
    kw = dict(data=(str(mixed_shards / "train32"), str(mixed_shards / "train48")),
              val=(str(mixed_shards / "val32"), str(mixed_shards / "val48")), steps=5, val_every=2)
    straight = tmp_path / "straight"
    r = train(_config(mixed_shards, straight, **kw), progress=False)
    assert r.completed
    split = tmp_path / "split"
    train(_config(mixed_shards, split, max_wall_minutes=1e-9, **kw), progress=False)
    train(_config(mixed_shards, split, **kw), resume=True, progress=False)
    a = torch.load(straight / "checkpoint.pt", weights_only=False)
    b = torch.load(split / "checkpoint.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 1  # 3 batches per epoch
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert any("val_loss" in rec and np.isfinite(rec["val_loss"]) for rec in _log(straight))
    _, card = load_model(straight, kind="maximask")
    assert card["training"]["image_shapes"] == [[32, 32], [48, 48]]
    assert card["training"]["n_train_images"] == 14 and card["training"]["n_heldout_images"] == 8


def test_init_from_a_run_checkpoint_keeps_batch_norm(shards, tmp_path):
    first = tmp_path / "first"
    train(_config(shards, first, batch_norm=True, steps=3), progress=False)
    ckpt = torch.load(first / "checkpoint.pt", weights_only=False)
    second = tmp_path / "second"
    cfg = _config(shards, second, batch_norm=True, steps=0, epochs=1, init=str(first / "checkpoint.pt"))
    from maximask.train.trainer import build_model

    model = build_model(cfg, (32, 32))
    for k, v in ckpt["model"].items():
        assert torch.equal(model.state_dict()[k], v), k
    # a checkpoint of another architecture or kind is refused with the reason
    with pytest.raises(ConfigError, match="arch_args"):
        build_model(_config(shards, second, init=str(first / "checkpoint.pt")), (32, 32))
    with pytest.raises(ConfigError, match="maximask checkpoint, the run trains maxitrack"):
        build_model(_config(shards, second, kind="maxitrack", init=str(first / "checkpoint.pt")), (32, 32))
    with pytest.raises(ConfigError, match="no such checkpoint"):
        build_model(_config(shards, second, init=str(tmp_path / "missing.pt")), (32, 32))


def test_maxitrack_calibration_and_evaluation_with_eight_views(tmp_path):
    from maximask.evaluate.report import evaluate_maxitrack
    from maximask.inference import dihedral_view
    from maximask.modelfile import save_model
    from maximask.nets.registry import create_model
    from maximask.train.calibration import calibrate_model_file, predict_batches

    torch.manual_seed(2)
    model = create_model("maxitrack", width=0.25, input_size=32, global_pool=True).eval()
    _track_shard(tmp_path / "val" / "shard_00000.npz", 8, 32, 3)
    images = np.load(tmp_path / "val" / "shard_00000.npz")["image"].astype(np.float32)
    p8 = np.concatenate([q for _, q in predict_batches(model, images, kind="maxitrack", views=8)])
    with torch.no_grad():
        x = torch.from_numpy(images[:, None])
        z = torch.stack([(lambda v: v[:, 1] - v[:, 0])(model(dihedral_view(x, k).contiguous())) for k in range(8)])
    assert np.allclose(p8, torch.sigmoid(z.mean(0)).numpy(), atol=1e-6)
    save_model(tmp_path / "m" / "maxitrack", model, {"kind": "maxitrack", "training_priors": {}, "thresholds": {}})
    card_path, res = calibrate_model_file(tmp_path / "m", tmp_path / "val", kind="maxitrack", views=8)
    _, card = load_model(card_path, kind="maxitrack")
    assert card["test_time_views"] == 8
    assert card["training_priors"]["TR"] == pytest.approx(p8.astype(np.float64).mean(), rel=1e-6)  # Eq. 27
    # evaluation follows the card's views unless told otherwise
    r8 = evaluate_maxitrack(model, card, tmp_path / "val", out_dir=tmp_path / "e8", plots_on=False)
    r1 = evaluate_maxitrack(model, card, tmp_path / "val", out_dir=tmp_path / "e1", plots_on=False, views=1)
    assert r8["views"] == 8 and r1["views"] == 1


def test_max_images_caps_each_set_not_each_size(tmp_path):
    from maximask.train.shards import ShardArrays, ShardSets

    _track_shard(tmp_path / "a" / "shard_00000.npz", 5, 16, 1)
    _track_shard(tmp_path / "b" / "shard_00000.npz", 3, 16, 2)
    _track_shard(tmp_path / "c" / "shard_00000.npz", 4, 24, 3)
    dirs = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    full = ShardSets(dirs, kind="maxitrack")
    assert [len(g) for g in full.groups] == [8, 4] and full.groups[0].entry_sizes == [5, 3]
    assert full.groups[0].first_of_each_entry(2).tolist() == [0, 1, 5, 6]
    assert full.groups[0].first_of_each_entry(None).tolist() == list(range(8))
    capped = ShardSets(dirs, kind="maxitrack", max_images=2)
    assert [len(g) for g in capped.groups] == [4, 2]
    b = np.load(tmp_path / "b" / "shard_00000.npz")["image"]
    assert np.array_equal(capped.groups[0].images[2:], b[:2])  # the second set of the same size is kept
    assert len(ShardArrays(dirs[:2], kind="maxitrack", max_images=4)) == 7


def test_average_weights_script_averages_two_stages_of_a_chain(shards, tmp_path):
    import subprocess
    import sys

    from safetensors.torch import load_file

    first, second = tmp_path / "s1", tmp_path / "s2"
    train(_config(shards, first, batch_norm=True, checkpoint_every=3), progress=False)
    train(_config(shards, second, batch_norm=True, checkpoint_every=3, init=str(first / "checkpoint.pt"), seed=8),
          progress=False)
    out = tmp_path / "avg"
    script = Path(__file__).resolve().parents[1] / "scripts" / "average_weights.py"
    r = subprocess.run([sys.executable, str(script), str(out), str(first), str(second), "--weights", "1", "3"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    model, card = load_model(out / "maximask.json", kind="maximask")
    assert card["training"]["averaging_weights"] == [0.25, 0.75]
    assert (out / "log.jsonl").is_file() and (out / "config.toml").is_file()
    # without batch-norm folding differences, the mean of the two checkpoints' raw parameters is what was built
    from maximask.nets.maximask_net import fold_batch_norm
    from maximask.train.trainer import build_model

    a = torch.load(first / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(second / "checkpoint.pt", weights_only=False)["model"]
    ref = build_model(_config(shards, second, batch_norm=True), (32, 32))
    ref.load_state_dict({k: 0.25 * a[k] + 0.75 * b[k] if a[k].is_floating_point() else b[k] for k in a})
    folded = fold_batch_norm(ref.eval()).state_dict()
    saved = load_file(out / "maximask.safetensors")
    assert set(saved) == set(folded)
    for k, v in saved.items():
        assert torch.allclose(v, folded[k], atol=1e-6), k
    assert not torch.allclose(saved[next(iter(saved))], load_file(second / "maximask.safetensors")[next(iter(saved))])


def test_average_weights_script_averages_shipped_model_files(shards, tmp_path):
    """Model files (no checkpoint, e.g. a shipped model and its fine-tune) average parameter by parameter;
    run directories and model files cannot be mixed."""
    import shutil
    import subprocess
    import sys

    from safetensors.torch import load_file

    first, second = tmp_path / "s1", tmp_path / "s2"
    train(_config(shards, first, checkpoint_every=3), progress=False)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("maximask.json", "maximask.safetensors"):
        shutil.copy(first / name, shipped / name)
    train(_config(shards, second, checkpoint_every=3, init=str(shipped / "maximask.json"), seed=8), progress=False)
    out = tmp_path / "soup"
    script = Path(__file__).resolve().parents[1] / "scripts" / "average_weights.py"
    r = subprocess.run([sys.executable, str(script), str(out), str(shipped), str(second / "maximask.json"),
                        "--weights", "1", "3"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    _, card = load_model(out / "maximask.json", kind="maximask")
    assert card["training"]["averaging_weights"] == [0.25, 0.75]
    assert card["training"]["seed"] == 8  # the last stage's record
    assert (out / "log.jsonl").read_text() == (second / "log.jsonl").read_text()
    a, b = load_file(shipped / "maximask.safetensors"), load_file(second / "maximask.safetensors")
    saved = load_file(out / "maximask.safetensors")
    assert set(saved) == set(a)
    for k, v in saved.items():
        assert torch.allclose(v, 0.25 * a[k] + 0.75 * b[k], atol=1e-7), k
    assert not torch.allclose(a[k], b[k])
    mixed = subprocess.run([sys.executable, str(script), str(tmp_path / "mixed"), str(first), str(shipped)],
                           capture_output=True, text=True)
    assert mixed.returncode != 0 and "not a mix" in mixed.stderr
    assert not (tmp_path / "mixed").exists()


def test_fine_tuning_a_shipped_model_file_keeps_its_training_record(shards, tmp_path, caplog):
    """--init from a model file away from its run (a shipped model): the exported paper network trains on, and
    scripts/ship_model.py records the shipped model's own run and chain in the new card."""
    import shutil
    import subprocess
    import sys

    first = tmp_path / "first"
    train(_config(shards, first, batch_norm=True, steps=3), progress=False)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("maximask.json", "maximask.safetensors"):
        shutil.copy(first / name, shipped / name)
    second = tmp_path / "second"
    with caplog.at_level(logging.INFO, logger="maximask.train.trainer"):
        train(_config(shards, second, steps=3, init=str(shipped / "maximask.json"), seed=8), resume=True, progress=False)
    assert any("starting from --init" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    assert not any("from scratch" in r.getMessage() for r in caplog.records)
    tuned, _ = load_model(second / "maximask.json", kind="maximask")
    start, _ = load_model(shipped / "maximask.json", kind="maximask")
    assert set(tuned.state_dict()) == set(start.state_dict())
    assert any(not torch.equal(tuned.state_dict()[k], v) for k, v in start.state_dict().items())
    script = Path(__file__).resolve().parents[1] / "scripts" / "ship_model.py"
    dest = tmp_path / "models"
    r = subprocess.run([sys.executable, str(script), str(second), "maximask", "--dest", str(dest)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    training = json.loads((dest / "maximask.json").read_text())["training"]
    assert [run["run_dir"] for run in training["init_run"]] == [str(first)]
    assert training["init_run"][0]["steps"] == 3
    first_wall = json.loads((first / "maximask.json").read_text())["training"]["wall_s"]
    assert training["wall_s_total"] == pytest.approx(training["wall_s"] + first_wall, abs=0.2)
