"""Copy a trained run's model file into the package, with its reference output and run record.

    python scripts/ship_model.py RUN_DIR KIND [--note TEXT] [--dest maximask/models]

Adds to the model card: ``reference_output`` (see :mod:`maximask.reference_output`),
the run's total wall time summed over resumed sessions (from ``log.jsonl``),
the validation history, a free-text note (machine, simulator version) and,
for a run started with ``--init`` from another run (its checkpoint or model
file, or a shipped model file whose card records its own training), that run's
steps and wall time (``init_run``) and the wall time of the whole chain
(``wall_s_total``); with ``--tile-margin``, the tile margin measured for the model
(``tile_margin``, the default of ``maximask --margin``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from maximask.modelfile import ModelFileError, load_model, read_card, resolve_model_path, save_model
from maximask.reference_output import reference_output
from maximask.train.config import TrainConfig
from maximask.train.runlog import read_run_log


def _init_chain(init: str) -> list[dict]:
    """Runs that an ``--init`` chain started from, newest first: run dir, steps, wall time, its own init."""
    chain = []
    while init:
        path = Path(init)
        run_dir = path.parent if path.suffix in (".pt", ".json", ".safetensors") else path
        cfg_path = run_dir / "config.toml"
        if not (run_dir / "log.jsonl").is_file() or not cfg_path.is_file():
            chain.extend(_card_chain(path))
            break
        cfg = TrainConfig.load(cfg_path)
        wall, _ = read_run_log(run_dir)
        chain.append({"run_dir": str(run_dir), "steps": cfg.steps, "wall_s": round(wall, 1),
                      "data": list(cfg.data), "lr": cfg.lr, "init": cfg.init})
        init = cfg.init
    return chain


def _card_chain(path: Path) -> list[dict]:
    """The training record of a model file away from its run directory (a shipped model): its run and init chain."""
    try:
        training = read_card(resolve_model_path(path)).get("training", {})
    except ModelFileError:
        return []
    cfg = training.get("config", {})
    if not cfg:
        return []
    own = {"run_dir": cfg.get("run_dir"), "steps": cfg.get("steps"), "wall_s": training.get("wall_s", 0.0),
           "data": list(cfg.get("data", [])), "lr": cfg.get("lr"), "init": cfg.get("init")}
    return [own, *training.get("init_run", [])]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("kind", choices=["maximask", "maxitrack"])
    p.add_argument("--note", default="")
    p.add_argument("--dest", type=Path, default=Path("maximask/models"))
    p.add_argument("--tile-margin", type=int, default=None,
                   help="MaxiMask: the tile margin (pixels) measured seamless for this model with "
                   "benchmarks/tile_seams.py, recorded in the card as tile_margin (the default of --margin)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    model, card = load_model(args.run_dir, kind=args.kind)
    wall, validations = read_run_log(args.run_dir)
    size = card["arch_args"].get("input_size", 128)
    card["reference_output"] = reference_output(model, kind=args.kind, size=size)
    training = card.setdefault("training", {})
    if wall > training.get("wall_s", 0):  # runs resumed by older trainers recorded their last session only
        training["wall_s_last_session"] = training.get("wall_s")
        training["wall_s"] = round(wall, 1)
    training["validation_history"] = [{k: v[k] for k in ("step", "val_loss", "val_auc", "wall_s")} for v in validations]
    if args.note:
        training["note"] = args.note
    if args.tile_margin is not None:
        card["tile_margin"] = int(args.tile_margin)
    chain = _init_chain(training.get("config", {}).get("init", ""))
    if chain:
        training["init_run"] = chain
        training["wall_s_total"] = round(training["wall_s"] + sum(r["wall_s"] for r in chain), 1)
    out = save_model(args.dest / args.kind, model, card)
    print(f"wrote {out} ({out.with_suffix('.safetensors').stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
