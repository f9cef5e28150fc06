"""Pictures of images and class maps in the paper's colour code (Fig. 8 caption).

Each class has one colour; a pixel of several classes (BG excluded) is black;
hot and dead pixels are dilated to 3x3 so that they can be seen.

>>> rgb = class_map_rgb(planes)            # planes: (14, ny, nx) bool
>>> save_panels("out.png", [("image", display_image(img)), ("truth", rgb)])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from maximask.classes import CLASS_NAMES

__all__ = ["CLASS_COLOURS", "class_map_rgb", "display_image", "save_panels", "legend_handles"]

#: RGB colours (0-1) of the paper's Fig. 8 caption ("BCL"/"BP" there are DCL/DP here).
CLASS_COLOURS: dict[str, tuple[float, float, float]] = {
    "CR": (0.90, 0.10, 0.10),  # red
    "HCL": (0.00, 0.39, 0.00),  # dark green
    "DCL": (0.00, 0.00, 0.55),  # dark blue
    "HP": (0.20, 0.85, 0.20),  # green
    "DP": (0.20, 0.45, 1.00),  # blue
    "P": (1.00, 0.90, 0.00),  # yellow
    "TRL": (1.00, 0.55, 0.00),  # orange
    "FR": (0.55, 0.55, 0.55),  # grey
    "NEB": (0.80, 0.80, 0.80),  # light grey
    "SAT": (0.50, 0.00, 0.50),  # purple
    "SP": (0.80, 0.60, 0.95),  # light purple
    "OV": (0.55, 0.30, 0.10),  # brown
    "BBG": (1.00, 0.60, 0.75),  # pink
    "BG": (0.25, 0.25, 0.25),  # dark grey
}
_MULTI = (0.0, 0.0, 0.0)


def class_map_rgb(planes: np.ndarray, *, names: Sequence[str] = CLASS_NAMES, dilate_pixels: bool = True) -> np.ndarray:
    """One RGB picture of per-class masks.

    Parameters
    ----------
    planes : ndarray, shape (n_classes, ny, nx), bool
        Class masks in the order of ``names``.
    dilate_pixels : bool
        Dilate HP and DP masks to 3x3 for visibility (as the paper's figures do).

    Returns
    -------
    ndarray, shape (ny, nx, 3), float32 in [0, 1]
    """
    planes = np.asarray(planes, dtype=bool)
    if planes.ndim != 3 or planes.shape[0] != len(names):
        msg = f"planes must have shape ({len(names)}, ny, nx), got {planes.shape}"
        raise ValueError(msg)
    masks = {}
    for name, plane in zip(names, planes):
        if dilate_pixels and name in ("HP", "DP"):
            plane = ndimage.binary_dilation(plane, structure=np.ones((3, 3), bool))
        masks[name] = plane
    contaminants = [n for n in names if n != "BG"]
    count = np.sum([masks[n] for n in contaminants], axis=0)
    rgb = np.empty((*planes.shape[1:], 3), np.float32)
    rgb[:] = CLASS_COLOURS["BG"]
    for name in contaminants:
        rgb[masks[name]] = CLASS_COLOURS[name]
    rgb[count > 1] = _MULTI
    return rgb


def display_image(image: np.ndarray, *, low: float = 1.0, high: float = 99.7) -> np.ndarray:
    """Scale an image (ADU or compressed) to [0, 1] between two percentiles, NaN shown as 0.

    Returns
    -------
    ndarray, shape of ``image``, float32
    """
    image = np.asarray(image, dtype=np.float32)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, np.float32)
    lo, hi = np.percentile(finite, [low, high])
    scaled = (image - lo) / max(hi - lo, 1e-12)
    return np.nan_to_num(np.clip(scaled, 0, 1), nan=0.0).astype(np.float32)


def legend_handles():
    """Matplotlib patches naming each class colour (for ``fig.legend``)."""
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=n) for n, c in CLASS_COLOURS.items()]
    return handles + [Patch(color=_MULTI, label="several")]


def save_panels(path: str | os.PathLike, panels: Sequence[tuple[str, np.ndarray]], *, ncols: int | None = None,
                panel_size: float = 3.0, legend: bool = True, title: str | None = None) -> Path:
    """Write a PNG grid of titled panels (grey images (ny, nx) or RGB (ny, nx, 3)), atomically.

    Returns
    -------
    Path of the PNG written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    ncols = ncols or min(n, 4)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows + (0.6 if legend else 0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, picture) in zip(axes.flat, panels):
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, origin="lower", interpolation="nearest")
        ax.set_title(label, fontsize=8)
    if legend:
        fig.legend(handles=legend_handles(), loc="lower center", ncol=8, fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06 if legend else 0, 1, 1))
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path

