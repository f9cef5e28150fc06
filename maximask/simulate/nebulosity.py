"""Nebulosity (NEB, paper Sect. 2.1.8, Eq. 11).

The paper adds Herschel/SPIRE 250 um maps of molecular clouds, unresized,
relying on the scale invariance of dust emission.  We stand in for them with
scale-free random fields: a Gaussian random field of power spectrum
``P(k) ~ k^-beta`` with beta in [2.5, 3.5] (the range measured for dust
emission and cirrus), optionally anisotropic (filaments stretched along a
random direction), exponentiated (log-normal intensity, as dust column
densities are) with a random contrast.  The field is then background-
subtracted with a SExtractor-like estimate (``sep``, mesh 32 to 128 px,
3x3 median filter) to give the pattern ``N``.

Addition (Eq. 11): ``C = U + k_N sigma_U / sigma_N  N`` with k_N = 1.3, times
an amplitude factor ``scale`` (default log-uniform in [0.5, 3]; geometric
mean 1.2: the paper's amplitude is typical, brighter line-emission nebulae
are covered too).  Truth: ``N > sigma_N`` (one sigma above 0), eroded with a
disk of diameter 6 px, dilated with a disk of diameter 22 px.  Disks contain
the offsets with ``dx^2 + dy^2 <= (D/2)^2``; the morphology is exact (the
disk is decomposed into row runs of 1-D min/max filters), and the outside of the image is treated as
unknown (no erosion from the image edges).
"""

from __future__ import annotations

import numpy as np
import sep
from scipy import fft as sfft
from scipy import ndimage

from maximask.simulate.base import Scene, register_contaminant
from maximask.simulate.trails import loguniform

__all__ = ["K_N", "EROSION_DIAMETER", "DILATION_DIAMETER", "inject_nebulosity", "nebulosity_pattern", "nebulosity_truth"]

#: Eq. 11 scaling factor.
K_N = 1.3
#: Structuring disk diameters of the truth (Sect. 2.1.8).
EROSION_DIAMETER = 6
DILATION_DIAMETER = 22


def _disk_rows(diameter: float) -> dict[int, int]:
    """Half-width of the disk's horizontal run at each row offset ``dy``."""
    r = diameter / 2.0
    h = int(np.floor(r))
    return {dy: int(np.floor(np.sqrt(r * r - dy * dy) + 1e-9)) for dy in range(-h, h + 1)}


def _disk_morph(mask: np.ndarray, diameter: float, *, dilate: bool) -> np.ndarray:
    """Dilation (or erosion) by a disk, decomposed into running max (min) over rows.

    Outside the image counts as 0 for dilation and as 1 for erosion (edges do not erode).
    """
    m = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    rows = _disk_rows(diameter)
    op = np.bitwise_or if dilate else np.bitwise_and
    # running max (min) over [x - w, x + w], grown one pixel at a time
    needed = set(rows.values())
    runs = {0: m}
    cur = m.copy()
    for w in range(1, max(needed) + 1):
        op(cur[:, w:], m[:, :-w], out=cur[:, w:])
        op(cur[:, :-w], m[:, w:], out=cur[:, :-w])
        if w in needed:
            runs[w] = cur.copy()
    out = runs[rows[0]].copy()
    for dy, w in rows.items():
        r = runs[w]
        if dy > 0:
            op(out[:-dy], r[dy:], out=out[:-dy])
        elif dy < 0:
            op(out[-dy:], r[:dy], out=out[-dy:])
    return out.view(bool)


def disk_erode(mask: np.ndarray, diameter: float) -> np.ndarray:
    """Binary erosion by a disk of ``diameter`` px; pixels outside the image do not erode."""
    return _disk_morph(mask, diameter, dilate=False)


def disk_dilate(mask: np.ndarray, diameter: float) -> np.ndarray:
    """Binary dilation by a disk of ``diameter`` px."""
    return _disk_morph(mask, diameter, dilate=True)


def nebulosity_truth(pattern: np.ndarray, sigma_n: float | None = None) -> np.ndarray:
    """Truth of Sect. 2.1.8: ``N > sigma_N``, eroded (disk 6), dilated (disk 22)."""
    s = float(pattern.std()) if sigma_n is None else float(sigma_n)
    core = disk_erode(pattern > s, EROSION_DIAMETER)
    return disk_dilate(core, DILATION_DIAMETER)


