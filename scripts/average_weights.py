"""Average the weights of checkpoints of one training chain into a model file.

    python scripts/average_weights.py OUT_DIR RUN_DIR [RUN_DIR ...] [--weights W ...]

Every RUN_DIR holds a ``checkpoint.pt`` of the same architecture (stages of one chain, each
started with ``--init`` from the previous one, so that their weights lie in one basin and a
weighted mean of them is a network too). Parameters and batch-normalisation statistics are
averaged with ``--weights`` (default: equal), batch normalisation is folded into the
convolutions as at export, and the result is written to ``OUT_DIR/<kind>`` with the model card
of the last RUN_DIR (its training record, a note naming the average) plus that run's
``config.toml`` and ``log.jsonl``, so that ``scripts/ship_model.py OUT_DIR KIND`` and
``maximask-train calibrate`` take it like a run. Recalibrate the priors and thresholds
afterwards: they are the last run's.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from maximask.modelfile import read_card, resolve_model_path, save_model
from maximask.train.config import TrainConfig
from maximask.train.trainer import build_model


def average_state_dicts(states: list[dict], weights: list[float]) -> dict:
    """Weighted mean of floating-point tensors (others, e.g. batch counters, from the last state)."""
    total = float(sum(weights))
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            out[key] = sum(w / total * s[key] for s, w in zip(states, weights))
        else:
            out[key] = last
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("run_dirs", type=Path, nargs="+")
    p.add_argument("--weights", type=float, nargs="+", help="one per run (default: equal)")
    args = p.parse_args(argv)
    weights = args.weights or [1.0] * len(args.run_dirs)
    if len(weights) != len(args.run_dirs) or min(weights) < 0 or sum(weights) <= 0:
        p.error("--weights: one non-negative weight per run, not all zero")
    last = args.run_dirs[-1]
    config = TrainConfig.load(last / "config.toml")
    card = read_card(resolve_model_path(last, kind=config.kind))
    states = [torch.load(r / "checkpoint.pt", map_location="cpu", weights_only=False)["model"] for r in args.run_dirs]
    shape = tuple(card["training"].get("image_shape", (256, 256)))
    model = build_model(config.replace(init=""), shape)
    model.load_state_dict(average_state_dicts(states, weights))
    model.eval()
    if config.kind == "maximask" and model.arch_args.get("batch_norm"):
        from maximask.nets.maximask_net import fold_batch_norm

        model = fold_batch_norm(model)
    total = sum(weights)
    terms = " + ".join(f"{w / total:.3g} x {r}" for r, w in zip(args.run_dirs, weights))
    card["training"] = dict(card["training"], averaged_from=[str(r) for r in args.run_dirs],
                            averaging_weights=[w / total for w in weights], note=f"weight average: {terms}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = save_model(args.out_dir / config.kind, model, card)
    for name in ("config.toml", "log.jsonl"):
        shutil.copyfile(last / name, args.out_dir / name)
    print(f"wrote {out}: {terms}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
