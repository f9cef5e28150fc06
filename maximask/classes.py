"""The 14 MaxiMask classes (paper Table 4), their bit codes and published defaults.

Classes are not mutually exclusive (one sigmoid per class), except ``BG``,
which by definition excludes every other class.

Bit codes follow the published tool, so a composite mask built with them is a
valid SExtractor ``FLAG_IMAGE``: ``CR`` 1, ``HCL`` 2, ... ``BBG`` 4096, ``BG`` 0.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ContaminantClass",
    "CLASSES",
    "CLASS_NAMES",
    "N_CLASSES",
    "BIT_CODES",
    "DEFAULT_PRIORS",
    "DEFAULT_THRESHOLDS",
    "DEFAULT_FLAGS",
    "class_index",
]


@dataclass(frozen=True)
class ContaminantClass:
    """One output class of MaxiMask.

    Attributes
    ----------
    name : str
        Abbreviation used in configuration files and FITS headers.
    index : int
        Position of the class along the network's output channel axis.
    bit : int
        Bit code in composite (single-plane) masks; 0 for ``BG``.
    description : str
        What the class stands for.
    prior : float
        Published default prior P(w|O), the expected fraction of pixels
        of this class in observed data (used by the prior update, Eq. 26).
    threshold : float
        Default probability threshold used when masks are requested and the
        model card gives none.
    """

    name: str
    index: int
    bit: int
    description: str
    prior: float
    threshold: float = 0.5


CLASSES: tuple[ContaminantClass, ...] = (
    ContaminantClass("CR", 0, 1, "cosmic rays", 0.0005),
    ContaminantClass("HCL", 1, 2, "hot columns/lines", 1e-5),
    ContaminantClass("DCL", 2, 4, "dead columns/lines/clusters", 1e-4),
    ContaminantClass("HP", 3, 8, "hot pixels", 1e-6),
    ContaminantClass("DP", 4, 16, "dead pixels", 1e-6),
    ContaminantClass("P", 5, 32, "persistence", 0.001),
    ContaminantClass("TRL", 6, 64, "satellite/plane/meteor trails", 0.001),
    ContaminantClass("FR", 7, 128, "residual fringe patterns", 0.001),
    ContaminantClass("NEB", 8, 256, "nebulosity", 0.001),
    ContaminantClass("SAT", 9, 512, "saturated pixels and bleed trails", 0.001),
    ContaminantClass("SP", 10, 1024, "diffraction spikes", 0.005),
    ContaminantClass("OV", 11, 2048, "overscan", 0.005),
    ContaminantClass("BBG", 12, 4096, "bright background (astronomical sources)", 0.1),
    ContaminantClass("BG", 13, 0, "background (none of the above)", 0.9),
)

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
N_CLASSES: int = len(CLASSES)
BIT_CODES: dict[str, int] = {c.name: c.bit for c in CLASSES}
DEFAULT_PRIORS: dict[str, float] = {c.name: c.prior for c in CLASSES}
DEFAULT_THRESHOLDS: dict[str, float] = {c.name: c.threshold for c in CLASSES}
#: Classes written by default (the published ``classes.flags``: all but BG).
DEFAULT_FLAGS: dict[str, bool] = {c.name: c.name != "BG" for c in CLASSES}


def class_index(name: str) -> int:
    """Return the output-channel index of class ``name`` (case-insensitive).

    Raises
    ------
    KeyError
        If ``name`` is not one of :data:`CLASS_NAMES`.
    """
    key = name.strip().upper()
    for c in CLASSES:
        if c.name == key:
            return c.index
    msg = f"unknown class {name!r}; expected one of {', '.join(CLASS_NAMES)}"
    raise KeyError(msg)
