"""Python interface: MaxiMask and MaxiTrack on arrays, HDUs, ``CCDData``/``NDData`` and files.

>>> from maximask.api import predict_mask, predict_probabilities, predict_tracking
>>> probs = predict_probabilities(image, net_dir="models/")          # (14, ny, nx) float32
>>> flags = predict_mask(image, single_mask=True, net_dir="models/")  # (ny, nx) int32 bit codes
>>> p_tr = predict_tracking(hdulist, net_dir="models/")              # float

Every function accepts either a loaded model (:func:`load_maximask` /
:func:`load_maxitrack`, to reuse it across calls) or ``net_dir``
(a model directory, card or weights file); with neither, the default model
installed with the package is used.

Non-finite pixels (and pixels masked in ``NDData.mask``) are excluded from the
background estimate, fed to the network as background, and reported: NaN in
probabilities, 255 in per-class masks, bit 8192 in composite masks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch.nn as nn

from maximask.classes import CLASS_NAMES, DEFAULT_PRIORS, DEFAULT_THRESHOLDS, N_CLASSES
from maximask.inference import MaskPredictor, TrackPredictor, resolve_device
from maximask.modelfile import default_model_path, load_model, resolve_model_path
from maximask.posterior import DEFAULT_TRACKING_PRIOR, PosteriorSettings

__all__ = [
    "LoadedModel",
    "load_maximask",
    "load_maxitrack",
    "default_thresholds",
    "make_settings",
    "predict_probabilities",
    "predict_mask",
    "predict_tracking",
    "process_file",
    "track_file",
]

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A network with its card and a short description for FITS headers.

    Attributes
    ----------
    model : nn.Module
    card : dict
    info : dict
        ``name`` (model file), ``sha256`` (weights checksum), ``arch`` (architecture and width).
    """

    model: nn.Module
    card: dict
    info: dict = field(default_factory=dict)


def _load(kind: str, net_dir, device) -> LoadedModel:
    path = resolve_model_path(net_dir, kind=kind) if net_dir is not None else default_model_path(kind)
    model, card = load_model(path, kind=kind, device=resolve_device(device))
    args = card.get("arch_args", {})
    info = {
        "name": Path(path).name,
        "sha256": card.get("weights_sha256", ""),
        "arch": f"{card['arch']} width={args.get('width', 1.0)}",
        "path": str(path),
    }
    return LoadedModel(model, card, info)


def load_maximask(net_dir: str | os.PathLike | None = None, *, device: str = "auto") -> LoadedModel:
    """Load a MaxiMask model (default: the one installed with the package).

    Raises
    ------
    maximask.modelfile.ModelFileError
    """
    return _load("maximask", net_dir, device)


def load_maxitrack(net_dir: str | os.PathLike | None = None, *, device: str = "auto") -> LoadedModel:
    """Load a MaxiTrack model (default: the one installed with the package)."""
    return _load("maxitrack", net_dir, device)


def _get_model(kind: str, model, net_dir, device) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return model
    if model is not None:
        msg = "model must be a LoadedModel (see load_maximask/load_maxitrack); use net_dir for a path"
        raise TypeError(msg)
    return _load(kind, net_dir, device)


def default_thresholds(card: dict) -> np.ndarray:
    """Thresholds of the model card (for the default priors), else the class table's; shape (14,)."""
    th = card.get("thresholds") or {}
    return np.array([float(th.get(n, DEFAULT_THRESHOLDS[n])) for n in CLASS_NAMES])


def _class_flags(classes: Sequence[str] | None) -> np.ndarray:
    if classes is None:
        return np.ones(N_CLASSES, dtype=bool)
    flags = np.zeros(N_CLASSES, dtype=bool)
    for c in classes:
        key = str(c).strip().upper()
        if key not in CLASS_NAMES:
            msg = f"unknown class {c!r}; expected some of {', '.join(CLASS_NAMES)}"
            raise ValueError(msg)
        flags[CLASS_NAMES.index(key)] = True
    return flags


