"""``maximask-train``: train MaxiMask or MaxiTrack, or recalibrate a model file.

Examples
--------
    maximask-train maximask --config cfg.toml
    maximask-train maximask --data shards/train --val shards/val --run-dir runs/a --width 0.5 --steps 20000
    maximask-train maximask --run-dir runs/a --resume            # continue from runs/a/checkpoint.pt
    maximask-train maxitrack --data track/train --val track/val --run-dir runs/t
    maximask-train calibrate runs/a --data shards/heldout        # recompute priors and thresholds
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

logger = logging.getLogger("maximask.train")

# command-line option -> TrainConfig field
_OVERRIDES = {
    "data": "data", "val": "val", "run_dir": "run_dir", "steps": "steps", "epochs": "epochs",
    "batch_size": "batch_size", "width": "width", "lr": "lr", "init": "init", "device": "device",
    "threads": "threads", "max_wall_minutes": "max_wall_minutes", "seed": "seed", "aux": "aux",
    "l2_lambda": "l2_lambda", "checkpoint_every": "checkpoint_every", "val_every": "val_every",
    "val_max_images": "val_max_images", "calib_max_images": "calib_max_images",
    "log_every": "log_every", "tile": "tile", "lr_schedule": "lr_schedule", "warmup_steps": "warmup_steps",
    "min_lr_ratio": "min_lr_ratio", "augment": "augment", "batch_norm": "batch_norm", "global_pool": "global_pool",
}


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML configuration (options below override it)")
    p.add_argument("--data", nargs="+", help="training shard directories or files")
    p.add_argument("--val", nargs="+", help="held-out shard directories or files")
    p.add_argument("--run-dir", help="run directory (config, log, checkpoint, model file)")
    p.add_argument("--steps", type=int, help="optimiser steps (0: use --epochs)")
    p.add_argument("--epochs", type=int, help="passes over the training set")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--width", type=float, help="channel multiplier (1.0: the paper's network)")
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--aux", choices=["3x33%", "2x50%", "none"], help="auxiliary losses (MaxiMask)")
    p.add_argument("--l2-lambda", type=float, help="Eq. 17 strength (per-pixel units)")
    p.add_argument("--seed", type=int)
    p.add_argument("--init", metavar="MODEL", help="start from the weights of this model file, or of another run's checkpoint.pt "
                   "(fine-tuning; a checkpoint keeps batch normalisation)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    p.add_argument("--device", help="auto, cpu or cuda[:N]")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--max-wall-minutes", type=float, help="stop cleanly with a checkpoint after this time")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--val-every", type=int)
    p.add_argument("--val-max-images", type=int, help="held-out images of each set in the periodic validation (0: all)")
    p.add_argument("--calib-max-images", type=int,
                   help="held-out images of each set for the final priors and thresholds (0: all)")
    p.add_argument("--log-every", type=int)
    p.add_argument("--tile", type=int, help="inference tile size written into the model card")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], help="learning-rate schedule")
    p.add_argument("--warmup-steps", type=int, help="linear warm-up steps (cosine schedule)")
    p.add_argument("--min-lr-ratio", type=float, help="final lr of the cosine schedule / lr")
    p.add_argument("--batch-norm", action="store_true", default=None,
                   help="batch normalisation after each convolution (not in the paper; "
                        "MaxiMask: folded into the convolutions of the exported model)")
    p.add_argument("--global-pool", action="store_true", default=None,
                   help="MaxiTrack: average the last feature maps over the image (not in the paper)")
    p.add_argument("--augment", action="store_true", default=None,
                   help="random flips and 90-degree rotations of training images and truth")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    from maximask.inference import VIEWS

    parser = argparse.ArgumentParser(prog="maximask-train", description="Train MaxiMask / MaxiTrack networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    for kind in ("maximask", "maxitrack"):
        _add_train_options(sub.add_parser(kind, help=f"train a {kind} network"))
    cal = sub.add_parser("calibrate", help="recompute training priors (Eq. 27) and thresholds of a model file")
    cal.add_argument("model", help="run directory, model card (.json) or weights (.safetensors)")
    cal.add_argument("--data", nargs="+", required=True, help="held-out shards drawn like the training set")
    cal.add_argument("--kind", choices=["maximask", "maxitrack"], default="maximask")
    cal.add_argument("--out", help="write the recalibrated model here (default: in place)")
    cal.add_argument("--max-images", type=int)
    cal.add_argument("--min-mcc", type=float, default=None,
                     help="classes with a lower best held-out MCC keep the default threshold (default 0.3)")
    cal.add_argument("--batch-size", type=int, default=8)
    cal.add_argument("--views", type=int, choices=list(VIEWS),
                     help="test-time views (predictions in N orientations, averaged); recorded in the card as "
                     "the tools' default (default: the card's, 1 when absent)")
    cal.add_argument("--device", default="cpu")
    cal.add_argument("-v", "--verbose", action="store_true")
    return parser


def _config_from_args(args):
    from maximask.train.config import TrainConfig

    if args.config is not None:
        cfg = TrainConfig.load(args.config)
    elif args.resume and args.run_dir and (Path(args.run_dir) / "config.toml").is_file():
        cfg = TrainConfig.load(Path(args.run_dir) / "config.toml")
    else:
        cfg = TrainConfig(batch_size=10 if args.command == "maximask" else 64,
                          epochs=30 if args.command == "maximask" else 48)
    changes = {field: getattr(args, opt) for opt, field in _OVERRIDES.items()}
    cfg = cfg.replace(kind=args.command, **changes)
    return cfg.validate()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    from maximask.modelfile import ModelFileError
    from maximask.train.config import ConfigError
    from maximask.train.shards import ShardError

    try:
        if args.command == "calibrate":
            from maximask.train.calibration import calibrate_model_file

            path, res = calibrate_model_file(args.model, args.data, kind=args.kind, out=args.out,
                                             device=args.device, batch_size=args.batch_size,
                                             max_images=args.max_images, views=args.views,
                                             **({} if args.min_mcc is None else {"min_mcc": args.min_mcc}))
            print(f"wrote {path} (priors and thresholds from {res.n_images} held-out images)")
            return 0
        from maximask.allocator import keep_freed_memory
        from maximask.train.trainer import train

        cfg = _config_from_args(args)
        keep_freed_memory()  # a CPU training step otherwise spends most of its time faulting in fresh pages
        result = train(cfg, resume=args.resume, progress=not args.no_progress)
    except (ConfigError, ShardError, ModelFileError, FileNotFoundError) as exc:
        print(f"maximask-train: error: {exc}", file=sys.stderr)
        return 2
    if result.completed:
        print(f"trained {result.step} steps in {result.wall_s:.0f} s; model file: {result.model_path}")
        return 0
    print(f"stopped at step {result.step}/{result.total_steps} (wall-time limit); "
          f"resume with: maximask-train {cfg.kind} --run-dir {cfg.run_dir} --resume")
    return 3


if __name__ == "__main__":
    sys.exit(main())
