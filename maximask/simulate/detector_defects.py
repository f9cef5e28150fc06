"""Detector blemishes (paper Sect. 2.1.4 and 2.1.11): HCL, DCL, HP, DP and OV.

Counts and shapes
-----------------
* Columns and lines (HCL hot, DCL dead): a number uniform in [1, 4]; each is a
  column or a line with a uniform length in [30, full height/width] and a
  uniform thickness in [1, 3] pixels.
* Punctual pixels (HP, DP): a pixel fraction uniform in [0.0002, 0.0005],
  uniformly distributed.
* Dead clusters (DCL): rectangles or random convex 5- or 6-gons that fit in
  20 x 20 pixel boxes (1 to 4 per image).
* Overscan (OV): strips on 1 or 2 image sides, 2 to 40 pixels wide, values as
  dead pixels. Optionally (``edge_band_probability`` > 0, off by default) the data
  next to a strip gets an *edge band*: the glow or roll-off that raw CCD frames show
  over their first columns or rows (:func:`edge_band_profile`). It is not a contaminant
  class: its pixels keep their truth (BG unless something else lies there).

Values
------
* Hot: a base ``nu`` uniform in [15, 100] sigma_U, values ``N(nu, (0.02 nu)^2)``,
  *added* to the pixel (a hot pixel's excess charge on top of the sky; adding
  rather than replacing keeps it hot above any sky level).
* Dead: one of three equiprobable recipes, *replacing* the pixel value
  (static defects define the final value, Sect. 2.3.1): exactly 0;
  ``N(0, (0.02 sigma_U)^2)``; ``N(nu, (0.02 nu)^2)`` with ``nu`` uniform in
  [0.1 m_U, 0.7 m_U].

Truth is exactly the affected pixels (no dilation).
"""

from __future__ import annotations

import numpy as np

from maximask.simulate.base import Scene, register_contaminant

__all__ = [
    "hot_values",
    "dead_values",
    "line_masks",
    "convex_polygon_mask",
    "inject_hot_columns",
    "inject_dead_columns",
    "inject_hot_pixels",
    "inject_dead_pixels",
    "inject_overscan",
    "edge_band_profile",
    "PIXEL_FRACTION_RANGE",
]

#: Fraction of punctual hot/dead pixels (paper Sect. 2.1.4).
PIXEL_FRACTION_RANGE = (0.0002, 0.0005)
#: Base hot value range in units of sigma_U.
HOT_RANGE_SIGMA = (15.0, 100.0)


