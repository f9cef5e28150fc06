"""Average the weights of stages of one training chain into a model file.

    python scripts/average_weights.py OUT_DIR STAGE STAGE [STAGE ...] [--weights W ...]

Every STAGE is either a run directory holding a ``checkpoint.pt`` or a model file (a directory
with ``<kind>.json`` and its ``.safetensors``, or the card itself, e.g. a shipped model), all of
the same architecture: stages of one chain, each started with ``--init`` from the previous one,
so that their weights lie in one basin and a weighted mean of them is a network too. Run
directories and model files cannot be mixed (a checkpoint trained with batch normalisation holds
its statistics, an exported file holds them folded into the convolutions). Parameters (and
batch-normalisation statistics) are averaged with ``--weights`` (default: equal); from
checkpoints, batch normalisation is folded into the convolutions as at export. The result is
written to ``OUT_DIR/<kind>`` with the model card of the last STAGE (its training record, a note
naming the average) plus the ``config.toml`` and ``log.jsonl`` beside it when present, so that
``scripts/ship_model.py OUT_DIR KIND`` and ``maximask-train calibrate`` take it like a run.
Recalibrate the priors and thresholds afterwards: they are the last stage's.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from maximask.modelfile import load_model, read_card, resolve_model_path, save_model
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


def is_run_dir(path: Path) -> bool:
    """True for a training run directory (a ``checkpoint.pt`` and its ``config.toml``)."""
    return path.is_dir() and (path / "checkpoint.pt").is_file() and (path / "config.toml").is_file()


def load_from_runs(run_dirs: list[Path], weights: list[float]) -> tuple[torch.nn.Module, dict, str, Path]:
    """Averaged network (batch norm folded), card and kind of the last run, and the folder of its record."""
    last = run_dirs[-1]
    config = TrainConfig.load(last / "config.toml")
    card = read_card(resolve_model_path(last, kind=config.kind))
    states = [torch.load(r / "checkpoint.pt", map_location="cpu", weights_only=False)["model"] for r in run_dirs]
    shape = tuple(card["training"].get("image_shape", (256, 256)))
    model = build_model(config.replace(init=""), shape)
    model.load_state_dict(average_state_dicts(states, weights))
    model.eval()
    if config.kind == "maximask" and model.arch_args.get("batch_norm"):
        from maximask.nets.maximask_net import fold_batch_norm

        model = fold_batch_norm(model)
    return model, card, config.kind, last


def load_from_model_files(paths: list[Path], weights: list[float]) -> tuple[torch.nn.Module, dict, str, Path]:
    """Averaged network, card and kind of the last model file, and the folder holding that file."""
    cards = [resolve_model_path(p) for p in paths]
    last_card = read_card(cards[-1])
    kind = last_card.get("kind", last_card["arch"])
    loaded = [load_model(c, kind=kind) for c in cards]
    model, card = loaded[-1]
    for (m, c), path in zip(loaded, cards):
        if c["arch"] != card["arch"] or c["arch_args"] != card["arch_args"]:
            msg = f"{path}: architecture {c['arch']} {c['arch_args']} differs from the last stage's {card['arch']} {card['arch_args']}"
            raise SystemExit(msg)
    model.load_state_dict(average_state_dicts([m.state_dict() for m, _ in loaded], weights))
    model.eval()
    card = {k: v for k, v in card.items() if k != "weights_sha256"}
    return model, card, kind, cards[-1].parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("stages", type=Path, nargs="+", help="run directories (checkpoint.pt) or model files")
    p.add_argument("--weights", type=float, nargs="+", help="one per stage (default: equal)")
    args = p.parse_args(argv)
    weights = args.weights or [1.0] * len(args.stages)
    if len(weights) != len(args.stages) or min(weights) < 0 or sum(weights) <= 0:
        p.error("--weights: one non-negative weight per stage, not all zero")
    runs = [is_run_dir(s) for s in args.stages]
    if all(runs):
        model, card, kind, record = load_from_runs(args.stages, weights)
    elif not any(runs):
        model, card, kind, record = load_from_model_files(args.stages, weights)
    else:
        p.error("stages: all run directories (checkpoint.pt) or all model files, not a mix")
    total = sum(weights)
    terms = " + ".join(f"{w / total:.3g} x {s}" for s, w in zip(args.stages, weights))
    card["training"] = dict(card["training"], averaged_from=[str(s) for s in args.stages],
                            averaging_weights=[w / total for w in weights], note=f"weight average: {terms}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = save_model(args.out_dir / kind, model, card)
    for name in ("config.toml", "log.jsonl"):
        if (record / name).is_file() and (record / name).resolve() != (args.out_dir / name).resolve():
            shutil.copyfile(record / name, args.out_dir / name)
    print(f"wrote {out}: {terms}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
