"""Point-spread functions for the simulated sky, and fast sub-pixel star rendering.

A :class:`PsfModel` holds one exposure's PSF as a GalSim profile and as an
*oversampled* image (``oversampling`` samples per pixel along each axis).
Stars are drawn by summing ``oversampling x oversampling`` blocks of the
oversampled image shifted by an integer number of sub-samples, i.e. the PSF
integrated over the pixel area at ``oversampling**2`` sub-pixel phases
(positions quantised to ``1/oversampling`` pixel). Faint stars are added in
one vectorised ``np.bincount`` call; bright stars get a large stamp whose
wings GalSim draws directly (so crowded fields and saturated stars stay fast).

Profiles (drawn by :func:`draw_psf`):

``moffat``      Moffat, beta in [2, 5]
``kolmogorov``  Kolmogorov (long-exposure atmospheric seeing)
``optical``     Kolmogorov convolved with a diffraction-limited optical PSF with
                random Zernike aberrations (defocus, astigmatism, coma, trefoil,
                spherical) and a central obscuration. It is computed with
                numpy (pupil FFT), because GalSim's ``OpticalPSF`` costs
                ~0.25 s per draw. The pupil has **no spider struts**: diffraction
                spikes are a contaminant class (SP) with their own truth,
                injected by :mod:`maximask.simulate.spikes`.

All profiles may carry a small shear (PSF ellipticity, |g| <= 0.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import galsim
import numpy as np
from scipy import fft as sfft

__all__ = ["PsfModel", "draw_psf", "render_points", "PSF_PROFILES", "fft_convolve_same"]

PSF_PROFILES: tuple[str, ...] = ("moffat", "kolmogorov", "optical")
#: Accurate faint wings (GalSim's defaults cut profiles at 1e-5 of the flux).
_GSPARAMS = galsim.GSParams(xvalue_accuracy=1e-12, kvalue_accuracy=1e-8, folding_threshold=1e-4)


def _optical_kernel(n_over: int, oversampling: int, params: dict) -> np.ndarray:
    """Optical (diffraction + aberrations) PSF on the oversampled grid.

    The pupil (central obscuration, Zernike phase in waves) is sampled with
    ``D`` points across its diameter in an ``n_fft`` grid, so that the focal
    plane spacing ``lam_over_diam * D / n_fft`` equals ``1 / oversampling`` pixel.

    Returns
    -------
    ndarray, shape (n_over, n_over), float64, sum 1, centred between the four
    central samples (the GalSim convention for even-sized images).
    """
    lod = max(float(params.get("lam_over_diam", 0.6)), 2.0 / oversampling)  # lambda/D, pixels
    obsc = float(params.get("obscuration", 0.3))
    n_fft = max(128, int(2 ** np.ceil(np.log2(n_over + 2))))
    d_samples = n_fft / (lod * oversampling)
    c = n_fft / 2.0
    yy, xx = np.mgrid[0:n_fft, 0:n_fft]
    rho = np.hypot(xx - c, yy - c) / (d_samples / 2.0)
    theta = np.arctan2(yy - c, xx - c)
    pupil = (rho <= 1.0) & (rho >= obsc)
    r = np.where(pupil, rho, 0.0)
    phase = (
        params.get("defocus", 0.0) * np.sqrt(3) * (2 * r**2 - 1)
        + params.get("astig1", 0.0) * np.sqrt(6) * r**2 * np.cos(2 * theta)
        + params.get("astig2", 0.0) * np.sqrt(6) * r**2 * np.sin(2 * theta)
        + params.get("coma1", 0.0) * np.sqrt(8) * (3 * r**3 - 2 * r) * np.cos(theta)
        + params.get("coma2", 0.0) * np.sqrt(8) * (3 * r**3 - 2 * r) * np.sin(theta)
        + params.get("trefoil", 0.0) * np.sqrt(8) * r**3 * np.cos(3 * theta)
        + params.get("spher", 0.0) * np.sqrt(5) * (6 * r**4 - 6 * r**2 + 1)
    )
    amp = np.where(pupil, np.exp(2j * np.pi * phase), 0.0)
    psf = np.abs(np.fft.fftshift(np.fft.fft2(amp))) ** 2
    lo = n_fft // 2 - n_over // 2
    crop = psf[lo : lo + n_over + 1, lo : lo + n_over + 1]
    crop = 0.25 * (crop[:-1, :-1] + crop[1:, :-1] + crop[:-1, 1:] + crop[1:, 1:])
    return crop / crop.sum()


def _fft_convolve_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Linear convolution cropped to ``image`` (kernel centre at ``(ky//2, kx//2)``), float64."""
    ny, nx = image.shape
    ky, kx = kernel.shape
    sy, sx = sfft.next_fast_len(ny + ky - 1, real=True), sfft.next_fast_len(nx + kx - 1, real=True)
    out = sfft.irfft2(sfft.rfft2(image, (sy, sx)) * sfft.rfft2(kernel, (sy, sx)), (sy, sx), workers=1)
    return out[ky // 2 : ky // 2 + ny, kx // 2 : kx // 2 + nx]


@dataclass
class PsfModel:
    """One exposure's PSF.

    Attributes
    ----------
    profile : str
        One of :data:`PSF_PROFILES`.
    fwhm : float, pixels
        Requested FWHM of the atmospheric/Moffat part.
    params : dict
        Profile parameters (``beta``, shear ``g1``/``g2``, aberrations...).
    oversampling : int
        Sub-samples per pixel along each axis of :attr:`oversampled`.
    oversampled : ndarray, shape (k*oversampling, k*oversampling), float64
        PSF surface brightness sampled at sub-pixel centres, sum 1,
        centred on the centre of pixel ``(k-1)/2`` once block-summed.
    gsobj : galsim.GSObject
        The GalSim profile (used for the wide wings of bright stars).
    """

    profile: str
    fwhm: float
    params: dict
    oversampling: int
    oversampled: np.ndarray
    gsobj: galsim.GSObject
    _phases: dict = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        """Core stamp size k, pixels (odd)."""
        return self.oversampled.shape[0] // self.oversampling

    def _boxsum(self) -> np.ndarray:
        """Sums of every ``os x os`` window of the zero-padded oversampled image (cached)."""
        if "box" not in self._phases:
            os_ = self.oversampling
            a = np.pad(self.oversampled, os_)
            c = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
            c[1:, 1:] = a.cumsum(0).cumsum(1)
            self._phases["box"] = c[os_:, os_:] - c[:-os_, os_:] - c[os_:, :-os_] + c[:-os_, :-os_]
        return self._phases["box"]

    def stamp(self, shift_x: int = 0, shift_y: int = 0) -> np.ndarray:
        """Pixel-integrated PSF shifted by ``(shift_x, shift_y)`` sub-samples.

        Returns
        -------
        ndarray, shape (k, k), float64; sums to 1 up to the flux shifted out of the stamp.
        """
        os_ = self.oversampling
        k = self.size
        box = self._boxsum()
        return box[os_ - shift_y : os_ - shift_y + k * os_ : os_, os_ - shift_x : os_ - shift_x + k * os_ : os_]

    def pixel_psf(self) -> np.ndarray:
        """Normalised (sum 1) pixel-integrated PSF centred on the central pixel, shape (k, k)."""
        s = self.stamp(0, 0)
        return s / s.sum()

    def phase_stack(self) -> np.ndarray:
        """All sub-pixel phases, shape (os, os, k, k) indexed [phase_y, phase_x].

        Phase index ``i`` stands for a shift of ``(i - os//2) / os`` pixel.
        """
        if "stack" not in self._phases:
            os_ = self.oversampling
            h = os_ // 2
            self._phases["stack"] = np.stack(
                [np.stack([self.stamp(ix - h, iy - h) for ix in range(os_)]) for iy in range(os_)]
            )
        return self._phases["stack"]

    @property
    def fwhm_eff(self) -> float:
        """Effective FWHM, pixels: diameter of the disc whose area equals the
        area above half maximum of the oversampled profile."""
        if "fwhm" not in self._phases:
            a = self.oversampled
            area = np.count_nonzero(a >= 0.5 * a.max()) / self.oversampling**2
            self._phases["fwhm"] = float(2.0 * np.sqrt(area / np.pi))
        return self._phases["fwhm"]

    def wide_radius(self, peak_over_floor: float) -> int:
        """Radius (pixels) beyond which a star of central pixel value
        ``peak_over_floor`` times the floor falls below the floor."""
        if self.profile == "moffat":
            beta = float(self.params.get("beta", 3.0))
        else:
            beta = 11.0 / 6.0  # Kolmogorov wings ~ r^(-11/3)
        ratio = max(peak_over_floor, 1.0)
        alpha = self.fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))  # Moffat core radius
        return int(np.ceil(1.1 * alpha * np.sqrt(max(ratio ** (1.0 / beta) - 1.0, 0.0)) + 1.0))

