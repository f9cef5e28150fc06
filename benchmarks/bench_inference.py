"""Speed and peak memory of MaxiMask and MaxiTrack inference on a synthetic exposure.

Each configuration runs in its own subprocess so that its peak resident memory
(``ru_maxrss``) is its own. Models have random weights (speed does not depend
on the weights). Results go to a JSON file and a table on stdout.

    python benchmarks/bench_inference.py --threads 2 --out benchmarks/results.json
    python benchmarks/bench_inference.py --widths 0.25 --shape 1024 1024 --repeat 1   # quick

Times include everything the command line does per image HDU except FITS
reading/writing: background and noise (sep), compression, tiling, the network,
prior update, thresholds and stitching. Like the command-line tools, each run keeps
freed memory for reuse (:func:`maximask.allocator.keep_freed_memory`);
``--glibc-defaults`` measures a process that leaves the C allocator as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time


def _machine() -> dict:
    import torch

    cpu = platform.processor() or ""
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = [f for f in line.split(":", 1)[1].split()
                             if f.startswith(("avx", "amx", "fma")) or f in ("f16c",)]
    except OSError:
        pass
    return {
        "cpu": cpu,
        "simd_flags": flags,
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": os.getloadavg(),
    }


def _image(shape, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    img = rng.normal(1000.0, 10.0, shape).astype(np.float32)
    hits = rng.random(shape) < 1e-4
    img[hits] += rng.uniform(200, 5000, hits.sum()).astype(np.float32)
    return img


def run_one(cfg: dict) -> dict:
    """One configuration, in this process."""
    import resource

    import torch

    from maximask.allocator import keep_freed_memory
    from maximask.inference import MaskPredictor, TrackPredictor, configure_threads, plan_tiles
    from maximask.nets import create_model
    from maximask.posterior import PosteriorSettings

    if cfg.get("keep_freed_memory", True):  # as the command-line tools do
        keep_freed_memory()
    configure_threads(cfg["threads"])
    torch.manual_seed(0)
    device = torch.device(cfg.get("device", "cpu"))
    shape = tuple(cfg["shape"])
    img = _image(shape)
    times = []
    if cfg["kind"] == "maximask":
        if cfg.get("logit_channel_multiple"):  # 1: the full-resolution logit maps unpadded (14 channels)
            import maximask.nets.maximask_net as maximask_net

            maximask_net.LOGIT_CHANNEL_MULTIPLE = int(cfg["logit_channel_multiple"])
        model = create_model("maximask", width=cfg["width"]).eval().to(device)
        settings = PosteriorSettings(thresholds=None) if cfg["output"] == "proba" else PosteriorSettings()
        pred = MaskPredictor(model, {}, settings, tile=cfg["tile"], margin=cfg["margin"], batch_size=cfg["batch_size"],
                             precision=cfg.get("precision", "fp32"), views=cfg.get("views", 1))
        pred.predict(_image((256, 256), seed=1))  # warm-up (kernel selection)
        for _ in range(cfg["repeat"]):
            t = time.perf_counter()
            out = pred.predict(img)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
            del out
        tiles = plan_tiles(shape, cfg["tile"], cfg["margin"])
        computed = sum((t.y1 - t.y0) * (t.x1 - t.x0) for t in tiles)
        extra = {"n_tiles": len(tiles), "overlap_factor": computed / (shape[0] * shape[1])}
        # the network alone on one tile (no preprocessing, no overlap), for comparison
        x = torch.zeros(1, 1, cfg["tile"], cfg["tile"], device=device)
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        from maximask.inference import precision_context

        with torch.inference_mode(), precision_context(cfg.get("precision", "fp32"), device):
            pred.model.forward_inference(x)
            t = time.perf_counter()
            pred.model.forward_inference(x)
            extra["network_only_mp_per_s"] = cfg["tile"] ** 2 / 1e6 / (time.perf_counter() - t)
    elif cfg["kind"] == "lacosmic":
        import astroscrappy

        extra = {}
        for _ in range(cfg["repeat"]):
            t = time.perf_counter()
            astroscrappy.detect_cosmics(img, gain=1.0, readnoise=5.0, sigclip=4.5, sigfrac=0.3, objlim=5.0, niter=4)
            times.append(time.perf_counter() - t)
    else:
        arch = {"batch_norm": True, "global_pool": True} if cfg.get("track_bn_pool") else {}
        model = create_model("maxitrack", width=cfg["width"], input_size=cfg.get("input_size", 400), **arch)
        model = model.eval().to(device)
        pred = TrackPredictor(model, {}, 0.05, batch_size=cfg["batch_size"], precision=cfg.get("precision", "fp32"),
                              views=cfg.get("views", 1))
        pred.predict(_image((400, 400), seed=1))
        for _ in range(cfg["repeat"]):
            t = time.perf_counter()
            pred.predict(img)
            times.append(time.perf_counter() - t)
        extra = {}
    best = min(times)
    mp = shape[0] * shape[1] / 1e6
    return {
        **cfg,
        **extra,
        "seconds": times,
        "best_seconds": best,
        "mp_per_s": mp / best,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _merge_rounds(a: dict, b: dict) -> dict:
    """One configuration's results over two rounds: all times, the best, the largest peak memory."""
    out = {**a, "seconds": a["seconds"] + b["seconds"], "peak_rss_mb": max(a["peak_rss_mb"], b["peak_rss_mb"])}
    out["best_seconds"] = min(out["seconds"])
    out["mp_per_s"] = a["mp_per_s"] * a["best_seconds"] / out["best_seconds"]
    if "network_only_mp_per_s" in a:
        out["network_only_mp_per_s"] = max(a["network_only_mp_per_s"], b["network_only_mp_per_s"])
    return out


