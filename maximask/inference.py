"""Running the networks on images of any size: tiling, batching, stitching, devices.

MaxiMask
--------
The image is preprocessed once (:func:`maximask.preprocess.preprocess_image`),
then cut into overlapping square tiles of ``tile`` pixels whose origins are
multiples of 32 (the network's 5 max-poolings then see the same 2x2 windows as
on the whole image). Each tile's prediction is cropped by ``margin`` pixels on
the sides shared with another tile (where zero padding makes convolutions
differ from the whole-image ones) and written into the output; the image's own
borders are kept. Tiles of equal shape are batched. Probabilities are updated
to the observation priors (Eq. 26) on the logits, then thresholded and
bit-combined tile by tile, so only the requested output (float32 probabilities,
uint8 masks or an int32 flag map) is ever held for the whole image.
With ``views`` > 1 (test-time views, :data:`VIEWS`) each tile is also predicted
turned and mirrored, each prediction turned back, and the logits are the mean
over the views, at ``views`` times the network's cost; the model card's
``test_time_views`` gives the default (1 when absent).

MaxiTrack
---------
The image is cut into tiles of the network's input size (400x400 for the paper's
network, 128x128 for the installed one) on a regular
grid anchored at the bottom-right corner, as the published tool does; each tile
gets a probability of tracking errors, updated to the observation prior, and
the image's probability is the mean over tiles (weighted by their valid pixels;
images smaller than a tile are zero-padded, i.e. padded with the background).
With ``views`` > 1 (:data:`VIEWS`) each tile is also seen turned and mirrored and its
log-odds are the mean over the views: a tracking error has no preferred
orientation, so this averages out part of the network's orientation-dependent
error, at ``views`` times the network's cost. The model card's
``test_time_views`` gives the default (1 when absent); its thresholds were
calibrated with that many views.

Precision
---------
``precision="fp32"`` (default) runs the networks in float32. ``"bf16"`` runs
their forward pass under ``torch.autocast`` in bfloat16 (torch's autocast op
lists: convolutions and linear layers run in bfloat16); the logits are
converted back to float32 before the posterior (prior shift, sigmoid,
thresholds), and preprocessing is unchanged. Most probabilities then differ
from float32 ones by less than about 0.01, but rare pixels (mostly OV, BBG,
SAT) by up to a few tenths (``benchmarks/bf16_accuracy.py``; a likely
cause: bfloat16 rounding can change which pixel of a 2x2 window max-pooling
keeps, and unpooling carries that to the output). It is only faster on CPUs
with native bfloat16 arithmetic (AVX512-BF16, AMX) and on GPUs; elsewhere
bfloat16 is emulated and much slower (12 times for MaxiMask on an AVX2 CPU,
``benchmarks/results_bf16.json``), and :func:`check_precision` logs a warning.
"""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from maximask.posterior import (
    INVALID_BIT,
    INVALID_MASK_VALUE,
    PosteriorSettings,
    combine_bits,
    dilate_masks,
    prior_logit_shift,
)
from maximask.preprocess import MAX_NOISE_RATIO, compress, estimate_background, preprocess_image

__all__ = [
    "DEFAULT_TILE",
    "DEFAULT_MARGIN",
    "ALIGN",
    "resolve_device",
    "configure_threads",
    "PRECISIONS",
    "check_precision",
    "precision_context",
    "Tile",
    "plan_axis",
    "plan_tiles",
    "predict_logits",
    "MaskPredictor",
    "TrackPredictor",
    "VIEWS",
    "check_views",
    "resolve_views",
    "track_log_odds",
    "dihedral_view",
    "dihedral_view_inverse",
    "forward_views",
    "resolve_margin",
    "allocate_output",
    "release_pages",
]

logger = logging.getLogger(__name__)

