"""Clean (uncontaminated) sky exposures: stars, galaxies, PSF, sky, gradient and noise.

This replaces the paper's cleaned DECam/HSC/MegaCam patches (Sect. 2.1.2).
:func:`draw_sky_parameters` draws the nuisance parameters of one exposure over
broad ranges; :func:`make_clean_scene` renders it.

Rendering
---------
* Stars: power-law number counts ``N(>F) ~ F^-a`` (``a = 2.5 * slope``, slope of
  ``log N(<m)`` in [0.2, 0.45]) from 0.3 sigma peak up to far above saturation;
  drawn with sub-pixel phases of the oversampled PSF (:mod:`.psf`), bright stars
  with untruncated GalSim wings.
* Galaxies: steeper counts, Sersic (n in [0.5, 4]) or bulge (n=4) + disk (n=1)
  profiles with random axis ratio and position angle, sizes growing with flux,
  evaluated analytically on sub-sampled stamps, then convolved with the PSF by
  one FFT of the whole galaxy layer.
* Background: sky level plus a smooth gradient (plane + curvature).
* Noise: Poisson (in electrons) and read noise, with the Gaussian approximation
  ``model + sqrt(model * gain + rn^2) / gain * z`` and one standard normal field
  ``z``: the random stream consumed does not depend on pixel values, so a scene
  rendered with a ``smear_kernel`` (tracking errors) and without it from the same
  generator state differ *only* by the smear (same noise field, same sources, and
  every later draw, e.g. the contaminants, is identical).

Truth: ``BBG`` = pixels where the noise-free source image exceeds 10 sigma_U
(Sect. 2.1.12).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from maximask.classes import class_index
from maximask.simulate.base import Scene
from maximask.simulate.psf import PsfModel, draw_psf, fft_convolve_same, render_points

__all__ = ["SkyParameters", "draw_sky_parameters", "make_clean_scene", "render_galaxies", "fft_convolve_same"]

#: Stamp sizes (pixels) used to batch galaxy profiles.
_GAL_STAMPS = (7, 11, 17, 25, 37, 55, 81, 129)

#: Galaxies per pixel^2 at most (deep high-latitude fields down to the noise).
_MAX_GALAXY_DENSITY = 4e-3

SOURCE_DTYPE = np.dtype([("x", "f8"), ("y", "f8"), ("flux", "f8"), ("is_star", "?")])


@dataclass
class SkyParameters:
    """Nuisance parameters of one clean exposure.

    Attributes
    ----------
    shape : (int, int)
        Image shape (ny, nx), pixels.
    fwhm : float, pixels
        FWHM of the seeing (Moffat/Kolmogorov) component; the optical profile
        broadens it (the rendered scene records the effective FWHM).
    psf_profile : {"moffat", "kolmogorov", "optical"}
    psf_params : dict
        ``beta`` (Moffat), shear ``g1``/``g2``, optical aberrations (waves).
    sky_level : float, ADU
        Mean sky background at the image centre.
    gain : float, e-/ADU
    read_noise : float, e-
    saturation : float, ADU
        Full-well (or ADC) level of the detector.
    star_density : float, stars per pixel^2 (down to 0.3 sigma peak)
    galaxy_fraction : float
        Fraction of sources that are galaxies (galaxy density capped at
        4e-3 per pixel^2).
    star_slope, galaxy_slope : float
        Slopes of log10 N(<m) per magnitude of the number counts.
    max_star_peak : float, ADU above sky
        Upper truncation of the star peak distribution.
    galaxy_size : float, pixels
        Half-light radius of the faintest galaxies (grows as flux^0.3).
    gradient : (float, float, float), ADU
        Background ramps across the full image along x and y, and curvature
        (value at the corners relative to the centre).
    detector : {"ccd", "nir"}
        Detector family the gain/read noise were drawn for (provenance).
    """

    shape: tuple[int, int]
    fwhm: float
    psf_profile: str
    psf_params: dict
    sky_level: float
    gain: float
    read_noise: float
    saturation: float
    star_density: float
    galaxy_fraction: float
    star_slope: float = 0.3
    galaxy_slope: float = 0.45
    max_star_peak: float = 1e6
    galaxy_size: float = 0.8
    gradient: tuple[float, float, float] = (0.0, 0.0, 0.0)
    detector: str = "ccd"
    extra: dict = field(default_factory=dict)

    @property
    def sigma(self) -> float:
        """Background noise sigma_U of the sky, ADU."""
        return float(np.sqrt(max(self.sky_level, 0.0) * self.gain + self.read_noise**2) / self.gain)

    def validate(self) -> None:
        """Raise ValueError on inconsistent parameters."""
        if len(self.shape) != 2 or min(self.shape) < 8:
            msg = f"shape must be 2-D and at least 8x8, got {self.shape}"
            raise ValueError(msg)
        for name in ("fwhm", "gain", "saturation"):
            if not getattr(self, name) > 0:
                msg = f"{name} must be positive, got {getattr(self, name)}"
                raise ValueError(msg)
        if self.sky_level < 0 or self.read_noise < 0:
            msg = "sky_level and read_noise must be >= 0"
            raise ValueError(msg)
        if self.saturation <= self.sky_level:
            msg = f"saturation {self.saturation} must exceed the sky level {self.sky_level}"
            raise ValueError(msg)

    def to_dict(self) -> dict:
        """JSON-serialisable dict."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["gradient"] = list(self.gradient)
        d["sigma"] = self.sigma
        return d


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_sky_parameters(
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    fwhm_range: tuple[float, float] = (1.2, 8.0),
    profiles: tuple[str, ...] = ("moffat", "kolmogorov", "optical"),
) -> SkyParameters:
    """Draw the nuisance parameters of one exposure.

    Parameters
    ----------
    shape : (ny, nx), pixels
    rng : numpy.random.Generator
    fwhm_range : (float, float), pixels
        Range of the PSF FWHM; drawn log-uniformly (undersampled < 2 px included).
        Seeing-only profiles (Moffat, Kolmogorov) respect it within ~2 %; the
        optical profile within ~20 % (its aberrations broaden the core).
    profiles : tuple of str
        PSF profiles to draw from (probabilities 0.45, 0.3, 0.25 renormalised).

    Returns
    -------
    SkyParameters
    """
    shape = (int(shape[0]), int(shape[1]))
    fwhm = _loguniform(rng, *fwhm_range)
    weights = {"moffat": 0.45, "kolmogorov": 0.3, "optical": 0.25}
    names = [p for p in weights if p in profiles]
    if not names:
        msg = f"no known PSF profile in {profiles}"
        raise ValueError(msg)
    w = np.array([weights[p] for p in names])
    profile = str(rng.choice(names, p=w / w.sum()))
    g = rng.uniform(0.0, 0.08)
    phi = rng.uniform(0, np.pi)
    psf_params: dict = {"g1": float(g * np.cos(2 * phi)), "g2": float(g * np.sin(2 * phi))}
    if profile == "moffat":
        psf_params["beta"] = float(rng.uniform(2.0, 5.0))
    elif profile == "optical":
        psf_params.update(
            seeing_fraction=0.72,
            lam_over_diam=float(rng.uniform(0.2, 0.5) * fwhm),
            obscuration=float(rng.uniform(0.0, 0.45)),
            defocus=float(rng.normal(0, 0.12)),
            astig1=float(rng.normal(0, 0.08)),
            astig2=float(rng.normal(0, 0.08)),
            coma1=float(rng.normal(0, 0.06)),
            coma2=float(rng.normal(0, 0.06)),
            trefoil=float(rng.normal(0, 0.04)),
            spher=float(rng.normal(0, 0.04)),
        )
    detector = "nir" if rng.random() < 0.25 else "ccd"
    if detector == "ccd":
        gain = _loguniform(rng, 0.5, 5.0)
        read_noise = float(rng.uniform(2.0, 10.0))
        sky = _loguniform(rng, 10.0, 8000.0)
    else:
        gain = _loguniform(rng, 1.0, 5.0)
        read_noise = float(rng.uniform(5.0, 15.0))
        sky = _loguniform(rng, 300.0, 20000.0)
    sigma = np.sqrt(sky * gain + read_noise**2) / gain
    full_well = _loguniform(rng, 3e4, 3e5)  # e-
    saturation = min(full_well / gain, 65535.0 * rng.uniform(0.8, 1.0))
    saturation = max(saturation, sky + rng.uniform(80.0, 400.0) * sigma)
    star_density = _loguniform(rng, 2e-4, 4e-2)
    gal_frac = float(rng.uniform(0.0, 0.9) if star_density < 4e-3 else rng.uniform(0.0, 0.25))
    gmax = rng.uniform(0.0, 0.04) * sky + rng.uniform(0.0, 3.0) * sigma
    gradient = (float(rng.normal(0, gmax)), float(rng.normal(0, gmax)), float(rng.normal(0, 0.3 * gmax)))
    return SkyParameters(
        shape=shape,
        fwhm=fwhm,
        psf_profile=profile,
        psf_params=psf_params,
        sky_level=float(sky),
        gain=float(gain),
        read_noise=float(read_noise),
        saturation=float(saturation),
        star_density=float(star_density),
        galaxy_fraction=gal_frac,
        star_slope=float(rng.uniform(0.2, 0.45)),
        galaxy_slope=float(rng.uniform(0.35, 0.55)),
        max_star_peak=float(saturation * _loguniform(rng, 5.0, 2000.0)),
        galaxy_size=float(_loguniform(rng, 0.4, 2.0)),
        gradient=gradient,
        detector=detector,
    )


