"""The training loop of MaxiMask and MaxiTrack.

Reads top to bottom:

1. set up the run directory, threads, device and seeds;
2. build the network (``maximask.nets.create_model``), optionally starting
   from the weights of a model file or of another run's checkpoint
   (fine-tuning);
3. read the shards into memory (one group per image size when the sets mix
   sizes) and, for MaxiMask, compute the class weights of Eq. 15 once from
   the whole training set;
4. Adam on mini-batches reshuffled at every epoch, each batch drawn from one
   image size (the batches of epoch ``e`` are drawn from
   ``numpy.random.default_rng([seed, e])``, so a resumed run sees the same
   batches as an uninterrupted one);
5. log the loss, validate every ``val_every`` steps, write a checkpoint every
   ``checkpoint_every`` steps and when ``max_wall_minutes`` is reached;
6. at the end, estimate the training priors (Eq. 27) and best-MCC thresholds
   on the held-out shards and export the model file ``run_dir/<kind>``.

Files of a run: ``config.toml``, ``log.jsonl`` (one JSON object per logged
step or validation), ``checkpoint.pt`` (written atomically: model and
optimiser state, step, epoch, RNG states, configuration, class weights) and
``<kind>.safetensors`` + ``<kind>.json`` (the exported model file).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from maximask.classes import CLASS_NAMES, N_CLASSES
from maximask.evaluate.metrics import ConfusionAccumulator
from maximask.inference import dihedral_view
from maximask.nets import create_model
from maximask.train.calibration import calibrate, predict_batches
from maximask.train.class_weights import class_weights, count_classes
from maximask.train.config import ConfigError, TrainConfig
from maximask.train.loss import MaxiMaskLoss, maxitrack_loss
from maximask.train.shards import ShardArrays, ShardSets, decode_truth

__all__ = ["TrainResult", "train", "resolve_device", "build_model", "CHECKPOINT_NAME"]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
#: Options that must not change when a run is resumed.
_FROZEN_ON_RESUME = ("kind", "data", "width", "batch_size", "lr", "aux", "l2_lambda", "normalize_loss",
                     "smooth_sigma", "seed", "epochs", "init", "lr_schedule", "warmup_steps", "min_lr_ratio",
                     "augment", "batch_norm", "global_pool")


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    step : int
        Optimiser steps done.
    total_steps : int
        Steps the run asks for.
    completed : bool
        False when stopped by ``max_wall_minutes``.
    model_path : Path or None
        Card of the exported model file.
    last_loss : float
        Last mini-batch loss.
    wall_s : float
        Wall time of the run, seconds, summed over the sessions of a resumed run.
    """

    step: int
    total_steps: int
    completed: bool
    model_path: Path | None
    last_loss: float
    wall_s: float


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        msg = f"device {name!r} asked for but CUDA is not available"
        raise ConfigError(msg)
    return torch.device(name)


def build_model(config: TrainConfig, image_shape: tuple[int, int]) -> nn.Module:
    """The network of ``config`` (random weights, or those of ``config.init``).

    ``config.init`` is a model file, or the ``checkpoint.pt`` of another run
    (which keeps training-only layers such as batch normalisation). A MaxiTrack
    with global pooling may start from one trained at another input size.
    """
    if config.kind == "maximask":
        model = create_model("maximask", width=config.width, n_classes=N_CLASSES,
                             **({"batch_norm": True} if config.batch_norm else {}))
    else:
        if image_shape[0] != image_shape[1]:
            msg = f"MaxiTrack needs square images, the shards hold {image_shape}"
            raise ConfigError(msg)
        model = create_model("maxitrack", width=config.width, input_size=image_shape[0],
                             **({"batch_norm": True} if config.batch_norm else {}),
                             **({"global_pool": True} if config.global_pool else {}))
    if config.init:
        arch_args, state = _init_weights(config)
        if config.kind == "maxitrack" and arch_args.get("global_pool") and model.arch_args.get("global_pool"):
            # a globally pooled MaxiTrack has no size-dependent weight: it may be fine-tuned at another input size
            arch_args = {**arch_args, "input_size": model.arch_args["input_size"]}
        if arch_args != model.arch_args:
            msg = f"--init model has arch_args {arch_args}, the run asks for {model.arch_args}"
            raise ConfigError(msg)
        model.load_state_dict(state)
    return model


