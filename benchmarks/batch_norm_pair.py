"""Paired short MaxiMask runs with and without batch normalisation, on the same batches.

    python benchmarks/batch_norm_pair.py TRAIN_SHARDS VAL_SHARDS OUT_DIR [--steps 150]
    python benchmarks/batch_norm_pair.py --report benchmarks/training_logs   # table of the documented run

Three runs, identical data order and augmentation (seed 0), batch 4, constant learning rate,
2 threads: A width 0.25 without batch normalisation (lr 1.5e-3), B width 0.25 with it
(lr 3e-3), C width 0.5 with it (lr 3e-3). Each uses the first 6 shards of TRAIN_SHARDS and
validates once, at the end, on 64 images of the first shard of VAL_SHARDS. Prints the mean
training data loss over the last third of the steps, the samples per second and the
held-out AUC per class. The logs of the documented run (256x256 shards of
``maximask-sim maximask --size 256 --seed 21`` and ``--seed 22``) are in
``benchmarks/training_logs/bn_pair_{A,B,C}.jsonl``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RUNS = {"A": (0.25, False, 1.5e-3), "B": (0.25, True, 3e-3), "C": (0.5, True, 3e-3)}


def run(train_dir: Path, val_dir: Path, out: Path, steps: int) -> None:
    from maximask.train.config import TrainConfig
    from maximask.train.trainer import train

    shards = [str(p) for p in sorted(train_dir.glob("shard_*.npz"))[:6]]
    val = [str(sorted(val_dir.glob("shard_*.npz"))[0])]
    for name, (width, bn, lr) in RUNS.items():
        cfg = TrainConfig(kind="maximask", data=shards, val=val, run_dir=str(out / name), width=width,
                          batch_size=4, lr=lr, steps=steps, seed=0, threads=2, device="cpu", checkpoint_every=0,
                          log_every=10, val_every=steps - 1, val_max_images=64, lr_schedule="constant",
                          warmup_steps=0, augment=True, batch_norm=bn, calib_max_images=8)
        train(cfg, progress=False)


def report(logs: dict[str, Path]) -> None:
    print("| run | width | batch norm | lr | data loss (last third) | samples/s | held-out AUC |")
    print("|---|---|---|---|---|---|---|")
    for name, path in logs.items():
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        train_recs = [r for r in recs if "data_loss" in r]
        val = [r for r in recs if "val_auc" in r][-1]
        loss = np.mean([r["data_loss"] for r in train_recs[2 * len(train_recs) // 3:]])
        rate = np.median([r["samples_per_s"] for r in train_recs])
        width, bn, lr = RUNS[name]
        aucs = ", ".join(f"{k} {v:.3f}" for k, v in val["val_auc"].items() if v is not None)
        print(f"| {name} | {width} | {'yes' if bn else 'no'} | {lr:g} | {loss:.5f} | {rate:.2f} | {aucs} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("train", type=Path, nargs="?")
    p.add_argument("val", type=Path, nargs="?")
    p.add_argument("out", type=Path, nargs="?")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--report", type=Path,
                   help="only print the table from DIR/{A,B,C}/log.jsonl or DIR/bn_pair_{A,B,C}.jsonl")
    args = p.parse_args(argv)
    if args.report is None:
        if args.out is None:
            p.error("TRAIN_SHARDS VAL_SHARDS OUT_DIR are needed unless --report is given")
        run(args.train, args.val, args.out, args.steps)
        root = args.out
    else:
        root = args.report
    logs = {name: root / name / "log.jsonl" for name in RUNS}
    if not all(p_.is_file() for p_ in logs.values()):
        logs = {name: root / f"bn_pair_{name}.jsonl" for name in RUNS}
    report(logs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
