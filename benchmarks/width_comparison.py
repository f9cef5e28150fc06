"""Held-out quality against CPU time for MaxiMask widths trained side by side.

    python benchmarks/width_comparison.py benchmarks/training_logs/maximask_w0.25.jsonl \
        benchmarks/training_logs/maximask_w0.5.jsonl

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("logs", nargs="+", type=Path)
    p.add_argument("--batch-size", type=int, default=8, help="when the log has no config.toml beside it")
    p.add_argument("--threads", type=int, default=1, help="when the log has no config.toml beside it")
    args = p.parse_args(argv)
    print("| run | step | images seen | wall min | CPU min | mean AUC | min AUC | CR AUC |")
    print("|---|---|---|---|---|---|---|---|")
    for log in args.logs:
        batch_size, threads = args.batch_size, args.threads
        if (log.parent / "config.toml").is_file():
            cfg = TrainConfig.load(log.parent / "config.toml")
            batch_size, threads = cfg.batch_size, cfg.threads or threads
        for v in read_run_log(log)[1]:
            aucs = [a for a in v["val_auc"].values() if a is not None]
            print(f"| {log.stem} | {v['step']} | {v['step'] * batch_size} | {v['wall_s'] / 60:.1f} | "
                  f"{v['wall_s'] * threads / 60:.1f} | {np.mean(aucs):.4f} | {np.min(aucs):.3f} | "
                  f"{v['val_auc']['CR']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