def _priors(priors) -> np.ndarray | None:
    if priors is None:
        return None
    if isinstance(priors, str):
        if priors != "default":
            msg = f"priors must be 'default', None, a dict or 14 values, got {priors!r}"
            raise ValueError(msg)
        return np.array([DEFAULT_PRIORS[n] for n in CLASS_NAMES])
    if isinstance(priors, dict):
        full = dict(DEFAULT_PRIORS)
        full.update({k.upper(): float(v) for k, v in priors.items()})
        return np.array([full[n] for n in CLASS_NAMES])
    return np.asarray(priors, dtype=np.float64)


def make_settings(
    card: dict,
    *,
    classes: Sequence[str] | np.ndarray | None = None,
    priors="default",
    thresholds="default",
    single_mask: bool = False,
    dilate: dict[str, int] | None = None,
) -> PosteriorSettings:
    """Build :class:`~maximask.posterior.PosteriorSettings` with the model card's defaults.

    Parameters
    ----------
    classes : list of names or (14,) bool array, optional (default: all 14)
    priors : "default", None, dict or (14,) array
        Observation priors (None: no prior update).
    thresholds : "default", None, dict or (14,) array
        "default": the card's thresholds; None: probabilities.
    """
    if isinstance(classes, np.ndarray) and classes.dtype == bool:
        flags = classes
    else:
        flags = _class_flags(classes)
    if isinstance(thresholds, str):
        if thresholds != "default":
            msg = f"thresholds must be 'default', None, a dict or 14 values, got {thresholds!r}"
            raise ValueError(msg)
        th = default_thresholds(card)
    elif isinstance(thresholds, dict):
        base = dict(zip(CLASS_NAMES, default_thresholds(card)))
        base.update({k.upper(): float(v) for k, v in thresholds.items()})
        th = np.array([base[n] for n in CLASS_NAMES])
    else:
        th = None if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    return PosteriorSettings(flags=flags, priors=_priors(priors), thresholds=th, single_mask=single_mask, dilate=dilate or {})


def as_image(data) -> np.ndarray:
    """Pixel array of ``data`` as float32: ndarray, astropy HDU, ``NDData``/``CCDData`` or Quantity.

    Pixels masked in ``NDData.mask`` become NaN (invalid). Returns a 2-D image or a 3-D cube.
    """
    from astropy.nddata import NDData

    mask = None
    if isinstance(data, NDData):  # NDData, CCDData
        arr = data.data
        mask = data.mask
    elif hasattr(data, "data") and hasattr(data, "header") and not isinstance(data, np.ndarray):  # FITS HDU
        arr = data.data
    else:
        arr = getattr(data, "value", data)  # Quantity
    if arr is None:
        msg = "no pixel data"
        raise ValueError(msg)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim not in (2, 3) or arr.size == 0:
        msg = f"expected a non-empty 2-D image or 3-D cube, got shape {arr.shape}"
        raise ValueError(msg)
    if mask is not None and np.any(mask):
        arr = np.where(np.broadcast_to(np.asarray(mask, dtype=bool), arr.shape), np.float32(np.nan), arr)
    return arr


def _predict(data, model, net_dir, device, settings_kw, *, tile, batch_size, margin, precision, views):
    lm = _get_model("maximask", model, net_dir, device)
    settings = make_settings(lm.card, **settings_kw)
    pred = MaskPredictor(lm.model, lm.card, settings, tile=tile,
                         margin=margin, batch_size=batch_size, precision=precision, views=views)
    image = as_image(data)
    out = pred.predict(image)
    if settings.single_mask and image.ndim == 2:
        out = out[0]
    return out


def predict_probabilities(
    data,
    model: LoadedModel | None = None,
    *,
    net_dir=None,
    classes: Sequence[str] | None = None,
    priors="default",
    device: str = "auto",
    tile: int | None = None,
    margin: int | None = None,
    batch_size: int = 1,
    precision: str = "fp32",
    views: int | None = None,
) -> np.ndarray:
    """Contaminant probabilities of an image.

    Parameters
    ----------
    data : ndarray (ny, nx) or (nz, ny, nx), astropy image HDU, NDData or CCDData
    model : LoadedModel, optional
    net_dir : path-like, optional
        Model directory or file, when ``model`` is not given.
    classes : list of str, optional
        Classes to return, in class-table order (default: all 14).
    priors : "default", None, dict or (14,) array
        Observation priors of Eq. 26 ("default": the published priors; None: none).
    tile, margin : int, optional, pixels
        Tile side (default 1024) and pixels cropped from every tile side shared with another
        tile (default: the model card's ``tile_margin``, else 128).
    precision : {"fp32", "bf16"}
        Arithmetic of the network (see "Precision" in :mod:`maximask.inference`).
    views : {1, 2, 4, 8}, optional
        Test-time views: each tile predicted in ``views`` orientations, logits averaged
        (``views`` times slower; see "MaxiMask" in :mod:`maximask.inference`). Default: the
        model card's ``test_time_views`` (1 when absent).

    Returns
    -------
    ndarray, float32, (n_classes, ny, nx) (or (nz, n_classes, ny, nx) for a cube),
    probabilities in [0, 1]; NaN at non-finite or masked input pixels.
    """
    return _predict(data, model, net_dir, device,
                    dict(classes=classes, priors=priors, thresholds=None),
                    tile=tile, batch_size=batch_size, margin=margin, precision=precision, views=views)


def predict_mask(
    data,
    model: LoadedModel | None = None,
    *,
    net_dir=None,
    single_mask: bool = False,
    classes: Sequence[str] | None = None,
    priors="default",
    thresholds="default",
    dilate: dict[str, int] | None = None,
    device: str = "auto",
    tile: int | None = None,
    margin: int | None = None,
    batch_size: int = 1,
    precision: str = "fp32",
    views: int | None = None,
) -> np.ndarray:
    """Contaminant masks of an image.

    Parameters
    ----------
    single_mask : bool
        Return one int32 bit-coded plane (SExtractor FLAG_IMAGE) instead of uint8 planes.
    thresholds : "default", dict or (14,) array
        "default": the model card's thresholds (chosen for the default priors).
    dilate : dict, optional
        Class -> growth radius in pixels.
    precision : {"fp32", "bf16"}
        Arithmetic of the network (see "Precision" in :mod:`maximask.inference`); under
        bf16, pixels near a threshold may flip.
    views : {1, 2, 4, 8}, optional
        Test-time views (as :func:`predict_probabilities`).

    Returns
    -------
    uint8 (n_classes, ny, nx): 1 flagged, 0 clean, 255 invalid input pixel; or
    int32 (ny, nx) with ``single_mask`` (bit codes of :mod:`maximask.classes`,
    8192 for invalid pixels). Cubes get a leading nz axis.
    """
    if thresholds is None:
        msg = "predict_mask needs thresholds; use predict_probabilities for probabilities"
        raise ValueError(msg)
    out = _predict(data, model, net_dir, device,
                   dict(classes=classes, priors=priors, thresholds=thresholds, single_mask=single_mask, dilate=dilate),
                   tile=tile, batch_size=batch_size, margin=margin, precision=precision, views=views)
    return out


def predict_tracking(
    data,
    model: LoadedModel | None = None,
    *,
    net_dir=None,
    prior: float | None = DEFAULT_TRACKING_PRIOR,
    device: str = "auto",
    batch_size: int = 16,
    precision: str = "fp32",
    views: int | None = None,
) -> float:
    """Probability that an exposure is affected by tracking errors (MaxiTrack).

    Parameters
    ----------
    data : 2-D/3-D array, image HDU, NDData/CCDData, a list of these, or an HDUList
        (every image HDU is used: the exposure's probability is the mean over all
        network-input-size tiles of all HDUs).
    prior : float or None
        Observation prior of tracking errors (Eq. 26); None: no update.
    precision : {"fp32", "bf16"}
        Arithmetic of the network (see "Precision" in :mod:`maximask.inference`).
    views : {1, 2, 4, 8} or None
        Orientations each tile is seen in, log-odds averaged (see "MaxiTrack" in
        :mod:`maximask.inference`); None: the model card's ``test_time_views``.

    Returns
    -------
    float in [0, 1]
    """
    lm = _get_model("maxitrack", model, net_dir, device)
    pred = TrackPredictor(lm.model, lm.card, prior, batch_size=batch_size, precision=precision, views=views)
    planes = []
    items = list(data) if isinstance(data, (list, tuple)) or type(data).__name__ == "HDUList" else [data]
    for item in items:
        if hasattr(item, "header") and (not getattr(item, "is_image", True) or getattr(item, "data", None) is None
                                        or item.data.size == 0):
            continue  # tables, empty primaries (data None or of size 0)
        arr = as_image(item)
        planes.extend([arr] if arr.ndim == 2 else list(arr))
    if not planes:
        msg = "no image data"
        raise ValueError(msg)
    return pred.predict(planes)


# --------------------------------------------------------------------------- files


def process_file(
    spec,
    predictor: MaskPredictor,
    *,
    model_info: dict | None = None,
    output_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    compress: bool = False,
    progress_factory: Callable[[int, str], object] | None = None,
) -> Path:
    """Run MaxiMask on one FITS input and write its mask file.

    Parameters
    ----------
    spec : maximask.io.InputSpec or path-like
    predictor : MaskPredictor
    model_info : dict, optional
        For the provenance cards (see :func:`maximask.io.provenance_cards`).
    progress_factory : callable(total, description) -> object with update(n) and close(), optional
        Progress bar per HDU (e.g. a ``tqdm`` partial).

    Returns
    -------
    Path of the written file.

    Raises
    ------
    maximask.io.InputError
        Bad input, or the output exists without ``overwrite``.
    """
    from maximask import io as mio

    if not isinstance(spec, mio.InputSpec):
        specs = mio.parse_im_path(spec)
        if len(specs) != 1:
            msg = f"{spec}: process_file takes one file"
            raise ValueError(msg)
        spec = specs[0]
    hdul = mio.open_input(spec)
    try:
        tasks = mio.plan_hdus(hdul, spec)
        single = spec.hdu is not None
        out_path = mio.output_path(spec, output_dir, hdu_index=tasks[0].index if single and isinstance(spec.hdu, int) else None)
        if out_path.resolve() == spec.path.resolve():
            msg = f"{spec}: output would overwrite the input"
            raise mio.InputError(msg)
        s = predictor.settings
        with mio.FitsWriter(out_path, overwrite=overwrite, compress=compress) as writer:
            for task in tasks:
                hdu = hdul[task.index]
                if not task.process:
                    if task.is_image and task.shape is None:
                        writer.write_header_only(hdu.header)
                    else:
                        logger.info("%s: HDU %d copied (%s)", spec, task.index, task.shape)
                        writer.copy_hdu(hdu)
                    continue
                cube = len(task.shape) == 3
                data = _image_source(hdu, spec, task.shape)
                n_tiles = predictor.n_tiles(task.shape[-2:]) * (task.shape[0] if cube else 1)
                bar = progress_factory(n_tiles, f"{spec.path.name}[{task.index}]") if progress_factory else None
                stats: dict = {}
                try:
                    out = predictor.predict(data, progress=bar.update if bar else None, tmp_dir=out_path.parent,
                                            stats=stats)
                finally:
                    if bar is not None:
                        bar.close()
                n_invalid = int(stats.get("n_invalid", 0))
                if n_invalid:
                    logger.warning("%s: HDU %d has %d non-finite pixels (marked %s in the output)", spec,
                                   task.index, n_invalid, {"proba": "NaN", "masks": "255", "flags": "with bit 8192"}[s.output_kind])
                del data
                mio.release_data(hdu)
                header = mio.image_header(hdu.header, cube=cube, planes_axis=s.output_kind != "flags")
                mio.provenance_cards(
                    header, output_kind=s.output_kind, class_indices=s.selected, priors=s.priors,
                    training_priors=predictor.card.get("training_priors") if s.priors is not None else None,
                    thresholds=s.thresholds, dilate=s.dilate, model=model_info, n_invalid=n_invalid,
                    extra={"MM_TILE": (predictor.tile, "inference tile (pixels)"),
                           "MM_MARGN": (predictor.margin, "tile margin cropped (pixels)"),
                           "MM_PREC": (predictor.precision, "network arithmetic (fp32 or bf16)"),
                           "MM_VIEWS": (predictor.views, "test-time views averaged per tile")},
                )
                if s.output_kind == "flags" and not cube:
                    out = out[0]
                writer.write_image(out, header)
                del out
            path = writer.commit()
    finally:
        hdul.close()
    return path


