"""Training and inference speed with and without :func:`maximask.allocator.keep_freed_memory`.

    python benchmarks/allocator_speed.py OUT_DIR [--steps 40] [--size 256] [--threads 1] [--repeats 2]
    python benchmarks/allocator_speed.py OUT_DIR --inference IMAGE.fits [--threads 1] [--repeats 3]

Inference (``--inference``): runs ``maximask IMAGE.fits`` (default options) in
a fresh process with each setting, alternately, and reports the wall seconds of
the whole command, its system CPU seconds and minor page faults.

Training (default):

Simulates 64 all-contaminant images of ``--size`` pixels (seed 0) into
``OUT_DIR/data``, then runs ``maximask-train maximask`` (width 0.5, batch
normalisation, batch 4, ``--steps`` steps) alternately with
``MAXIMASK_KEEP_FREED_MEMORY=0`` (glibc's default allocator behaviour) and
``=1``, ``--repeats`` times each, one run at a time. For every run it reports
the seconds per step over the steps after the first 10 (from the run's
``log.jsonl``), and from the process's own resource usage (``os.wait4``) the
user and system CPU seconds, the minor page faults and the peak resident
memory. The table goes to stdout and ``OUT_DIR/allocator_speed.json``.
Run it on an otherwise idle machine; the ratio of the two settings is the result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def seconds_per_step(log_path: Path, skip: int = 10) -> float:
    """Median wall seconds per step between consecutive log records after ``skip`` steps."""
    lines = log_path.read_text().splitlines()
    recs = [r for r in map(json.loads, lines) if "data_loss" in r and r["step"] > skip]
    steps = np.array([r["step"] for r in recs], float)
    wall = np.array([r["wall_s"] for r in recs], float)
    return float(np.median(np.diff(wall) / np.diff(steps)))


def _measured(cmd: list[str], keep: bool) -> dict:
    """Run ``cmd`` with the allocator setting on or off; its wall time and own resource usage."""
    env = dict(os.environ, MAXIMASK_KEEP_FREED_MEMORY="1" if keep else "0")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        msg = f"command failed: {' '.join(cmd)}"
        raise RuntimeError(msg)
    return {"wall_s": wall, "user_s": usage.ru_utime, "system_s": usage.ru_stime, "minor_faults": usage.ru_minflt,
            "max_rss_mib": usage.ru_maxrss / 1024.0}


def run_once(data: Path, run_dir: Path, *, keep: bool, steps: int, threads: int) -> dict:
    cmd = [sys.executable, "-m", "maximask.cli.train_cli", "maximask", "--data", str(data), "--run-dir", str(run_dir),
           "--width", "0.5", "--batch-norm", "--batch-size", "4", "--steps", str(steps), "--threads", str(threads),
           "--log-every", "5", "--val-every", "0", "--checkpoint-every", "0", "--calib-max-images", "4",
           "--seed", "0", "--no-progress"]
    usage = _measured(cmd, keep)
    return {"keep_freed_memory": keep, "s_per_step": seconds_per_step(run_dir / "log.jsonl"), **usage}


def run_inference(image: Path, out: Path, *, keep: bool, threads: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        f.unlink()
    cmd = [sys.executable, "-m", "maximask.cli.maximask_cli", str(image), "-o", str(out), "--threads", str(threads), "-q"]
    return {"keep_freed_memory": keep, **_measured(cmd, keep)}


def _report(runs: list[dict], rate: str, rate_fmt: str, path: Path, info: dict) -> None:
    """Medians per setting, speed-up of ``rate`` (smaller is faster); write ``path`` and print the table."""
    keys = (rate, "user_s", "system_s", "minor_faults", "max_rss_mib")
    summary = {}
    for keep in (False, True):
        rs = [r for r in runs if r["keep_freed_memory"] == keep]
        summary["keep" if keep else "default"] = {k: float(np.median([r[k] for r in rs])) for k in keys}
    speedup = summary["default"][rate] / summary["keep"][rate]
    report = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}", **info,
              "runs": runs, "median": summary, "speedup": speedup}
    path.write_text(json.dumps(report, indent=1))
    label = rate.replace("_per_", "/").replace("_s", " s")
    print(f"{'setting':10s} {label:>7s} {'user s':>7s} {'sys s':>7s} {'faults':>10s} {'RSS MiB':>8s}")
    for name, m in summary.items():
        print(f"{name:10s} {m[rate]:{rate_fmt}} {m['user_s']:7.1f} {m['system_s']:7.2f} {m['minor_faults']:10.0f} "
              f"{m['max_rss_mib']:8.0f}")
    print(f"speed-up {speedup:.2f}x")


def inference_main(args) -> int:
    runs = []
    for _ in range(args.repeats):
        for keep in (False, True):
            runs.append(run_inference(args.inference, args.out / "masks", keep=keep, threads=args.threads))
            print(json.dumps(runs[-1]))
    _report(runs, "wall_s", "7.2f", args.out / "allocator_inference_speed.json",
            {"image": str(args.inference), "threads": args.threads})
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--inference", type=Path, help="time `maximask IMAGE` instead of training")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.inference is not None:
        return inference_main(args)
    data = args.out / "data"
    if not (data / "dataset.json").exists():
        subprocess.run([sys.executable, "-m", "maximask.cli.sim_cli", "maximask", str(data), "--n", "64",
                        "--size", str(args.size), "--seed", "0", "--quiet"], check=True)
    runs = []
    for r in range(args.repeats):
        for keep in (False, True):
            run_dir = args.out / f"run_{'keep' if keep else 'default'}_{r}"
            if run_dir.exists():
                for f in run_dir.iterdir():
                    f.unlink()
            runs.append(run_once(data, run_dir, keep=keep, steps=args.steps, threads=args.threads))
            print(json.dumps(runs[-1]))
    _report(runs, "s_per_step", "7.3f", args.out / "allocator_speed.json",
            {"size": args.size, "threads": args.threads, "steps": args.steps})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