#: Default tile side in pixels (multiple of :data:`ALIGN`).
DEFAULT_TILE = 1024
#: Default pixels cropped on each side a tile shares with another one, for a model whose card
#: has no ``tile_margin`` (the margin measured for that model, ``benchmarks/tile_seams.py``).
DEFAULT_MARGIN = 128
#: Tile origins are multiples of this (2**5 for the 5 poolings of MaxiMaskNet).
ALIGN = 32
#: Outputs larger than this many bytes are kept in a temporary memory-mapped file.
MEMMAP_BYTES = 256 * 2**20
#: Images with more pixels are read, preprocessed and predicted by row windows (bounded memory).
WINDOW_PIXELS = 16 * 2**20
#: Extra rows around a row window used for its background map, pixels.
BACKGROUND_HALO = 128
#: Accepted ``precision`` values: float32, or bfloat16 autocast of the forward pass.
PRECISIONS = ("fp32", "bf16")


class DeviceError(ValueError):
    """The requested device is not available."""


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"``."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        msg = f"device {name!r} asked for but CUDA is not available"
        raise DeviceError(msg)
    try:
        return torch.device(name)
    except RuntimeError:
        msg = f"unknown device {name!r} (expected auto, cpu or cuda[:N])"
        raise DeviceError(msg) from None


def configure_threads(threads: int | None) -> None:
    """Set torch's CPU thread count (process-wide; meant for command lines and benchmarks)."""
    if threads:
        if threads < 1:
            msg = f"threads must be >= 1, got {threads}"
            raise ValueError(msg)
        torch.set_num_threads(int(threads))


def check_precision(precision: str, device: torch.device) -> str:
    """Validate ``precision`` (one of :data:`PRECISIONS`) for a model on ``device``; returns it.

    Raises
    ------
    ValueError
        Unknown precision, or bfloat16 autocast not available on that device.
    """
    if precision not in PRECISIONS:
        raise ValueError(_unknown_precision(precision))
    if precision == "bf16":
        if device.type == "cpu" and cpu_has_native_bf16() is False:
            logger.warning("bf16 on this CPU is emulated (no AVX512-BF16 or AMX): expect it to run several times "
                           "slower than fp32 (12 times for MaxiMask on an AVX2 CPU); use --precision fp32")
        try:  # entering the context checks the device (e.g. CUDA GPUs without bfloat16)
            with precision_context(precision, device):
                pass
        except RuntimeError as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            msg = f"precision 'bf16' is not available on device {device}: {first_line}"
            raise ValueError(msg) from None
    return precision


def cpu_has_native_bf16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool | None:
    """Whether the CPU has bfloat16 arithmetic (the ``avx512_bf16`` or ``amx_bf16`` flag of ``cpuinfo``).

    None where that file cannot be read (not Linux): unknown.
    """
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return None
    return None


def precision_context(precision: str, device: torch.device):
    """Context manager for a forward pass: ``torch.autocast`` to bfloat16 for ``"bf16"``, nothing for ``"fp32"``.

    Only the network call should run inside it; outputs (bfloat16 under ``"bf16"``)
    are to be converted with ``.float()`` before the posterior.
    """
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp32":
        return contextlib.nullcontext()
    raise ValueError(_unknown_precision(precision))


def _unknown_precision(precision) -> str:
    return f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"


# --------------------------------------------------------------------------- tiling


@dataclass(frozen=True)
class Tile:
    """One tile: the input window and the part of its prediction that is kept.

    All coordinates are pixel indices of the full image, half-open ``[start, stop)``.
    ``y0:y1, x0:x1`` is the network input; ``ky0:ky1, kx0:kx1`` the kept output
    (inside the window).
    """

    y0: int
    y1: int
    x0: int
    x1: int
    ky0: int
    ky1: int
    kx0: int
    kx1: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y1 - self.y0, self.x1 - self.x0)


