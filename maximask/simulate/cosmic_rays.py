"""Cosmic-ray hits (CR, paper Sect. 2.1.3, Eqs. 1-2).

Three sources of hit morphologies:

1. **Real hits from a dark frame** (``coj1m011-fl08-20151216-0083-d00.fits.fz``,
   900 s, LCO Sinistro): the frame (overscan and edges trimmed) is
   background-subtracted with a SExtractor-like mesh (``sep``), thresholded at
   ``m_D + 3 sigma_D`` (Eq. 1), split into 8-connected components; each
   component's mask dilated 3x3 is ``M^(D)`` and its stamp ``D ⊙ M^(D) / sigma_D``
   is kept. Components whose peak is below ``min_peak`` sigma_D (invisible once
   scaled by ``k_C``) or larger than 64 px are dropped.
2. **Real footprints of ``cosmic_rays_itl_2017.fits.gz``** (1,764 hits on LSST
   ITL CCDs, rows ``(fp_id, x0, y0, pixel_values)`` = horizontal spans): the
   table's detection floor (49 e-) is taken as 5 sigma_D (sigma_D = 9.8 e-);
   footprints peaking below ``min_peak`` sigma_D are dropped as for the dark.
3. **Simulated hits** (always available, in units of sigma_U): single and
   double pixel hits, straight tracks at random incidence, and curly "worms"
   of thick deep-depletion CCDs, with random charge per pixel and charge
   diffusion.

Hits are added per Eq. 2, ``C = U + k_C (sigma_U / sigma_D) D ⊙ M^(D)`` with
``k_C = 1/8`` for the real hits (simulated ones are drawn directly in sigma_U),
after a random rotation by a multiple of 90 degrees; truth = ``M^(D)`` (the
threshold mask dilated 3x3). Real data are read from a directory given at run
time and never shipped; :class:`CosmicRayLibrary` caches one extraction per
path and process.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from maximask.simulate.base import Scene, register_contaminant

__all__ = [
    "K_C",
    "DARK_FILE",
    "ITL_FILE",
    "CosmicRayHit",
    "CosmicRayLibrary",
    "load_cosmic_ray_library",
    "extract_dark_hits",
    "read_itl_footprints",
    "simulate_hit",
    "inject_cosmic_rays",
    "real_data_dir",
]

#: Scaling factor of Eq. 2.
K_C = 1.0 / 8.0
DARK_FILE = "coj1m011-fl08-20151216-0083-d00.fits.fz"
ITL_FILE = "cosmic_rays_itl_2017.fits.gz"
#: sigma_D assumed for the ITL table (its floor, 49 e-, taken as 5 sigma), e-.
ITL_SIGMA = 9.8
_DILATE = np.ones((3, 3), bool)
_CONNECT = np.ones((3, 3), bool)


def real_data_dir(path: str | os.PathLike | None = None) -> Path | None:
    """The real-data directory: ``path``, else ``$MAXIMASK_REAL_DATA``, else None."""
    p = path if path is not None else os.environ.get("MAXIMASK_REAL_DATA")
    if not p:
        return None
    return Path(p)


@dataclass
class CosmicRayHit:
    """One hit.

    Attributes
    ----------
    values : ndarray, shape (h, w), float32
        Hit signal in units of sigma_D (real) or sigma_U (simulated), zero
        outside ``truth``.
    truth : ndarray, shape (h, w), bool
        Dilated footprint M^(D).
    origin : str
        ``"dark"``, ``"itl"`` or ``"sim:<kind>"``.
    """

    values: np.ndarray
    truth: np.ndarray
    origin: str


def _stamp_from_mask(D: np.ndarray, mask: np.ndarray, sl: tuple[slice, slice], sigma: float) -> CosmicRayHit:
    ys, xs = sl
    y0, y1 = max(ys.start - 1, 0), min(ys.stop + 1, D.shape[0])
    x0, x1 = max(xs.start - 1, 0), min(xs.stop + 1, D.shape[1])
    m = mask[y0:y1, x0:x1]
    md = ndi.binary_dilation(m, _DILATE)
    vals = np.where(md, D[y0:y1, x0:x1] / sigma, 0.0).astype(np.float32)
    return CosmicRayHit(vals, md, "dark")


def extract_dark_hits(path: str | os.PathLike, *, min_peak: float = 24.0, max_size: int = 64) -> list[CosmicRayHit]:
    """Extract real hits from a dark frame (Eq. 1).

    Parameters
    ----------
    path : path-like
        FITS dark (first image HDU used; leading length-1 axes dropped).
    min_peak : float, sigma_D
        Drop components whose peak is lower (invisible after the k_C scaling).
    max_size : int, pixels
        Drop components whose bounding box is larger (glows, bad columns).

    Returns
    -------
    list of CosmicRayHit, values in units of sigma_D
    """
    import sep
    from astropy.io import fits

    with fits.open(path) as hdul:
        data = next(h.data for h in hdul if getattr(h, "data", None) is not None and h.data.ndim >= 2)
    d = np.asarray(data, dtype=np.float32).squeeze()
    ny, nx = d.shape
    # the Sinistro frame has a 16-column overscan on the right; trim it and 8-px edges
    d = np.ascontiguousarray(d[8 : ny - 8, 8 : min(nx, 1024) - 4])
    bkg = sep.Background(d, bw=64, bh=64, fw=3, fh=3)
    D = d - bkg.back()
    sigma = float(bkg.globalrms)
    m_d = float(np.median(D))
    mask = D > m_d + 3.0 * sigma
    lab, n = ndi.label(mask, structure=_CONNECT)
    hits = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        if sl[0].stop - sl[0].start > max_size or sl[1].stop - sl[1].start > max_size:
            continue
        comp = lab[sl] == i
        if float(D[sl][comp].max()) < min_peak * sigma:
            continue
        full = np.zeros_like(mask)
        full[sl] = comp
        hits.append(_stamp_from_mask(D, full, sl, sigma))
    return hits


def read_itl_footprints(
    path: str | os.PathLike, *, sigma: float = ITL_SIGMA, min_peak: float = 24.0, max_size: int = 64
) -> list[CosmicRayHit]:
    """Read the ITL footprint table into hits (values in units of sigma_D).

    Each row is a horizontal span: ``pixel_values`` start at column ``x0`` of row ``y0``.
    Footprints whose peak is below ``min_peak`` sigma_D (about a third of the
    table: 1-3 pixel blips of 50-60 e-, invisible after the k_C scaling) or
    larger than ``max_size`` are dropped.
    """
    from astropy.io import fits

    with fits.open(path) as hdul:
        t = hdul[1].data
        fp = np.asarray(t["fp_id"]).astype(np.int64)
        x0 = np.asarray(t["x0"]).astype(np.int64)
        y0 = np.asarray(t["y0"]).astype(np.int64)
        spans = [np.asarray(v, dtype=np.float64) for v in t["pixel_values"]]
    hits = []
    for f in np.unique(fp):
        rows = np.flatnonzero(fp == f)
        ys = y0[rows]
        xs0 = x0[rows]
        xs1 = xs0 + np.array([len(spans[r]) for r in rows])
        ymin, xmin = ys.min(), xs0.min()
        h, w = ys.max() - ymin + 1, xs1.max() - xmin
        if h > max_size or w > max_size or h < 1 or w < 1:
            continue
        if max(float(spans[r].max()) for r in rows) < min_peak * sigma:
            continue
        vals = np.zeros((h + 2, w + 2))
        for r, y, xa in zip(rows, ys, xs0):
            v = spans[r]
            vals[y - ymin + 1, xa - xmin + 1 : xa - xmin + 1 + len(v)] = v
        m = vals > 0
        md = ndi.binary_dilation(m, _DILATE)
        # the table holds no values around the footprint: the dilated ring gets 0 signal
        hits.append(CosmicRayHit((vals / sigma).astype(np.float32), md, "itl"))
    return hits


class CosmicRayLibrary:
    """Real cosmic-ray hits read from a real-data directory.

    Parameters
    ----------
    directory : path-like
        Holds :data:`DARK_FILE` and/or :data:`ITL_FILE`; missing files are skipped.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.dark: list[CosmicRayHit] = []
        self.itl: list[CosmicRayHit] = []
        if (self.directory / DARK_FILE).is_file():
            self.dark = extract_dark_hits(self.directory / DARK_FILE)
        if (self.directory / ITL_FILE).is_file():
            self.itl = read_itl_footprints(self.directory / ITL_FILE)

    def __len__(self) -> int:
        return len(self.dark) + len(self.itl)

    def draw(self, *, rng: np.random.Generator) -> CosmicRayHit:
        """One real hit, dark or ITL with equal probability when both exist."""
        pools = [p for p in (self.dark, self.itl) if p]
        pool = pools[int(rng.integers(len(pools)))]
        return pool[int(rng.integers(len(pool)))]


