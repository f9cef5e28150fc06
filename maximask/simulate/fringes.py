"""Residual fringe patterns (FR, paper Sect. 2.1.7, Eqs. 9-10).

The paper adds real fringe maps (ALAMBIC) smoothed with a 7-pixel top-hat.
We have no fringe-map archive, so we simulate the physics: fringes are
thin-film interference in the detector, whose intensity follows
``cos(4 pi n h(x, y) / lambda)`` for a layer of thickness ``h``.  A smooth
random thickness map (Gaussian random field with a steep power spectrum,
``P(k) ~ k^-beta`` with beta in [4.5, 6], band-limited to periods >= 16 px,
plus a wedge, i.e. a planar thickness gradient) is turned into a phase with
a number of interference orders that sets the typical fringe spacing (drawn
log-uniformly in [10, 80] px); a second sky line of nearby wavelength
(weight up to 0.5) gives beating and non-sinusoidal shapes, and a slow
contrast modulation makes fringes fade in and out.  The pattern is smoothed
with a top-hat of diameter 7 px, as in the paper, and rotated by a random
multiple of 90 deg (Sect. 2.3.4).  See docs/simulator_contaminants.md for a
comparison with a real Y-band flat.

Envelope (Eq. 9): a random 3rd-degree 2-D polynomial ``E`` over the image,
``E_F = 1 / (1 + exp(-5 (2E - Emax - Emin) / (Emax - Emin)))``.
Addition (Eq. 10): ``C = U + k_F sigma_U / sigma_F  F (.) E_F`` with
k_F = 0.6, times an amplitude factor ``scale`` drawn log-uniformly in
:data:`SCALE_RANGE` = [0.5, 6.5]: fringe rms from 0.3 to 3.9 sigma_U, the
paper's 0.6 sigma_U near the faint end.  The upper end is that of the
nebulosity (:mod:`maximask.simulate.nebulosity`, rms up to 3.9 sigma_U), so
that the amplitude of a diffuse pattern tells nothing about its class and the
network has to learn the shapes; it also covers strong fringes (frames that
were not defringed, and Eq. 10 read with sigma_U the standard deviation of the
whole uncontaminated image, sources included).  Truth: the normalised envelope
``(2E - Emax - Emin) / (Emax - Emin)`` above -0.20 (where the flattened
envelope is above 1 / (1 + e) = 27% of its maximum).
"""

from __future__ import annotations

import numpy as np

from scipy import fft as sfft
from scipy import ndimage

from maximask.simulate.base import Scene, register_contaminant
from maximask.simulate.trails import loguniform

__all__ = [
    "K_F",
    "SCALE_RANGE",
    "ENVELOPE_THRESHOLD",
    "inject_fringes",
    "fringe_pattern",
    "polynomial_envelope",
    "tophat_smooth",
]

#: Eq. 10 scaling factor.
K_F = 0.6
#: Range of the extra amplitude factor ``scale`` (drawn log-uniformly): fringe rms 0.3-3.9 sigma_U.
SCALE_RANGE = (0.5, 6.5)
#: Truth threshold on the normalised envelope (Sect. 2.1.7).
ENVELOPE_THRESHOLD = -0.20
#: Diameter (px) of the top-hat smoothing kernel.
TOPHAT_DIAMETER = 7


def _kgrid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = shape
    return np.fft.fftfreq(ny)[:, None], np.fft.fftfreq(nx)[None, :]


def tophat_smooth(image: np.ndarray, diameter: float = TOPHAT_DIAMETER) -> np.ndarray:
    """Mean over a top-hat disk of ``diameter`` px (offsets with ``dx^2 + dy^2 <= (diameter/2)^2``).

    The disk is decomposed into horizontal runs, each a 1-D box filter; image
    edges are reflected.
    """
    r = diameter / 2.0
    h = int(np.floor(r))
    halfw = {dy: int(np.floor(np.sqrt(r * r - dy * dy))) for dy in range(-h, h + 1)}
    boxes = {}
    for w in set(halfw.values()):
        boxes[w] = np.pad(ndimage.uniform_filter1d(image, 2 * w + 1, axis=1, mode="reflect") * (2 * w + 1), ((h, h), (0, 0)), mode="symmetric")
    ny = image.shape[0]
    out = np.zeros(image.shape, dtype=image.dtype)
    for dy, w in halfw.items():
        out += boxes[w][h + dy : h + dy + ny]
    return out / sum(2 * w + 1 for w in halfw.values())


def polynomial_envelope(shape: tuple[int, int], rng: np.random.Generator, degree: int = 3) -> np.ndarray:
    """A random 2-D polynomial of total degree ``degree`` over ``[-1, 1]^2`` (raw ``E``)."""
    ny, nx = shape
    y = np.linspace(-1.0, 1.0, ny)[:, None]
    x = np.linspace(-1.0, 1.0, nx)[None, :]
    coef = np.zeros((degree + 1, degree + 1))  # coef[j, i] multiplies y^j x^i
    for i in range(degree + 1):
        for j in range(degree + 1 - i):
            coef[j, i] = rng.standard_normal()
    powers = np.arange(degree + 1)
    return (y ** powers[None, :]) @ coef @ (x ** powers[:, None])


def normalised_envelope(e: np.ndarray) -> np.ndarray:
    """``(2E - Emax - Emin) / (Emax - Emin)`` in [-1, 1] (the argument of Eq. 9 divided by 5)."""
    emin, emax = float(e.min()), float(e.max())
    if emax - emin <= 0:
        return np.ones_like(e)
    return (2.0 * e - emax - emin) / (emax - emin)


