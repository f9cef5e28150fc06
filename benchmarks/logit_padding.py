"""Speed of MaxiMaskNet.forward_inference with and without padded logit channels.

``forward_inference`` computes its full-resolution maps of ``n_classes`` (14) channels
with the channel count rounded up to ``LOGIT_CHANNEL_MULTIPLE`` (16). This script times
the network alone on one tile both ways, alternating the two in the same process (the
unpadded way is ``LOGIT_CHANNEL_MULTIPLE = 1``), and checks that the logits are equal.

    python benchmarks/logit_padding.py --threads 2 --tile 1024 --repeat 10 --out benchmarks/logit_padding.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tile", type=int, default=1024, help="square input size, pixels")
    p.add_argument("--widths", type=float, nargs="+", default=[0.5, 1.0])
    p.add_argument("--repeat", type=int, default=10, help="timed calls of each way (alternating)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON file for the results")
    args = p.parse_args(argv)

    import torch

    import maximask.nets.maximask_net as mm
    from maximask.allocator import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    padded_multiple = mm.LOGIT_CHANNEL_MULTIPLE
    gen = torch.Generator().manual_seed(args.seed)
    results = []
    for width in args.widths:
        torch.manual_seed(args.seed)
        net = mm.MaxiMaskNet(width=width).eval().to(memory_format=torch.channels_last)
        x = torch.randn(1, 1, args.tile, args.tile, generator=gen).contiguous(memory_format=torch.channels_last)
        times = {"unpadded": [], "padded": []}
        with torch.inference_mode():
            outputs = {}
            for way, multiple in (("unpadded", 1), ("padded", padded_multiple)):
                mm.LOGIT_CHANNEL_MULTIPLE = multiple
                outputs[way] = net.forward_inference(x)  # warm-up, and the output compared below
            max_diff = float((outputs["unpadded"] - outputs["padded"]).abs().max())
            del outputs
            for _ in range(args.repeat):
                for way, multiple in (("unpadded", 1), ("padded", padded_multiple)):
                    mm.LOGIT_CHANNEL_MULTIPLE = multiple
                    t0 = time.perf_counter()
                    net.forward_inference(x)
                    times[way].append(time.perf_counter() - t0)
        mm.LOGIT_CHANNEL_MULTIPLE = padded_multiple
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "width": width,
            "tile": args.tile,
            "median_s": med,
            "mp_per_s": {k: args.tile**2 / v / 1e6 for k, v in med.items()},
            "speedup_of_medians": med["unpadded"] / med["padded"],
            "max_abs_logit_difference": max_diff,
            "times_s": times,
        }
        results.append(row)
        print(f"width {width}: unpadded {row['mp_per_s']['unpadded']:.3f} MP/s, padded {row['mp_per_s']['padded']:.3f} "
              f"MP/s, speedup {row['speedup_of_medians']:.3f}, max |logit difference| {max_diff:.2e}", flush=True)
    if args.out:
        from bench_inference import _machine  # this directory is on sys.path when run as a script

        machine = dict(_machine(), threads=args.threads)
        with open(args.out, "w") as fh:
            json.dump({"machine": machine, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
