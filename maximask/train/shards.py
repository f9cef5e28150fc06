"""Reading dataset shards into memory.

A shard is an ``.npz`` file ``shard_{k:05d}.npz`` written by the simulator:

``image``   float16 (N, H, W), the dynamically compressed network input
``truth``   uint16 (N, H, W), bit ``i`` set when the pixel belongs to class ``i``
            of :mod:`maximask.classes` (MaxiMask shards)
``label``   uint8 (N,), 1 for an image affected by tracking errors (MaxiTrack shards)
``seed``    int64 (N,), ``meta`` JSON string

Sets made for the comparison with LA Cosmic also hold ``raw``, ``bkg``
(float32 (N, H, W), ADU), ``sigma`` (float32 (N,), ADU) and, when known,
``gain`` (e-/ADU) and ``read_noise`` (e-) (float32 (N,)).

Shards are small, so they are read whole; images stay float16 and truths
stay bit fields in memory until a batch is built. A training set may mix
image sizes (e.g. 128, 256 and 384 px sets): :class:`ShardSets` keeps one
:class:`ShardArrays` per image shape and draws every mini-batch from one of
them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from maximask.classes import N_CLASSES

__all__ = ["ShardError", "list_shards", "load_shards", "decode_truth", "ShardArrays", "ShardSets"]


class ShardError(Exception):
    """A shard directory or file is missing or malformed."""


def list_shards(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Expand directories and files into a sorted list of shard files.

    Parameters
    ----------
    paths : path-like or iterable of path-like
        Shard files, or directories holding ``shard_*.npz`` files.

    Raises
    ------
    ShardError
        If a path does not exist or no shard is found.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(p.glob("shard_*.npz")) or sorted(p.glob("*.npz")))
        elif p.is_file():
            found.append(p)
        else:
            msg = f"{p}: no such shard file or directory"
            raise ShardError(msg)
    if not found:
        msg = f"no .npz shard found in {', '.join(map(str, paths))}"
        raise ShardError(msg)
    return found


def decode_truth(truth: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Unpack a bit-field truth into one boolean plane per class.

    Parameters
    ----------
    truth : ndarray, shape (..., H, W), unsigned integer
        Bit ``i`` set when the pixel belongs to class ``i``.

    Returns
    -------
    ndarray, shape (..., n_classes, H, W), bool
    """
    truth = np.asarray(truth)
    bits = np.arange(n_classes, dtype=truth.dtype).reshape(n_classes, 1, 1)
    return ((truth[..., None, :, :] >> bits) & 1).astype(bool)


def load_shards(
    paths: str | os.PathLike | Iterable[str | os.PathLike], *, keys: Sequence[str] = ("image", "truth")
) -> dict[str, np.ndarray]:
    """Read and concatenate arrays ``keys`` of all shards.

    Returns
    -------
    dict
        ``key -> ndarray`` concatenated along the first axis, in the dtype stored.

    Raises
    ------
    ShardError
        If a shard lacks one of ``keys`` or shapes disagree.
    """
    files = list_shards(paths)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            for k in keys:
                if k not in z:
                    msg = f"{f}: shard lacks the array {k!r} (has {', '.join(z.files)})"
                    raise ShardError(msg)
                parts[k].append(z[k])
    out = {}
    for k, arrs in parts.items():
        try:
            out[k] = np.concatenate(arrs, axis=0)
        except ValueError:
            msg = f"array {k!r} has different shapes across shards: {sorted({a.shape[1:] for a in arrs})}"
            raise ShardError(msg) from None
    return out


