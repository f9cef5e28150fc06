"""Model files: weights in safetensors beside a JSON model card.

A model ``NAME`` is two files, ``NAME.safetensors`` (the ``state_dict``) and
``NAME.json`` (the card). The card holds everything needed to rebuild and use
the network:

``format``            card format version (int)
``kind``              ``"maximask"`` or ``"maxitrack"``
``arch``, ``arch_args`` registry name and constructor arguments
``classes``           class names in output order
``training_priors``   P(w|T) per class (Eq. 27), ``{"TR": p}`` for maxitrack
``thresholds``        default probability thresholds per class
``tile``              preferred inference tile size, pixels
``software_version``  maximask version that wrote the file
``weights_sha256``    checksum of the safetensors file
``training``          free-form record of how the model was made

Loading checks the card, the checksum and the weights' names and shapes, and
reports any mismatch with a one-line :class:`ModelFileError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from maximask.classes import CLASS_NAMES
from maximask.nets import create_model, list_models

__all__ = ["ModelFileError", "save_model", "load_model", "read_card", "resolve_model_path", "default_model_path"]

CARD_FORMAT = 1
KINDS = ("maximask", "maxitrack")
_REQUIRED = ("arch", "arch_args", "classes", "training_priors", "thresholds")


class ModelFileError(Exception):
    """A model file is missing, corrupt or does not match what is asked of it."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write_bytes(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; model files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_model(path: str | os.PathLike, model: nn.Module, card: dict) -> Path:
    """Write ``model``'s weights and its card as ``path.safetensors`` and ``path.json``.

    Parameters
    ----------
    path : path-like
        Destination stem (any suffix is replaced).
    model : nn.Module
        A registered network with an ``arch_args`` attribute.
    card : dict
        Card entries; ``arch``, ``arch_args``, ``software_version``, ``format``
        and ``weights_sha256`` are filled in when absent or stale.

    Returns
    -------
    Path of the card file.
    """
    from maximask import __version__

    stem = Path(path)
    stem = stem.with_suffix("") if stem.suffix in (".json", ".safetensors") else stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights_path = stem.parent / (stem.name + ".safetensors")
    card_path = stem.parent / (stem.name + ".json")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    _atomic_write_bytes(weights_path, lambda tmp: save_file(state, tmp))
    full = dict(card)
    full.setdefault("kind", "maxitrack" if "maxitrack" in type(model).__name__.lower() else "maximask")
    full.setdefault("arch", full["kind"])
    full["arch_args"] = dict(getattr(model, "arch_args", full.get("arch_args", {})))
    full.setdefault("classes", list(CLASS_NAMES) if full["kind"] == "maximask" else ["TR"])
    full.setdefault("training_priors", {})
    full.setdefault("thresholds", {})
    full["format"] = CARD_FORMAT
    full["software_version"] = __version__
    full["weights_sha256"] = _sha256(weights_path)
    text = json.dumps(full, indent=2, sort_keys=False) + "\n"
    _atomic_write_bytes(card_path, lambda tmp: Path(tmp).write_text(text))
    return card_path


def resolve_model_path(path: str | os.PathLike, *, kind: str = "maximask") -> Path:
    """Return the card path for a directory, a card file or a weights file."""
    p = Path(path)
    if p.is_dir():
        candidates = [p / f"{kind}.json"] + sorted(p.glob("*.json"))
        for c in candidates:
            if c.is_file() and (c.with_suffix(".safetensors")).is_file():
                return c
        msg = f"{p}: no {kind}.json model card with its .safetensors weights in this directory"
        raise ModelFileError(msg)
    if p.suffix == ".safetensors":
        p = p.with_suffix(".json")
    elif p.suffix != ".json":
        p = p.parent / (p.name + ".json")
    if not p.is_file():
        msg = f"{path}: model card not found (expected {p})"
        raise ModelFileError(msg)
    return p


def read_card(path: str | os.PathLike, *, kind: str | None = None) -> dict:
    """Read and validate a model card (without loading weights)."""
    card_path = Path(path)
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"{card_path}: unreadable model card ({exc.__class__.__name__}: {exc})"
        raise ModelFileError(msg) from None
    if not isinstance(card, dict):
        msg = f"{card_path}: model card is not a JSON object"
        raise ModelFileError(msg)
    missing = [k for k in _REQUIRED if k not in card]
    if missing:
        msg = f"{card_path}: model card lacks {', '.join(missing)}"
        raise ModelFileError(msg)
    if card["arch"] not in list_models():
        msg = f"{card_path}: unknown architecture {card['arch']!r} (known: {', '.join(list_models())})"
        raise ModelFileError(msg)
    card_kind = card.get("kind", card["arch"])
    if kind is not None and card_kind != kind:
        msg = f"{card_path}: this is a {card_kind} model, a {kind} model is needed"
        raise ModelFileError(msg)
    if card_kind == "maximask" and list(card["classes"]) != list(CLASS_NAMES):
        msg = f"{card_path}: model classes {card['classes']} differ from {list(CLASS_NAMES)}"
        raise ModelFileError(msg)
    return card


def load_model(
    path: str | os.PathLike, *, kind: str = "maximask", device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict]:
    """Load a model file (directory, ``.json`` card or ``.safetensors`` weights).

    Returns
    -------
    model : nn.Module
        The rebuilt network, in eval mode, on ``device``.
    card : dict
        The validated model card.

    Raises
    ------
    ModelFileError
        One-line description of what is wrong with the file.
    """
    if kind not in KINDS:
        msg = f"kind must be one of {KINDS}, got {kind!r}"
        raise ValueError(msg)
    card_path = resolve_model_path(path, kind=kind)
    card = read_card(card_path, kind=kind)
    weights_path = card_path.with_suffix(".safetensors")
    if not weights_path.is_file():
        msg = f"{card_path}: weights file {weights_path.name} is missing"
        raise ModelFileError(msg)
    expected = card.get("weights_sha256")
    if expected and _sha256(weights_path) != expected:
        msg = f"{weights_path}: checksum differs from the model card (corrupt or mismatched file)"
        raise ModelFileError(msg)
    try:
        model = create_model(card["arch"], **card["arch_args"])
    except (TypeError, ValueError) as exc:
        msg = f"{card_path}: cannot build {card['arch']} with {card['arch_args']} ({exc})"
        raise ModelFileError(msg) from None
    try:
        state = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types
        msg = f"{weights_path}: unreadable safetensors file ({exc})"
        raise ModelFileError(msg) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        msg = f"{weights_path}: weights do not match the {card['arch']} architecture ({first[1].strip() if len(first) > 1 else first[0]})"
        raise ModelFileError(msg) from None
    model.eval()
    return model.to(device), card


def default_model_path(kind: str = "maximask") -> Path:
    """Path of the card of the default ``kind`` model shipped in the package."""
    if kind not in KINDS:
        msg = f"kind must be one of {KINDS}, got {kind!r}"
        raise ValueError(msg)
    path = Path(str(resources.files("maximask.models") / f"{kind}.json"))
    if not path.is_file() or not path.with_suffix(".safetensors").is_file():
        msg = f"no default {kind} model is installed with maximask; give one with --net_dir"
        raise ModelFileError(msg)
    return path