def draw_psf(
    profile: str, fwhm: float, *, params: dict | None = None, oversampling: int | None = None
) -> PsfModel:
    """Build the PSF of one exposure.

    Parameters
    ----------
    profile : {"moffat", "kolmogorov", "optical"}
    fwhm : float, pixels
        FWHM of the seeing (Moffat or Kolmogorov) component.
    params : dict, optional
        ``beta`` (Moffat), ``g1``, ``g2`` (shear), and for ``optical``:
        ``lam_over_diam`` (pixels), ``obscuration``, Zernike amplitudes in waves
        (``defocus``, ``astig1``, ``astig2``, ``coma1``, ``coma2``, ``trefoil``, ``spher``),
        ``seeing_fraction`` (Kolmogorov FWHM / ``fwhm``, so that the total FWHM
        stays close to ``fwhm``).
    oversampling : int, optional
        Default 8 for FWHM < 2.5 px (undersampled), else 4.
    """
    params = dict(params or {})
    if profile not in PSF_PROFILES:
        msg = f"unknown PSF profile {profile!r}; expected one of {', '.join(PSF_PROFILES)}"
        raise ValueError(msg)
    if not fwhm > 0:
        msg = f"fwhm must be positive, got {fwhm}"
        raise ValueError(msg)
    os_ = int(oversampling or (8 if fwhm < 2.5 else 4))
    if profile == "moffat":
        obj = galsim.Moffat(beta=float(params.get("beta", 3.0)), fwhm=float(fwhm), gsparams=_GSPARAMS)
    else:
        seeing = float(fwhm) * float(params.get("seeing_fraction", 1.0)) if profile == "optical" else float(fwhm)
        obj = galsim.Kolmogorov(fwhm=seeing, gsparams=_GSPARAMS)
    g1, g2 = float(params.get("g1", 0.0)), float(params.get("g2", 0.0))
    if g1 or g2:
        obj = obj.shear(g1=g1, g2=g2)
    k = int(2 * np.ceil(2.5 * fwhm + 2) + 1)  # core stamp, odd, ~ +-2.5 FWHM
    n_over = k * os_
    img = obj.drawImage(nx=n_over, ny=n_over, scale=1.0 / os_, method="no_pixel").array.astype(np.float64)
    if profile == "optical":
        kern = _optical_kernel(n_over, os_, params)
        img = _fft_convolve_same(img, kern)
        img = np.clip(img, 0.0, None)  # the wide wings of bright stars stay Kolmogorov (gsobj)
    img /= img.sum()
    return PsfModel(profile=profile, fwhm=float(fwhm), params=params, oversampling=os_, oversampled=img, gsobj=obj)