def nebulosity_pattern(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    beta: float | None = None,
    mesh: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Background-subtracted scale-free cloud image N (arbitrary units) and what was drawn."""
    ny, nx = shape
    beta = float(rng.uniform(2.5, 3.5)) if beta is None else float(beta)
    # the spectrum is drawn for periods >= 4 px only (power above is negligible for beta >= 2.5)
    fy_all, fx_all = np.fft.fftfreq(ny), np.fft.rfftfreq(nx)
    iy = np.flatnonzero(np.abs(fy_all) < 0.25)
    ix = np.flatnonzero(fx_all < 0.25)
    fy, fx = fy_all[iy][:, None], fx_all[ix][None, :]
    aniso = rng.uniform(1.0, 3.0) if rng.random() < 0.5 else 1.0
    ang = rng.uniform(0, np.pi)
    ku = fx * np.cos(ang) + fy * np.sin(ang)
    kv = -fx * np.sin(ang) + fy * np.cos(ang)
    k = np.sqrt((ku * aniso) ** 2 + (kv / aniso) ** 2)
    kmin = 1.0 / max(ny, nx)
    amp = np.maximum(k, kmin) ** (-beta / 2.0)
    amp[k == 0] = 0.0
    noise = rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)
    spec = np.zeros((ny, fx_all.size), dtype=np.complex64)
    spec[np.ix_(iy, ix)] = noise * amp
    g = sfft.irfft2(spec, s=shape)
    gs = g.std()
    g = g / gs if gs > 0 else g
    contrast = float(rng.uniform(0.3, 1.2))  # log-normal width of the intensity
    intensity = np.exp(contrast * g).astype(np.float32)
    mesh = int(rng.choice([32, 64, 128])) if mesh is None else int(mesh)
    bw = max(8, min(mesh, nx))
    bh = max(8, min(mesh, ny))
    try:
        back = sep.Background(np.ascontiguousarray(intensity), bw=bw, bh=bh, fw=3, fh=3).back()
    except Exception:  # degenerate shapes
        back = np.full(shape, np.median(intensity), np.float32)
    n = intensity.astype(np.float64) - back
    info = dict(beta=beta, anisotropy=aniso, angle=ang, contrast=contrast, mesh=mesh)
    return n, info


@register_contaminant("NEB")
def inject_nebulosity(
    scene: Scene,
    *,
    rng: np.random.Generator,
    k_n: float = K_N,
    scale: float | None = None,
    beta: float | None = None,
    mesh: int | None = None,
    rotate: bool = True,
) -> None:
    """Add a nebulosity per Eq. 11 and mark NEB per Sect. 2.1.8.

    Parameters
    ----------
    k_n : Eq. 11 factor (paper: 1.3).
    scale : extra amplitude factor (default log-uniform in [0.5, 3]).
    beta : power-spectrum slope (default uniform in [2.5, 3.5]).
    mesh : background mesh (px) of the SExtractor-like subtraction (default 32, 64 or 128).
    rotate : rotate the pattern by a random multiple of 90 deg (Sect. 2.3.4).
    """
    if scale is None:
        scale = float(loguniform(rng, 0.5, 3.0))
    n, info = nebulosity_pattern(scene.shape, rng, beta=beta, mesh=mesh)
    # augmentation of Sect. 2.3.4: rotation by a multiple of 90 deg (0/180 if not square)
    quarter = int(rng.integers(4)) if rotate else 0
    if scene.shape[0] != scene.shape[1]:
        quarter = 2 * (quarter % 2)
    n = np.rot90(n, quarter)
    sigma_n = float(n.std())
    if sigma_n > 0:
        scene.image += (scale * k_n * scene.sigma / sigma_n) * n
        truth = nebulosity_truth(n, sigma_n)
    else:
        truth = np.zeros(scene.shape, bool)
    scene.plane("NEB")[...] |= truth
    info.update(rotation_deg=90 * quarter, k_n=k_n, scale=scale, sigma_n=sigma_n, truth_fraction=float(truth.mean()))
    scene.meta.setdefault("NEB", []).append(info)
