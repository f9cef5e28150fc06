"""Tracking errors for MaxiTrack (paper Sect. 2.2 and 2.3.2).

A tracking error moves the telescope during the exposure, so every source is
smeared along the same path on the sky (Fig. 6).  The paper uses real,
hand-labelled exposures; we simulate them: :func:`draw_tracking_kernel` draws
the path of the telescope as a 2-D kernel (the fraction of the exposure spent
at each offset), and :func:`simulate_tracking_sample` renders a clean sky
whose sources (not the sky, not the detector) are convolved with it, adds the
local contaminants of the MaxiMask pipeline (the paper's tracking images are
not cleaned, Sect. 2.3.2) and compresses it like any network input.

Paths (``kind``):

* ``drift``: straight line, uniform or accelerating speed (guiding loss,
  wrong tracking rate);
* ``jump``: 2 to 4 dwell positions joined by fast transits (sudden slips,
  earthquakes, cable snags), giving double or multiple images;
* ``curved``: arc of a circle or quadratic Bezier curve (field rotation,
  drifts with a changing direction);
* ``wind``: wind shake, a sum of 1 to 3 random sinusoids along two axes
  (the telescope dwells at the turning points), possibly on top of a drift;
* ``walk``: a smoothed random walk (poor guiding, seeing-chasing guider).

The path's extent is log-uniform between ``max(3, fwhm)`` and
``max(45, 8 fwhm)`` pixels (a few to tens of pixels).

A smear can only be seen on sources: the sky parameters of a MaxiTrack
sample are redrawn (from their own stream, whatever the label) until at
least ``min_bright_stars`` (default 8) stars brighter than 20 sigma_U are
expected in the image; very sparse fields would give unlearnable labels.

Labels are balanced: label 1 (tracking error) with probability 1/2.  The
label-0 twin of a sample is the same scene without the smear: same sky
parameters, same source list, same noise field and same local contaminants
(every random stream is drawn from seeds fixed before the label is used).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import fftconvolve

from maximask.preprocess import compress, estimate_background
from maximask.simulate.trails import loguniform

__all__ = [
    "TRACKING_KINDS",
    "draw_tracking_kernel",
    "render_path",
    "expected_bright_stars",
    "simulate_tracking_sample",
    "simulate_tracking_pair",
]

#: Path families and their default probabilities.
TRACKING_KINDS = {"drift": 0.3, "jump": 0.2, "curved": 0.15, "wind": 0.25, "walk": 0.1}
_N_STEPS = 4000


def _rotate(x: np.ndarray, y: np.ndarray, ang: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(ang), np.sin(ang)
    return c * x - s * y, s * x + c * y


def _path(kind: str, length: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Positions (x, y) and time weights of the path, extent ~ ``length``."""
    t = (np.arange(_N_STEPS) + 0.5) / _N_STEPS
    w = np.ones(_N_STEPS)
    info: dict = {}
    if kind == "drift":
        accel = rng.uniform(-0.8, 0.8) if rng.random() < 0.4 else 0.0
        # position s(t) with speed 1 + accel * (2t - 1)
        s = t + accel * (t * t - t)
        s = (s - s.min()) / max(s.max() - s.min(), 1e-12)
        x, y = s * length, np.zeros_like(s)
        info["acceleration"] = accel
    elif kind == "jump":
        n = int(rng.integers(2, 5))
        pts = rng.uniform(-0.5, 0.5, (n, 2)) * length
        # the first jump is at least half the extent (the rest may be anywhere)
        jump_dir = rng.uniform(0, 2 * np.pi)
        pts[1] = pts[0] + length * rng.uniform(0.5, 1.0) * np.array([np.cos(jump_dir), np.sin(jump_dir)])
        dwell = rng.dirichlet(np.full(n, 2.0))
        transit = rng.uniform(0.0, 0.06)
        seg_t = np.concatenate([dwell * (1 - transit), np.full(n - 1, transit / max(n - 1, 1))])
        # interleave dwell, transit, dwell, ...
        order = np.empty(2 * n - 1)
        order[0::2] = seg_t[:n]
        order[1::2] = seg_t[n:]
        edges = np.concatenate([[0.0], np.cumsum(order)])
        edges /= edges[-1]
        idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, 2 * n - 2)
        frac = (t - edges[idx]) / np.maximum(edges[idx + 1] - edges[idx], 1e-12)
        a = pts[idx // 2]
        b = pts[np.minimum(idx // 2 + 1, n - 1)]
        moving = (idx % 2 == 1)[:, None]
        pos = np.where(moving, a + (b - a) * frac[:, None], a)
        x, y = pos[:, 0], pos[:, 1]
        info.update(n_positions=n, dwell=dwell.tolist(), transit=transit)
    elif kind == "curved":
        if rng.random() < 0.5:
            span = rng.uniform(0.3, 1.5) * np.pi
            radius = length / max(2 * np.sin(min(span, np.pi) / 2), 1e-6)
            ang = span * t
            x, y = radius * np.sin(ang), radius * (1 - np.cos(ang))
            info.update(shape="arc", span_deg=float(np.degrees(span)))
        else:
            p1 = np.array([0.5, rng.uniform(-0.8, 0.8)]) * length
            p2 = np.array([1.0, rng.uniform(-0.5, 0.5)]) * length
            x = 2 * (1 - t) * t * p1[0] + t * t * p2[0]
            y = 2 * (1 - t) * t * p1[1] + t * t * p2[1]
            info.update(shape="bezier")
    elif kind == "wind":
        x = np.zeros_like(t)
        y = np.zeros_like(t)
        ncomp = int(rng.integers(1, 4))
        freqs = loguniform(rng, 0.7, 25.0, ncomp)
        for f in freqs:
            ax, ay = rng.uniform(0, 1, 2)
            x += ax * np.sin(2 * np.pi * (f * t + rng.random()))
            y += ay * np.sin(2 * np.pi * (f * t + rng.random()))
        if rng.random() < 0.4:
            drift = rng.uniform(0.2, 1.0)
            x += drift * t * np.ptp(x) if np.ptp(x) > 0 else drift * t
            info["drift"] = drift
        info.update(n_components=ncomp, cycles=freqs.tolist())
    elif kind == "walk":
        steps = rng.standard_normal((400, 2))
        walk = np.cumsum(gaussian_filter1d(steps, rng.uniform(2.0, 20.0), axis=0), axis=0)
        ti = np.linspace(0, 1, 400)
        x, y = np.interp(t, ti, walk[:, 0]), np.interp(t, ti, walk[:, 1])
    else:
        raise ValueError(f"unknown tracking path {kind!r}; expected one of {list(TRACKING_KINDS)}")
    # scale to the requested extent, random orientation
    ext = max(np.ptp(x), np.ptp(y), 1e-12)
    x, y = x * length / ext, y * length / ext
    x, y = _rotate(x, y, rng.uniform(0, 2 * np.pi))
    return x, y, w, info


def render_path(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Bilinear deposit of path samples into an odd-sized kernel centred on their mean (sum 1)."""
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    x = x - np.average(x, weights=w)
    y = y - np.average(y, weights=w)
    half = int(np.ceil(max(np.abs(x).max(), np.abs(y).max()))) + 1
    size = 2 * half + 1
    px, py = x + half, y + half
    ix, iy = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - ix, py - iy
    k = np.zeros(size * size)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            k += np.bincount((iy + dy) * size + (ix + dx), weights=w * wy * wx, minlength=size * size)[: size * size]
    k = k.reshape(size, size)
    return k / k.sum()


def draw_tracking_kernel(
    fwhm: float,
    *,
    rng: np.random.Generator,
    kind: str | None = None,
    length: float | None = None,
    return_info: bool = False,
):
    """Draw the telescope path of a tracking error as a smear kernel.

    Parameters
    ----------
    fwhm : float, pixels
        Seeing FWHM (sets the range of path extents).
    kind : one of :data:`TRACKING_KINDS` (default random).
    length : extent of the path in pixels (default log-uniform in
        ``[max(3, fwhm), max(45, 8 fwhm)]``).
    return_info : also return a dict describing the draw.

    Returns
    -------
    ndarray, shape (k, k), odd k, float64, sum 1; centre pixel = mean position.
    """
    if kind is None:
        names = list(TRACKING_KINDS)
        p = np.array(list(TRACKING_KINDS.values()))
        kind = str(rng.choice(names, p=p / p.sum()))
    lo = max(3.0, float(fwhm))
    hi = max(45.0, 8.0 * float(fwhm))
    ext = float(loguniform(rng, lo, hi)) if length is None else float(length)
    x, y, w, info = _path(kind, ext, rng)
    kern = render_path(x, y, w)
    info.update(kind=kind, length=ext, size=int(kern.shape[0]))
    return (kern, info) if return_info else kern


def _smeared_psf(psf: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    out = np.clip(fftconvolve(psf, kernel, mode="full"), 0.0, None)
    return out / out.sum()


def expected_bright_stars(params, level: float = 20.0) -> float:
    """Expected number of stars with a peak above ``level`` sigma_U in the image (truncated Pareto counts)."""
    ny, nx = params.shape
    a = 2.5 * float(params.star_slope)
    fmin, fmax = 0.3 * params.sigma, max(float(params.max_star_peak), 0.6 * params.sigma)
    f = level * params.sigma
    if f >= fmax:
        return 0.0
    frac = (f ** (-a) - fmax ** (-a)) / (fmin ** (-a) - fmax ** (-a))
    return float(params.star_density * ny * nx * frac)


def _draw_params(shape, seed: int, min_bright_stars: float):
    """Sky parameters with enough bright stars to show a smear (up to 30 draws from ``seed``)."""
    from maximask.simulate.sky import draw_sky_parameters

    prng = np.random.default_rng(seed)
    params = None
    for attempt in range(30):
        params = draw_sky_parameters(tuple(shape), rng=np.random.default_rng(int(prng.integers(0, 2**63 - 1))))
        if expected_bright_stars(params) >= min_bright_stars:
            break
    return params, attempt + 1


def _render(shape, params, seeds, kernel, *, probabilities, offset_sigma, options=None):
    """Clean scene (smeared by ``kernel`` if given) + local contaminants + compression."""
    import maximask.simulate  # noqa: F401  (registers the injectors)
    from maximask.simulate.base import get_injector
    from maximask.simulate.pipeline import CONTAMINANT_ORDER, DEFAULT_PROBABILITIES
    from maximask.simulate.sky import make_clean_scene

    s_scene, s_cont, s_comp = (int(s) for s in seeds)
    scene = make_clean_scene(params, rng=np.random.default_rng(s_scene), smear_kernel=kernel)
    probs = dict(DEFAULT_PROBABILITIES)
    if probabilities:
        probs.update(probabilities)
    crng = np.random.default_rng(s_cont)
    presence_u = crng.random(len(CONTAMINANT_ORDER))
    step_seeds = crng.integers(0, 2**63 - 1, size=len(CONTAMINANT_ORDER))
    psf = scene.psf
    # light that goes through the telescope (trails, spike stars) shares the smear;
    # detector effects (CR, persistence, bad pixels, ...) do not
    smeared = _smeared_psf(psf, kernel) if (kernel is not None and psf is not None) else psf
    present = []
    for i, name in enumerate(CONTAMINANT_ORDER):
        if presence_u[i] >= probs.get(name, 0.0):
            continue
        scene.psf = smeared if name in ("TRL", "SP") else psf
        get_injector(name)(scene, rng=np.random.default_rng(step_seeds[i]), **dict((options or {}).get(name, {})))
        present.append(name)
    scene.psf = psf
    scene.finalize_truth()
    est = estimate_background(scene.image)
    compressed = compress(scene.image, est.background, est.sigma, offset_sigma=offset_sigma, rng=np.random.default_rng(s_comp))
    meta = {
        "fwhm": float(scene.fwhm),
        "sky_level": float(scene.sky_level),
        "sigma_true": float(scene.sigma),
        "sigma_est": float(est.sigma),
        "contaminants": present,
        "sky": scene.meta.get("sky", {}),
    }
    return compressed, scene, meta


def _offset_sigma_default() -> float:
    from maximask.simulate.pipeline import OFFSET_SIGMA

    return float(OFFSET_SIGMA)


def simulate_tracking_sample(
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    label: int | None = None,
    kernel: np.ndarray | None = None,
    kind: str | None = None,
    probabilities: dict | None = None,
    offset_sigma: float | None = None,
    min_bright_stars: float = 8.0,
    options: dict | None = None,
) -> tuple[np.ndarray, int, dict]:
    """One MaxiTrack training sample.

    Parameters
    ----------
    shape : (H, W), pixels (the paper's MaxiTrack input is 400 x 400).
    rng : numpy.random.Generator
    label : force the label (1 = tracking error); default: 0 or 1 with probability 1/2.
        The random stream is consumed identically whatever the label, so the same
        rng state gives twins that differ only by the smear.
    kernel : force the smear kernel of a label-1 sample.
    kind : force the path family of the drawn kernel.
    probabilities : presence probabilities of the local contaminants
        (default: the MaxiMask pipeline's).
    offset_sigma : random compression offset in sigma (default: the pipeline's).
    min_bright_stars : the sky parameters are redrawn (up to 30 times, from their own
        stream, whatever the label) until this many stars brighter than 20 sigma_U are
        expected in the image: a smear needs sources to be seen.
    options : extra keyword options per local contaminant, as in the MaxiMask
        pipeline, e.g. ``{"CR": {"library": lib}}``.

    Returns
    -------
    compressed : ndarray, shape (H, W), float32
    label : int, 0 or 1
    meta : dict (JSON-serialisable)
    """
    drawn = int(rng.integers(2))
    lab = drawn if label is None else int(label)
    seeds = rng.integers(0, 2**63 - 1, size=5)
    params, n_draws = _draw_params(shape, int(seeds[0]), min_bright_stars)
    # the kernel is drawn from its own stream, for both labels
    kern, kinfo = draw_tracking_kernel(params.fwhm, rng=np.random.default_rng(int(seeds[4])), kind=kind, return_info=True)
    if kernel is not None:
        kern = np.asarray(kernel, dtype=np.float64)
        kinfo = {"kind": "given", "size": int(kern.shape[0])}
    osig = _offset_sigma_default() if offset_sigma is None else float(offset_sigma)
    compressed, _scene, meta = _render(shape, params, seeds[1:4], kern if lab == 1 else None, probabilities=probabilities, offset_sigma=osig, options=options)
    meta.update(label=lab, tracking=kinfo if lab == 1 else None, shape=list(shape), sky_draws=n_draws,
                expected_bright_stars=expected_bright_stars(params))
    return compressed.astype(np.float32, copy=False), lab, meta


def simulate_tracking_pair(
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    kernel: np.ndarray | None = None,
    kind: str | None = None,
    probabilities: dict | None = None,
    offset_sigma: float | None = None,
    min_bright_stars: float = 8.0,
    options: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """A tracked sample and its untracked twin from the same rng state.

    Returns ``(tracked, untracked, meta)``; both are float32 (H, W).
    """
    state = rng.bit_generator.state
    kw = dict(kernel=kernel, kind=kind, probabilities=probabilities, offset_sigma=offset_sigma, min_bright_stars=min_bright_stars, options=options)
    tracked, _, meta = simulate_tracking_sample(shape, rng=rng, label=1, **kw)
    twin_rng = np.random.Generator(type(rng.bit_generator)())
    twin_rng.bit_generator.state = state
    untracked, _, _ = simulate_tracking_sample(shape, rng=twin_rng, label=0, **kw)
    return tracked, untracked, meta
