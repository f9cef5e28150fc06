"""Training configuration: every hyper-parameter of a run, frozen and validated.

The configuration is saved beside each run as ``config.toml`` and read back
with :meth:`TrainConfig.load`. Only flat ``key = value`` pairs are used
(strings, numbers, booleans, lists of strings), written by hand since the
standard library reads TOML (``tomllib``) but does not write it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from maximask.train.loss import AUX_SCHEMES

__all__ = ["ConfigError", "TrainConfig"]

KINDS = ("maximask", "maxitrack")


class ConfigError(ValueError):
    """A training configuration is inconsistent or unreadable."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run.

    Attributes
    ----------
    kind : {"maximask", "maxitrack"}
        Network to train.
    data : tuple of str
        Training shard files or directories. Sets of different image sizes
        may be mixed; every mini-batch is drawn from one size, in proportion
        to the number of images of each size.
    val : tuple of str
        Held-out shard files or directories (validation, priors, thresholds);
        drawn like the training set (paper Eq. 27), sizes mixed as in ``data``.
    run_dir : str
        Directory of the run: config, log, checkpoint and exported model.
    width : float
        Channel multiplier of the network (1.0: the paper's).
    batch_size : int
        Images per mini-batch (paper: 10 for MaxiMask, 64 for MaxiTrack).
    lr : float
        Adam learning rate.
    epochs : int
        Passes over the training set (paper: 30 / 48); ignored if ``steps > 0``.
    steps : int
        Number of optimiser steps; 0 means ``epochs`` full passes.
    aux : {"3x33%", "2x50%", "none"}
        Auxiliary losses on the pre-predictions (MaxiMask).
    l2_lambda : float
        Eq. 17 strength in the units of the per-pixel normalised data term;
        6.25e-6 matches the paper's lambda = 1 on 400x400 images.
    normalize_loss : bool
        Divide the data term by the pixels per image (constant factor).
    smooth_sigma : float
        Standard deviation of the 3x3 weight-smoothing kernel, pixels.
    seed : int
        Seed of weight initialisation and of the per-epoch shuffling.
    threads : int
        CPU threads for torch (0: leave torch's default).
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.
    checkpoint_every : int
        Steps between checkpoints (0: only at the end).
    log_every : int
        Steps between lines of the loss log.
    val_every : int
        Steps between validations (0: only at the end).
    val_max_images : int
        Held-out images of each validation set used by the periodic validation (0: all).
    max_wall_minutes : float
        Stop cleanly with a checkpoint after this wall time (0: no limit).
    init : str
        Model file, or another run's ``checkpoint.pt``, whose weights start
        the run (fine-tuning); empty: random. A checkpoint keeps the
        training-only layers (batch normalisation) that model files fold away.
    tile : int
        Preferred inference tile size written into the model card, pixels.
    calib_max_images : int
        Held-out images used for priors and thresholds at export (0: all).
    lr_schedule : {"constant", "cosine"}
        Learning-rate schedule: constant, or cosine decay from ``lr`` to
        ``lr * min_lr_ratio`` over the run after ``warmup_steps`` of linear warm-up.
    warmup_steps : int
        Steps of linear learning-rate warm-up (cosine schedule only).
    min_lr_ratio : float
        Final learning rate of the cosine schedule, as a fraction of ``lr``.
    batch_norm : bool
        Batch normalisation after each hidden convolution (not in the paper). For
        MaxiMask it is a training aid only: the exported model has it folded into
        the convolutions (:func:`maximask.nets.maximask_net.fold_batch_norm`), so it
        is the paper's network; MaxiTrack keeps it.
    global_pool : bool
        MaxiTrack only: average the last feature maps over the image (not in the paper).
    augment : bool
        Apply a random one of the 8 flips/90-degree rotations to each training
        image and its truth (drawn from ``[seed, step]``, so resuming is exact).
    """

    kind: str = "maximask"
    data: tuple[str, ...] = ()
    val: tuple[str, ...] = ()
    run_dir: str = "run"
    width: float = 1.0
    batch_size: int = 10
    lr: float = 1e-4
    epochs: int = 30
    steps: int = 0
    aux: str = "3x33%"
    l2_lambda: float = 6.25e-6
    normalize_loss: bool = True
    smooth_sigma: float = 1.0
    seed: int = 0
    threads: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    log_every: int = 10
    val_every: int = 1000
    val_max_images: int = 64
    max_wall_minutes: float = 0.0
    init: str = ""
    tile: int = 400
    calib_max_images: int = 0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.01
    augment: bool = False
    batch_norm: bool = False
    global_pool: bool = False

    def __post_init__(self):
        # Accept lists (from TOML or the command line) and store tuples.
        for name in ("data", "val"):
            value = getattr(self, name)
            if isinstance(value, (str, os.PathLike)):
                value = (value,)
            object.__setattr__(self, name, tuple(str(v) for v in value))

    def validate(self) -> "TrainConfig":
        """Check the configuration; return it unchanged.

        Raises
        ------
        ConfigError
            On the first inconsistent value.
        """
        def fail(msg: str):
            raise ConfigError(msg)

        if self.kind not in KINDS:
            fail(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not self.data:
            fail("no training data: give shard directories with data = [...] or --data")
        if not (self.width > 0 and math.isfinite(self.width)):
            fail(f"width must be positive, got {self.width}")
        if self.batch_size < 1:
            fail(f"batch_size must be at least 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            fail(f"lr must be positive, got {self.lr}")
        if self.steps < 0 or self.epochs < 0 or (self.steps == 0 and self.epochs == 0):
            fail(f"give a positive number of steps or epochs (steps={self.steps}, epochs={self.epochs})")
        if self.aux not in AUX_SCHEMES:
            fail(f"aux must be one of {', '.join(AUX_SCHEMES)}, got {self.aux!r}")
        if not (self.l2_lambda >= 0 and math.isfinite(self.l2_lambda)):
            fail(f"l2_lambda must be finite and non-negative, got {self.l2_lambda}")
        if self.smooth_sigma <= 0:
            fail(f"smooth_sigma must be positive, got {self.smooth_sigma}")
        for name in ("threads", "checkpoint_every", "val_every", "val_max_images", "calib_max_images"):
            if getattr(self, name) < 0:
                fail(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.lr_schedule not in ("constant", "cosine"):
            fail(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.warmup_steps < 0:
            fail(f"warmup_steps must be non-negative, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            fail(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.log_every < 1:
            fail(f"log_every must be at least 1, got {self.log_every}")
        if self.max_wall_minutes < 0:
            fail(f"max_wall_minutes must be non-negative, got {self.max_wall_minutes}")
        if self.tile < 16:
            fail(f"tile must be at least 16 pixels, got {self.tile}")
        if not (self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda")):
            fail(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        return self

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        """Plain dict (lists for tuples), JSON-serialisable."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def dump(self, path: str | os.PathLike) -> Path:
        """Write the configuration as TOML to ``path``."""
        lines = ["# maximask training configuration"]
        for key, value in self.to_dict().items():
            lines.append(f"{key} = {_toml_value(value)}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from a dict, refusing unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            msg = f"unknown training option(s): {', '.join(unknown)}"
            raise ConfigError(msg)
        return cls(**d)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainConfig":
        """Read a TOML (or JSON, by suffix) configuration file."""
        path = Path(path)
        try:
            text = path.read_text()
            d = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            msg = f"{path}: unreadable configuration ({exc})"
            raise ConfigError(msg) from None
        return cls.from_dict(d)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    msg = f"cannot write {type(value).__name__} value to TOML"
    raise ConfigError(msg)
