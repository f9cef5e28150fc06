"""Saturation and bleed trails (SAT, paper Sect. 2.1.9).

Pixels above the exposure's full-well level ``scene.saturation`` are clipped
to it and, for CCDs (not near-infrared arrays), their excess charge overflows along the transfer direction
(columns, or lines for 20 % of the exposures, as for a rotated detector):
for every contiguous run of saturated pixels in a column, the excess charge
of the run is moved to the nearest unsaturated pixels above and below (split
with a random asymmetry), filling them to the full well one after the other;
the last one gets the remainder. Charge is conserved (up to what leaves the
image edge). Truth = saturated pixels, plus bled pixels that received more
than ``truth_floor`` sigma_U of charge.
"""

from __future__ import annotations

import numpy as np

from maximask.simulate.base import Scene, register_contaminant

__all__ = ["bleed_columns", "inject_saturation"]


def _runs(col: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous True runs of a 1-D boolean array as (start, stop) pairs."""
    d = np.diff(np.concatenate([[0], col.astype(np.int8), [0]]))
    starts = np.flatnonzero(d == 1)
    stops = np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), stops.tolist()))


def bleed_columns(image: np.ndarray, level: float, *, up_fraction: np.ndarray | float = 0.5) -> np.ndarray:
    """Clip ``image`` at ``level`` and bleed the excess along axis 0, in place.

    Parameters
    ----------
    image : ndarray, shape (ny, nx), float64, ADU
        Modified in place.
    level : float, ADU
        Full-well level.
    up_fraction : float or ndarray, shape (nx,)
        Fraction of each run's excess sent towards increasing row index.

    Returns
    -------
    ndarray, shape (ny, nx), float64
        Charge added to unsaturated pixels by bleeding (0 elsewhere), ADU.
    """
    ny, nx = image.shape
    added = np.zeros_like(image)
    sat = image >= level
    cols = np.flatnonzero(sat.any(axis=0))
    upf = np.broadcast_to(np.asarray(up_fraction, dtype=float), (nx,))
    for c in cols:
        col = image[:, c]
        for _ in range(8):  # runs may merge after bleeding; a few passes settle them
            runs = _runs(col >= level)
            moved = False
            for s, e in runs:
                excess = float(np.sum(col[s:e] - level))
                if excess <= 0:
                    continue
                col[s:e] = level
                moved = True
                for direction, share in ((1, upf[c]), (-1, 1.0 - upf[c])):
                    q = excess * share
                    i = e if direction == 1 else s - 1
                    while q > 0 and 0 <= i < ny:
                        room = level - col[i]
                        if room <= 0:
                            i += direction
                            continue
                        put = min(room, q)
                        col[i] += put
                        added[i, c] += put
                        q -= put
                        i += direction
            if not moved:
                break
    return added


@register_contaminant("SAT")
def inject_saturation(
    scene: Scene,
    *,
    rng: np.random.Generator,
    bleed: bool | None = None,
    line_probability: float = 0.2,
    truth_floor: float = 1.0,
    **options,
) -> None:
    """Clip at ``scene.saturation`` with bleed trails; truth SAT.

    Parameters
    ----------
    bleed : bool, optional
        Bleed the excess charge (CCD) or just clip it (near-infrared arrays,
        whose pixels do not spill charge). Default: clip only when the clean
        scene was drawn for a near-infrared detector (``meta["sky"]["detector"]``).
    line_probability : float
        Probability that the transfer direction is along lines instead of columns.
    truth_floor : float, sigma_U
        Bled pixels receiving less charge than this are not labelled.
    """
    if bleed is None:
        bleed = scene.meta.get("sky", {}).get("detector", "ccd") != "nir"
    along_lines = bool(rng.random() < line_probability)
    up = rng.uniform(0.2, 0.8, scene.shape[0] if along_lines else scene.shape[1])
    level = float(scene.saturation)
    img = scene.image.T if along_lines else scene.image
    sat = img >= level
    if bleed:
        added = bleed_columns(img, level, up_fraction=up)
        mask = sat | (added > truth_floor * scene.sigma)
    else:
        np.minimum(img, level, out=img)
        mask = sat
    plane = scene.plane("SAT")
    if along_lines:
        plane |= mask.T
    else:
        plane |= mask
    scene.meta["SAT"] = {"level": level, "along_lines": along_lines, "n_pixels": int(mask.sum()), "bleed": bleed}
