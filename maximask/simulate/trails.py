"""Satellite, plane and meteor trails (TRL, paper Sect. 2.1.6, Eqs. 7-8).

The paper stacks close SkyMaker star images of identical magnitude along a
line, with ~1 px Gaussian jitter, plus a population with "flares", and
defocuses meteors by the apparent pupil width of Eq. 7.  We render the same
thing analytically, which is exact for a dense line of point sources and much
faster: every pixel gets its coordinates ``t`` (along the path) and ``d``
(across it), and the trail is

    T(t, d) = A(t) * L(d - o(t)) * W(t)

where ``L`` is the line-spread function (the scene PSF projected across the
trail, convolved with the projected pupil annulus when defocused), ``o(t)``
the smooth random jitter of the path (std ~0.6 px, correlated over 3-40 px), ``A(t)`` the brightness
along the path (constant, flares, periodic glints, blinking plane strobes,
meteor light curves) and ``W(t)`` the (PSF-softened) ends of the path when it
does not cross the whole frame.

Populations: satellites (45%), flaring satellites (25%: 1-3 Gaussian flares
up to 20x the baseline, or periodic glints of tumbling bodies), planes (10%:
2-3 parallel lights 4-30 px apart, most blinking) and meteors (20%: rise-and-
fall light curve, mostly segments).  Defocus: the pupil pattern (a uniform
annulus, central obstruction 0.25-0.5) of apparent width theta = D / d
(Eq. 7, D in [2, 8] m) projected across the path: meteors at d in
[80, 120] km exactly as in the paper; satellites (d log-uniform in
[300, 40000] km) and planes ([30, 300] km) too, capped at 40 px, which gives
the wide, flat-topped LEO trails of large telescopes.  The plate scale
(arcsec/px) is drawn in [0.15, 0.6] with a seeing FWHM of 0.4-2 arcsec.

Truth (Sect. 2.1.6): ``T`` binarised at a small threshold above the
background (``truth_threshold`` x sigma_U, default 0.2), dilated with a 7x7
square.  Added per Eq. 8, ``C = U + k_T sigma_U / sigma_T  T (.) M(T)`` with
k_T = 6: ``T / sigma_T`` is the trail in units of its own image's background
noise, i.e. its peak signal-to-noise ``snr`` (drawn log-uniformly in
[0.08, 100] (meteors [0.3, 100]), so that the per-pixel peak goes from 0.5
to 600 sigma_U).  The
photon noise of the trail light is added (Poisson, gain of the scene).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.special import ndtr

from maximask.simulate.base import Scene, register_contaminant

__all__ = [
    "K_T",
    "TRAIL_KINDS",
    "inject_trails",
    "line_spread_function",
    "defocus_profile",
    "meteor_defocus_arcsec",
    "square_dilate",
]

#: Eq. 8 scaling factor.
K_T = 6.0
#: Trail populations and their default probabilities.
TRAIL_KINDS = {"satellite": 0.45, "flare": 0.25, "plane": 0.1, "meteor": 0.2}
#: Largest defocus width (px) of satellites and planes (meteors follow Eq. 7 exactly).
MAX_DEFOCUS_PX = 40.0
#: Fine sampling step (pixels) of the 1-D profiles.
_STEP = 0.1


def loguniform(rng: np.random.Generator, low: float, high: float, size=None):
    """Log-uniform draw in [low, high]."""
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def square_dilate(mask: np.ndarray, size: int) -> np.ndarray:
    """Binary dilation by a ``size`` x ``size`` square (odd size), outside = False.

    Same result as ``scipy.ndimage.maximum_filter(mask, size)``, grown one pixel
    at a time with shifted ORs (much faster for small sizes).
    """
    out = np.array(mask, dtype=bool, copy=True)
    h = size // 2
    for axis in (0, 1):
        src = out.copy()
        for w in range(1, h + 1):
            if axis == 0:
                out[w:] |= src[:-w]
                out[:-w] |= src[w:]
            else:
                out[:, w:] |= src[:, :-w]
                out[:, :-w] |= src[:, w:]
    return out


def _gaussian_psf(fwhm: float) -> np.ndarray:
    half = int(np.ceil(2.0 * fwhm)) + 1
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    s = fwhm / 2.3548
    p = np.exp(-0.5 * (x * x + y * y) / (s * s))
    return p / p.sum()


def scene_psf(scene: Scene) -> np.ndarray:
    """The scene PSF stamp, or a Gaussian of the scene FWHM when it has none."""
    if scene.psf is not None:
        psf = np.asarray(scene.psf, dtype=np.float64)
        total = psf.sum()
        if psf.ndim == 2 and total > 0 and np.isfinite(total):
            return psf / total
    return _gaussian_psf(max(float(scene.fwhm), 0.5))


def line_spread_function(psf: np.ndarray, angle: float, *, step: float = _STEP) -> tuple[np.ndarray, np.ndarray]:
    """Project ``psf`` across a line of position angle ``angle`` (radians).

    Returns the fine grid ``d`` (pixels, symmetric) and the line-spread
    function ``L(d)``, normalised to unit integral (so a line of unit linear
    density has pixel values ``L(d)``).
    """
    ky, kx = psf.shape
    v, u = np.mgrid[-(ky // 2) : ky - ky // 2, -(kx // 2) : kx - kx // 2]
    dproj = (-u * np.sin(angle) + v * np.cos(angle)).ravel()
    half = 0.5 * np.hypot(kx, ky) + 2.0
    n = int(np.ceil(half / step))
    grid = np.arange(-n, n + 1) * step
    # linear deposit on the fine grid, then a 1-pixel box (pixel footprint)
    pos = (dproj + n * step) / step
    i0 = np.floor(pos).astype(int)
    w1 = pos - i0
    hist = np.bincount(i0, weights=psf.ravel() * (1 - w1), minlength=grid.size + 1)
    hist += np.bincount(i0 + 1, weights=psf.ravel() * w1, minlength=grid.size + 1)
    hist = hist[: grid.size]
    box = max(1, int(round(1.0 / step)))
    lsf = np.convolve(hist, np.ones(box) / box, mode="same")
    lsf /= lsf.sum() * step
    return grid, lsf


def defocus_profile(width: float, obstruction: float, *, step: float = _STEP) -> np.ndarray:
    """Projection across the path of a uniform pupil annulus of outer diameter ``width`` px.

    Returns a kernel on the fine grid (odd length, unit sum); a delta when the
    width is below a pixel.
    """
    r_out = 0.5 * width
    if r_out < 0.5:
        return np.ones(1)
    n = int(np.ceil(r_out / step)) + 1
    d = np.arange(-n, n + 1) * step
    prof = np.sqrt(np.clip(r_out**2 - d * d, 0, None)) - np.sqrt(np.clip((obstruction * r_out) ** 2 - d * d, 0, None))
    return prof / prof.sum()


def meteor_defocus_arcsec(mirror_diameter: float, distance: float) -> float:
    """Eq. 7: apparent pupil width (arcsec) of an object at ``distance`` m for a mirror of ``mirror_diameter`` m."""
    return 180.0 / np.pi * 3600.0 * mirror_diameter / distance


def _smooth_noise(rng: np.random.Generator, n: int, corr: float) -> np.ndarray:
    w = rng.standard_normal(n + 8 * int(np.ceil(corr)) + 2)
    s = ndimage.gaussian_filter1d(w, max(corr, 0.3), mode="wrap")
    s = s[: n]
    std = s.std()
    return s / std if std > 0 else s


def _brightness(kind: str, t: np.ndarray, span: tuple[float, float], rng: np.random.Generator, rec: dict) -> np.ndarray:
    """Relative brightness A(t) along the path (baseline 1)."""
    if kind == "flare":
        if rng.random() < 0.5:
            nfl = int(rng.integers(1, 4))
            a = np.ones_like(t)
            centres = rng.uniform(span[0], span[1], nfl)
            amps = loguniform(rng, 1.0, 20.0, nfl)
            widths = loguniform(rng, 2.0, 40.0, nfl)
            for c, am, w in zip(centres, amps, widths):
                a += am * np.exp(-0.5 * ((t - c) / w) ** 2)
            base = rng.uniform(0.0, 1.0) if rng.random() < 0.3 else 1.0
            a = base + (a - 1.0) if base < 1.0 else a
            rec.update(flare="bumps", centres=centres.tolist(), amps=amps.tolist(), widths=widths.tolist(), base=base)
            return np.clip(a, 0, None)
        period = loguniform(rng, 6.0, 120.0)
        sharp = loguniform(rng, 1.0, 10.0)
        depth = rng.uniform(0.5, 10.0)
        phase = rng.uniform(0, 2 * np.pi)
        rec.update(flare="glint", period=period, sharpness=sharp, depth=depth)
        return 1.0 + depth * (0.5 * (1 + np.cos(2 * np.pi * t / period + phase))) ** sharp
    if kind == "meteor":
        # rise and fall with flickering, over the visible segment
        x = np.clip((t - span[0]) / max(span[1] - span[0], 1.0), 0, 1)
        peak = rng.uniform(0.3, 0.8)
        a = np.where(x < peak, x / peak, (1 - x) / (1 - peak)) ** rng.uniform(0.3, 1.5)
        rec.update(lightcurve_peak=peak)
        return 0.2 + a
    return np.ones_like(t)


@register_contaminant("TRL")
def inject_trails(
    scene: Scene,
    *,
    rng: np.random.Generator,
    n_trails: int | None = None,
    kind: str | None = None,
    snr: float | None = None,
    angle: float | None = None,
    center: tuple[float, float] | None = None,
    full_crossing: bool | None = None,
    jitter: float | None = None,
    k_t: float = K_T,
    truth_threshold: float = 0.2,
    photon_noise: bool = True,
) -> None:
    """Add 1 to 3 trails (satellites, flaring satellites, planes, meteors) per Eq. 8.

    Parameters
    ----------
    n_trails : number of trails (default: 1 with 80%, 2 with 15%, 3 with 5%).
    kind : force the population, one of :data:`TRAIL_KINDS`.
    snr : force T/sigma_T, the baseline peak of the trail in units of its image noise
        (the added peak is ``k_t * snr * sigma_U``).
    angle : position angle (radians, from +x towards +y).
    center : (x, y) point the path goes through.
    full_crossing : force the path across the whole frame (True) or a segment (False).
    jitter : std (px) of the path's perpendicular jitter (default ~N(0.6, 0.25) in [0.1, 1.5]).
    truth_threshold : binarisation threshold of the trail image, in sigma_U.
    photon_noise : add Poisson noise of the trail light (gain of the scene).
    """
    ny, nx = scene.shape
    sigma = float(scene.sigma)
    psf = scene_psf(scene)
    fwhm = float(scene.fwhm)
    if n_trails is None:
        n_trails = int(rng.choice([1, 2, 3], p=[0.8, 0.15, 0.05]))
    diag = float(np.hypot(nx, ny))
    xs = np.arange(nx, dtype=np.float64)
    ys = np.arange(ny, dtype=np.float64)
    total = np.zeros(ny * nx)
    records = []
    kinds = list(TRAIL_KINDS)
    probs = np.array(list(TRAIL_KINDS.values()))
    # plate scale (arcsec/px, needed by Eq. 7): in [0.15, 0.6] with a seeing
    # fwhm * scale in [0.4, 2.0] arcsec where possible
    lo = max(0.15, 0.4 / max(fwhm, 0.1))
    hi = min(0.6, 2.0 / max(fwhm, 0.1))
    scale = float(loguniform(rng, lo, hi)) if hi > lo else float(np.sqrt(lo * hi))
    for _ in range(n_trails):
        rec: dict = {}
        k = kind if kind is not None else str(rng.choice(kinds, p=probs / probs.sum()))
        if k not in TRAIL_KINDS:
            raise ValueError(f"unknown trail kind {k!r}; expected one of {kinds}")
        phi = float(rng.uniform(0, np.pi)) if angle is None else float(angle)
        if center is None:
            x0, y0 = rng.uniform(0, nx), rng.uniform(0, ny)
        else:
            x0, y0 = center
        # meteors are seen because they are bright: their range starts higher
        a = float(loguniform(rng, 0.3 if k == "meteor" else 0.08, 100.0)) if snr is None else float(snr)
        c, s = np.cos(phi), np.sin(phi)
        # visible span along the path
        full = (rng.random() < (0.3 if k == "meteor" else 0.85)) if full_crossing is None else bool(full_crossing)
        if full:
            span = (-diag, diag)
        else:
            length = diag * rng.uniform(0.2, 0.9)
            start = rng.uniform(-length, 0.0)  # the segment contains the in-frame point
            span = (start, start + length)
        # defocus (Eq. 7): meteors (paper), satellites and planes at their own distances
        mirror = rng.uniform(2.0, 8.0)
        if k == "meteor":
            dist = rng.uniform(80_000.0, 120_000.0)
        elif k == "plane":
            dist = loguniform(rng, 3e4, 3e5)
        else:
            dist = loguniform(rng, 3e5, 4e7)
        theta = meteor_defocus_arcsec(mirror, dist)
        width_px = theta / scale
        if k != "meteor":
            width_px = min(width_px, MAX_DEFOCUS_PX)
        obstruction = rng.uniform(0.25, 0.5)
        grid, lsf = line_spread_function(psf, phi)
        kern = defocus_profile(width_px, obstruction)
        if kern.size > 1:
            pad = kern.size // 2
            grid = np.arange(-(grid.size // 2) - pad, grid.size // 2 + pad + 1) * _STEP
            lsf = np.convolve(lsf, kern, mode="full")
        lsf = lsf / lsf.max()
        # jitter of the path, sampled every pixel along t
        jit = float(np.clip(rng.normal(0.6, 0.25), 0.1, 1.5)) if jitter is None else float(jitter)
        # image motion is correlated in time: the wobble is smooth over 3-40 px of path
        corr = loguniform(rng, 3.0, 40.0)
        tgrid = np.arange(-diag - 2, diag + 3, 1.0)
        offset = jit * _smooth_noise(rng, tgrid.size, corr) if jit > 0 else np.zeros(tgrid.size)
        # plane: 2-3 parallel lights, some blinking
        lanes = [(0.0, 1.0, None)]
        if k == "plane":
            nl = int(rng.integers(2, 4))
            sep_px = rng.uniform(4.0, 30.0)
            lanes = []
            for j in range(nl):
                blink = None
                if rng.random() < 0.6:
                    blink = (loguniform(rng, 8.0, 80.0), loguniform(rng, 2.0, 30.0), rng.uniform(0, 2 * np.pi))
                lanes.append(((j - (nl - 1) / 2) * sep_px, rng.uniform(0.3, 1.0), blink))
        # only the band where the profile can matter is computed: down to 1e-4 sigma_U
        # at the baseline brightness (flares are at most 21 times brighter)
        visible = lsf * (k_t * max(a, 1e-6)) > 1e-4
        support = float(np.abs(grid[visible]).max()) if visible.any() else 1.0
        band = support + 4.0 * jit + max(abs(l[0]) for l in lanes) + 1.0
        dfull = (-s) * (xs[None, :] - x0) + c * (ys[:, None] - y0)
        idx = np.flatnonzero(np.abs(dfull) < band)
        d = dfull.ravel()[idx]
        t = (xs[idx % nx] - x0) * c + (ys[idx // nx] - y0) * s
        # flare brightness is drawn over the whole path: rng use does not depend on the band
        bright = _brightness(k, t, span, rng, rec)
        sig_end = max(fwhm / 2.3548, 0.25 * width_px if kern.size > 1 else 0.0, 0.5)  # ends blurred by PSF and pupil
        mod0 = a * bright
        if not full:
            mod0 = mod0 * ndtr((t - span[0]) / sig_end) * ndtr((span[1] - t) / sig_end)
        off_t = np.interp(t, tgrid, offset)
        trail = np.zeros(idx.size)
        for lane_off, lane_amp, blink in lanes:
            prof = np.interp(d - off_t - lane_off, grid, lsf, left=0.0, right=0.0)
            mod = lane_amp * mod0
            if blink is not None:
                period, sharp, ph = blink
                # smooth periodic strobe pulses (narrower for larger ``sharp``)
                mod = mod * (0.05 + (0.5 * (1.0 + np.cos(2 * np.pi * t / period + ph))) ** sharp)
            trail += prof * mod
        total[idx] += trail
        rec.update(
            kind=k,
            angle=phi,
            center=(float(x0), float(y0)),
            snr=a,
            full_crossing=bool(full),
            span=(float(span[0]), float(span[1])),
            defocus_px=float(width_px),
            plate_scale=scale,
            jitter=jit,
            lanes=len(lanes),
        )
        records.append(rec)
    # Eq. 8: T is in units of its own background noise (sigma_T = 1)
    added = (k_t * sigma) * total.reshape(ny, nx)
    truth_core = added > truth_threshold * sigma
    mask = square_dilate(truth_core, 7)
    added[~mask] = 0.0
    if photon_noise and scene.gain > 0:
        idx = np.flatnonzero(mask)
        flat = added.reshape(-1)
        lam = flat[idx]
        flat[idx] = lam + rng.standard_normal(lam.size) * np.sqrt(lam / scene.gain)
    scene.image += added
    scene.plane("TRL")[...] |= mask
    scene.meta.setdefault("TRL", []).extend(records)