def _init_weights(config: TrainConfig) -> tuple[dict, dict]:
    """(arch_args, state_dict) of ``config.init``: a run checkpoint or a model file."""
    path = Path(config.init)
    if path.suffix == ".pt" or path.name == CHECKPOINT_NAME:
        if not path.is_file():
            msg = f"--init {path}: no such checkpoint"
            raise ConfigError(msg)
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if ckpt.get("config", {}).get("kind") != config.kind:
            msg = f"--init {path} is a {ckpt.get('config', {}).get('kind')} checkpoint, the run trains {config.kind}"
            raise ConfigError(msg)
        return dict(ckpt["arch_args"]), ckpt["model"]
    from maximask.modelfile import load_model

    init_model, _ = load_model(config.init, kind=config.kind)
    return dict(init_model.arch_args), init_model.state_dict()


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _append_log(path: Path, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _batch_tensors(arrays: ShardArrays, index: np.ndarray, device: torch.device):
    image, target = arrays.batch(index)
    return torch.from_numpy(image).to(device), torch.from_numpy(target).to(device)


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based) of a ``total_steps`` run."""
    if config.lr_schedule == "constant":
        return config.lr
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(total_steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1.0 + np.cos(np.pi * progress))


def dihedral_augment(x: torch.Tensor, y: torch.Tensor, *, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one random flip/90-degree rotation per image to images and their truth.

    Parameters
    ----------
    x : tensor, shape (B, 1, H, W)
    y : tensor, shape (B, C, H, W)
        Truth planes (MaxiMask); transformed like ``x``. Square images only
        for the rotations; non-square images get flips only.
    """
    square = x.shape[-1] == x.shape[-2]
    xs, ys = [], []
    for xi, yi, code in zip(x, y, rng.integers(0, 8 if square else 4, size=x.shape[0])):
        code = int(code)
        # non-square: the views that keep the shape (0 or 180 deg, each maybe mirrored)
        view = code if square else 2 * (code % 2) + 4 * (code // 2)
        xs.append(dihedral_view(xi, view))
        ys.append(dihedral_view(yi, view))
    return torch.stack(xs).contiguous(), torch.stack(ys).contiguous()


@torch.no_grad()
def _validate(model, val: ShardSets, config: TrainConfig, loss_fn, device) -> dict:
    """Held-out loss and quick per-class AUC (1000 linear bins) on the first ``val_max_images`` images of each set."""
    names = list(CLASS_NAMES) if config.kind == "maximask" else ["TR"]
    acc = ConfusionAccumulator(len(names), 1000)
    losses, sizes = [], []
    was_training = model.training
    model.eval()
    batches = []
    for group in val.groups:
        index = group.first_of_each_entry(config.val_max_images or None)
        batches += [(group, index[s : s + config.batch_size]) for s in range(0, len(index), config.batch_size)]
    for group, index in batches:
        x, y = _batch_tensors(group, index, device)
        if config.kind == "maximask":
            _, data_loss = loss_fn(model, x, y)
            probs = torch.sigmoid(model(x))
        else:
            logits = model(x)
            data_loss = maxitrack_loss(logits, y)
            probs = torch.softmax(logits, dim=1)[:, 1]
        acc.update(probs.cpu().numpy(), y.cpu().numpy().astype(bool))
        losses.append(float(data_loss))
        sizes.append(len(index))
    model.train(was_training)
    auc = acc.result().auc()
    return {
        "val_loss": float(np.average(losses, weights=sizes)) if losses else float("nan"),
        "val_auc": {name: (None if np.isnan(a) else round(float(a), 6)) for name, a in zip(names, auc)},
    }


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train a network as ``config`` says, and export it.

    Parameters
    ----------
    config : TrainConfig
        The run's hyper-parameters (validated here).
    resume : bool
        Continue from ``run_dir/checkpoint.pt``; the result is identical to
        that of an uninterrupted run.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    TrainResult
    """
    t0 = time.monotonic()
    config.validate()
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT_NAME
    log_path = run_dir / "log.jsonl"
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)

    # Data, held in memory.
    train_set = ShardSets(config.data, kind=config.kind)
    val_set = ShardSets(config.val, kind=config.kind) if config.val else None
    steps_per_epoch = train_set.batches_per_epoch(config.batch_size)
    if steps_per_epoch == 0:
        msg = f"batch_size {config.batch_size} exceeds the training images of every size {train_set.image_shapes}"
        raise ConfigError(msg)
    total_steps = config.steps if config.steps > 0 else config.epochs * steps_per_epoch

    # Model, loss and optimiser.
    torch.manual_seed(config.seed)
    model = build_model(config, train_set.image_shape if config.kind == "maxitrack"
                        else train_set.image_shapes[0]).to(device)
    model.train()
    if config.kind == "maximask":
        counts = sum(count_classes(g.targets) for g in train_set.groups)
        proportions = counts / train_set.n_pixels
        weights = class_weights(proportions)
        loss_fn = MaxiMaskLoss(weights, aux=config.aux, l2_lambda=config.l2_lambda,
                               normalize=config.normalize_loss, smooth_sigma=config.smooth_sigma).to(device)
    else:
        proportions = np.array([np.concatenate([g.targets for g in train_set.groups]).mean()])
        weights = np.ones(1)
        loss_fn = None
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    step = 0
    previous_wall_s = 0.0  # wall time of earlier sessions of a resumed run
    if resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        old = ckpt["config"]
        changed = [k for k in _FROZEN_ON_RESUME if old.get(k) != config.to_dict().get(k)]
        if changed:
            msg = f"cannot resume {ckpt_path}: option(s) {', '.join(changed)} differ from the checkpoint's"
            raise ConfigError(msg)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["torch_rng"])
        step = int(ckpt["step"])
        previous_wall_s = float(ckpt.get("wall_s", 0.0))
        logger.info("resumed %s at step %d", ckpt_path, step)
    elif resume and config.init:
        logger.info("no checkpoint in %s: starting from --init %s", run_dir, config.init)
    elif resume:
        logger.warning("no checkpoint in %s: starting from scratch", run_dir)
    config.dump(run_dir / "config.toml")

    def save_checkpoint():
        _atomic_torch_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "epoch": step // steps_per_epoch,
                "torch_rng": torch.get_rng_state(),
                "config": config.to_dict(),
                "arch_args": model.arch_args,
                "class_weights": np.asarray(weights).tolist(),
                "wall_s": previous_wall_s + time.monotonic() - t0,
            },
            ckpt_path,
        )

    last_loss = float("nan")
    completed = True
    bar = tqdm(total=total_steps, initial=step, disable=not progress, desc=f"train {config.kind}", unit="step")
    t_log, step_log = time.monotonic(), step
    batches_epoch, batches = -1, []
    while step < total_steps:
        epoch, pos = divmod(step, steps_per_epoch)
        if epoch != batches_epoch:
            batches_epoch, batches = epoch, train_set.epoch_batches(config.seed, epoch, config.batch_size)
        group, index = batches[pos]
        x, y = _batch_tensors(train_set.groups[group], index, device)
        if config.augment and config.kind == "maximask":
            x, y = dihedral_augment(x, y, rng=np.random.default_rng([config.seed, 1, step]))
        elif config.augment:
            x, _ = dihedral_augment(x, x, rng=np.random.default_rng([config.seed, 1, step]))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step, total_steps)
        if config.kind == "maximask":
            loss, data_loss = loss_fn(model, x, y)
        else:
            loss = maxitrack_loss(model(x), y)
            data_loss = loss.detach()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        last_loss = float(loss.detach())
        bar.update(1)
        if not np.isfinite(last_loss):
            msg = f"loss became {last_loss} at step {step}; lower the learning rate"
            raise FloatingPointError(msg)
        if step % config.log_every == 0 or step == total_steps:
            now = time.monotonic()
            rate = (step - step_log) * config.batch_size / max(now - t_log, 1e-9)
            t_log, step_log = now, step
            _append_log(log_path, {"step": step, "epoch": epoch, "loss": last_loss, "data_loss": float(data_loss),
                                   "samples_per_s": round(rate, 3),
                                   "wall_s": round(previous_wall_s + now - t0, 3)})
            bar.set_postfix(loss=f"{last_loss:.4g}")
        if val_set is not None and config.val_every and step % config.val_every == 0 and step < total_steps:
            record = {"step": step, **_validate(model, val_set, config, loss_fn, device)}
            _append_log(log_path, record)
            logger.info("step %d: val loss %.5g", step, record["val_loss"])
        if config.checkpoint_every and step % config.checkpoint_every == 0:
            save_checkpoint()
        if config.max_wall_minutes and time.monotonic() - t0 > 60 * config.max_wall_minutes and step < total_steps:
            completed = False
            logger.warning("max_wall_minutes reached at step %d/%d: stopping", step, total_steps)
            break
    bar.close()
    save_checkpoint()

    model_path = None
    if completed:
        model_path = export_run(model, config, run_dir, train_set=train_set, val_set=val_set, step=step,
                                total_steps=total_steps, proportions=proportions,
                                wall_s=previous_wall_s + time.monotonic() - t0,
                                loss_fn=loss_fn, device=device)
    return TrainResult(step=step, total_steps=total_steps, completed=completed, model_path=model_path,
                       last_loss=last_loss, wall_s=previous_wall_s + time.monotonic() - t0)


def export_run(model, config: TrainConfig, run_dir: Path, *, train_set, val_set, step, total_steps,
               proportions, wall_s, loss_fn=None, device=None) -> Path:
    """Calibrate on the held-out set and write the model file ``run_dir/<kind>``.

    Without a held-out set, priors and thresholds are estimated on the
    training set (recorded in the card as ``calibration_set: "training"``).
    """
    from maximask import __version__
    from maximask.modelfile import save_model

    if config.kind == "maximask" and model.arch_args.get("batch_norm"):
        from maximask.nets.maximask_net import fold_batch_norm

        model = fold_batch_norm(model).to(device or torch.device("cpu"))
    calib_set = val_set if val_set is not None else train_set
    result = calibrate(model, calib_set, kind=config.kind, batch_size=config.batch_size,
                       max_images=config.calib_max_images or None)
    names = list(CLASS_NAMES) if config.kind == "maximask" else ["TR"]
    card = {
        "kind": config.kind,
        "arch": config.kind,
        "arch_args": model.arch_args,
        "classes": names,
        "training_priors": result.training_priors,
        "thresholds": result.thresholds,
        "tile": int(config.tile),
        "software_version": __version__,
        "training": {
            "n_train_images": len(train_set),
            "image_shape": list(train_set.image_shapes[0]),
            "image_shapes": [list(s) for s in train_set.image_shapes],
            "n_heldout_images": len(val_set) if val_set is not None else 0,
            "steps": int(step),
            "epochs": step / max(train_set.batches_per_epoch(config.batch_size), 1),
            "wall_s": round(float(wall_s), 1),
            "seed": config.seed,
            "config": config.to_dict(),
            "class_proportions": {n_: float(p) for n_, p in zip(names, np.atleast_1d(proportions))},
            "calibration_set": "heldout" if val_set is not None else "training",
            "threshold_priors": result.observation_priors,
            "heldout_metrics": result.metrics,
        },
    }
    return save_model(run_dir / config.kind, model, card)