def _power_law(rng: np.random.Generator, n: int, fmin: float, fmax: float, a: float) -> np.ndarray:
    """n draws of a truncated Pareto law N(>F) ~ F^-a on [fmin, fmax]."""
    u = rng.random(n)
    lo, hi = fmin ** (-a), fmax ** (-a)
    return (lo - u * (lo - hi)) ** (-1.0 / a)


def _sersic_bn(n: np.ndarray) -> np.ndarray:
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n**2)


def render_galaxies(
    canvas: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    *,
    r_e: np.ndarray,
    n: np.ndarray,
    q: np.ndarray,
    pa: np.ndarray,
    bulge_frac: np.ndarray,
) -> None:
    """Add intrinsic (unconvolved) galaxy profiles to ``canvas`` in place.

    Each galaxy is ``(1 - B) * Sersic(n, r_e) + B * deVaucouleurs(r_e / 2)``
    (``B`` = ``bulge_frac``), elliptical with axis ratio ``q`` and position
    angle ``pa`` (radians), truncated at the batch stamp and normalised to
    ``flux``. Stamps extend to ~4 r_e; profiles are evaluated on 2x2
    sub-samples in stamps up to 11 px (small galaxies), at pixel centres beyond.

    Parameters
    ----------
    canvas : ndarray, shape (ny, nx), float64, flux units
    x, y : ndarray, shape (m,), pixels
    flux, r_e, n, q, pa, bulge_frac : ndarray, shape (m,)
    """
    if len(x) == 0:
        return
    ny, nx = canvas.shape
    need = 2 * np.ceil(np.minimum(4.0 * r_e + 1.5, 64)) + 1
    group = np.searchsorted(np.array(_GAL_STAMPS), need)
    group = np.minimum(group, len(_GAL_STAMPS) - 1)
    for gi in np.unique(group):
        idx = np.flatnonzero(group == gi)
        s = _GAL_STAMPS[gi]
        ss = 2 if s <= 11 else 1
        h = s // 2
        ix = np.rint(x[idx]).astype(np.int64)
        iy = np.rint(y[idx]).astype(np.int64)
        fx = (x[idx] - ix).astype(np.float32)[:, None, None]
        fy = (y[idx] - iy).astype(np.float32)[:, None, None]
        sub = ((np.arange(s * ss) + 0.5) / ss - 0.5 - h).astype(np.float32)  # sub-sample centres, pixels
        dy = sub[None, :, None] - fy
        dx = sub[None, None, :] - fx
        f32 = np.float32
        c, si = np.cos(pa[idx]).astype(f32)[:, None, None], np.sin(pa[idx]).astype(f32)[:, None, None]
        u = dx * c + dy * si
        v = (-dx * si + dy * c) / q[idx].astype(f32)[:, None, None]
        r = np.sqrt(u * u + v * v)
        re = r_e[idx].astype(f32)[:, None, None]
        nn = n[idx].astype(f32)[:, None, None]
        prof = np.exp(-_sersic_bn(nn) * ((r / re) ** (1.0 / nn) - 1.0))
        prof /= prof.sum(axis=(1, 2), keepdims=True)
        b = bulge_frac[idx]
        wb = np.flatnonzero(b > 0)
        if wb.size:
            bulge = np.exp(-_sersic_bn(4.0) * (np.sqrt(np.sqrt(r[wb] / (0.5 * re[wb]) + 1e-3)) - 1.0))
            bulge /= bulge.sum(axis=(1, 2), keepdims=True)
            bb = b[wb][:, None, None]
            prof[wb] = (1.0 - bb) * prof[wb] + bb * bulge
        if ss > 1:
            prof = prof.reshape(len(idx), s, ss, s, ss).sum(axis=(2, 4))
        prof = prof.astype(np.float64) * flux[idx][:, None, None]
        pad = h
        W, H = nx + 2 * pad, ny + 2 * pad
        oy, ox = np.mgrid[-h : h + 1, -h : h + 1]
        rows = iy[:, None, None] + pad + oy[None]
        cols = ix[:, None, None] + pad + ox[None]
        ok = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
        flat = np.bincount((rows * W + cols)[ok], weights=prof[ok], minlength=H * W)
        canvas += flat.reshape(H, W)[pad : pad + ny, pad : pad + nx]


def make_clean_scene(
    params: SkyParameters,
    *,
    rng: np.random.Generator,
    smear_kernel: np.ndarray | None = None,
) -> Scene:
    """Render one clean exposure.

    Parameters
    ----------
    params : SkyParameters
    rng : numpy.random.Generator
        Consumed identically whatever ``smear_kernel`` is.
    smear_kernel : ndarray, shape (ky, kx), float, sum 1, optional
        Convolved with every source's image (tracking errors); centre pixel
        ``(ky//2, kx//2)`` is the zero displacement.

    Returns
    -------
    Scene
        ``image``: noisy exposure, ADU, sky included; ``clean``: a copy of it
        (the uncontaminated image U); ``source_image``: noise-free sources,
        ADU above the background; ``background``: noise-free sky + gradient,
        ADU; ``truth``: BBG set; ``sources``: every star and galaxy drawn
        (positions may lie up to a margin outside the image); ``psf``: the
        normalised pixel PSF; ``fwhm``: its effective FWHM; ``meta["sky"]``:
        the parameters.
    """
    params.validate()
    ny, nx = params.shape
    psf: PsfModel = draw_psf(params.psf_profile, params.fwhm, params=params.psf_params)
    sigma = params.sigma
    pix = psf.pixel_psf()
    peak_frac = float(pix.max())
    margin = int(np.ceil(2 * params.fwhm + 4))
    area = (ny + 2 * margin) * (nx + 2 * margin)
    n_star = int(rng.poisson(params.star_density * area))
    gf_ = params.galaxy_fraction
    gal_density = min(params.star_density * gf_ / max(1e-3, 1.0 - gf_), _MAX_GALAXY_DENSITY)
    n_gal = int(rng.poisson(gal_density * area))
    # stars
    fmin = 0.3 * sigma / peak_frac
    fmax = max(params.max_star_peak / peak_frac, 2 * fmin)
    sx = rng.uniform(-margin, nx + margin, n_star)
    sy = rng.uniform(-margin, ny + margin, n_star)
    sf = _power_law(rng, n_star, fmin, fmax, 2.5 * params.star_slope)
    # galaxies
    gx = rng.uniform(-margin, nx + margin, n_gal)
    gy = rng.uniform(-margin, ny + margin, n_gal)
    gmin = 1.0 * sigma / peak_frac
    gf = _power_law(rng, n_gal, gmin, gmin * 3e4, 2.5 * params.galaxy_slope)
    r_e = np.clip(params.galaxy_size * (gf / gmin) ** 0.3 * rng.lognormal(0.0, 0.35, n_gal), 0.3, 60.0)
    kind = rng.random(n_gal)
    sersic_n = np.where(kind < 0.5, rng.uniform(0.5, 4.0, n_gal), 1.0)
    bulge = np.where(kind < 0.5, 0.0, rng.uniform(0.0, 0.8, n_gal))
    q = rng.uniform(0.15, 1.0, n_gal)
    pa = rng.uniform(0.0, np.pi, n_gal)
    z = rng.standard_normal((ny, nx))
    # ---- render (no random draws below this line)
    stars = np.zeros((ny, nx))
    render_points(stars, psf, sx, sy, sf, floor=0.3 * sigma)
    gal = np.zeros((ny, nx))
    if n_gal:
        render_galaxies(gal, gx, gy, gf, r_e=r_e, n=sersic_n, q=q, pa=pa, bulge_frac=bulge)
        gal = fft_convolve_same(gal, pix)
    src = stars + gal
    if smear_kernel is not None:
        k = np.asarray(smear_kernel, dtype=np.float64)
        if k.ndim != 2:
            msg = f"smear_kernel must be 2-D, got shape {k.shape}"
            raise ValueError(msg)
        src = fft_convolve_same(src, k / k.sum())
    np.maximum(src, 0.0, out=src)
    yy = (np.arange(ny)[:, None] + 0.5) / ny - 0.5
    xx = (np.arange(nx)[None, :] + 0.5) / nx - 0.5
    gxr, gyr, gc = params.gradient
    background = params.sky_level + gxr * xx + gyr * yy + gc * 2.0 * (xx**2 + yy**2)
    background = np.maximum(background, 0.0)
    model = background + src
    var = (model * params.gain + params.read_noise**2) / params.gain**2
    image = model + np.sqrt(var) * z
    sources = np.zeros(n_star + n_gal, dtype=SOURCE_DTYPE)
    sources["x"] = np.concatenate([sx, gx])
    sources["y"] = np.concatenate([sy, gy])
    sources["flux"] = np.concatenate([sf, gf])
    sources["is_star"][:n_star] = True
    scene = Scene.empty(
        (ny, nx),
        sky_level=float(params.sky_level),
        sigma=float(sigma),
        gain=float(params.gain),
        read_noise=float(params.read_noise),
        fwhm=float(psf.fwhm_eff),
        psf=pix,
        saturation=float(params.saturation),
        sources=sources,
    )
    scene.image = image
    scene.clean = image.copy()
    scene.source_image = src
    scene.background = background
    scene.plane("BBG")[:] = src > 10.0 * sigma
    scene.meta["sky"] = params.to_dict()
    scene.meta["sky"]["fwhm_eff"] = float(psf.fwhm_eff)
    scene.meta["n_stars"] = int(n_star)
    scene.meta["n_galaxies"] = int(n_gal)
    return scene


def bbg_index() -> int:
    """Index of the BBG plane (convenience for tests)."""
    return class_index("BBG")
