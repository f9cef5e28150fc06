"""Persistence (P, paper Sect. 2.1.5, Eqs. 3-6, Table 2): remnants of saturated stars.

The footprints are those of saturated stars of a *previous* exposure: a star
of the current PSF with a peak of 1.5 to 1000 times the full well, binarised
at the full well (with its bleed trail half of the time), placed at random.
Within the footprints, the persistence charge of Eq. 5 is computed with the
Fermi model of Long et al. (2015)::

    P_p = A_p / G * 1000^gamma / (exp(-(x_p - x_0) / dx) + 1) * (x_p / x_0)^alpha
          * ((dt + T)^(1 - gamma) - dt^(1 - gamma)) / (1 - gamma)

with Table 2's parameters (``x_p ~ Poisson(x_m)``, ``x_m ~ N(1.5e6, (0.02 * 1.5e6)^2)``
per footprint, ``x_0 ~ N(9e4, ...)``, ``dx ~ N(1.8e4, ...)``, ``alpha = 0.178``,
``gamma = 1.078``, ``G ~ N(10, 1)``), the exposure time ``T`` and delay ``dt``
drawn in [10, 600] s and [10, 300] s. ``P`` is zero outside the footprints,
so ``P_min = 0`` in Eq. 6 and ``C = U + k_P sigma_U (P - P_min) / (P_max - P_min)``
with ``k_P = 5``. Truth = the footprints.
"""

from __future__ import annotations

import numpy as np

from maximask.simulate.base import Scene, register_contaminant
from maximask.simulate.saturation import bleed_columns

__all__ = ["K_P", "TABLE2", "fermi_persistence", "inject_persistence"]

#: Scaling factor of Eq. 6.
K_P = 5.0
#: Table 2 (means; 2 % standard deviations for x_m, x_0, dx; G ~ N(10, 1)).
TABLE2 = {"A_p": 1.0, "x_m": 15e5, "x_0": 9e4, "dx": 18e3, "alpha": 0.178, "gamma": 1.078, "G": 10.0}


def fermi_persistence(
    x_p: np.ndarray, *, t_exp: float, delay: float, x_0: float, dx: float, gain: float,
    alpha: float = TABLE2["alpha"], gamma: float = TABLE2["gamma"], a_p: float = TABLE2["A_p"],
) -> np.ndarray:
    """Eq. 5: persistence charge collected during ``[delay, delay + t_exp]``.

    Parameters
    ----------
    x_p : ndarray, e-
        Pixel levels in the previous exposure.
    t_exp, delay : float, s
    x_0, dx : float, e-
    gain : float
        Table 2's ``G``.

    Returns
    -------
    ndarray, shape of ``x_p``, ADU (arbitrary scale: Eq. 6 normalises it)
    """
    x_p = np.asarray(x_p, dtype=np.float64)
    fermi = 1.0 / (np.exp(-(x_p - x_0) / dx) + 1.0)
    time = ((delay + t_exp) ** (1.0 - gamma) - delay ** (1.0 - gamma)) / (1.0 - gamma)
    return a_p / gain * 1000.0**gamma * fermi * (x_p / x_0) ** alpha * time


def _footprint(scene: Scene, peak_over_full: float, bleed: bool, *, rng: np.random.Generator) -> np.ndarray:
    """Binary footprint of a saturated star, shape (h, w)."""
    psf = scene.psf if scene.psf is not None else np.ones((1, 1))
    # radius where the PSF falls to 1/peak_over_full of its maximum, from the radial profile
    k = psf.shape[0]
    c = k // 2
    prof = psf[c, c:] / psf.max()
    above = np.flatnonzero(prof >= 1.0 / peak_over_full)
    r_core = float(above.max() + 1) if above.size else 1.0
    if above.size == len(prof):  # beyond the stamp: extrapolate a Moffat-like r^-3 wing
        r_core = (len(prof) - 1) * (peak_over_full * prof[-1]) ** (1.0 / 3.0)
    r_core = float(min(r_core, 60.0))
    n = int(2 * np.ceil(r_core + 2) + 1)
    yy, xx = np.mgrid[0:n, 0:n] - n // 2
    ell = rng.uniform(0.85, 1.0)
    fp = (xx**2 + (yy / ell) ** 2) <= r_core**2
    if bleed and rng.random() < 0.5:
        level = 1.0
        img = np.where(fp, 1.0 + rng.uniform(0.5, 3.0) * (1 - (xx**2 + yy**2) / (r_core**2 + 1)), 0.0)
        img = np.pad(img, ((int(4 * r_core) + 4, int(4 * r_core) + 4), (0, 0)))
        added = bleed_columns(img, level, up_fraction=rng.uniform(0.2, 0.8))
        fp = (img >= level) | (added > 0.05)
        ys, xs = np.nonzero(fp)
        fp = fp[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return fp


@register_contaminant("P")
def inject_persistence(scene: Scene, *, rng: np.random.Generator, max_footprints: int = 5, k_p: float = K_P, **options) -> None:
    """Add 1 to ``max_footprints`` persistence remnants (Eqs. 3-6); truth P."""
    ny, nx = scene.shape
    n = int(rng.integers(1, max_footprints + 1))
    P = np.zeros(scene.shape)
    gain = float(rng.normal(TABLE2["G"], 1.0))
    gain = max(gain, 1.0)
    t_exp = float(rng.uniform(10.0, 600.0))
    delay = float(rng.uniform(10.0, 300.0))
    x_0 = float(rng.normal(TABLE2["x_0"], 0.02 * TABLE2["x_0"]))
    dx = float(rng.normal(TABLE2["dx"], 0.02 * TABLE2["dx"]))
    for _ in range(n):
        fp = _footprint(scene, float(np.exp(rng.uniform(np.log(1.5), np.log(1000.0)))), True, rng=rng)
        h, w = fp.shape
        y0 = int(rng.integers(-h // 2, ny - h // 2))
        x0 = int(rng.integers(-w // 2, nx - w // 2))
        ys, xs = max(0, -y0), max(0, -x0)
        ye, xe = min(h, ny - y0), min(w, nx - x0)
        if ye <= ys or xe <= xs:
            continue
        sub = fp[ys:ye, xs:xe]
        x_m = float(rng.normal(TABLE2["x_m"], 0.02 * TABLE2["x_m"]))
        x_p = rng.poisson(x_m, sub.shape).astype(np.float64)
        vals = fermi_persistence(x_p, t_exp=t_exp, delay=delay, x_0=x_0, dx=dx, gain=gain)
        region = P[y0 + ys : y0 + ye, x0 + xs : x0 + xe]
        region[sub] = np.maximum(region[sub], vals[sub])
    mask = P > 0
    if mask.any():
        scene.image += k_p * scene.sigma * P / P.max()
        scene.plane("P")[mask] = True
    scene.meta["P"] = {"n_footprints": n, "t_exp": t_exp, "delay": delay, "x_0": x_0, "dx": dx, "G": gain}