def _image_source(hdu, spec, shape):
    """The HDU's pixels: a float32 array, or for images above ``WINDOW_PIXELS`` its section (read by rows)."""
    from maximask import io as mio
    from maximask.inference import WINDOW_PIXELS

    if int(np.prod(shape[-2:])) > WINDOW_PIXELS:
        try:
            section = hdu.section
            _ = np.asarray(section[(0,) * (len(shape) - 1) + (slice(0, 1),)])  # readable this way?
            logger.info("%s: HDU %s read by rows", spec, hdu.name)
            return section
        except Exception:  # noqa: BLE001 - e.g. gzip files have no sections: read it whole
            logger.info("%s: HDU %s cannot be read by rows, reading it whole", spec, hdu.name)
    return mio.read_image(hdu, spec)


def track_file(
    spec,
    predictor: TrackPredictor,
    *,
    frac: float = 1.0,
    rng: np.random.Generator | None = None,
) -> float:
    """MaxiTrack probability of one FITS input (all its image HDUs, or a random fraction).

    Parameters
    ----------
    frac : float in (0, 1]
        Fraction of the image HDUs used (at least one), drawn with ``rng``.
    rng : numpy Generator, needed when ``frac < 1``.
    """
    from maximask import io as mio

    if not (0.0 < frac <= 1.0):
        msg = f"frac must lie in (0, 1], got {frac}"
        raise ValueError(msg)
    if not isinstance(spec, mio.InputSpec):
        spec = mio.parse_im_path(spec)[0]
    hdul = mio.open_input(spec)
    try:
        tasks = [t for t in mio.plan_hdus(hdul, spec) if t.process]
        if frac < 1.0:
            if rng is None:
                msg = "frac < 1 needs an explicit rng"
                raise ValueError(msg)
            n = max(1, int(frac * len(tasks)))
            keep = sorted(rng.choice(len(tasks), size=n, replace=False))
            tasks = [tasks[i] for i in keep]
            logger.info("%s: using %d of the image HDUs (frac %.3g)", spec, n, frac)
        ps, ws = [], []
        for task in tasks:
            hdu = hdul[task.index]
            data = mio.read_image(hdu, spec)
            for plane in [data] if data.ndim == 2 else list(data):
                p, w = predictor.tile_probabilities(plane)
                ps.append(p)
                ws.append(w)
            del data
            mio.release_data(hdu)
    finally:
        hdul.close()
    p = np.concatenate(ps)
    w = np.concatenate(ws)
    if w.sum() <= 0:
        return float("nan")
    return float(np.sum(p * w) / np.sum(w))
