"""Simulator throughput: samples per second, single process and with shard workers.

Usage::

    python benchmarks/bench_simulator.py --size 256 --n 200 --workers 2
    python benchmarks/bench_simulator.py --size 128 --n 200 --workers 1 --profile

Prints samples/s of (1) :func:`maximask.simulate.pipeline.simulate_sample` in
this process and (2) :func:`maximask.simulate.dataset.generate_shards` with
``--workers`` processes (shards written to a temporary directory), and the load
average, since other jobs on the machine change the numbers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real-data", default=None)
    ap.add_argument("--profile", action="store_true", help="cProfile the single-process loop")
    args = ap.parse_args()

    import maximask.simulate  # noqa: F401
    from maximask.simulate.cosmic_rays import load_cosmic_ray_library
    from maximask.simulate.dataset import ShardJob, generate_shards
    from maximask.simulate.pipeline import simulate_sample

    shape = (args.size, args.size)
    opts = {}
    lib = load_cosmic_ray_library(args.real_data) if args.real_data else None
    if lib is not None:
        opts["CR"] = {"library": lib}
    rng = np.random.default_rng(args.seed)
    simulate_sample(shape, rng=rng, options=opts)  # warm-up (imports, GalSim tables)
    n1 = max(1, args.n // 2)

    def loop():
        for _ in range(n1):
            simulate_sample(shape, rng=rng, options=opts)

    t0 = time.perf_counter()
    c0 = time.process_time()
    if args.profile:
        import cProfile
        import pstats

        cProfile.runctx("loop()", globals(), locals(), "/tmp/bench_simulator.prof")
        pstats.Stats("/tmp/bench_simulator.prof").sort_stats("tottime").print_stats(15)
    else:
        loop()
    dt1 = time.perf_counter() - t0
    cpu1 = time.process_time() - c0
    print(f"single process : {n1 / dt1:6.1f} samples/s wall ({1000 * dt1 / n1:.1f} ms/sample, {args.size}x{args.size}); "
          f"{n1 / cpu1:6.1f} samples per CPU-second ({1000 * cpu1 / n1:.1f} CPU-ms/sample, insensitive to other jobs)")

    job = ShardJob(kind="maximask", shape=shape, real_data=args.real_data)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_shards(tmp, job, n=args.n, seed=args.seed, shard_size=max(1, args.n // (4 * args.workers)), workers=args.workers)
        dt2 = time.perf_counter() - t0
    print(f"shards, {args.workers} workers: {args.n / dt2:6.1f} samples/s (incl. process start and writing)")
    print(f"load average: {os.getloadavg()}, cpus: {os.cpu_count()}")


if __name__ == "__main__":
    main()
