"""Helpers shared by the ``maximask`` and ``maxitrack`` command lines (parsing and logging only)."""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["str2bool", "configure_logging", "progress_factory", "positive_int", "nonnegative_int", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"]

EXIT_OK = 0
#: An unexpected error while processing.
EXIT_FAILED = 1
#: Usage or input error (bad option, missing or bad file, bad model or configuration file).
EXIT_USAGE = 2


def str2bool(value: str) -> bool:
    """Published-tool booleans: yes/true/t/y/1 and no/false/f/n/0."""
    v = str(value).strip().lower()
    if v in ("yes", "true", "t", "y", "1"):
        return True
    if v in ("no", "false", "f", "n", "0"):
        return False
    msg = f"boolean value expected, got {value!r}"
    raise argparse.ArgumentTypeError(msg)


def _int_at_least(value: str, minimum: int) -> int:
    try:
        n = int(value)
    except ValueError:
        msg = f"integer expected, got {value!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if n < minimum:
        msg = f"must be >= {minimum}, got {n}"
        raise argparse.ArgumentTypeError(msg)
    return n


def positive_int(value: str) -> int:
    return _int_at_least(value, 1)


def nonnegative_int(value: str) -> int:
    return _int_at_least(value, 0)


def configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.INFO if verbose else (logging.ERROR if quiet else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    if verbose:
        logging.getLogger("maximask").setLevel(logging.DEBUG)


def progress_factory(quiet: bool):
    """A tqdm bar maker (total, description) -> bar; None when quiet."""
    if quiet:
        return None
    from tqdm import tqdm

    def make(total: int, desc: str):
        return tqdm(total=total, desc=desc, unit="tile", leave=False, disable=None, dynamic_ncols=True)

    return make