def fringe_pattern(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    period: float | None = None,
    smooth: bool = True,
) -> tuple[np.ndarray, dict]:
    """Simulated fringe map F (zero mean, arbitrary units) and what was drawn.

    ``period`` is the typical fringe spacing in pixels (default log-uniform in [10, 80]).
    """
    ny, nx = shape
    # thickness map: Gaussian random field, power spectrum k^-beta, band-limited
    # to periods >= 16 px (drawn on the low-frequency corner of the spectrum only)
    fy, fx = np.fft.fftfreq(ny), np.fft.fftfreq(nx)
    iy = np.flatnonzero(np.abs(fy) < 0.0625)
    ix = np.flatnonzero(np.abs(fx) < 0.0625)
    ky, kx = fy[iy][:, None], fx[ix][None, :]
    k = np.sqrt(kx * kx + ky * ky)
    beta = rng.uniform(4.5, 6.0)  # steep spectrum: smooth thickness map
    kmin = 1.0 / max(ny, nx)
    amp = np.maximum(k, kmin) ** (-beta / 2.0)
    amp[k == 0] = 0.0
    noise = rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)
    spec = np.zeros(shape, dtype=np.complex64)
    spec[np.ix_(iy, ix)] = noise * amp
    # real and imaginary parts: two independent fields of the same spectrum
    field = sfft.ifft2(spec, norm="forward")
    hstd = float(np.sqrt(np.sum(amp**2)))  # expected std of each part
    # rms gradient of the normalised thickness (per pixel), from the spectrum
    power = amp**2
    grad_rms = float(np.sqrt(np.sum(power * (2 * np.pi * k) ** 2) / np.sum(power))) if power.sum() > 0 else 1.0
    # wedge: planar thickness gradient of random direction, up to comparable slope
    wedge = rng.uniform(0.0, 1.5) * grad_rms
    wa = rng.uniform(0, 2 * np.pi)
    slope = float(np.hypot(grad_rms, wedge))
    p = float(loguniform(rng, 10.0, 80.0)) if period is None else float(period)
    cycles = 1.0 / (p * slope)  # interference orders per unit thickness
    w = 2 * np.pi * cycles
    yy = (w * wedge * np.sin(wa)) * (np.arange(ny, dtype=np.float32)[:, None] - ny / 2)
    xx = (w * wedge * np.cos(wa)) * (np.arange(nx, dtype=np.float32)[None, :] - nx / 2) + rng.uniform(0, 2 * np.pi)
    gain = np.float32(w / hstd) if hstd > 0 else np.float32(0.0)
    phase = gain * field.real + (xx + yy).astype(np.float32)
    ratio = rng.uniform(0.85, 1.2)  # second sky line
    w2 = rng.uniform(0.0, 0.5)
    f = np.cos(phase)
    f += np.float32(w2) * np.cos(np.float32(ratio) * phase + np.float32(rng.uniform(0, 2 * np.pi)))
    # slow contrast modulation (fringes fade in and out)
    contrast = rng.uniform(0.0, 0.6)
    if contrast > 0 and hstd > 0:
        f *= np.maximum(np.float32(contrast / hstd) * field.imag + np.float32(1.0), np.float32(0.1))
    if smooth:
        f = tophat_smooth(f)
    f = f.astype(np.float64)
    f -= f.mean()
    info = dict(period=p, beta=beta, wedge=wedge / max(grad_rms, 1e-12), second_line=(ratio, w2), contrast=contrast)
    return f, info


@register_contaminant("FR")
def inject_fringes(
    scene: Scene,
    *,
    rng: np.random.Generator,
    k_f: float = K_F,
    scale: float | None = None,
    period: float | None = None,
    envelope: np.ndarray | None = None,
    rotate: bool = True,
) -> None:
    """Add a fringe pattern per Eq. 10 and mark FR where the normalised envelope > -0.20.

    Parameters
    ----------
    k_f : Eq. 10 factor (paper: 0.6).
    scale : extra amplitude factor; default log-uniform in :data:`SCALE_RANGE` ([0.5, 6.5]), so
        fringes span 0.3 to 3.9 sigma_U rms (the paper's recipe: 0.6).
    period : typical fringe spacing in pixels (default log-uniform in [10, 80]).
    envelope : a raw envelope ``E`` to use instead of the random polynomial.
    rotate : rotate the pattern by a random multiple of 90 deg (Sect. 2.3.4).
    """
    shape = scene.shape
    if scale is None:
        scale = float(loguniform(rng, *SCALE_RANGE))
    f, info = fringe_pattern(shape, rng, period=period)
    # augmentation of Sect. 2.3.4: rotation of the pattern by a multiple of 90 deg
    # (0 or 180 deg only when the image is not square)
    quarter = int(rng.integers(4)) if rotate else 0
    if shape[0] != shape[1]:
        quarter = 2 * (quarter % 2)
    f = np.rot90(f, quarter)
    e = polynomial_envelope(shape, rng) if envelope is None else np.asarray(envelope, dtype=np.float64)
    en = normalised_envelope(e)
    ef = 1.0 / (1.0 + np.exp(-5.0 * en))  # Eq. 9
    sigma_f = float(f.std())
    if sigma_f > 0:
        scene.image += (scale * k_f * scene.sigma / sigma_f) * f * ef  # Eq. 10
    scene.plane("FR")[...] |= en > ENVELOPE_THRESHOLD
    info.update(rotation_deg=90 * quarter, k_f=k_f, scale=scale, sigma_f=sigma_f, truth_fraction=float((en > ENVELOPE_THRESHOLD).mean()))
    scene.meta.setdefault("FR", []).append(info)