@functools.lru_cache(maxsize=4)
def _cached_library(directory: str) -> CosmicRayLibrary:
    return CosmicRayLibrary(directory)


def load_cosmic_ray_library(directory: str | os.PathLike | None) -> CosmicRayLibrary | None:
    """The (per-process cached) library of ``directory``; None if no directory or no file."""
    d = real_data_dir(directory)
    if d is None or not d.is_dir():
        return None
    lib = _cached_library(str(d.resolve()))
    return lib if len(lib) else None


def _deposit(points_y: np.ndarray, points_x: np.ndarray, charge: np.ndarray, diffusion: float) -> tuple[np.ndarray, int, int]:
    """Charge deposits (sub-pixel points) -> blurred stamp. Returns stamp and its origin."""
    pad = int(np.ceil(3 * diffusion)) + 2
    y0 = int(np.floor(points_y.min())) - pad
    x0 = int(np.floor(points_x.min())) - pad
    h = int(np.ceil(points_y.max())) - y0 + pad + 1
    w = int(np.ceil(points_x.max())) - x0 + pad + 1
    # bilinear split of each deposit among the 4 nearest pixel centres (all inside: padded)
    fy, fx = points_y - y0, points_x - x0
    iy, ix = np.floor(fy).astype(np.int64), np.floor(fx).astype(np.int64)
    ty, tx = fy - iy, fx - ix
    flat = np.concatenate([iy * w + ix, iy * w + ix + 1, (iy + 1) * w + ix, (iy + 1) * w + ix + 1])
    wts = np.concatenate([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx]) * np.tile(charge, 4)
    stamp = np.bincount(flat, weights=wts, minlength=h * w).reshape(h, w)
    if diffusion > 0:  # separable Gaussian (no matrix products: BLAS threads are slow on shared machines)
        r = int(3.0 * diffusion)
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / diffusion) ** 2)
        k /= k.sum()
        stamp = ndi.correlate1d(ndi.correlate1d(stamp, k, axis=0, mode="constant"), k, axis=1, mode="constant")
    return stamp, y0, x0


