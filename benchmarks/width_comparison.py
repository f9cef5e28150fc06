"""Held-out quality against CPU time for MaxiMask widths trained side by side.

    python benchmarks/width_comparison.py benchmarks/training_logs/maximask_w0.25.jsonl \
        benchmarks/training_logs/maximask_w0.5.jsonl

Each log is a run's ``log.jsonl`` (``maximask-train``). Both runs of the
shipped comparison used the same data, hyper-parameters and seed, one CPU
thread each, at the same time on the same 2-core machine, so their wall times
are comparable CPU times. For every validation (64 held-out images) it prints
the step, the images seen, the wall time, and the mean and minimum AUC over the
14 classes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def validations(log: Path, batch_size: int = 8) -> list[dict]:
    """Validation records of a log with the run's cumulative wall time (sessions summed)."""
    out, total, last = [], 0.0, 0.0
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        if "val_auc" in rec:
            aucs = [v for v in rec["val_auc"].values() if v is not None]
            out.append({"step": rec["step"], "images": rec["step"] * batch_size, "wall_s": total + last,
                        "mean_auc": float(np.mean(aucs)), "min_auc": float(np.min(aucs)), "auc": rec["val_auc"]})
        elif "wall_s" in rec:
            if rec["wall_s"] < last:
                total += last
            last = rec["wall_s"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("logs", nargs="+", type=Path)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)
    print("| run | step | images seen | wall (CPU) min | mean AUC | min AUC | CR AUC |")
    print("|---|---|---|---|---|---|---|")
    for log in args.logs:
        for v in validations(log, args.batch_size):
            print(f"| {log.stem} | {v['step']} | {v['images']} | {v['wall_s'] / 60:.1f} | {v['mean_auc']:.4f} | "
                  f"{v['min_auc']:.3f} | {v['auc']['CR']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
