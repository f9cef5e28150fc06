"""Dataset shards: deterministic, parallel generation of simulated samples.

Shard format (read by :mod:`maximask.train.shards`): ``shard_{k:05d}.npz`` with

``image``   float16 (N, H, W), dynamically compressed network input
``truth``   uint16 (N, H, W), bit i = class i of :mod:`maximask.classes` (MaxiMask)
``label``   uint8 (N,), 1 = tracking errors (MaxiTrack)
``seed``    int64 (N,), the per-sample seed (``np.random.default_rng(seed)``
            regenerates the sample with the same options)
``meta``    JSON string: ``{"kind", "options", "samples": [per-sample meta]}``

Sets made with ``with_raw`` (LA Cosmic comparison) also hold ``raw`` and
``bkg`` float32 (N, H, W) ADU, and ``sigma``, ``gain``, ``read_noise``
float32 (N,) (ADU, e-/ADU, e-).

Seeds: per-sample seeds are derived from one run seed with
``np.random.SeedSequence(seed).spawn(n)``, so sample ``i`` is the same whatever
the shard size, the number of workers or the order of generation. Shards are
written atomically (temporary file + rename); an existing shard holding exactly
the same seeds and job is skipped, so an interrupted run resumes (any other
shard of the same name is overwritten).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["ShardJob", "sample_seeds", "generate_shards", "write_shard", "make_sample"]


def sample_seeds(seed: int, n: int) -> np.ndarray:
    """Per-sample int64 seeds derived from ``seed``, shape (n,)."""
    children = np.random.SeedSequence(int(seed)).spawn(int(n))
    return np.array([int(c.generate_state(1, np.uint64)[0] >> np.uint64(1)) for c in children], dtype=np.int64)


@dataclass(frozen=True)
class ShardJob:
    """What to generate.

    Attributes
    ----------
    kind : {"maximask", "maxitrack"}
    shape : (int, int)
        Image shape (H, W), pixels.
    contaminants : tuple of str or None
        MaxiMask contaminant restriction (single-contaminant sets).
    probabilities : dict or None
        Presence probabilities per contaminant.
    real_data : str or None
        Real-data directory (cosmic-ray library).
    with_raw : bool
        Also store raw ADU images, background maps and noise parameters.
    fwhm_range : (float, float) or None
        Seeing FWHM range, pixels.
    min_bright_stars : float or None
        MaxiTrack: the sky is redrawn until this many stars brighter than 20 sigma_U
        are expected (None: the default of
        :func:`maximask.simulate.tracking.simulate_tracking_sample`; 0: any sky,
        sparse fields included).
    overscan_edge_bands : float
        MaxiMask: probability, per overscan strip, of a glow or roll-off band on the
        data next to it (:func:`maximask.simulate.detector_defects.inject_overscan`;
        0, the default, draws the sets exactly as before the option existed).
    """

    kind: str = "maximask"
    shape: tuple[int, int] = (128, 128)
    contaminants: tuple[str, ...] | None = None
    probabilities: dict | None = None
    real_data: str | None = None
    with_raw: bool = False
    fwhm_range: tuple[float, float] | None = None
    min_bright_stars: float | None = None
    overscan_edge_bands: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "shape": list(self.shape),
            "contaminants": list(self.contaminants) if self.contaminants else None,
            "probabilities": self.probabilities,
            "real_data": bool(self.real_data),
            "with_raw": self.with_raw,
            "fwhm_range": list(self.fwhm_range) if self.fwhm_range else None,
            **({"min_bright_stars": self.min_bright_stars} if self.min_bright_stars is not None else {}),
            **({"overscan_edge_bands": self.overscan_edge_bands} if self.overscan_edge_bands else {}),
        }


def make_sample(job: ShardJob, seed: int) -> dict:
    """Generate one sample of ``job`` from ``seed``.

    Returns
    -------
    dict with ``image`` (float32 (H, W)), ``truth`` (uint16) or ``label`` (int),
    ``meta``, and with ``job.with_raw``: ``raw``, ``bkg``, ``sigma``, ``gain``, ``read_noise``.
    """
    import maximask.simulate  # noqa: F401  (registers the injectors)
    from maximask.simulate.cosmic_rays import load_cosmic_ray_library

    rng = np.random.default_rng(int(seed))
    options = {}
    lib = load_cosmic_ray_library(job.real_data) if job.real_data else None
    if lib is not None:
        options["CR"] = {"library": lib}
    if job.overscan_edge_bands:
        options["OV"] = {"edge_band_probability": float(job.overscan_edge_bands)}
    if job.kind == "maxitrack":
        from maximask.simulate.tracking import simulate_tracking_sample

        kw = {} if job.min_bright_stars is None else {"min_bright_stars": float(job.min_bright_stars)}
        image, label, meta = simulate_tracking_sample(job.shape, rng=rng, options=options or None, **kw)
        return {"image": image, "label": int(label), "meta": meta}
    from maximask.simulate.pipeline import simulate_scene

    s = simulate_scene(
        job.shape,
        rng=rng,
        contaminants=job.contaminants,
        probabilities=job.probabilities,
        options=options,
        fwhm_range=job.fwhm_range,
    )
    out = {"image": s.compressed, "truth": s.truth, "meta": s.meta}
    if job.with_raw:
        out.update(
            raw=s.scene.image.astype(np.float32),
            bkg=s.background.astype(np.float32),
            sigma=np.float32(s.sigma),
            gain=np.float32(s.scene.gain),
            read_noise=np.float32(s.scene.read_noise),
        )
    return out


def write_shard(path: str | os.PathLike, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` (.npz, uncompressed) atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _build_shard(args: tuple) -> tuple[int, int]:
    job, out_dir, k, seeds = args
    samples = [make_sample(job, int(s)) for s in seeds]
    arrays: dict = {"image": np.stack([s["image"] for s in samples]).astype(np.float16)}
    if job.kind == "maxitrack":
        arrays["label"] = np.array([s["label"] for s in samples], dtype=np.uint8)
    else:
        arrays["truth"] = np.stack([s["truth"] for s in samples]).astype(np.uint16)
    if job.with_raw:
        for key in ("raw", "bkg"):
            arrays[key] = np.stack([s[key] for s in samples]).astype(np.float32)
        for key in ("sigma", "gain", "read_noise"):
            arrays[key] = np.array([s[key] for s in samples], dtype=np.float32)
    arrays["seed"] = np.asarray(seeds, dtype=np.int64)
    arrays["meta"] = np.array(json.dumps({"job": job.to_dict(), "samples": [s["meta"] for s in samples]}))
    write_shard(Path(out_dir) / f"shard_{k:05d}.npz", arrays)
    return k, len(seeds)


def _shard_complete(path: Path, seeds: np.ndarray, job: ShardJob) -> bool:
    """True if ``path`` is a readable shard of exactly these seeds and this job."""
    try:
        with np.load(path, allow_pickle=False) as z:
            same_seeds = np.array_equal(z["seed"], seeds)
            same_job = json.loads(str(z["meta"])).get("job") == json.loads(json.dumps(job.to_dict()))
            return bool(same_seeds and same_job)
    except (OSError, ValueError, KeyError):
        return False


def generate_shards(
    out_dir: str | os.PathLike,
    job: ShardJob,
    *,
    n: int,
    seed: int = 0,
    shard_size: int = 256,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Generate ``n`` samples of ``job`` into shards under ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        Created if needed. ``dataset.json`` (job, n, seed, shard count) is
        written last, once every shard exists: its presence marks a complete set.
    n : int
        Number of samples.
    seed : int
        Run seed (per-sample seeds from :func:`sample_seeds`).
    shard_size : int
        Samples per shard.
    workers : int
        Processes (1: in this process).
    progress : callable, optional
        Called with the number of samples of each finished shard.

    Returns
    -------
    list of Path, the shard files (existing complete shards are kept).
    """
    if n < 1 or shard_size < 1 or workers < 1:
        msg = f"n, shard_size and workers must be >= 1 (got {n}, {shard_size}, {workers})"
        raise ValueError(msg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = sample_seeds(seed, n)
    tasks = []
    paths = []
    for k, start in enumerate(range(0, n, shard_size)):
        chunk = seeds[start : start + shard_size]
        path = out / f"shard_{k:05d}.npz"
        paths.append(path)
        if path.exists() and _shard_complete(path, chunk, job):
            if progress:
                progress(len(chunk))
            continue
        tasks.append((job, str(out), k, chunk))
    done = out / "dataset.json"
    if done.exists():
        done.unlink()  # written again only once every shard of this run exists
    if workers == 1 or len(tasks) <= 1:
        for t in tasks:
            _, m = _build_shard(t)
            if progress:
                progress(m)
    else:
        ctx = mp.get_context("spawn" if os.name == "nt" else "fork")
        with ctx.Pool(processes=min(workers, len(tasks))) as pool:
            for _, m in pool.imap_unordered(_build_shard, tasks):
                if progress:
                    progress(m)
    info = {"job": job.to_dict(), "n": n, "seed": seed, "shard_size": shard_size, "shards": len(paths), "complete": True}
    tmp = out / ".dataset.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, done)
    return paths
