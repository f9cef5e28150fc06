"""The published tool's configuration files: ``classes.flags``, ``classes.priors``, ``classes.thresh``.

Each holds two whitespace-separated columns, class name and value, one line per
class (14 lines, in the order of :data:`maximask.classes.CLASS_NAMES`)::

    CR  1
    HCL 1
    ...
    BG  0

Blank lines and ``#`` comments are ignored; lines may come in any order but
every class must appear exactly once. Flags are 0/1, priors lie in (0, 1),
thresholds in [0, 1].
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from maximask.classes import CLASS_NAMES, N_CLASSES

__all__ = ["ConfigFileError", "FILE_NAMES", "read_config_file", "write_config_file", "read_config_dir"]

#: kind -> file name in a configuration directory.
FILE_NAMES = {"flags": "classes.flags", "priors": "classes.priors", "thresh": "classes.thresh"}


class ConfigFileError(Exception):
    """A configuration file is missing or malformed (one-line message naming the file)."""


def _parse_value(kind: str, text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        msg = f"{where}: {text!r} is not a number"
        raise ConfigFileError(msg) from None
    if kind == "flags":
        if value not in (0.0, 1.0):
            msg = f"{where}: flag must be 0 or 1, got {text}"
            raise ConfigFileError(msg)
    elif kind == "priors":
        if not (0.0 < value < 1.0):
            msg = f"{where}: prior must lie strictly between 0 and 1, got {text}"
            raise ConfigFileError(msg)
    elif not (0.0 <= value <= 1.0):
        msg = f"{where}: threshold must lie between 0 and 1, got {text}"
        raise ConfigFileError(msg)
    return value


def read_config_file(path: str | os.PathLike, kind: str) -> np.ndarray:
    """Read one configuration file.

    Parameters
    ----------
    path : path-like
    kind : {"flags", "priors", "thresh"}

    Returns
    -------
    ndarray, shape (14,): bool for flags, float64 otherwise, in class order.

    Raises
    ------
    ConfigFileError
    """
    if kind not in FILE_NAMES:
        msg = f"kind must be one of {tuple(FILE_NAMES)}, got {kind!r}"
        raise ValueError(msg)
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        msg = f"{path}: configuration file not found"
        raise ConfigFileError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: unreadable configuration file ({exc.__class__.__name__})"
        raise ConfigFileError(msg) from None
    values: dict[str, float] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{lineno}"
        parts = line.split()
        if len(parts) != 2:
            msg = f"{where}: expected 'CLASS VALUE', got {raw.strip()!r}"
            raise ConfigFileError(msg)
        name = parts[0].upper()
        if name not in CLASS_NAMES:
            msg = f"{where}: unknown class {parts[0]!r} (expected one of {' '.join(CLASS_NAMES)})"
            raise ConfigFileError(msg)
        if name in values:
            msg = f"{where}: class {name} appears twice"
            raise ConfigFileError(msg)
        values[name] = _parse_value(kind, parts[1], where)
    missing = [n for n in CLASS_NAMES if n not in values]
    if missing:
        msg = f"{path}: {len(values)} classes instead of {N_CLASSES}, missing {' '.join(missing)}"
        raise ConfigFileError(msg)
    arr = np.array([values[n] for n in CLASS_NAMES], dtype=np.float64)
    return arr.astype(bool) if kind == "flags" else arr


def write_config_file(path: str | os.PathLike, kind: str, values) -> Path:
    """Write a configuration file of ``kind`` from a dict (class -> value) or 14 values in class order."""
    if kind not in FILE_NAMES:
        msg = f"kind must be one of {tuple(FILE_NAMES)}, got {kind!r}"
        raise ValueError(msg)
    if isinstance(values, dict):
        seq = [values[n] for n in CLASS_NAMES]
    else:
        seq = list(np.asarray(values).ravel())
        if len(seq) != N_CLASSES:
            msg = f"expected {N_CLASSES} values, got {len(seq)}"
            raise ValueError(msg)
    lines = []
    for name, v in zip(CLASS_NAMES, seq):
        lines.append(f"{name:<4}{int(bool(v))}" if kind == "flags" else f"{name:<4}{float(v):.6g}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_config_dir(config_dir: str | os.PathLike) -> dict[str, np.ndarray | None]:
    """Read the configuration files present in ``config_dir``.

    Returns
    -------
    dict with keys ``flags``, ``priors``, ``thresh``; a file that is absent gives None
    (the caller falls back to its default).

    Raises
    ------
    ConfigFileError
        The directory does not exist or holds none of the three files, or a file is malformed.
    """
    d = Path(config_dir)
    if not d.is_dir():
        msg = f"{d}: configuration directory not found"
        raise ConfigFileError(msg)
    out: dict[str, np.ndarray | None] = {}
    for kind, name in FILE_NAMES.items():
        p = d / name
        out[kind] = read_config_file(p, kind) if p.exists() else None
    if all(v is None for v in out.values()):
        msg = f"{d}: none of {', '.join(FILE_NAMES.values())} found in this configuration directory"
        raise ConfigFileError(msg)
    if out["flags"] is not None and not out["flags"].any():
        msg = f"{d / FILE_NAMES['flags']}: no class is selected (all flags are 0)"
        raise ConfigFileError(msg)
    return out