class ShardArrays:
    """Whole shards held in memory, indexed by image.

    Parameters
    ----------
    paths : path-like or iterable of path-like
        Shard files or directories.
    kind : {"maximask", "maxitrack"}
        Which target array to read: ``truth`` bit fields or ``label``.
    max_images : int, optional
        Keep only the first ``max_images`` images of each entry of ``paths`` (a directory or
        a file; a single path is one entry).
    """

    def __init__(self, paths, *, kind: str = "maximask", max_images: int | None = None):
        if kind not in ("maximask", "maxitrack"):
            msg = f"kind must be 'maximask' or 'maxitrack', got {kind!r}"
            raise ValueError(msg)
        self.kind = kind
        entries = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        target = "truth" if kind == "maximask" else "label"
        self.files, images, targets = [], [], []
        #: number of images kept from each entry of ``paths``, in order
        self.entry_sizes: list[int] = []
        for entry in entries:
            files = list_shards(entry)
            arrays = load_shards(files, keys=("image", target))
            self.files += files
            images.append(arrays["image"][:max_images])
            targets.append(arrays[target][:max_images])
            self.entry_sizes.append(int(images[-1].shape[0]))
        try:
            self.images = images[0] if len(images) == 1 else np.concatenate(images)
            self.targets = targets[0] if len(targets) == 1 else np.concatenate(targets)
        except ValueError:
            msg = f"shard images of different shapes: {sorted({a.shape[1:] for a in images})}"
            raise ShardError(msg) from None
        if self.images.ndim != 3:
            msg = f"shard images must be (N, H, W), got shape {self.images.shape}"
            raise ShardError(msg)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def first_of_each_entry(self, n: int | None) -> np.ndarray:
        """Indices of the first ``n`` images of each entry of ``paths`` (all images when ``n`` is None), int64."""
        starts = np.concatenate([[0], np.cumsum(self.entry_sizes)[:-1]]).astype(np.int64)
        return np.concatenate([s + np.arange(m if n is None else min(m, n), dtype=np.int64)
                               for s, m in zip(starts, self.entry_sizes)])

    @property
    def image_shape(self) -> tuple[int, int]:
        """(H, W) of the images, pixels."""
        return tuple(self.images.shape[1:])

    def batch(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images and targets of the images ``index``.

        Returns
        -------
        image : ndarray, shape (B, 1, H, W), float32
        target : ndarray, shape (B, 14, H, W) float32 (MaxiMask) or (B,) int64 (MaxiTrack)
        """
        index = np.asarray(index)
        image = self.images[index].astype(np.float32)[:, None]
        if self.kind == "maximask":
            target = decode_truth(self.targets[index]).astype(np.float32)
        else:
            target = self.targets[index].astype(np.int64)
        return image, target


def _first_image_shape(path: Path) -> tuple[int, ...]:
    with np.load(path, allow_pickle=False) as z:
        if "image" not in z:
            msg = f"{path}: shard lacks the array 'image' (has {', '.join(z.files)})"
            raise ShardError(msg)
        return tuple(z["image"].shape[1:])


class ShardSets:
    """Shards of one or several image shapes, one :class:`ShardArrays` per shape.

    Groups are ordered by the first appearance of their shape in ``paths``.

    Parameters
    ----------
    paths : path-like or iterable of path-like
        Shard files or directories; each directory (or file) holds one shape.
    kind : {"maximask", "maxitrack"}
    max_images : int, optional
        Keep only the first ``max_images`` images of each entry of ``paths`` (so every set
        contributes, also when several have one shape).
    """

    def __init__(self, paths, *, kind: str = "maximask", max_images: int | None = None):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        by_shape: dict[tuple[int, ...], list[list[Path]]] = {}
        for entry in paths:
            files = list_shards(entry)
            by_shape.setdefault(_first_image_shape(files[0]), []).append(files)
        self.kind = kind
        self.groups = [ShardArrays(entries, kind=kind, max_images=max_images) for entries in by_shape.values()]
        self.files = [f for g in self.groups for f in g.files]

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups)

    @property
    def image_shapes(self) -> list[tuple[int, int]]:
        """(H, W) of each group, pixels."""
        return [g.image_shape for g in self.groups]

    @property
    def image_shape(self) -> tuple[int, int]:
        """(H, W) of the images; only defined when all have one shape.

        Raises
        ------
        ShardError
            If the sets mix image shapes.
        """
        if len(self.groups) != 1:
            msg = f"the shards mix image shapes {self.image_shapes}; this use needs one shape"
            raise ShardError(msg)
        return self.groups[0].image_shape

    @property
    def n_pixels(self) -> int:
        """Total number of pixels of all images."""
        return int(sum(g.images.size for g in self.groups))

    def batches_per_epoch(self, batch_size: int) -> int:
        """Number of full mini-batches of one epoch (each drawn from one group)."""
        return int(sum(len(g) // batch_size for g in self.groups))

    def epoch_batches(self, seed: int, epoch: int, batch_size: int) -> list[tuple[int, np.ndarray]]:
        """The mini-batches of epoch ``epoch``, in order.

        Drawn from ``numpy.random.default_rng([seed, epoch])``: each group's
        images are shuffled and cut into full batches, then the batches of
        all groups are shuffled together (with one group, the batches are
        consecutive slices of one permutation of the images).

        Returns
        -------
        list of (group, index)
            ``index``: int array, shape (batch_size,), image numbers within ``groups[group]``.
        """
        rng = np.random.default_rng([seed, epoch])
        batches = []
        for gi, g in enumerate(self.groups):
            perm = rng.permutation(len(g))
            batches += [(gi, perm[k * batch_size:(k + 1) * batch_size]) for k in range(len(g) // batch_size)]
        if len(self.groups) > 1:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches
