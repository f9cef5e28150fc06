"""Reading a training run's ``log.jsonl`` (written by :mod:`maximask.train.trainer`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["read_run_log"]


def read_run_log(path: str | os.PathLike) -> tuple[float, list[dict]]:
    """Total wall time and validation records of a run.

    Parameters
    ----------
    path : path-like
        ``log.jsonl`` or the run directory holding it.

    Returns
    -------
    wall_s : float
        Wall time of the run, seconds, summed over resumed sessions (logs of
        trainers that restarted the clock at each session are summed per session).
    validations : list of dict
        The validation records (``step``, ``val_loss``, ``val_auc``), each with
        ``wall_s``, the run's wall time when it was made.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "log.jsonl"
    total, last, validations = 0.0, 0.0, []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "val_auc" in rec:
            validations.append({**rec, "wall_s": round(total + last, 1)})
        elif "wall_s" in rec:
            if rec["wall_s"] < last:  # a session that restarted the clock
                total += last
            last = rec["wall_s"]
    return total + last, validations
