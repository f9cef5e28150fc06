"""FITS input and output of the command-line tools.

Inputs
------
``im_path`` may be a FITS file (``.fits``, ``.fit``, ``.fts``, optionally
``.fz`` / ``.gz``), one HDU of it (``file.fits[N]`` by index or
``file.fits[EXTNAME]``), a directory (its FITS files, not recursive, minus
the ``*.mask.fits`` / ``*.maskN.fits`` outputs of this tool), or a ``.list``
text file with one such path per line (``#`` comments allowed; relative paths
are taken from the current directory, else from the list's directory).

Every image HDU with at least 1x1 pixels is processed, whatever its size;
3-D cubes plane by plane. Other HDUs (tables, empty primaries, 1-D or 4-D
data) are copied, so the output mirrors the input's HDU layout.

Outputs
-------
``NAME.mask.fits`` for a whole file, ``NAME.maskN.fits`` for ``NAME.fits[N]``
(``.fz`` / ``.gz`` dropped), beside the input or in an output directory.
Each output image HDU keeps the input header's non-structural cards (WCS,
EXTNAME, dates...) and gains provenance cards (see :func:`provenance_cards`).
Files are written one HDU at a time into a temporary file in the destination
directory, renamed into place at the end; an existing output is only replaced
when asked.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import logging
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from astropy.io import fits

from maximask.classes import BIT_CODES, CLASS_NAMES

__all__ = [
    "InputError",
    "InputSpec",
    "FITS_SUFFIXES",
    "parse_im_path",
    "output_path",
    "open_input",
    "HduTask",
    "plan_hdus",
    "image_header",
    "provenance_cards",
    "FitsWriter",
    "release_data",
    "read_image",
    "is_output_name",
    "iter_inputs",
]

logger = logging.getLogger(__name__)

FITS_SUFFIXES = (".fits", ".fit", ".fts")
_COMPRESSION_SUFFIXES = (".fz", ".gz")
_OUTPUT_RE = re.compile(r"\.mask[^.]*\.fits(\.fz|\.gz)?$", re.IGNORECASE)
_HDU_RE = re.compile(r"^(?P<path>.+)\[(?P<hdu>[^\[\]]+)\]$")

#: Header cards never copied from the input (structure, scaling, checksums, compression).
_STRUCTURAL = {
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "GROUPS",
    "BSCALE", "BZERO", "BLANK", "BUNIT", "DATAMIN", "DATAMAX", "CHECKSUM", "DATASUM",
    "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZTILE", "ZCMPTYPE", "ZQUANTIZ", "ZDITHER0",
    "ZSIMPLE", "ZTENSION", "ZEXTEND", "ZPCOUNT", "ZGCOUNT", "ZHECKSUM", "ZDATASUM",
    "ZBLANK", "ZSCALE", "ZZERO", "ZBLOCKED", "THEAP", "TFIELDS", "ZNAME", "ZVAL",
}
_STRUCTURAL_RE = re.compile(r"^(NAXIS\d+|ZNAXIS\d+|ZTILE\d+|ZNAME\d+|ZVAL\d+|TTYPE\d+|TFORM\d+)$")
#: WCS keywords indexed by axis (for moving a cube's 3rd axis to the 4th).
_AXIS_KEYS = ("CTYPE", "CRVAL", "CRPIX", "CDELT", "CUNIT", "CROTA", "CNAME", "CRDER", "CSYER")


class InputError(Exception):
    """An input path, file or HDU cannot be used (one-line message naming it)."""


@dataclass(frozen=True)
class InputSpec:
    """One file to process.

    Attributes
    ----------
    path : Path
        The FITS file.
    hdu : int, str or None
        The one HDU asked for (``file.fits[N]``), or None for all.
    label : str
        The input as the user wrote it (used in messages and ``maxitrack.out``).
    """

    path: Path
    hdu: int | str | None = None
    label: str = ""

    def __str__(self) -> str:
        return self.label or (f"{self.path}[{self.hdu}]" if self.hdu is not None else str(self.path))


def _split_hdu(text: str) -> tuple[str, int | str | None]:
    m = _HDU_RE.match(text.strip())
    if not m:
        return text.strip(), None
    hdu = m.group("hdu").strip()
    return m.group("path"), int(hdu) if re.fullmatch(r"\d+", hdu) else hdu.upper()


def _is_fits_name(name: str) -> bool:
    low = name.lower()
    for c in ("",) + _COMPRESSION_SUFFIXES:
        for s in FITS_SUFFIXES:
            if low.endswith(s + c):
                return True
    return False


def is_output_name(name: str) -> bool:
    """True for names this tool writes (``*.mask.fits``, ``*.mask3.fits``, ...)."""
    return bool(_OUTPUT_RE.search(name))


def parse_im_path(im_path: str | os.PathLike) -> list[InputSpec]:
    """Expand ``im_path`` into the files to process.

    Raises
    ------
    InputError
        ``im_path`` does not exist, or a directory/list holds no FITS file.
    """
    text = str(im_path)
    path_text, hdu = _split_hdu(text)
    p = Path(path_text)
    if hdu is not None:
        if not p.is_file():
            msg = f"{text}: no such file"
            raise InputError(msg)
        return [InputSpec(p, hdu, text)]
    if p.is_dir():
        specs = [
            InputSpec(f, None, str(f))
            for f in sorted(p.iterdir())
            if f.is_file() and _is_fits_name(f.name) and not is_output_name(f.name)
        ]
        if not specs:
            msg = f"{p}: no FITS file in this directory"
            raise InputError(msg)
        return specs
    if not p.exists():
        msg = f"{text}: no such file or directory"
        raise InputError(msg)
    if p.suffix.lower() == ".list":
        try:
            lines = p.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"{p}: unreadable list file ({exc.__class__.__name__})"
            raise InputError(msg) from None
        specs = []
        for raw in lines:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            ptext, h = _split_hdu(line)
            f = Path(ptext)
            if not f.is_absolute() and not f.exists() and (p.parent / f).exists():
                f = p.parent / f
            specs.append(InputSpec(f, h, line))
        if not specs:
            msg = f"{p}: the list holds no file"
            raise InputError(msg)
        return specs
    return [InputSpec(p, None, text)]


def output_path(spec: InputSpec, output_dir: str | os.PathLike | None = None, *, hdu_index: int | None = None) -> Path:
    """``NAME.mask.fits`` (or ``NAME.maskN.fits`` for one HDU) for an input.

    Parameters
    ----------
    spec : InputSpec
    output_dir : path-like, optional
        Destination directory (default: beside the input).
    hdu_index : int, optional
        Index of the single HDU processed (default: ``spec.hdu``).
    """
    name = spec.path.name
    for c in _COMPRESSION_SUFFIXES:
        if name.lower().endswith(c):
            name = name[: -len(c)]
    stem = name
    for s in FITS_SUFFIXES:
        if stem.lower().endswith(s):
            stem = stem[: -len(s)]
            break
    tag = ""
    if spec.hdu is not None:
        tag = str(hdu_index if hdu_index is not None else spec.hdu)
        tag = re.sub(r"[^A-Za-z0-9_-]", "_", tag)
    out_name = f"{stem}.mask{tag}.fits"
    directory = Path(output_dir) if output_dir is not None else spec.path.parent
    return directory / out_name


def _spool_gzip(spec: InputSpec) -> Path:
    """Decompress a gzipped input into a temporary file, by 16 MB chunks.

    astropy reads a gzipped FITS file whole into memory when its data are
    accessed; from a plain temporary file, row sections (``hdu.section``) work
    and memory stays bounded whatever the image size. The file is made in the
    system's temporary directory (``TMPDIR``); :func:`open_input` unlinks it as
    soon as it is open, so it disappears when the HDU list is closed.

    Returns
    -------
    Path of the decompressed file.

    Raises
    ------
    InputError
        Truncated or corrupt gzip stream (nothing is left behind).
    """
    fd, name = tempfile.mkstemp(prefix=".maximask-gunzip-", suffix=".fits")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as dst, gzip.open(spec.path, "rb") as src:
            shutil.copyfileobj(src, dst, 16 * 2**20)
    except EOFError:
        tmp.unlink(missing_ok=True)
        msg = f"{spec}: truncated gzip file"
        raise InputError(msg) from None
    except OSError as exc:  # gzip.BadGzipFile included
        tmp.unlink(missing_ok=True)
        text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        msg = f"{spec}: corrupt gzip file ({text})"
        raise InputError(msg) from None
    return tmp


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def open_input(spec: InputSpec) -> fits.HDUList:
    """Open and check a FITS input (all headers read; data stay on disk).

    A gzipped file is first decompressed into a temporary file (see
    :func:`_spool_gzip`), so that its images can be read by rows too.

    Raises
    ------
    InputError
        Missing file, not FITS, truncated, no image HDU, empty image, bad HDU selector.
    """
    p = spec.path
    if not p.exists():
        msg = f"{spec}: no such file"
        raise InputError(msg)
    if not p.is_file():
        msg = f"{spec}: not a file"
        raise InputError(msg)
    if p.stat().st_size == 0:
        msg = f"{spec}: empty file, not FITS"
        raise InputError(msg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = _spool_gzip(spec) if _is_gzip(p) else p
        try:
            hdul = fits.open(source, memmap=False, lazy_load_hdus=False)
        except (OSError, ValueError, TypeError, EOFError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            if "SIMPLE" in text or "corrupt" in text.lower() or "empty" in text.lower() or "not a gzip" in text.lower():
                msg = f"{spec}: not a FITS file ({text})"
            else:
                msg = f"{spec}: unreadable FITS file ({text})"
            raise InputError(msg) from None
        finally:
            if source is not p:  # open (or failed): the data stay reachable through the open handle only
                try:
                    source.unlink()
                except OSError:  # a platform that cannot unlink open files: left in the temporary directory
                    logger.debug("could not remove %s", source)
    for w in caught:
        text = str(w.message)
        if "truncated" in text.lower() or "smaller than the expected" in text.lower():
            hdul.close()
            msg = f"{spec}: truncated FITS file ({text.splitlines()[0]})"
            raise InputError(msg)
    try:
        tasks = plan_hdus(hdul, spec)
    except InputError:
        hdul.close()
        raise
    if not any(t.process for t in tasks):
        hdul.close()
        shapes = [t.shape for t in tasks if t.is_image]
        if any(s is not None and 0 in s for s in shapes):
            msg = f"{spec}: empty image (an axis of length 0)"
        else:
            msg = f"{spec}: no image HDU (nothing with 2 or 3 image axes)"
        raise InputError(msg)
    return hdul


@dataclass
class HduTask:
    """What to do with one input HDU.

    Attributes
    ----------
    index : int
        HDU index in the input file.
    process : bool
        True for an image (2-D, or 3-D cube) to run the network on; False to copy.
    shape : tuple or None
        Data shape (numpy order).
    is_image : bool
        Whether the HDU is an image HDU (possibly without data).
    extname : str
    """

    index: int
    process: bool
    shape: tuple | None
    is_image: bool
    extname: str = ""


def _image_shape(hdu) -> tuple | None:
    hdr = hdu.header
    naxis = int(hdr.get("NAXIS", 0))
    if naxis == 0:
        return None
    return tuple(int(hdr.get(f"NAXIS{k}", 0)) for k in range(naxis, 0, -1))


def plan_hdus(hdul: fits.HDUList, spec: InputSpec) -> list[HduTask]:
    """Decide, HDU by HDU, what to process and what to copy (headers only are read)."""
    indices = range(len(hdul))
    if spec.hdu is not None:
        if isinstance(spec.hdu, int):
            if spec.hdu >= len(hdul):
                msg = f"{spec}: HDU {spec.hdu} does not exist (the file has {len(hdul)})"
                raise InputError(msg)
            indices = [spec.hdu]
        else:
            try:
                indices = [hdul.index_of(spec.hdu)]
            except KeyError:
                msg = f"{spec}: no HDU named {spec.hdu}"
                raise InputError(msg) from None
    tasks = []
    for i in indices:
        hdu = hdul[i]
        is_image = isinstance(hdu, fits.CompImageHDU) or (
            bool(getattr(hdu, "is_image", False)) and not isinstance(hdu, (fits.BinTableHDU, fits.TableHDU))
        )
        shape = _image_shape(hdu) if is_image else None
        process = bool(is_image and shape is not None and len(shape) in (2, 3) and all(s > 0 for s in shape))
        tasks.append(HduTask(i, process, shape, is_image, str(hdu.header.get("EXTNAME", hdu.name or ""))))
    if spec.hdu is not None and not tasks[0].process:
        t = tasks[0]
        if t.shape is not None and 0 in t.shape:
            what = "an empty image"
        elif t.shape is None:
            what = "no image data"
        else:
            what = f"data of shape {t.shape}, not a 2-D image or 3-D cube"
        msg = f"{spec}: HDU {t.index} holds {what}"
        raise InputError(msg)
    return tasks


def release_data(hdu) -> None:
    """Drop an input HDU's cached data so that only one HDU is held at a time."""
    try:
        del hdu.data
    except Exception:  # noqa: BLE001 - not a lazy attribute on this HDU type/astropy version
        pass


