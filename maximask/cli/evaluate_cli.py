"""``maximask-evaluate``: metrics and plots of a MaxiMask or MaxiTrack model on test shards.

Examples
--------
    maximask-evaluate maximask runs/a --data test/all --single-sets test/single --cr-sets test/cr --out eval/a
    maximask-evaluate maxitrack runs/t --data test/track --out eval/t
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from maximask.inference import VIEWS

    parser = argparse.ArgumentParser(prog="maximask-evaluate", description="Evaluate MaxiMask / MaxiTrack models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for kind in ("maximask", "maxitrack"):
        p = sub.add_parser(kind, help=f"evaluate a {kind} model")
        p.add_argument("model", help="run directory, model card (.json) or weights (.safetensors)")
        p.add_argument("--data", nargs="+", required=True, help="test shard directories or files")
        p.add_argument("--out", required=True, type=Path, help="report directory")
        if kind == "maximask":
            p.add_argument("--single-sets", type=Path, help="directory of single-contaminant sets (Table 7)")
            p.add_argument("--cr-sets", type=Path, help="directory of cosmic-ray comparison sets (LA Cosmic)")
            p.add_argument("--bins", type=int, default=10_000, help="probability bins per class")
        else:
            p.add_argument("--prior", type=float, default=0.05, help="observation prior of tracking errors")
        p.add_argument("--views", type=int, choices=list(VIEWS),
                       help="test-time views: predictions in N orientations, averaged (default: the model card's)")
        p.add_argument("--max-images", type=int, help="images per set")
        p.add_argument("--batch-size", type=int, default=4)
        p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
        p.add_argument("--threads", type=int, help="CPU threads for torch")
        p.add_argument("--no-plots", action="store_true")
        p.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    import torch

    from maximask.evaluate.report import evaluate_maximask, evaluate_maxitrack
    from maximask.modelfile import ModelFileError, load_model
    from maximask.train.shards import ShardError
    from maximask.train.trainer import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model, card = load_model(args.model, kind=args.command, device=resolve_device(args.device))
        if args.command == "maximask":
            report = evaluate_maximask(model, card, args.data, out_dir=args.out, single_sets=args.single_sets,
                                       cr_sets=args.cr_sets, batch_size=args.batch_size,
                                       max_images=args.max_images, n_bins=args.bins, plots_on=not args.no_plots,
                                       views=args.views)
            aucs = ", ".join(f"{n} {v['auc']:.4f}" for n, v in report["classes"].items() if v["auc"] is not None)
            print(f"{report['n_images']} images; AUC: {aucs}")
        else:
            report = evaluate_maxitrack(model, card, args.data, out_dir=args.out, observation_prior=args.prior,
                                        batch_size=args.batch_size, max_images=args.max_images,
                                        plots_on=not args.no_plots, views=args.views)
            print(f"{report['n_images']} images; AUC {report['auc']}; best MCC {report['best_mcc']:.4f}")
    except (ModelFileError, ShardError, FileNotFoundError) as exc:
        print(f"maximask-evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