def _dilate3(m: np.ndarray) -> np.ndarray:
    """3x3 binary dilation (same as ``ndi.binary_dilation(m, ones((3, 3)))``)."""
    p = np.pad(m, 1)
    r = p[:-2] | p[1:-1] | p[2:]
    return r[:, :-2] | r[:, 1:-1] | r[:, 2:]


def simulate_hit(*, rng: np.random.Generator, kind: str | None = None, threshold: float = 0.375) -> CosmicRayHit:
    """One simulated hit, values in units of sigma_U.

    Parameters
    ----------
    kind : {"dot", "double", "track", "worm"}, optional
        Drawn with probabilities 0.3, 0.15, 0.35, 0.2 when None.
    threshold : float, sigma_U
        Footprint threshold before the 3x3 dilation (3 sigma_D times k_C, as Eq. 1-2).
    """
    if kind is None:
        kind = str(rng.choice(["dot", "double", "track", "worm"], p=[0.3, 0.15, 0.35, 0.2]))
    diffusion = float(rng.uniform(0.2, 0.6))
    if kind in ("dot", "double"):
        n = 1 if kind == "dot" else 2
        py = rng.uniform(0, 1, n)
        px = rng.uniform(0, 1, n)
        if n == 2:
            a = rng.uniform(0, 2 * np.pi)
            py[1], px[1] = py[0] + np.sin(a), px[0] + np.cos(a)
        charge = np.exp(rng.uniform(np.log(6.0), np.log(400.0), n))
    elif kind == "track":
        length = float(np.exp(rng.uniform(np.log(2.0), np.log(40.0))))
        a = rng.uniform(0, 2 * np.pi)
        t = np.arange(0.0, length + 1e-9, 0.25)
        py, px = t * np.sin(a), t * np.cos(a)
        per_px = float(np.exp(rng.uniform(np.log(4.0), np.log(150.0))))
        charge = per_px * 0.25 * rng.lognormal(0.0, 0.5, t.size)
        # delta rays: a few bright knots
        knots = rng.random(t.size) < 0.01
        charge[knots] *= rng.uniform(3, 10, knots.sum())
    else:  # worm: curly low-energy electron track in a thick CCD
        n_step = int(rng.integers(20, 200))
        step = 0.25
        a = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, rng.uniform(0.1, 0.4), n_step))
        py, px = np.cumsum(step * np.sin(a)), np.cumsum(step * np.cos(a))
        per_px = float(np.exp(rng.uniform(np.log(8.0), np.log(150.0))))
        charge = per_px * step * rng.lognormal(0.0, 0.4, n_step)
        charge[-max(1, n_step // 8) :] *= 2.5  # Bragg-like bright end
    stamp, _, _ = _deposit(py, px, charge, diffusion)
    m = stamp > threshold
    if not m.any():
        m = stamp >= stamp.max()
    md = _dilate3(m)
    ys, xs = np.nonzero(md)
    sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    vals = np.where(md, stamp, 0.0)[sl].astype(np.float32)
    return CosmicRayHit(vals, md[sl], f"sim:{kind}")


@register_contaminant("CR")
def inject_cosmic_rays(
    scene: Scene,
    *,
    rng: np.random.Generator,
    library: CosmicRayLibrary | None = None,
    real_data: str | os.PathLike | None = None,
    rate: tuple[float, float] = (2.0, 60.0),
    real_fraction: float = 0.7,
    k_c: float = K_C,
    **options,
) -> None:
    """Add cosmic-ray hits per Eq. 2; truth CR = dilated footprints.

    Parameters
    ----------
    library : CosmicRayLibrary, optional
        Real hits; else loaded from ``real_data`` (or ``$MAXIMASK_REAL_DATA``)
        if given; without any, only simulated hits are used.
    rate : (float, float)
        Range (log-uniform) of the number of hits per 256 x 256 pixels.
    real_fraction : float
        Fraction of real hits when a library is available.
    k_c : float
        Scaling factor of Eq. 2 for real hits.
    """
    if library is None:
        library = load_cosmic_ray_library(real_data)
    ny, nx = scene.shape
    lam = float(np.exp(rng.uniform(np.log(rate[0]), np.log(rate[1])))) * ny * nx / 65536.0
    n = max(1, int(rng.poisson(lam)))
    plane = scene.plane("CR")
    origins: dict[str, int] = {}
    for _ in range(n):
        if library is not None and rng.random() < real_fraction:
            hit = library.draw(rng=rng)
            scale = k_c * scene.sigma
        else:
            hit = simulate_hit(rng=rng)
            scale = scene.sigma
        k = int(rng.integers(4))
        vals = np.rot90(hit.values, k)
        tr = np.rot90(hit.truth, k)
        h, w = vals.shape
        y0 = int(rng.integers(-h + 1, ny))
        x0 = int(rng.integers(-w + 1, nx))
        ys, xs = max(0, -y0), max(0, -x0)
        ye, xe = min(h, ny - y0), min(w, nx - x0)
        if ye <= ys or xe <= xs:
            continue
        sub_t = tr[ys:ye, xs:xe]
        scene.image[y0 + ys : y0 + ye, x0 + xs : x0 + xe] += scale * vals[ys:ye, xs:xe]
        plane[y0 + ys : y0 + ye, x0 + xs : x0 + xe] |= sub_t
        key = hit.origin.split(":")[0]
        origins[key] = origins.get(key, 0) + 1
    scene.meta["CR"] = {"n_hits": n, "origins": origins}
