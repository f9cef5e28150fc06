"""A PNG gallery of simulated samples with their truth in the paper's Fig. 8 colour code.

Each sample gives two panels: the compressed network input (grey, percentile
stretch) and its truth map (:func:`maximask.visualize.class_map_rgb`: one
colour per class, black where several classes overlap, HP/DP dilated to 3x3
for visibility). Panel titles list the contaminants present and the FWHM.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from maximask.simulate.dataset import ShardJob, make_sample, sample_seeds
from maximask.train.shards import decode_truth
from maximask.visualize import class_map_rgb, display_image, save_panels

__all__ = ["gallery_panels", "write_gallery"]


def gallery_panels(
    *, n: int = 8, size: int = 256, seed: int = 0, contaminants: Sequence[str] | None = None, real_data: str | None = None
) -> list[tuple[str, np.ndarray]]:
    """Draw ``n`` samples (seeds as :func:`maximask.simulate.dataset.generate_shards`) -> panels.

    Returns
    -------
    list of (title, picture): picture (H, W) grey in [0, 1] or (H, W, 3) RGB.
    """
    job = ShardJob(kind="maximask", shape=(size, size), contaminants=tuple(contaminants) if contaminants else None,
                   real_data=real_data)
    panels = []
    for i, s in enumerate(sample_seeds(seed, n)):
        out = make_sample(job, int(s))
        meta = out["meta"]
        present = ",".join(c for c in meta["contaminants"] if meta["pixel_counts"].get(c, 0) > 0) or "none"
        title = f"#{i} fwhm {meta['fwhm']:.1f}{' rb' if meta['rebinned'] else ''}: {present}"
        panels.append((title, display_image(out["image"], low=0.5, high=99.5)))
        panels.append(("truth", class_map_rgb(decode_truth(out["truth"]))))
    return panels


def write_gallery(
    path: str | os.PathLike, *, n: int = 8, size: int = 256, seed: int = 0,
    contaminants: Sequence[str] | None = None, real_data: str | None = None,
) -> Path:
    """Write the gallery PNG of ``n`` samples (2 panels each, 4 per row) to ``path``."""
    panels = gallery_panels(n=n, size=size, seed=seed, contaminants=contaminants, real_data=real_data)
    return save_panels(path, panels, ncols=4, panel_size=3.2, title=f"maximask-sim gallery (seed {seed}, {size}x{size})")
