"""Speed of MaxiTrack inference with and without the batch normalisations folded into the convolutions.

``TrackPredictor`` runs a copy of the network whose eval-mode batch normalisations are merged
into their convolutions (:func:`maximask.nets.maxitrack_net.fold_batch_norm_for_inference`).
This script times ``TrackPredictor.predict`` on a synthetic exposure both ways, alternating
the two in one process, with random weights of the shipped architecture, and compares the
probabilities.

    python benchmarks/maxitrack_folding.py --threads 2 --repeat 5 --out benchmarks/maxitrack_folding.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shape", type=int, nargs=2, default=[2048, 4096], metavar=("NY", "NX"))
    p.add_argument("--repeat", type=int, default=5, help="timed calls of each way (alternating)")
    p.add_argument("--out", default=None, help="JSON file for the results")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    import maximask.nets.maxitrack_net as maxitrack_net
    from bench_inference import _image, _machine  # this directory is on sys.path when run as a script
    from maximask.allocator import keep_freed_memory
    from maximask.inference import TrackPredictor
    from maximask.nets import create_model

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("maxitrack", width=0.5, input_size=128, batch_norm=True, global_pool=True).eval()
    with torch.no_grad():  # non-trivial eval-mode statistics, as a trained model has
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    image = _image(tuple(args.shape))
    fold = maxitrack_net.fold_batch_norm_for_inference
    ways = {"folded": fold, "unfolded": lambda m: m.eval()}
    predictors = {}
    for way, fn in ways.items():
        maxitrack_net.fold_batch_norm_for_inference = fn
        predictors[way] = TrackPredictor(model, {}, 0.05)
    maxitrack_net.fold_batch_norm_for_inference = fold
    probabilities = {way: pr.predict(image) for way, pr in predictors.items()}  # also the warm-up
    times = {way: [] for way in ways}
    for _ in range(args.repeat):
        for way, pr in predictors.items():
            t0 = time.perf_counter()
            pr.predict(image)
            times[way].append(time.perf_counter() - t0)
    mp = args.shape[0] * args.shape[1] / 1e6
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {"machine": dict(_machine(), threads=args.threads), "shape": args.shape, "times_s": times,
           "median_s": med, "mp_per_s": {k: mp / v for k, v in med.items()},
           "speedup_of_medians": med["unfolded"] / med["folded"],
           "probability": probabilities,
           "max_abs_probability_difference": float(np.abs(probabilities["folded"] - probabilities["unfolded"]))}
    print(f"unfolded {res['mp_per_s']['unfolded']:.2f} MP/s, folded {res['mp_per_s']['folded']:.2f} MP/s, "
          f"speedup {res['speedup_of_medians']:.3f}, |probability difference| {res['max_abs_probability_difference']:.1e}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
