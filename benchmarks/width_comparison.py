"""Held-out quality against CPU time for MaxiMask widths trained side by side.

    python benchmarks/width_comparison.py benchmarks/training_logs/maximask_w0.25.jsonl \
        benchmarks/training_logs/maximask_w0.5.jsonl
    python benchmarks/width_comparison.py --train TRAIN256 --val VAL256 --out OUT_DIR \
        [--widths 1.0 0.5] [--minutes 7]      # new runs, one after the other, then the table

The second form trains each width for the same wall time on an otherwise idle
machine (2 threads, batch normalisation, batch 4, constant lr 3e-3, seed 0,
dihedral augmentation, the first 6 shards of TRAIN256), validating on the first
64 images of VAL256 every ``--val-every`` steps, so their rows compare
held-out quality at equal CPU time. Logs: ``OUT_DIR/w<width>/log.jsonl``.

Each log is a run's ``log.jsonl`` (``maximask-train``). Both runs of the
shipped comparison used the same data, hyper-parameters and seed, one CPU
thread each, at the same time on the same 2-core machine, so their wall times
are comparable CPU times. For every validation it prints the step, the images
seen, the wall time, the CPU time (wall time x threads) and the mean and
minimum AUC over the 14 classes.

Batch size and threads are read from the run's ``config.toml`` beside the
log when there is one (``--batch-size`` and ``--threads`` otherwise; the
shipped comparison's logs: 8 and 1).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from maximask.train.config import TrainConfig
from maximask.train.runlog import read_run_log


def train_widths(train_dir: Path, val_dir: Path, out: Path, widths, minutes: float, val_every: dict) -> list[Path]:
    """Train one run per width for ``minutes`` of wall time each; return their log paths."""
    from maximask.train.trainer import train

    shards = [str(q) for q in sorted(train_dir.glob("shard_*.npz"))[:6]]
    val = [str(sorted(val_dir.glob("shard_*.npz"))[0])]
    logs = []
    for width in widths:
        run_dir = out / f"w{width:g}"
        cfg = TrainConfig(kind="maximask", data=shards, val=val, run_dir=str(run_dir), width=width, batch_size=4,
                          lr=3e-3, steps=100_000, seed=0, threads=2, device="cpu", checkpoint_every=0, log_every=10,
                          val_every=val_every[width], val_max_images=64, lr_schedule="constant", warmup_steps=0,
                          augment=True, batch_norm=True, max_wall_minutes=minutes)
        train(cfg, progress=False)
        logs.append(run_dir / "log.jsonl")
    return logs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("logs", nargs="*", type=Path)
    p.add_argument("--train", type=Path, help="256x256 training shards (new runs)")
    p.add_argument("--val", type=Path, help="held-out shards (new runs)")
    p.add_argument("--out", type=Path, help="directory of the new runs")
    p.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.5])
    p.add_argument("--minutes", type=float, default=7.0, help="wall time of each new run")
    p.add_argument("--val-every", type=int, nargs="+", default=[60, 150],
                   help="validation interval (steps) of each width, in the order of --widths")
    p.add_argument("--batch-size", type=int, default=8, help="when the log has no config.toml beside it")
    p.add_argument("--threads", type=int, default=1, help="when the log has no config.toml beside it")
    args = p.parse_args(argv)
    if args.train is not None:
        if args.val is None or args.out is None:
            p.error("--train needs --val and --out")
        args.logs = train_widths(args.train, args.val, args.out, args.widths, args.minutes,
                                 dict(zip(args.widths, args.val_every)))
    if not args.logs:
        p.error("give run logs, or --train/--val/--out for new runs")
    print("| run | step | images seen | wall min | CPU min | mean AUC | min AUC | CR AUC |")
    print("|---|---|---|---|---|---|---|---|")
    for log in args.logs:
        batch_size, threads = args.batch_size, args.threads
        if (log.parent / "config.toml").is_file():
            cfg = TrainConfig.load(log.parent / "config.toml")
            batch_size, threads = cfg.batch_size, cfg.threads or threads
        name = log.parent.name if log.stem == "log" else log.stem
        for v in read_run_log(log)[1]:
            aucs = [a for a in v["val_auc"].values() if a is not None]
            print(f"| {name} | {v['step']} | {v['step'] * batch_size} | {v['wall_s'] / 60:.1f} | "
                  f"{v['wall_s'] * threads / 60:.1f} | {np.mean(aucs):.4f} | {np.min(aucs):.3f} | "
                  f"{v['val_auc']['CR']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