def hot_values(n: int, sigma: float, *, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Hot values ``N(nu, (0.02 nu)^2)``, ``nu ~ U[15, 100] sigma``.

    Returns
    -------
    values : ndarray, shape (n,), ADU (to add)
    nu : float, ADU
    """
    nu = float(rng.uniform(*HOT_RANGE_SIGMA)) * sigma
    return rng.normal(nu, 0.02 * nu, n), nu


def dead_values(n: int, sigma: float, sky_level: float, *, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Dead values by one of the three equiprobable recipes.

    Returns
    -------
    values : ndarray, shape (n,), ADU (replacing the pixels)
    recipe : int
        0: exactly 0; 1: N(0, (0.02 sigma)^2); 2: N(nu, (0.02 nu)^2), nu ~ U[0.1, 0.7] m_U.
    """
    recipe = int(rng.integers(3))
    if recipe == 0:
        return np.zeros(n), recipe
    if recipe == 1:
        return rng.normal(0.0, 0.02 * sigma, n), recipe
    nu = float(rng.uniform(0.1, 0.7)) * sky_level
    return rng.normal(nu, 0.02 * abs(nu) + 1e-12, n), recipe


def line_masks(shape: tuple[int, int], *, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """1 to 4 column/line segments of length in [30, full] and thickness in [1, 3].

    Returns
    -------
    mask : ndarray, shape (ny, nx), bool
    segments : list of dict (provenance)
    """
    ny, nx = shape
    mask = np.zeros(shape, bool)
    segs = []
    for _ in range(int(rng.integers(1, 5))):
        vertical = bool(rng.random() < 0.5)
        full = ny if vertical else nx
        other = nx if vertical else ny
        length = int(rng.integers(min(30, full), full + 1))
        thick = int(rng.integers(1, 4))
        start = int(rng.integers(0, full - length + 1))
        pos = int(rng.integers(0, max(1, other - thick + 1)))
        if vertical:
            mask[start : start + length, pos : pos + thick] = True
        else:
            mask[pos : pos + thick, start : start + length] = True
        segs.append({"vertical": vertical, "length": length, "thickness": thick, "start": start, "pos": pos})
    return mask, segs


def convex_polygon_mask(box: int, n_vertices: int, *, rng: np.random.Generator) -> np.ndarray:
    """A random convex polygon with ``n_vertices`` edges inside a ``box x box`` square.

    Vertices are drawn at sorted random angles on an ellipse of random axes,
    which gives a convex polygon; pixels whose centre lies inside are set.

    Returns
    -------
    ndarray, shape (box, box), bool (at least one pixel set)
    """
    c = (box - 1) / 2.0
    a, b = rng.uniform(1.5, box / 2.0, 2)
    rot = rng.uniform(0, np.pi)
    ang = np.sort(rng.uniform(0, 2 * np.pi, n_vertices))
    vx = a * np.cos(ang)
    vy = b * np.sin(ang)
    px = c + vx * np.cos(rot) - vy * np.sin(rot)
    py = c + vx * np.sin(rot) + vy * np.cos(rot)
    yy, xx = np.mgrid[0:box, 0:box]
    inside = np.ones((box, box), bool)
    for i in range(n_vertices):
        j = (i + 1) % n_vertices
        cross = (px[j] - px[i]) * (yy - py[i]) - (py[j] - py[i]) * (xx - px[i])
        inside &= cross >= 0
    if not inside.any():
        inside[int(c), int(c)] = True
    return inside


def _cluster_masks(shape: tuple[int, int], *, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    ny, nx = shape
    mask = np.zeros(shape, bool)
    info = []
    for _ in range(int(rng.integers(1, 5))):
        if rng.random() < 0.5:
            h, w = (int(v) for v in rng.integers(1, 21, 2))
            shp = np.ones((h, w), bool)
            kind = "rectangle"
        else:
            shp = convex_polygon_mask(20, int(rng.integers(5, 7)), rng=rng)
            kind = "polygon"
        ys_, xs_ = np.nonzero(shp)
        shp = shp[ys_.min() : ys_.max() + 1, xs_.min() : xs_.max() + 1]
        h, w = shp.shape
        y0 = int(rng.integers(0, max(1, ny - h + 1)))  # fully inside the image
        x0 = int(rng.integers(0, max(1, nx - w + 1)))
        ys, xs = max(0, -y0), max(0, -x0)
        ye, xe = min(h, ny - y0), min(w, nx - x0)
        mask[y0 + ys : y0 + ye, x0 + xs : x0 + xe] |= shp[ys:ye, xs:xe]
        info.append({"kind": kind, "y0": y0, "x0": x0})
    return mask, info


def _punctual_mask(shape: tuple[int, int], *, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    frac = float(rng.uniform(*PIXEL_FRACTION_RANGE))
    n_pix = shape[0] * shape[1]
    n = max(1, int(round(frac * n_pix)))
    idx = rng.choice(n_pix, size=n, replace=False)
    mask = np.zeros(n_pix, bool)
    mask[idx] = True
    return mask.reshape(shape), frac


def _apply_hot(scene: Scene, mask: np.ndarray, cls: str, *, rng: np.random.Generator) -> float:
    vals, nu = hot_values(int(mask.sum()), scene.sigma, rng=rng)
    scene.image[mask] += vals
    scene.plane(cls)[mask] = True
    return nu


def _apply_dead(scene: Scene, mask: np.ndarray, cls: str, *, rng: np.random.Generator) -> int:
    vals, recipe = dead_values(int(mask.sum()), scene.sigma, scene.sky_level, rng=rng)
    scene.image[mask] = vals
    scene.plane(cls)[mask] = True
    return recipe


@register_contaminant("HCL")
def inject_hot_columns(scene: Scene, *, rng: np.random.Generator, **options) -> None:
    """Hot columns/lines (values added), truth HCL."""
    mask, segs = line_masks(scene.shape, rng=rng)
    nu = _apply_hot(scene, mask, "HCL", rng=rng)
    scene.meta.setdefault("HCL", {}).update(segments=segs, nu_sigma=nu / scene.sigma)


@register_contaminant("DCL")
def inject_dead_columns(scene: Scene, *, rng: np.random.Generator, clusters_probability: float = 0.5, **options) -> None:
    """Dead columns/lines and clusters (values replaced), truth DCL.

    Parameters
    ----------
    clusters_probability : float
        Each of "lines" and "clusters" is present with this probability (at
        least one of them always is).
    """
    with_lines = rng.random() < 0.75
    with_clusters = (rng.random() < clusters_probability) or not with_lines
    mask = np.zeros(scene.shape, bool)
    meta: dict = {}
    if with_lines:
        m, segs = line_masks(scene.shape, rng=rng)
        mask |= m
        meta["segments"] = segs
    if with_clusters:
        m, info = _cluster_masks(scene.shape, rng=rng)
        mask |= m
        meta["clusters"] = info
    meta["recipe"] = _apply_dead(scene, mask, "DCL", rng=rng)
    scene.meta.setdefault("DCL", {}).update(meta)


@register_contaminant("HP")
def inject_hot_pixels(scene: Scene, *, rng: np.random.Generator, **options) -> None:
    """Isolated hot pixels, fraction in [0.0002, 0.0005]; truth HP."""
    mask, frac = _punctual_mask(scene.shape, rng=rng)
    nu = _apply_hot(scene, mask, "HP", rng=rng)
    scene.meta["HP"] = {"fraction": frac, "nu_sigma": nu / scene.sigma}


@register_contaminant("DP")
def inject_dead_pixels(scene: Scene, *, rng: np.random.Generator, **options) -> None:
    """Isolated dead pixels, fraction in [0.0002, 0.0005]; truth DP."""
    mask, frac = _punctual_mask(scene.shape, rng=rng)
    recipe = _apply_dead(scene, mask, "DP", rng=rng)
    scene.meta["DP"] = {"fraction": frac, "recipe": recipe}


@register_contaminant("OV")
def inject_overscan(scene: Scene, *, rng: np.random.Generator, max_width: int = 40,
                    edge_band_probability: float = 0.0, **options) -> None:
    """Overscan strips on 1 or 2 sides, 2 to ``max_width`` pixels wide, dead values; truth OV.

    Parameters
    ----------
    edge_band_probability : float
        Probability, per strip, of an edge band on the data next to it
        (:func:`edge_band_profile`); its draws follow the strips', so the strips
        are the same with or without bands.
    """
    ny, nx = scene.shape
    n_sides = 1 if rng.random() < 0.7 else 2
    sides = rng.choice(4, size=n_sides, replace=False)
    mask = np.zeros(scene.shape, bool)
    widths = []
    for side in sides:
        w = int(rng.integers(2, max(3, min(max_width, min(ny, nx) // 4) + 1)))
        widths.append(w)
        if side == 0:
            mask[:, :w] = True
        elif side == 1:
            mask[:, nx - w :] = True
        elif side == 2:
            mask[:w, :] = True
        else:
            mask[ny - w :, :] = True
    recipe = _apply_dead(scene, mask, "OV", rng=rng)
    scene.meta["OV"] = {"sides": [int(s) for s in sides], "widths": widths, "recipe": recipe}
    if edge_band_probability > 0:
        bands = []
        for side, w in zip(sides, widths):
            if rng.random() < edge_band_probability:
                bands.append(_add_edge_band(scene, int(side), w, mask, rng=rng))
        scene.meta["OV"]["edge_bands"] = bands


#: Edge bands: e-folding length (pixels), glow amplitude (units of sigma_U, log-uniform),
#: roll-off depth (fraction of the pixel value) and the probability that a band is a glow.
EDGE_BAND_LENGTH = (1.5, 12.0)
EDGE_BAND_GLOW_SIGMA = (3.0, 300.0)
EDGE_BAND_ROLLOFF = (0.05, 0.6)
EDGE_BAND_GLOW_PROBABILITY = 0.7


def edge_band_profile(distance: np.ndarray, length: float) -> np.ndarray:
    """``exp(-d / length)`` for the data at ``distance`` d (pixels, 0 = the first data pixel);
    0 beyond 6 lengths and for d < 0 (the strip itself)."""
    d = np.asarray(distance, dtype=np.float64)
    return np.where((d >= 0) & (d < 6 * length), np.exp(-np.maximum(d, 0) / length), 0.0)


def _add_edge_band(scene: Scene, side: int, width: int, overscan: np.ndarray, *, rng: np.random.Generator) -> dict:
    """A glow (charge added, with its shot noise) or a roll-off (a fraction of the value lost) next to a strip.

    ``side`` 0/1/2/3: left/right/bottom/top strip of ``width`` pixels; ``overscan`` marks
    every overscan pixel, left unchanged. Glows are capped at half the headroom below
    saturation, so that they saturate nothing.
    """
    ny, nx = scene.shape
    length = float(rng.uniform(*EDGE_BAND_LENGTH))
    n = nx if side in (0, 1) else ny
    d = np.arange(n) - width if side in (0, 2) else (n - width - 1) - np.arange(n)
    line = edge_band_profile(d, length)
    profile = (line[None, :] if side in (0, 1) else line[:, None]) * ~overscan
    data = profile > 0
    if rng.random() < EDGE_BAND_GLOW_PROBABILITY:
        lo, hi = np.log(EDGE_BAND_GLOW_SIGMA)
        amplitude = float(np.exp(rng.uniform(lo, hi))) * scene.sigma
        amplitude = min(amplitude, 0.5 * max(scene.saturation - scene.sky_level, 0.0))
        glow = amplitude * profile[data]
        noise = rng.normal(size=glow.shape) * np.sqrt(glow / max(scene.gain, 1e-6))
        scene.image[data] += glow + noise
        return {"side": side, "kind": "glow", "length": length, "amplitude_sigma": amplitude / scene.sigma}
    depth = float(rng.uniform(*EDGE_BAND_ROLLOFF))
    scene.image[data] *= 1.0 - depth * profile[data]
    return {"side": side, "kind": "rolloff", "length": length, "depth": depth}