def _radii(psf: PsfModel, ratio: np.ndarray, h: int) -> np.ndarray:
    """Vectorised :meth:`PsfModel.wide_radius` clipped to [1, h], on a few radius tiers."""
    tiers = np.unique(np.clip(np.array([1, 2, 3, 4, 6, 8, 11, 15, 20, 27, 36, 48]), 1, h))
    need = np.array([psf.wide_radius(float(r)) for r in np.geomspace(1.0, 1e12, 97)])
    grid = np.geomspace(1.0, 1e12, 97)
    r = np.interp(np.log(np.maximum(ratio, 1.0)), np.log(grid), need)
    idx = np.minimum(np.searchsorted(tiers, r), len(tiers) - 1)
    out = tiers[idx]
    out[r > tiers[-1]] = h
    return np.minimum(out, h)


def render_points(
    canvas: np.ndarray,
    psf: PsfModel,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    *,
    floor: float | None = None,
) -> None:
    """Add point sources to ``canvas`` in place.

    Parameters
    ----------
    canvas : ndarray, shape (ny, nx), float64
    psf : PsfModel
    x, y : ndarray, shape (n,), pixels, 0-based (x along columns)
    flux : ndarray, shape (n,), total flux in canvas units
    floor : float, optional
        Canvas units: stars whose PSF-core edge exceeds ``floor`` get a wide
        stamp (GalSim-drawn wings, radius from :meth:`PsfModel.wide_radius`)
        so that the wings of bright stars are not truncated. ``None``: never.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    if x.size == 0:
        return
    ny, nx = canvas.shape
    os_ = psf.oversampling
    k = psf.size
    h = k // 2
    ix = np.rint(x).astype(np.int64)
    iy = np.rint(y).astype(np.int64)
    px = np.clip(np.rint((x - ix) * os_).astype(np.int64) + os_ // 2, 0, os_ - 1)
    py = np.clip(np.rint((y - iy) * os_).astype(np.int64) + os_ // 2, 0, os_ - 1)
    stack = psf.phase_stack()
    centre_peak = stack.max(axis=(2, 3))[py, px]
    edge = max(float(psf.pixel_psf()[0].max()), float(psf.pixel_psf()[:, 0].max()), 1e-12)
    wide = np.zeros(x.size, bool) if floor is None else flux * edge > floor
    # --- faint stars: bincounts over the padded canvas, with stamps cropped to
    # the radius where each star falls below 0.15 times the floor (most stars of
    # a power-law population are faint: this keeps crowded fields fast)
    sel = ~wide
    if sel.any():
        # pad so that every stamp pixel of every star falls inside the padded canvas
        pad = h + int(max(0, -ix[sel].min(), -iy[sel].min(), ix[sel].max() - nx + 1, iy[sel].max() - ny + 1))
        W = nx + 2 * pad
        H = ny + 2 * pad
        acc = np.zeros(H * W)
        if floor is None:
            half = np.full(x.size, h)
        else:
            ratio = flux * centre_peak / (0.15 * floor)
            half = np.array([min(h, psf.wide_radius(r)) for r in ratio]) if x.size < 64 else _radii(psf, ratio, h)
        base = (iy + pad) * W + (ix + pad)
        for hh in np.unique(half[sel]):
            grp = np.flatnonzero(sel & (half == hh))
            hh = int(hh)
            dy, dx = np.mgrid[-hh : hh + 1, -hh : hh + 1]
            flat = base[grp, None, None] + (dy * W + dx)[None]
            vals = stack[:, :, h - hh : h + hh + 1, h - hh : h + hh + 1][py[grp], px[grp]]
            vals *= flux[grp, None, None]
            acc += np.bincount(flat.ravel(), weights=vals.ravel(), minlength=H * W)
        canvas += acc.reshape(H, W)[pad : pad + ny, pad : pad + nx]

    # --- bright stars: exact phased core + GalSim wings (drawn once, at phase 0,
    # for the largest radius needed; the wings are smooth, so the sub-pixel
    # phase does not matter there)
    idx = np.flatnonzero(wide)
    if idx.size:
        radii = np.array([max(h, min(psf.wide_radius(flux[i] * centre_peak[i] / floor), max(ny, nx))) for i in idx])
        R = int(radii.max())
        wings = psf.gsobj.drawImage(nx=2 * R + 1, ny=2 * R + 1, scale=1.0, method="no_pixel").array.astype(np.float64)
        for i, r in zip(idx, radii):
            r = int(r)
            size = 2 * r + 1
            big = wings[R - r : R + r + 1, R - r : R + r + 1].copy()
            big[r - h : r + h + 1, r - h : r + h + 1] = stack[py[i], px[i]]
            big *= flux[i]
            y0, x0 = iy[i] - r, ix[i] - r
            ys0, xs0 = max(0, -y0), max(0, -x0)
            ye, xe = min(size, ny - y0), min(size, nx - x0)
            if ye > ys0 and xe > xs0:
                canvas[y0 + ys0 : y0 + ye, x0 + xs0 : x0 + xe] += big[ys0:ye, xs0:xe]


fft_convolve_same = _fft_convolve_same