def _print_run(res: dict, args) -> None:
    label = res["kind"] + (f" width {res['width']}" if res["width"] else "")
    label += f" {res['output']}" if res["kind"] == "maximask" else ""
    label += f" {res['precision']}" if res.get("precision", "fp32") != "fp32" else ""
    label += f" views {res['views']}" if res.get("views", 1) != 1 else ""
    label += f" margin {res['margin']}" if args.margins and res["kind"] == "maximask" else ""
    label += f" logit multiple {res['logit_channel_multiple']}" if res.get("logit_channel_multiple") else ""
    label += " glibc defaults" if args.glibc_defaults else ""
    print(f"{label:<28} {res['mp_per_s']:7.3f} MP/s  best {res['best_seconds']:7.1f} s  "
          f"peak RSS {res['peak_rss_mb']:6.0f} MB", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.25], help="MaxiMask widths")
    p.add_argument("--shape", type=int, nargs=2, default=[2048, 4096], metavar=("NY", "NX"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tile", type=int, default=None, help="default: maximask.inference.DEFAULT_TILE")
    p.add_argument("--margins", type=int, nargs="+", default=None,
                   help="MaxiMask tile margins, each its own run (default: maximask.inference.DEFAULT_MARGIN)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--outputs", nargs="+", default=["masks"], choices=["masks", "proba"])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--no-maxitrack", action="store_true")
    p.add_argument("--track-width", type=float, default=1.0, help="MaxiTrack width")
    p.add_argument("--track-size", type=int, default=400, help="MaxiTrack input size, pixels")
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"],
                   help="network arithmetic (maximask/maxitrack --precision)")
    p.add_argument("--views", type=int, nargs="+", default=[1], choices=[1, 2, 4, 8],
                   help="test-time views (maximask/maxitrack --views)")
    p.add_argument("--track-bn-pool", action="store_true",
                   help="MaxiTrack with batch normalisation and global pooling (the shipped architecture)")
    p.add_argument("--lacosmic", action="store_true", help="also time LA Cosmic (astroscrappy, 4 iterations)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--glibc-defaults", action="store_true",
                   help="leave glibc's allocator as it is (as a library user does) instead of keeping freed "
                   "memory as the command-line tools do (maximask.allocator)")
    p.add_argument("--logit-multiples", type=int, nargs="+", default=None,
                   help="MaxiMask: LOGIT_CHANNEL_MULTIPLE values, each its own run (1: unpadded logit maps; "
                   "default: the package's)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the whole list of configurations this many times, interleaved, and keep each "
                   "one's best (on a machine whose speed drifts, this compares configurations fairly)")
    p.add_argument("--out", default="benchmarks/results.json")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one JSON configuration
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return 0
    from maximask.inference import DEFAULT_MARGIN, DEFAULT_TILE

    base = {"shape": args.shape, "threads": args.threads, "repeat": args.repeat, "device": args.device,
            "keep_freed_memory": not args.glibc_defaults}
    configs = [
        {**base, "kind": "maximask", "width": w, "output": o, "tile": args.tile or DEFAULT_TILE,
         "margin": m, "batch_size": args.batch_size, "precision": pr, "views": v,
         **({"logit_channel_multiple": lm} if lm else {})}
        for w in args.widths for o in args.outputs for pr in args.precisions for v in args.views
        for m in (args.margins or [DEFAULT_MARGIN]) for lm in (args.logit_multiples or [None])
    ]
    if not args.no_maxitrack:
        configs += [{**base, "kind": "maxitrack", "width": args.track_width, "input_size": args.track_size,
                     "batch_size": 16, "precision": pr, "track_bn_pool": args.track_bn_pool, "views": v}
                    for pr in args.precisions for v in args.views]
    if args.lacosmic:
        configs.append({**base, "kind": "lacosmic", "width": None})
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    results = {"machine": _machine(), "runs": []}
    merged: list[dict | None] = [None] * len(configs)
    for round_ in range(max(1, args.rounds)):
        for i, cfg in enumerate(configs):
            r = subprocess.run([sys.executable, __file__, "--one", json.dumps(cfg)], capture_output=True, text=True,
                               env=env)
            if r.returncode:
                print(r.stderr, file=sys.stderr)
                return 1
            res = json.loads(r.stdout.strip().splitlines()[-1])
            merged[i] = res if merged[i] is None else _merge_rounds(merged[i], res)
            if round_ == args.rounds - 1 or args.rounds <= 1:
                _print_run(merged[i], args)
    results["runs"] = merged
    results["rounds"] = max(1, args.rounds)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=2)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