def read_image(hdu, spec: InputSpec) -> np.ndarray:
    """The data of an image HDU as a float32 array (scaled, unsigned handled).

    Raises
    ------
    InputError
        The data cannot be read (truncated or corrupt).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = hdu.data
            if data is None:
                msg = f"{spec}: HDU {hdu.name} holds no data"
                raise InputError(msg)
            return np.asarray(data, dtype=np.float32)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - astropy/numpy raise many types on bad data
        text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        msg = f"{spec}: cannot read the data of HDU {hdu.name or ''} ({text}); truncated or corrupt file?"
        raise InputError(msg) from None


def image_header(in_header: fits.Header, *, cube: bool = False, planes_axis: bool = True) -> fits.Header:
    """The input header's non-structural cards, for an output image.

    Parameters
    ----------
    in_header : Header
        Input image header.
    cube : bool
        The input is a 3-D cube and the output gets a class axis before it
        (output NAXIS4 = input NAXIS3): axis-3 WCS keywords move to axis 4.
    planes_axis : bool
        The output has a class-plane axis.
    """
    out = in_header.copy(strip=False)
    for key in {k for k in out.keys() if k in _STRUCTURAL or _STRUCTURAL_RE.match(k or "")}:
        del out[key]
    if cube and planes_axis:
        _move_axis(out, 3, 4)
    return out


def _move_axis(header: fits.Header, src: int, dst: int) -> None:
    renames = []
    for key in list(header.keys()):
        for base in _AXIS_KEYS:
            m = re.fullmatch(rf"{base}{src}([A-Z]?)", key)
            if m:
                renames.append((key, f"{base}{dst}{m.group(1)}"))
        m = re.fullmatch(r"(PC|CD|PV|PS)(\d+)_(\d+)([A-Z]?)", key)
        if m and (int(m.group(2)) == src or (m.group(1) in ("PC", "CD") and int(m.group(3)) == src)):
            i = dst if int(m.group(2)) == src else int(m.group(2))
            j = int(m.group(3))
            if m.group(1) in ("PC", "CD") and j == src:
                j = dst
            renames.append((key, f"{m.group(1)}{i}_{j}{m.group(4)}"))
    for old, new in renames:
        if len(new) <= 8:
            header.rename_keyword(old, new, force=True)
    if "WCSAXES" in header and int(header["WCSAXES"]) >= src:
        header["WCSAXES"] = max(int(header["WCSAXES"]), dst)


def provenance_cards(
    header: fits.Header,
    *,
    output_kind: str,
    class_indices,
    priors=None,
    training_priors: dict | None = None,
    thresholds=None,
    dilate: dict | None = None,
    model: dict | None = None,
    n_invalid: int | None = None,
    extra: dict | None = None,
) -> fits.Header:
    """Add MaxiMask provenance cards to ``header`` (in place; also returned).

    Cards: ``MM_VERS`` software version, ``MM_MODEL`` model file, ``MM_MHASH``
    weights checksum (first 16 hex digits of SHA-256), ``MM_ARCH`` architecture,
    ``MM_UTC`` processing date, ``MM_TYPE`` (PROBA, MASKS or FLAGS), ``PRIORS`` /
    ``THRESH`` / ``SMASK`` (Yes/No, as the published tool), ``MM_NBAD``
    non-finite input pixels and ``MM_BADV`` how they are marked; per output
    plane ``CLASSn`` (n from 1) the class; per class ``<C>_DIM`` (0-based
    plane), ``<C>_PR`` prior, ``<C>_TPR`` training prior, ``<C>_TH``
    threshold, ``<C>_SM`` bit code, ``<C>_DIL`` dilation radius.
    """
    from maximask import __version__

    model = model or {}
    header["MM_VERS"] = (__version__, "maximask software version")
    if model.get("name"):
        header["MM_MODEL"] = (str(model["name"])[:68], "model file")
    if model.get("sha256"):
        header["MM_MHASH"] = (str(model["sha256"])[:16], "weights SHA-256 (start)")
    if model.get("arch"):
        header["MM_ARCH"] = (str(model["arch"])[:68], "network architecture")
    header["MM_UTC"] = (_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "UTC processing date")
    header["MM_TYPE"] = (output_kind.upper(), "PROBA, MASKS (0/1) or FLAGS (bit codes)")
    header["PRIORS"] = ("Yes" if priors is not None else "No", "prior update (Eq. 26) applied")
    header["THRESH"] = ("Yes" if thresholds is not None else "No", "thresholding applied")
    header["SMASK"] = ("Yes" if output_kind == "flags" else "No", "single bit-coded mask")
    if n_invalid is not None:
        header["MM_NBAD"] = (int(n_invalid), "non-finite input pixels")
    badv = {"proba": "NaN", "masks": "255", "flags": "bit 8192"}[output_kind]
    header["MM_BADV"] = (badv, "value of non-finite input pixels")
    names = [CLASS_NAMES[int(i)] for i in class_indices]
    if output_kind != "flags":
        for k, n in enumerate(names, 1):
            header[f"CLASS{k}"] = (n, f"class of plane {k}")
    for k, (ci, n) in enumerate(zip(class_indices, names)):
        ci = int(ci)
        if output_kind != "flags":
            header[f"{n}_DIM"] = (k, f"{n} plane (0-based)")
        if priors is not None:
            header[f"{n}_PR"] = (float(priors[ci]), f"{n} prior")
        if training_priors and n in training_priors:
            header[f"{n}_TPR"] = (float(training_priors[n]), f"{n} training prior")
        if thresholds is not None:
            header[f"{n}_TH"] = (float(thresholds[ci]), f"{n} threshold")
        if output_kind == "flags":
            header[f"{n}_SM"] = (BIT_CODES[n], f"{n} binary power value")
        if dilate and dilate.get(n):
            header[f"{n}_DIL"] = (int(dilate[n]), f"{n} growth radius (pixels)")
    for key, value in (extra or {}).items():
        header[key] = value
    return header


class FitsWriter:
    """Write an output FITS file HDU by HDU, atomically.

    Data go to a temporary file beside the destination, renamed into place by
    :meth:`commit`; on any error (or without commit) the temporary file is removed.

    Parameters
    ----------
    path : path-like
        Final file name.
    overwrite : bool
        Replace an existing file.
    compress : bool
        Write tile-compressed image HDUs (lossless: RICE for integers,
        GZIP_2 without quantisation for float32). As with fpack, a primary
        image goes into extension 1 behind an empty primary HDU.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False, compress: bool = False):
        self.path = Path(path)
        self.overwrite = overwrite
        self.compress = compress
        if self.path.exists() and not overwrite:
            msg = f"{self.path}: output exists (use --overwrite to replace it)"
            raise InputError(msg)
        if not self.path.parent.is_dir():
            msg = f"{self.path.parent}: output directory does not exist"
            raise InputError(msg)
        self.tmp = self.path.parent / f".{self.path.name}.{os.getpid()}.tmp"
        self.n_hdus = 0
        self._done = False

    def __enter__(self):
        if self.tmp.exists():
            self.tmp.unlink()
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self._done and self.tmp.exists():
            self.tmp.unlink()
        return False

    def _append(self, hdu) -> None:
        if self.n_hdus == 0:
            fits.HDUList([hdu]).writeto(self.tmp, output_verify="silentfix")
        else:
            with fits.open(self.tmp, mode="append") as hl:
                hl.append(hdu)
                hl.flush(output_verify="silentfix")
        self.n_hdus += 1

    def write_image(self, data: np.ndarray, header: fits.Header) -> None:
        """Append an image HDU (the primary one if it is the first)."""
        header = header.copy()
        if self.compress:
            if self.n_hdus == 0:
                self._append(fits.PrimaryHDU())
            ctype = "GZIP_2" if data.dtype.kind == "f" else "RICE_1"
            qlevel = 0.0 if data.dtype.kind == "f" else 16.0
            arr = np.asarray(data)
            hdu = fits.CompImageHDU(arr, header=header, compression_type=ctype, quantize_level=qlevel)
            self._append(hdu)
            return
        self._stream(data, header)

    def _stream(self, data: np.ndarray, header: fits.Header) -> None:
        dtype = np.dtype(data.dtype)
        bitpix = {np.dtype(np.float32): -32, np.dtype(np.uint8): 8, np.dtype(np.int32): 32, np.dtype(np.int16): 16,
                  np.dtype(np.float64): -64}[dtype.newbyteorder("=")]
        hdr = header.copy()
        for key in {k for k in hdr.keys() if k in _STRUCTURAL or _STRUCTURAL_RE.match(k or "")}:
            del hdr[key]
        first = [("SIMPLE", True)] if self.n_hdus == 0 else [("XTENSION", "IMAGE")]
        first += [("BITPIX", bitpix), ("NAXIS", data.ndim)]
        first += [(f"NAXIS{k}", int(n)) for k, n in enumerate(reversed(data.shape), 1)]
        first += [("EXTEND", True)] if self.n_hdus == 0 else [("PCOUNT", 0), ("GCOUNT", 1)]
        for i, card in enumerate(first):
            hdr.insert(i, card)
        shdu = fits.StreamingHDU(str(self.tmp), hdr)
        try:
            flat = data.reshape(-1, data.shape[-1]) if data.ndim > 1 else data.reshape(1, -1)
            rows = max(1, (32 * 2**20) // max(1, flat.shape[1] * dtype.itemsize))
            from maximask.inference import release_pages

            for i in range(0, flat.shape[0], rows):
                shdu.write(np.ascontiguousarray(flat[i : i + rows]))
                release_pages(data)
        finally:
            shdu.close()
        self.n_hdus += 1

    def copy_hdu(self, hdu) -> None:
        """Append an input HDU unchanged (an empty primary if it comes first and is not one)."""
        if self.n_hdus == 0:
            if isinstance(hdu, fits.PrimaryHDU):
                self._append(fits.PrimaryHDU(data=hdu.data, header=hdu.header.copy()))
                return
            self._append(fits.PrimaryHDU())
        if isinstance(hdu, fits.PrimaryHDU):
            new = fits.ImageHDU(data=hdu.data, header=image_header(hdu.header))
        elif isinstance(hdu, fits.CompImageHDU):
            new = fits.CompImageHDU(data=hdu.data, header=hdu.header.copy())
        else:
            new = hdu.copy()
        self._append(new)

    def write_header_only(self, header: fits.Header) -> None:
        """Append a data-less HDU carrying ``header``'s non-structural cards."""
        hdr = image_header(header)
        self._append(fits.PrimaryHDU(header=hdr) if self.n_hdus == 0 else fits.ImageHDU(header=hdr))

    def commit(self) -> Path:
        """Rename the temporary file into place."""
        if self.n_hdus == 0:
            fits.PrimaryHDU().writeto(self.tmp)
        if self.path.exists() and not self.overwrite:
            msg = f"{self.path}: output appeared meanwhile (use --overwrite to replace it)"
            raise InputError(msg)
        os.replace(self.tmp, self.path)
        self._done = True
        return self.path


def iter_inputs(specs: list[InputSpec]) -> Iterator[InputSpec]:
    """The specs, without duplicates, in order."""
    seen = set()
    for s in specs:
        key = (str(s.path.resolve()) if s.path.exists() else str(s.path), s.hdu)
        if key in seen:
            continue
        seen.add(key)
        yield s