def plan_axis(n: int, tile: int, margin: int, align: int = ALIGN) -> list[tuple[int, int, int, int]]:
    """Windows along one axis of length ``n``.

    The fewest windows of at most about ``tile`` pixels whose kept parts leave
    ``margin`` pixels of every shared side are used, and their size is then
    reduced to what that number of windows needs (less wasted overlap).

    Returns
    -------
    list of (start, stop, keep_start, keep_stop). Windows start at multiples of
    ``align``; kept parts partition ``[0, n)``; inner boundaries lie at the middle
    of each overlap, so at least ``margin`` pixels are cropped from shared sides.
    """
    if n <= 0:
        return []
    if tile % align or (tile - 2 * margin) < align:
        msg = f"tile ({tile}) must be a multiple of {align} and at least 2*margin+{align} ({2 * margin + align})"
        raise ValueError(msg)
    if n <= tile + align:
        return [(0, n, 0, n)]
    k = math.ceil((n - 2 * margin) / (tile - 2 * margin))
    size = math.ceil((n + 2 * margin * (k - 1)) / k / align) * align
    while True:
        starts = [((j * (n - size)) // (k - 1)) // align * align for j in range(k)]
        stops = [s + size for s in starts[:-1]] + [n]
        if all(stops[j] - starts[j + 1] >= 2 * margin for j in range(k - 1)):
            break
        size += align
    windows = [[s, e, 0, n] for s, e in zip(starts, stops)]
    for j in range(k - 1):
        boundary = (windows[j + 1][0] + windows[j][1]) // 2
        windows[j][3] = boundary
        windows[j + 1][2] = boundary
    return [tuple(w) for w in windows]


def plan_tiles(shape: tuple[int, int], tile: int = DEFAULT_TILE, margin: int = DEFAULT_MARGIN) -> list[Tile]:
    """Tiles covering an image of ``shape`` (ny, nx), in row-major order."""
    ny, nx = shape
    rows = plan_axis(ny, tile, margin)
    cols = plan_axis(nx, tile, margin)
    return [Tile(r[0], r[1], c[0], c[1], r[2], r[3], c[2], c[3]) for r in rows for c in cols]


def _batches(tiles: Sequence[Tile], batch_size: int) -> Iterator[list[Tile]]:
    """Group tiles of equal shape into batches of at most ``batch_size``."""
    groups: dict[tuple[int, int], list[Tile]] = {}
    for t in tiles:
        groups.setdefault(t.shape, []).append(t)
    for group in groups.values():
        for i in range(0, len(group), batch_size):
            yield group[i : i + batch_size]


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def predict_logits(
    model: nn.Module,
    image: np.ndarray,
    *,
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    batch_size: int = 1,
    channels_last: bool | None = None,
    precision: str = "fp32",
    progress: Callable[[int], None] | None = None,
    views: int = 1,
) -> Iterator[tuple[Tile, torch.Tensor]]:
    """Run MaxiMaskNet on overlapping tiles of a compressed image.

    Parameters
    ----------
    model : nn.Module
        MaxiMaskNet in eval mode.
    image : ndarray, shape (ny, nx), float32
        Dynamically compressed image (network input).
    tile, margin : int, pixels
        See :func:`plan_tiles`.
    batch_size : int
        Tiles per forward pass.
    channels_last : bool, optional
        Use the channels-last memory layout (default: on CPU).
    precision : {"fp32", "bf16"}
        Arithmetic of the forward pass (see the module docstring); logits are float32 either way.
    progress : callable, optional
        Called with the number of tiles done after each batch.
    views : {1, 2, 4, 8}
        Test-time views: logits averaged over the tile's first ``views`` orientations
        (:func:`forward_views`).

    Yields
    ------
    tile : Tile
    logits : torch.Tensor, shape (14, ky1-ky0, kx1-kx0), float32, on the model's device
        Logits of the kept part of the tile.
    """
    check_precision(precision, _model_device(model))
    tiles = plan_tiles(image.shape, tile, margin)
    yield from _run_tiles(model, image, tiles, 0, batch_size=batch_size, channels_last=channels_last,
                          precision=precision, progress=progress, views=check_views(views))


#: Numbers of test-time views (``views``): the first ``views`` orientations of
#: :func:`dihedral_view` (1: as is; 2: + a quarter turn; 4: the four quarter turns; 8: also mirrored).
VIEWS = (1, 2, 4, 8)


def dihedral_view(x: torch.Tensor, k: int) -> torch.Tensor:
    """View ``k`` (0-7) of a batch ``(..., H, W)``: ``k % 4`` quarter turns, then mirrored left-right when ``k >= 4``."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def dihedral_view_inverse(y: torch.Tensor, k: int) -> torch.Tensor:
    """Undo :func:`dihedral_view` ``k``: ``dihedral_view_inverse(dihedral_view(x, k), k) == x``."""
    if k >= 4:
        y = torch.flip(y, dims=(-1,))
    return torch.rot90(y, -(k % 4), dims=(-2, -1))


def check_views(views) -> int:
    """``views`` as an int of :data:`VIEWS`, or ValueError."""
    if views not in VIEWS:
        msg = f"views must be one of {', '.join(map(str, VIEWS))}, got {views}"
        raise ValueError(msg)
    return int(views)


def resolve_views(card, views: int | None) -> int:
    """``views``, or the model card's ``test_time_views`` (1 when absent) when None; checked."""
    return check_views(int(card.get("test_time_views", 1)) if views is None else views)


def resolve_margin(card, margin: int | None) -> int:
    """``margin``, or the model card's ``tile_margin`` (:data:`DEFAULT_MARGIN` when absent) when None."""
    return int(card.get("tile_margin", DEFAULT_MARGIN) if margin is None else margin)


def forward_views(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, views: int, *,
                  memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Mean of the per-pixel outputs ``forward(view(x))`` turned back, over ``views`` views.

    ``x`` : (N, C, H, W); ``forward`` returns maps (N, K, H, W) aligned with its input; each view
    is made contiguous in ``memory_format`` before the call. One view is ``forward(x)`` itself;
    several give float32.
    """
    if views == 1:
        return forward(x)
    total = None
    for k in range(views):
        out = forward(dihedral_view(x, k).contiguous(memory_format=memory_format))
        out = dihedral_view_inverse(out, k).float()
        total = out if total is None else total.add_(out)
    return total / views


def track_log_odds(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, views: int, *,
                   memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Log-odds of a tracking error, ``logit_1 - logit_0`` of ``forward``, mean over ``views`` views.

    ``x`` : (N, 1, H, W) square tiles; ``forward`` returns (N, 2) logits. Returns (N,) float64.
    """
    z = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for k in range(views):
        logits = forward(dihedral_view(x, k).contiguous(memory_format=memory_format)).float()
        z += (logits[:, 1] - logits[:, 0]).double()
    return z / views


def _run_tiles(
    model: nn.Module,
    image: np.ndarray,
    tiles: Sequence[Tile],
    y_offset: int,
    *,
    batch_size: int = 1,
    channels_last: bool | None = None,
    precision: str = "fp32",
    progress: Callable[[int], None] | None = None,
    views: int = 1,
) -> Iterator[tuple[Tile, torch.Tensor]]:
    """Tiles (full-image coordinates) of ``image``, whose row 0 is full-image row ``y_offset``.

    Yields (tile, float32 logits of its kept part, shape (14, ky1-ky0, kx1-kx0)), the mean over
    ``views`` test-time views. Only the network call runs under :func:`precision_context`
    (which is not left active across yields).
    """
    from maximask.nets import MaxiMaskNet

    device = _model_device(model)
    if channels_last is None:
        channels_last = device.type == "cpu"
    if channels_last:  # NCHW convolutions with few channels are several times slower on CPU
        model = model.to(memory_format=torch.channels_last)
    forward = model.forward_inference if isinstance(model, MaxiMaskNet) else model
    with torch.inference_mode():
        for batch in _batches(tiles, max(1, int(batch_size))):
            arr = np.stack([image[t.y0 - y_offset : t.y1 - y_offset, t.x0 : t.x1] for t in batch])[:, None]
            x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with precision_context(precision, device):
                logits = forward_views(forward, x, views,
                                       memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            for t, out in zip(batch, logits):
                # float32 for the posterior; a no-op (a view) under fp32
                yield t, out[:, t.ky0 - t.y0 : t.ky1 - t.y0, t.kx0 - t.x0 : t.kx1 - t.x0].float()
            if progress is not None:
                progress(len(batch))


# --------------------------------------------------------------------------- outputs


def allocate_output(shape: tuple[int, ...], dtype, *, tmp_dir: str | os.PathLike | None = None) -> np.ndarray:
    """An output array, in memory or, above :data:`MEMMAP_BYTES`, in a temporary memory-mapped file.

    The temporary file is unlinked at once (it disappears with the array).
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes <= MEMMAP_BYTES:
        return np.zeros(shape, dtype=dtype)
    fh = tempfile.TemporaryFile(dir=tmp_dir, prefix=".maximask-")
    fh.truncate(nbytes)
    logger.info("output of %.1f MB kept in a temporary memory-mapped file", nbytes / 2**20)
    return np.memmap(fh, dtype=dtype, mode="r+", shape=shape)


def release_pages(arr) -> None:
    """Write a memory-mapped output's dirty pages to its file and drop them from memory.

    Keeps the resident memory of large (memory-mapped) outputs bounded; no-op for in-memory arrays.
    """
    mm = getattr(arr, "_mmap", None)
    if mm is None:
        return
    try:
        mm.flush()
        mm.madvise(mmap.MADV_DONTNEED)
    except (AttributeError, OSError, ValueError):  # platform without madvise, closed map
        pass


class MaskPredictor:
    """MaxiMask inference with fixed settings.

    Parameters
    ----------
    model : nn.Module
        MaxiMaskNet (eval mode, on its device).
    card : dict
        The model card (training priors, thresholds).
    settings : PosteriorSettings
        Classes, priors, thresholds, single mask, dilation.
    tile : int, pixels
    margin : int or None, pixels
        Cropped from every tile side shared with another tile; None: the card's
        ``tile_margin`` (the margin measured seamless for that model), else :data:`DEFAULT_MARGIN`.
    batch_size : int
    channels_last : bool, optional
    precision : {"fp32", "bf16"}
        Arithmetic of the network (module docstring, "Precision"); the posterior is float32.
    views : {1, 2, 4, 8} or None
        Test-time views (module docstring, "MaxiMask"); None: the card's ``test_time_views``
        (1 when absent). ``views`` forward passes per tile.

    Raises
    ------
    ValueError
        Bad tile/margin/views, unknown precision, or bf16 not available on the model's device.
    """

    def __init__(
        self,
        model: nn.Module,
        card: dict,
        settings: PosteriorSettings,
        *,
        tile: int | None = None,
        margin: int | None = None,
        batch_size: int = 1,
        channels_last: bool | None = None,
        precision: str = "fp32",
        views: int | None = None,
    ):
        self.model = model.eval()
        self.card = card
        self.settings = settings
        self.views = resolve_views(card, views)
        self.tile = int(tile or DEFAULT_TILE)
        self.margin = resolve_margin(card, margin)
        plan_axis(self.tile + 1, self.tile, self.margin)  # validates tile and margin
        self.batch_size = int(batch_size)
        self.channels_last = channels_last
        self.device = _model_device(model)
        self.precision = check_precision(precision, self.device)
        if channels_last is None:
            self.channels_last = self.device.type == "cpu"
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        sel = settings.selected
        self._sel = torch.as_tensor(sel, device=self.device)
        if settings.priors is not None and not card.get("training_priors"):
            logger.warning("the model card has no training priors: probabilities are not prior-updated (Eq. 26)")
        shift = settings.logit_shift(card.get("training_priors"))
        self._shift = torch.as_tensor(shift, dtype=torch.float32, device=self.device).view(-1, 1, 1)
        if settings.thresholds is not None:
            self._thr = torch.as_tensor(settings.thresholds[sel], dtype=torch.float32, device=self.device).view(-1, 1, 1)
            bits = [int(b) for b in _bits(sel)]
            self._bits = torch.as_tensor(bits, dtype=torch.int32, device=self.device).view(-1, 1, 1)

    @property
    def n_planes(self) -> int:
        return self.settings.n_planes

    @property
    def dtype(self) -> np.dtype:
        return self.settings.dtype

    def n_tiles(self, shape: tuple[int, int]) -> int:
        return len(plan_tiles(shape, self.tile, self.margin))

    def _postprocess(self, logits: torch.Tensor) -> torch.Tensor:
        """(14, h, w) logits -> (n_planes, h, w) output in the settings' format."""
        z = logits.index_select(0, self._sel) - self._shift
        p = torch.sigmoid(z)
        kind = self.settings.output_kind
        if kind == "proba":
            return p
        m = p >= self._thr
        if kind == "masks" or self.settings.dilate:
            return m.to(torch.uint8)
        return (m.to(torch.int32) * self._bits).sum(0, keepdim=True, dtype=torch.int32)

    def predict_plane(
        self,
        image,
        out: np.ndarray | None = None,
        *,
        progress: Callable[[int], None] | None = None,
        tmp_dir: str | os.PathLike | None = None,
        stats: dict | None = None,
    ) -> np.ndarray:
        """Predict one 2-D image.

        Parameters
        ----------
        image : ndarray (ny, nx), any real dtype, image units; NaN/inf allowed.
            Or any object with ``shape`` and row slicing (``image[y0:y1]``), e.g. an
            astropy ``hdu.section``: images above :data:`WINDOW_PIXELS` are then read,
            preprocessed and predicted by row windows, in bounded memory.
        out : ndarray, shape (n_planes, ny, nx), optional
            Where to write the result (e.g. a slice of a cube's output).
        stats : dict, optional
            ``stats["n_invalid"]`` is increased by the number of non-finite pixels.

        Returns
        -------
        ndarray, shape (n_planes, ny, nx): float32 probabilities (NaN at non-finite
        input pixels), uint8 masks (255 there) or int32 bit-coded flags
        (n_planes = 1; :data:`~maximask.posterior.INVALID_BIT` set there).
        """
        if len(image.shape) != 2:
            msg = f"expected a 2-D image, got shape {tuple(image.shape)}"
            raise ValueError(msg)
        ny, nx = (int(n) for n in image.shape)
        s = self.settings
        # with dilation, single masks are made from dilated per-class masks at the end
        inner_planes = int(s.flags.sum()) if (s.single_mask and s.dilate) else s.n_planes
        inner_dtype = np.dtype(np.uint8) if (s.single_mask and s.dilate) else s.dtype
        inner_kind = "masks" if (s.single_mask and s.dilate) else s.output_kind
        if out is None:
            out = allocate_output((s.n_planes, ny, nx), s.dtype, tmp_dir=tmp_dir)
        work = out if inner_planes == s.n_planes and inner_dtype == out.dtype else allocate_output(
            (inner_planes, ny, nx), inner_dtype, tmp_dir=tmp_dir
        )

        def read(a: int, b: int) -> np.ndarray:
            return np.asarray(image[a:b], dtype=np.float32)

        if ny * nx <= WINDOW_PIXELS:
            windows = [(0, ny, 0, ny)]
            sigma = None
        else:
            windows = plan_axis(ny, self.tile, self.margin)
            sigmas = []
            for w0, w1, _, _ in windows:
                a, b = max(0, w0 - BACKGROUND_HALO), min(ny, w1 + BACKGROUND_HALO)
                sigmas.append(estimate_background(read(a, b)).sigma)
            sigma = float(np.median(sigmas))
            logger.info("%dx%d image processed in %d row windows (noise %.4g)", ny, nx, len(windows), sigma)
        cols = plan_axis(nx, self.tile, self.margin)
        n_invalid = 0
        for w0, w1, k0, k1 in windows:
            a, b = (0, ny) if sigma is None else (max(0, w0 - BACKGROUND_HALO), min(ny, w1 + BACKGROUND_HALO))
            block = read(a, b)
            est = estimate_background(block, noise=sigma)  # row windows: the noise of the whole image
            if est.noise_capped:
                logger.info("noise %.4g capped at %.4g, %g times the pixel-to-pixel noise (a background mesh "
                            "straddles a step, e.g. an overscan edge)", est.sigma_sep, est.sigma, MAX_NOISE_RATIO)
            compressed = compress(block, est.background, est.sigma if sigma is None else sigma)[w0 - a : w1 - a]
            invalid = est.invalid[k0 - a : k1 - a]
            del block, est
            if sigma is None:
                tiles = plan_tiles((ny, nx), self.tile, self.margin)
            else:
                tiles = [Tile(w0, w1, c[0], c[1], k0, k1, c[2], c[3]) for c in cols]
            for i, (t, logits) in enumerate(_run_tiles(self.model, compressed, tiles, w0, batch_size=self.batch_size,
                                                       channels_last=self.channels_last, precision=self.precision,
                                                       progress=progress, views=self.views)):
                work[:, t.ky0 : t.ky1, t.kx0 : t.kx1] = self._postprocess(logits).cpu().numpy()
                if i % 4 == 3:
                    release_pages(work)
            del compressed
            release_pages(work)
            if invalid.any():
                n_invalid += int(invalid.sum())
                region = work[:, k0:k1]
                if inner_kind == "proba":
                    region[:, invalid] = np.nan
                elif inner_kind == "masks":
                    region[:, invalid] = INVALID_MASK_VALUE
                else:
                    region[0, invalid] |= INVALID_BIT
        if s.dilate:
            radii = [s.dilate.get(n, 0) for n in s.selected_names]
            for k, r in enumerate(radii):
                dilate_masks(work[k : k + 1], [r])
                release_pages(work)
            if s.single_mask:
                for y0 in range(0, ny, 2048):
                    out[0, y0 : y0 + 2048] = combine_bits(work[:, y0 : y0 + 2048], s.selected)
                    release_pages(work)
                    release_pages(out)
                del work
        if stats is not None:
            stats["n_invalid"] = stats.get("n_invalid", 0) + n_invalid
        return out

    def predict(self, data, *, progress=None, tmp_dir=None, stats: dict | None = None) -> np.ndarray:
        """Predict a 2-D image or a 3-D cube (plane by plane).

        ``data`` is an ndarray or an object with ``shape`` and slicing (an astropy
        ``hdu.section``), see :meth:`predict_plane`.

        Returns
        -------
        ndarray: (n_planes, ny, nx) for a 2-D image; for a cube (nz, ny, nx),
        (nz, n_planes, ny, nx), or (nz, ny, nx) for a single mask.
        """
        if not hasattr(data, "shape"):
            data = np.asarray(data)
        if len(data.shape) == 2:
            return self.predict_plane(data, progress=progress, tmp_dir=tmp_dir, stats=stats)
        if len(data.shape) != 3:
            msg = f"expected a 2-D image or a 3-D cube, got shape {tuple(data.shape)}"
            raise ValueError(msg)
        nz, ny, nx = (int(n) for n in data.shape)
        out = allocate_output((nz, self.n_planes, ny, nx), self.dtype, tmp_dir=tmp_dir)
        for k in range(nz):
            plane = data[k] if isinstance(data, np.ndarray) else _PlaneRows(data, k, (ny, nx))
            self.predict_plane(plane, out=out[k], progress=progress, tmp_dir=tmp_dir, stats=stats)
        if self.settings.single_mask:
            out = out[:, 0]
        return out


class _PlaneRows:
    """Rows of plane ``k`` of a 3-D array-like (e.g. an astropy section), read on demand."""

    def __init__(self, source, k: int, shape: tuple[int, int]):
        self.source, self.k, self.shape = source, k, shape

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.asarray(self.source[self.k, rows.start : rows.stop])


def _bits(class_indices) -> list[int]:
    from maximask.classes import BIT_CODES, CLASS_NAMES

    return [BIT_CODES[CLASS_NAMES[int(i)]] for i in class_indices]


# --------------------------------------------------------------------------- maxitrack


def track_tiles(shape: tuple[int, int], size: int) -> list[tuple[int, int]]:
    """Origins (y, x) of the non-overlapping ``size`` tiles of MaxiTrack, anchored bottom-right.

    An axis shorter than ``size`` gives one origin 0 (the tile is padded).
    """
    ny, nx = shape
    ys = list(range(ny % size, ny - size + 1, size)) if ny >= size else [0]
    xs = list(range(nx % size, nx - size + 1, size)) if nx >= size else [0]
    return [(y, x) for y in ys for x in xs]


class TrackPredictor:
    """MaxiTrack inference.

    Parameters
    ----------
    model : nn.Module
        MaxiTrackNet (eval mode).
    card : dict
        Model card (training prior of class ``TR``).
    prior : float or None
        Observation prior of tracking errors (Eq. 26); None: no update.
    batch_size : int
    precision : {"fp32", "bf16"}
        Arithmetic of the network (module docstring, "Precision"); the posterior is float32.
    views : {1, 2, 4, 8} or None
        Orientations each tile is seen in, log-odds averaged (module docstring, "MaxiTrack");
        None: the card's ``test_time_views`` (1 when absent). ``views`` forward passes per tile.
    """

    def __init__(self, model: nn.Module, card: dict, prior: float | None = 0.05, *, batch_size: int = 16,
                 precision: str = "fp32", views: int | None = None):
        from maximask.nets.maxitrack_net import MaxiTrackNet, fold_batch_norm_for_inference

        # batch normalisations merged into the convolutions (a copy; the caller's model is untouched)
        self.model = fold_batch_norm_for_inference(model) if isinstance(model, MaxiTrackNet) else model.eval()
        self.card = card
        self.size = int(getattr(model, "input_size", 400))
        self.batch_size = int(batch_size)
        self.device = _model_device(model)
        self.precision = check_precision(precision, self.device)
        if prior is not None and not (0.0 < prior < 1.0):
            msg = f"prior must lie strictly between 0 and 1, got {prior}"
            raise ValueError(msg)
        self.prior = prior
        self.views = resolve_views(card, views)
        self.channels_last = self.device.type == "cpu"
        if self.channels_last:  # 9x9 convolutions are ~1.5x faster channels-last on CPU
            self.model = self.model.to(memory_format=torch.channels_last)
        pt = (card.get("training_priors") or {}).get("TR")
        # without a training prior the published tool's convention (balanced training, 0.5) applies
        self.shift = 0.0 if prior is None else float(prior_logit_shift(0.5 if pt is None else pt, prior))

    def tile_probabilities(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of tracking errors of each tile of a 2-D image.

        Returns
        -------
        probs : ndarray, shape (n_tiles,), float64, updated to the observation prior
        weights : ndarray, shape (n_tiles,), float64: fraction of valid pixels in each tile
        """
        image = np.asarray(image)
        compressed, est = preprocess_image(image)
        valid = ~est.invalid
        del est
        return self.compressed_tile_probabilities(compressed, valid)

    def compressed_tile_probabilities(self, compressed: np.ndarray, valid: np.ndarray | None = None
                                      ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`tile_probabilities` of an already compressed image (the network input).

        Parameters
        ----------
        compressed : ndarray, shape (ny, nx), float
            ``arsinh((I - B) / sigma)`` (:func:`maximask.preprocess.preprocess_image`), 0 where invalid.
        valid : ndarray of bool, shape (ny, nx), optional
            Valid pixels (default: all).
        """
        if valid is None:
            valid = np.ones(compressed.shape, dtype=bool)
        size = self.size
        origins = track_tiles(compressed.shape, size)
        probs, weights = [], []
        with torch.inference_mode():
            for i in range(0, len(origins), self.batch_size):
                chunk = origins[i : i + self.batch_size]
                batch = np.zeros((len(chunk), 1, size, size), np.float32)
                for b, (y, x) in enumerate(chunk):
                    block = compressed[y : y + size, x : x + size]
                    batch[b, 0, : block.shape[0], : block.shape[1]] = block
                    weights.append(valid[y : y + size, x : x + size].sum() / float(size * size))
                tiles = torch.from_numpy(batch).to(self.device)
                fmt = torch.channels_last if self.channels_last else torch.contiguous_format
                with precision_context(self.precision, self.device):
                    z = track_log_odds(self.model, tiles, self.views, memory_format=fmt)
                probs.append(torch.sigmoid(z - self.shift).cpu().numpy())  # Eq. 26 shift
        return np.concatenate(probs), np.asarray(weights, dtype=np.float64)

    def predict(self, planes: Sequence[np.ndarray] | np.ndarray) -> float:
        """Probability that the exposure made of ``planes`` (HDUs, cube planes) has tracking errors.

        The mean tile probability over all planes, tiles weighted by their valid pixels.
        NaN if no valid pixel.
        """
        if isinstance(planes, np.ndarray) and planes.ndim == 2:
            planes = [planes]
        ps, ws = [], []
        for plane in planes:
            p, w = self.tile_probabilities(plane)
            ps.append(p)
            ws.append(w)
        p = np.concatenate(ps) if ps else np.zeros(0)
        w = np.concatenate(ws) if ws else np.zeros(0)
        if w.sum() <= 0:
            return float("nan")
        return float(np.sum(p * w) / np.sum(w))


def megapixels(shape: Sequence[int]) -> float:
    """Pixels of an array shape, in millions."""
    return math.prod(shape) / 1e6
