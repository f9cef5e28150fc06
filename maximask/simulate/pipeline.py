"""One MaxiMask training sample: clean sky -> contaminants -> truth -> compression -> augmentation.

Order of the contaminants (:data:`CONTAMINANT_ORDER`, paper Sect. 2.3.1:
"bad columns, lines, and pixels are added last because they are static
defaults defining the final value of a pixel")::

    P, NEB, FR, TRL, SP, CR, SAT, HP, HCL, DP, DCL, OV

* Light-like contaminants first (persistence, nebulosity, fringes, trails,
  spikes and the bright stars the spike injector may add), then cosmic rays;
* then saturation (SAT) on the sum, so that bright trails, spike cores and
  cosmic rays on top of bright stars saturate and bleed like real charge;
* then the static detector defects: hot pixels and columns (added charge),
  dead pixels, dead columns/clusters and overscan (values replaced), so a dead
  pixel stays dead whatever fell on it.

Presence: each contaminant is present in a sample with probability
:data:`DEFAULT_PROBABILITIES` (SAT is the detector's full well and is always
applied; it flags pixels only when something saturates). BBG and BG always.

Augmentation (Sect. 2.3.4): rotations by multiples of 90 degrees are drawn
inside the CR, FR and NEB injectors; a clean scene whose FWHM stays above
2 pixels when halved is drawn at twice the size and 2x2 rebinned (sum, so the
noise stays Poisson + read) with probability 0.5.

Compression (Sect. 2.3.3): the *same* functions as inference,
:func:`maximask.preprocess.estimate_background` and
:func:`maximask.preprocess.compress`, with a random offset of
``offset_sigma`` sigma (the paper's ``N(0, sigma_U^2)``: 1.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from maximask.classes import CLASS_NAMES, N_CLASSES, class_index
from maximask.preprocess import compress, estimate_background
from maximask.simulate.base import Scene, get_injector
from maximask.simulate.sky import SkyParameters, draw_sky_parameters, make_clean_scene

__all__ = [
    "CONTAMINANT_ORDER",
    "DEFAULT_PROBABILITIES",
    "OFFSET_SIGMA",
    "SimulatedSample",
    "simulate_scene",
    "simulate_sample",
    "encode_truth",
    "rebin2x2_scene",
]

CONTAMINANT_ORDER: tuple[str, ...] = ("P", "NEB", "FR", "TRL", "SP", "CR", "SAT", "HP", "HCL", "DP", "DCL", "OV")

#: Probability that each contaminant is present in a sample of the all-contaminant set.
DEFAULT_PROBABILITIES: dict[str, float] = {
    "P": 0.3,
    "NEB": 0.25,
    "FR": 0.25,
    "TRL": 0.35,
    "SP": 0.45,
    "CR": 0.85,
    "SAT": 1.0,
    "HP": 0.5,
    "HCL": 0.35,
    "DP": 0.5,
    "DCL": 0.35,
    "OV": 0.3,
}

#: Paper's random offset of the dynamic compression, in units of sigma_U.
OFFSET_SIGMA = 1.0


@dataclass
class SimulatedSample:
    """Everything drawn for one sample.

    Attributes
    ----------
    scene : Scene
        Final scene: ``image`` (ADU), boolean ``truth`` (14, H, W).
    compressed : ndarray, shape (H, W), float32
        Network input ``arsinh((C - B + offset) / sigma)``.
    truth : ndarray, shape (H, W), uint16
        Bit field, bit i = class i of :mod:`maximask.classes`.
    background : ndarray, shape (H, W), float32, ADU
        Background map B estimated on the contaminated image.
    sigma : float, ADU
        Background noise estimated on the contaminated image.
    meta : dict
        JSON-serialisable record.
    """

    scene: Scene
    compressed: np.ndarray
    truth: np.ndarray
    background: np.ndarray
    sigma: float
    meta: dict


def encode_truth(planes: np.ndarray) -> np.ndarray:
    """Boolean planes (14, H, W) -> uint16 bit field (H, W), bit i = class i."""
    planes = np.asarray(planes, dtype=bool)
    if planes.shape[0] != N_CLASSES:
        msg = f"expected {N_CLASSES} truth planes, got {planes.shape[0]}"
        raise ValueError(msg)
    out = np.zeros(planes.shape[1:], dtype=np.uint16)
    for i in range(N_CLASSES):
        out |= planes[i].astype(np.uint16) << np.uint16(i)
    return out


def rebin2x2_scene(scene: Scene) -> Scene:
    """2x2 rebinning of a *clean* scene (sum of 2x2 blocks; truth recomputed).

    Sky level (x4), noise sigma (x2), read noise (x2) and source positions
    follow; the PSF is rebinned too. The full-well level stays that of the
    scene (a binned detector's well or ADC limit), raised if needed above the
    binned sky by 80 binned sigma.
    """
    ny, nx = scene.shape
    h, w = ny // 2, nx // 2

    def rb(a: np.ndarray) -> np.ndarray:
        return a[: 2 * h, : 2 * w].reshape(h, 2, w, 2).sum(axis=(1, 3))

    image = rb(scene.image)
    sigma = 2.0 * scene.sigma
    psf = scene.psf
    if psf is not None:  # binned PSF (centre within 1/4 pixel of the central pixel)
        p = np.pad(psf, ((1, 0), (1, 0)))
        m = p.shape[0] // 2
        psf = p.reshape(m, 2, m, 2).sum(axis=(1, 3))
        if m % 2 == 0:
            psf = np.pad(psf, ((0, 1), (0, 1)))
        psf /= psf.sum()
    out = Scene.empty(
        (h, w),
        sky_level=4.0 * scene.sky_level,
        sigma=sigma,
        gain=scene.gain,
        read_noise=2.0 * scene.read_noise,
        fwhm=scene.fwhm / 2.0,
        psf=psf,
        saturation=max(scene.saturation, 4.0 * scene.sky_level + 80.0 * sigma),
        sources=None,
    )
    out.image = image
    out.clean = image.copy()
    if scene.source_image is not None:
        out.source_image = rb(scene.source_image)
        out.truth[class_index("BBG")] = out.source_image > 10.0 * sigma
    if scene.background is not None:
        out.background = rb(scene.background)
    if scene.sources is not None:
        src = scene.sources.copy()
        src["x"] = (src["x"] - 0.5) / 2.0
        src["y"] = (src["y"] - 0.5) / 2.0
        out.sources = src
    out.meta = dict(scene.meta)
    out.meta["rebinned"] = True
    return out


def _rebin_allowed(params: SkyParameters, shape: tuple[int, int]) -> bool:
    return params.fwhm / 2.0 > 2.0


def simulate_scene(
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    contaminants: Sequence[str] | None = None,
    probabilities: Mapping[str, float] | None = None,
    options: Mapping[str, dict] | None = None,
    sky_params: SkyParameters | None = None,
    fwhm_range: tuple[float, float] | None = None,
    rebin_probability: float = 0.5,
    offset_sigma: float = OFFSET_SIGMA,
) -> SimulatedSample:
    """Draw one sample and keep everything (see :func:`simulate_sample`).

    Parameters
    ----------
    shape : (H, W), pixels
    rng : numpy.random.Generator
    contaminants : sequence of str, optional
        Restrict to these contaminants (single-contaminant sets of Sect. 4.1.2:
        ``["CR"]``); SAT is always applied (the detector's full well; pass it
        with probability 0 to disable). ``None``: all of :data:`CONTAMINANT_ORDER`.
    probabilities : mapping, optional
        Presence probability per contaminant. With ``contaminants`` given the
        default is 1 for each listed one; otherwise :data:`DEFAULT_PROBABILITIES`.
    options : mapping, optional
        Extra keyword options per contaminant, e.g. ``{"CR": {"library": lib}}``.
    sky_params : SkyParameters, optional
        Fixed clean-sky parameters (else drawn; ``shape`` must match).
    fwhm_range : (float, float), pixels, optional
        Strict range of the PSF FWHM (the cr-sampling sets of Sect. 4.1.3): only
        Moffat and Kolmogorov profiles are drawn and there is no rebinning.
    rebin_probability : float
        Probability of the 2x2 rebinning augmentation when allowed.
    offset_sigma : float
        Random compression offset, units of the background sigma.
    """
    shape = (int(shape[0]), int(shape[1]))
    if sky_params is not None and tuple(sky_params.shape) != shape:
        msg = f"sky_params.shape {tuple(sky_params.shape)} differs from shape {shape}"
        raise ValueError(msg)
    if contaminants is None:
        chosen = list(CONTAMINANT_ORDER)
        probs = dict(DEFAULT_PROBABILITIES)
    else:
        unknown = [c for c in contaminants if c not in CONTAMINANT_ORDER]
        if unknown:
            msg = f"unknown contaminant(s) {unknown}; expected some of {', '.join(CONTAMINANT_ORDER)}"
            raise ValueError(msg)
        chosen = [c for c in CONTAMINANT_ORDER if c in contaminants or c == "SAT"]
        probs = {c: 1.0 for c in chosen}
    if probabilities:
        probs.update({k: float(v) for k, v in probabilities.items()})
    options = dict(options or {})
    # fixed consumption of the top-level stream: presence flags and per-step seeds
    presence_u = rng.random(len(CONTAMINANT_ORDER))
    step_seeds = rng.integers(0, 2**63 - 1, size=len(CONTAMINANT_ORDER) + 3)
    sky_rng = np.random.default_rng(step_seeds[-1])
    comp_rng = np.random.default_rng(step_seeds[-2])
    rebin_u = np.random.default_rng(step_seeds[-3]).random()
    kw = {} if fwhm_range is None else {"fwhm_range": fwhm_range, "profiles": ("moffat", "kolmogorov")}
    if fwhm_range is not None:
        rebin_probability = 0.0
    params = sky_params if sky_params is not None else draw_sky_parameters(shape, rng=sky_rng, **kw)
    rebin = rebin_u < rebin_probability and _rebin_allowed(params, shape) and sky_params is None
    if rebin:
        big = SkyParameters(**{**params.__dict__, "shape": (2 * shape[0], 2 * shape[1])})
        scene = rebin2x2_scene(make_clean_scene(big, rng=sky_rng))
    else:
        scene = make_clean_scene(params, rng=sky_rng)
    present = []
    for i, name in enumerate(CONTAMINANT_ORDER):
        if name not in chosen or presence_u[i] >= probs.get(name, 0.0):
            continue
        injector = get_injector(name)
        injector(scene, rng=np.random.default_rng(step_seeds[i]), **options.get(name, {}))
        present.append(name)
    scene.finalize_truth()
    est = estimate_background(scene.image)
    compressed = compress(scene.image, est.background, est.sigma, offset_sigma=offset_sigma, rng=comp_rng)
    truth = encode_truth(scene.truth)
    counts = scene.truth.reshape(N_CLASSES, -1).sum(axis=1)
    meta = {
        "shape": list(shape),
        "contaminants": present,
        "rebinned": bool(rebin),
        "fwhm": float(scene.fwhm),
        "sky_level": float(scene.sky_level),
        "sigma_true": float(scene.sigma),
        "sigma_est": float(est.sigma),
        "gain": float(scene.gain),
        "read_noise": float(scene.read_noise),
        "saturation": float(scene.saturation),
        "sky": scene.meta.get("sky", {}),
        "pixel_counts": {n: int(c) for n, c in zip(CLASS_NAMES, counts)},
    }
    for name in present:
        if name in scene.meta:
            meta[f"{name}_info"] = _jsonable(scene.meta[name])
    return SimulatedSample(scene, compressed, truth, est.background, float(est.sigma), meta)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 64 else f"<array {obj.shape}>"
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def simulate_sample(
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    contaminants: Sequence[str] | None = None,
    probabilities: Mapping[str, float] | None = None,
    **kwargs,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Draw one MaxiMask training sample.

    Parameters
    ----------
    shape : (H, W), pixels
    rng : numpy.random.Generator
    contaminants, probabilities
        See :func:`simulate_scene`; other keyword arguments are passed to it.

    Returns
    -------
    compressed : ndarray, shape (H, W), float32
        Dynamically compressed image (network input).
    truth : ndarray, shape (H, W), uint16
        Bit field, bit i set when the pixel belongs to class i (BG exclusive).
    meta : dict
        JSON-serialisable description of the sample.
    """
    s = simulate_scene(shape, rng=rng, contaminants=contaminants, probabilities=probabilities, **kwargs)
    return s.compressed, s.truth, s.meta
