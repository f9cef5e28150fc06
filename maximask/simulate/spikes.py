"""Diffraction spikes of bright stars (SP, paper Sect. 2.1.10).

The paper extracts spikes from DECam ("x") and MegaCam ("+") images, rotates
them at random for the alt-az HSC, and builds the truth as a cross of the
measured length and width.  We simulate the diffraction physically instead:
each straight spider vane diffracts light into a spike perpendicular to it,
running through the star in both directions; its brightness along the spike
falls as a power law of the distance ``r`` and its cross-section is the
scene PSF's line-spread function (the seeing blurs spikes exactly as it
blurs the star), optionally broadened (thick or rough vanes):

    S(r, d) = P * s0 * (1 + (r / r_c)^2)^(-gamma / 2) * L(d) * w_side

with ``P`` the star's peak (ADU above sky), ``s0`` the spike strength
(log-uniform in [0.003, 0.05]), ``r_c`` = FWHM, ``gamma`` in [1.5, 2.5]
and ``w_side`` in [0.6, 1] an asymmetry between the two halves.  So both the
length and the width of the visible spike grow with the star's brightness.
All stars of one image share the spider geometry and orientation (one
telescope, one exposure).

Geometries (spike lines through the star): ``cross`` (4 vanes: "+"-like),
``tri`` (3 vanes at 120 deg: 6 rays), ``doubled`` (truss spider: opposite
vanes not collinear, each spike doubled with 0.3-1.5 deg separation),
``skewed`` (vanes not orthogonal: 80-100 deg), ``cross+h`` (DECam-like
cross plus a fainter horizontal spike) and ``bar`` (2 vanes: one line).
Orientation: "+" (0 deg), "x" (45 deg) or arbitrary (alt-az telescopes).

Stars used: ``scene.sources`` with ``is_star`` whose peak (flux x PSF max)
exceeds ``min(0.5 (saturation - sky), 1000 sigma_U)``, at most 20 (the
brightest).  When there is none, the injector adds one bright star itself
(peak log-uniform from that threshold to 30 times it, anywhere in the
frame; if its spike would not be visible over 1.5 times the minimum length
below, the image's spike strength is raised, up to 0.05, then the star is
made brighter):
its PSF image (the scene PSF stamp, continued beyond it by a power-law wing
matched to the stamp's outer ring, slope r^-2 to r^-4)
is added to ``scene.image`` with photon noise and to ``scene.clean`` and
``scene.source_image`` (noise-free), it is
appended to ``scene.sources`` and its pixels above 10 sigma_U are marked BBG
(the truth of Sect. 2.1.12).  Saturation of that star is left to the SAT
injector (run SP before SAT).

Stars whose spike would stay above the truth threshold over less than
max(3 FWHM, 8 px, 1.5 x the radius where the star itself falls to
sigma_U) get no spike: it could not be told from the star (the paper's
"too small: no spike").

Truth: the spike image above ``truth_threshold`` sigma_U (default 1),
dilated with a 5x5 square; only the spike light inside that mask is added
(plus its photon noise), so the image changes nowhere else.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from maximask.simulate.base import Scene, register_contaminant
from maximask.simulate.trails import line_spread_function, loguniform, scene_psf, square_dilate

__all__ = ["GEOMETRIES", "inject_spikes", "spike_lines", "bright_star_threshold"]

#: Spider geometries and their default probabilities.
GEOMETRIES = {"cross": 0.5, "tri": 0.1, "doubled": 0.15, "skewed": 0.1, "cross+h": 0.08, "bar": 0.07}
_MAX_STARS = 20


def spike_lines(geometry: str, theta0: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """(angle, weight) of each spike line through the star (a line = two opposite rays)."""
    if geometry == "cross":
        return [(theta0, 1.0), (theta0 + np.pi / 2, 1.0)]
    if geometry == "tri":
        return [(theta0 + j * np.pi / 3, 0.7) for j in range(3)]
    if geometry == "doubled":
        sep_ = np.deg2rad(rng.uniform(0.3, 1.5))
        return [(theta0 - sep_ / 2, 0.6), (theta0 + sep_ / 2, 0.6), (theta0 + np.pi / 2 - sep_ / 2, 0.6), (theta0 + np.pi / 2 + sep_ / 2, 0.6)]
    if geometry == "skewed":
        return [(theta0, 1.0), (theta0 + np.deg2rad(rng.uniform(80.0, 100.0)), 1.0)]
    if geometry == "cross+h":
        return [(theta0, 1.0), (theta0 + np.pi / 2, 1.0), (0.0, rng.uniform(0.15, 0.5))]
    if geometry == "bar":
        return [(theta0, 1.0)]
    raise ValueError(f"unknown spike geometry {geometry!r}; expected one of {list(GEOMETRIES)}")


def bright_star_threshold(scene: Scene) -> float:
    """Peak (ADU above sky) above which a star gets spikes."""
    return float(min(0.5 * max(scene.saturation - scene.sky_level, 0.0), 1000.0 * scene.sigma))


def _wing(psf: np.ndarray) -> tuple[float, float, float]:
    """Power-law continuation of the PSF beyond its stamp: (r_e, v_e, n), v(r) = v_e (r_e / r)^n.

    ``v_e`` is the azimuthal mean of the stamp in the ring ``h - 1 <= r < h``
    (``h`` the stamp half-size) at its mean radius ``r_e``; ``n`` is the local
    log-log slope between the rings at ``h / 2`` and ``h``, clipped to [2, 4]
    (an aureole falls no faster than r^-4).
    """
    h = psf.shape[0] // 2
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
    r = np.hypot(xx, yy)
    outer = (r >= h - 1) & (r < h)
    inner = (r >= h / 2 - 0.5) & (r < h / 2 + 0.5)
    if h < 3 or not outer.any() or not inner.any():
        return float(max(h, 1)), 0.0, 3.0
    r_e, v_e = float(r[outer].mean()), float(max(psf[outer].mean(), 0.0))
    r_i, v_i = float(r[inner].mean()), float(max(psf[inner].mean(), 0.0))
    n = np.log(v_i / v_e) / np.log(r_e / r_i) if v_e > 0 and v_i > 0 and r_e > r_i else 3.0
    return r_e, v_e, float(np.clip(n, 2.0, 4.0))


def _star_image(psf: np.ndarray, flux: float, sigma: float, x: float, y: float, shape) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Star of total ``flux`` at (x, y): the PSF stamp inside ``r_e``, its power-law wing outside."""
    h = psf.shape[0] // 2
    r_e, v_e, n = _wing(psf)
    # wing radius where it falls below 0.02 sigma
    rmax = r_e * (flux * v_e / (0.02 * sigma)) ** (1 / n) if v_e > 0 else r_e
    rmax = int(np.ceil(min(max(rmax, h + 1), 2 * max(shape))))
    ny, nx = shape
    xi, yi = int(round(x)), int(round(y))
    y0, y1 = max(yi - rmax, 0), min(yi + rmax + 1, ny)
    x0, x1 = max(xi - rmax, 0), min(xi + rmax + 1, nx)
    if y1 <= y0 or x1 <= x0:
        return np.zeros((0, 0)), (slice(0, 0), slice(0, 0))
    yy = np.arange(y0, y1)[:, None] - yi
    xx = np.arange(x0, x1)[None, :] - xi
    r = np.sqrt(xx * xx + yy * yy)
    img = v_e * (r_e / np.maximum(r, r_e)) ** n
    # the stamp itself inside r_e
    sy0, sy1 = max(yi - h, y0), min(yi + h + 1, y1)
    sx0, sx1 = max(xi - h, x0), min(xi + h + 1, x1)
    if sy1 > sy0 and sx1 > sx0:
        sub = img[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
        stamp = psf[sy0 - yi + h : sy1 - yi + h, sx0 - xi + h : sx1 - xi + h]
        inside = r[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] < r_e
        sub[inside] = stamp[inside]
    img *= flux
    return img, (slice(y0, y1), slice(x0, x1))


class _StarRadius:
    """Radius (px) out to which a star of a given peak stays above sigma (PSF, then its wing)."""

    def __init__(self, psf: np.ndarray):
        h = psf.shape[0] // 2
        yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
        order = np.argsort(-psf.ravel())
        self.neg_vals = -psf.ravel()[order] / psf.max()  # increasing
        self.rcum = np.maximum.accumulate(np.hypot(xx, yy).ravel()[order])
        self.r_e, v_e, self.n = _wing(psf)
        self.edge = v_e / float(psf.max())

    def __call__(self, peak: float, sigma: float) -> float:
        if self.edge * peak > sigma:
            return float(self.r_e * (self.edge * peak / sigma) ** (1.0 / self.n))
        n = int(np.searchsorted(self.neg_vals, -sigma / peak))  # pixels above sigma / peak
        return float(self.rcum[n - 1]) if n > 0 else 0.0


def _runs(lo: np.ndarray, hi: np.ndarray, offset: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row i, the indices j in [0, n) with lo[i] < offset + j < hi[i]: (rows, js)."""
    jlo = np.clip(np.floor(lo - offset).astype(np.int64) + 1, 0, n)
    jhi = np.clip(np.ceil(hi - offset).astype(np.int64), 0, n)
    counts = np.maximum(jhi - jlo, 0)
    total = int(counts.sum())
    rows = np.repeat(np.arange(lo.size), counts)
    starts = np.repeat(jlo - (np.cumsum(counts) - counts), counts)
    return rows, starts + np.arange(total)


def _band(bx: np.ndarray, by: np.ndarray, c: float, s: float, half: float) -> tuple[np.ndarray, np.ndarray]:
    """Local (row, column) indices of the box pixels with ``|-s x + c y| < half`` (x = bx[col], y = by[row])."""
    if abs(s) >= abs(c):  # steep line: an x-interval per row
        a, b = (c * by - half) / s, (c * by + half) / s
        ly, lx = _runs(np.minimum(a, b), np.maximum(a, b), bx[0], bx.size)
    else:  # shallow line: a y-interval per column
        a, b = (s * bx - half) / c, (s * bx + half) / c
        lx, ly = _runs(np.minimum(a, b), np.maximum(a, b), by[0], by.size)
    keep = np.abs((-s) * bx[lx] + c * by[ly]) < half
    return ly[keep], lx[keep]


def _spike_length(amp0: float, gamma: float, r_c: float, level: float) -> float:
    """Distance (px) where the spike ``amp0 (1 + (r / r_c)^2)^(-gamma / 2)`` falls to ``level``."""
    r2 = (amp0 / level) ** (2.0 / gamma) - 1.0 if amp0 > 0 else -1.0
    return float(r_c * np.sqrt(r2)) if r2 > 0 else 0.0


def _min_length(radius: _StarRadius, peak: float, sigma: float, fwhm: float) -> float:
    """Shortest spike told from its star: max(3 FWHM, 8 px, 1.5 x the star's radius at sigma)."""
    return max(3.0 * fwhm, 8.0, 1.5 * radius(peak, sigma))


def _add_bright_star(scene: Scene, rng: np.random.Generator, psf: np.ndarray, peak: float) -> tuple[float, float, float]:
    ny, nx = scene.shape
    x, y = float(rng.integers(0, nx)), float(rng.integers(0, ny))
    flux = peak / float(psf.max())
    img, sl = _star_image(psf, flux, scene.sigma, x, y, scene.shape)
    if img.size:
        noisy = img + rng.standard_normal(img.shape) * np.sqrt(np.clip(img, 0, None) / max(scene.gain, 1e-12))
        scene.image[sl] += noisy
        if scene.clean is not None:
            scene.clean[sl] += img
        if getattr(scene, "source_image", None) is not None:
            scene.source_image[sl] += img
        scene.plane("BBG")[sl] |= img > 10.0 * scene.sigma
    src = scene.sources
    dtype = src.dtype if src is not None else np.dtype([("x", "f8"), ("y", "f8"), ("flux", "f8"), ("is_star", "?")])
    rec = np.zeros(1, dtype=dtype)
    for name, val in (("x", x), ("y", y), ("flux", flux), ("is_star", True)):
        if name in dtype.names:
            rec[name] = val
    scene.sources = rec if src is None else np.concatenate([src, rec])
    return x, y, flux


@register_contaminant("SP")
def inject_spikes(
    scene: Scene,
    *,
    rng: np.random.Generator,
    geometry: str | None = None,
    orientation: str | float | None = None,
    strength: float | None = None,
    slope: float | None = None,
    add_star: bool | None = None,
    star_peak: float | None = None,
    truth_threshold: float = 1.0,
    photon_noise: bool = True,
) -> None:
    """Add diffraction spikes to the bright stars of the scene (adding one if needed).

    Parameters
    ----------
    geometry : one of :data:`GEOMETRIES` (default: random).
    orientation : "+", "x", or a position angle in radians (default: random, 45% arbitrary).
    strength : ``s0``, spike peak relative to the star peak at r = 0 (default log-uniform [0.003, 0.05]).
    slope : ``gamma``, power-law index of the decay along the spike (default uniform [1.5, 2.5]).
    add_star : True: always add a bright star; False: never; None: only if no star is bright enough.
    star_peak : peak (ADU above sky) of the added star.
    truth_threshold : spike level (sigma_U) of the truth before the 5x5 dilation.
    """
    ny, nx = scene.shape
    sigma = float(scene.sigma)
    psf = scene_psf(scene)
    fwhm = max(float(scene.fwhm), 0.5)
    thresh = bright_star_threshold(scene)
    pmax = float(psf.max())
    stars: list[tuple[float, float, float]] = []
    src = scene.sources
    if src is not None and len(src):
        is_star = src["is_star"].astype(bool) if "is_star" in src.dtype.names else np.ones(len(src), bool)
        peaks = src["flux"] * pmax
        sel = np.flatnonzero(is_star & (peaks > thresh))
        sel = sel[np.argsort(peaks[sel])[::-1][:_MAX_STARS]]
        stars = [(float(src["x"][i]), float(src["y"][i]), float(peaks[i])) for i in sel]
    if geometry is None:
        g = list(GEOMETRIES)
        p = np.array(list(GEOMETRIES.values()))
        geometry = str(rng.choice(g, p=p / p.sum()))
    if orientation is None:
        u = rng.random()
        orientation = "+" if u < 0.3 else ("x" if u < 0.55 else float(rng.uniform(0, np.pi)))
    if orientation == "+":
        theta0 = float(np.deg2rad(rng.normal(0.0, 0.5)))
    elif orientation == "x":
        theta0 = float(np.deg2rad(45.0 + rng.normal(0.0, 0.5)))
    else:
        theta0 = float(orientation)
    lines = spike_lines(geometry, theta0, rng)
    s0 = float(loguniform(rng, 0.003, 0.05)) if strength is None else float(strength)
    gamma = float(rng.uniform(1.5, 2.5)) if slope is None else float(slope)
    broaden = float(rng.uniform(0.0, 1.0))
    sides = rng.uniform(0.6, 1.0, size=(len(lines), 2))
    sides /= sides.max(axis=1, keepdims=True)
    r_c = fwhm
    star_radius = _StarRadius(psf)
    n_candidates = len(stars)
    stars = [st for st in stars if _spike_length(st[2] * s0, gamma, r_c, truth_threshold * sigma) >= _min_length(star_radius, st[2], sigma, fwhm)]
    added_star = None
    if add_star or (add_star is None and not stars):
        if star_peak is None:
            lo_peak = max(thresh, 1.0)
            peak = float(loguniform(rng, lo_peak, 30.0 * lo_peak))

            def visible(pk: float, s: float) -> bool:
                return _spike_length(pk * s, gamma, r_c, truth_threshold * sigma) >= 1.5 * _min_length(star_radius, pk, sigma, fwhm)

            # make its spike comfortably visible (1.5 x the minimum length): stronger
            # spikes first (up to s0 = 0.05), a brighter star only if that is not enough
            while s0 > 0 and not visible(peak, s0) and s0 < 0.05:
                s0 = min(1.25 * s0, 0.05)
            for _ in range(60):
                if s0 <= 0 or visible(peak, s0):
                    break
                peak *= 1.5
        else:
            peak = float(star_peak)
        x, y, flux = _add_bright_star(scene, rng, psf, peak)
        stars.append((x, y, peak))
        added_star = dict(x=x, y=y, flux=flux, peak=peak)
    # line-spread function across each spike (the seeing), broadened by the vanes
    lsfs = []
    for ang, _w in lines:
        grid, lsf = line_spread_function(psf, ang)
        if broaden > 0:
            lsf = ndimage.gaussian_filter1d(lsf, broaden / (grid[1] - grid[0]))
        lsf = lsf / lsf.max()
        lsfs.append((grid, lsf))
    spike = np.zeros((ny, nx))
    flat = spike.reshape(-1)
    for (xs, ys, peak) in stars:
        amp0 = peak * s0
        # as in the paper, no spike when its visible length (down to the truth
        # threshold) would be too short to be told from the star itself
        # radius where the spike falls to 0.05 sigma
        ratio = amp0 / (0.05 * sigma)
        if ratio <= 1:
            continue
        rmax = r_c * np.sqrt(ratio ** (2.0 / gamma) - 1.0)
        rmax = float(min(rmax, 1.5 * np.hypot(nx, ny)))
        x0, x1 = max(int(np.floor(xs - rmax)), 0), min(int(np.ceil(xs + rmax)) + 1, nx)
        y0, y1 = max(int(np.floor(ys - rmax)), 0), min(int(np.ceil(ys + rmax)) + 1, ny)
        if x1 <= x0 or y1 <= y0:
            continue
        bx = np.arange(x0, x1, dtype=np.float64) - xs
        by = np.arange(y0, y1, dtype=np.float64) - ys
        for (ang, wgt), (grid, lsf), side in zip(lines, lsfs, sides):
            c, s = np.cos(ang), np.sin(ang)
            half = float(np.abs(grid[lsf > 0.05 * sigma / max(amp0 * wgt, 1e-300)]).max(initial=1.0))
            ly, lx = _band(bx, by, c, s, half)
            if not ly.size:
                continue
            dl = (-s) * bx[lx] + c * by[ly]
            t = bx[lx] * c + by[ly] * s
            along = amp0 * wgt * (1.0 + (t / r_c) ** 2) ** (-gamma / 2.0) * np.where(t >= 0, side[0], side[1])
            val = along * np.interp(dl, grid, lsf, left=0.0, right=0.0)
            flat[(ly + y0) * nx + (lx + x0)] += val
    core = spike > truth_threshold * sigma
    mask = square_dilate(core, 5)
    spike[~mask] = 0.0
    if photon_noise and scene.gain > 0 and mask.any():
        idx = np.flatnonzero(mask)
        lam = flat[idx]
        flat[idx] = lam + rng.standard_normal(lam.size) * np.sqrt(lam / scene.gain)
    scene.image += spike
    scene.plane("SP")[...] |= mask
    scene.meta.setdefault("SP", []).append(
        dict(
            geometry=geometry,
            orientation=orientation if isinstance(orientation, str) else "arbitrary",
            theta0=theta0,
            lines=[(float(a), float(w)) for a, w in lines],
            strength=s0,
            slope=gamma,
            broadening=broaden,
            n_candidates=n_candidates,
            n_stars=len(stars),
            added_star=added_star,
            threshold_peak=thresh,
        )
    )
