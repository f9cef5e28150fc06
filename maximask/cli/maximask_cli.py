"""``maximask``: contaminant probability maps or masks of FITS images.

Examples
--------
    maximask image.fits                       # image.mask.fits: one uint8 plane per class
    maximask image.fits --single_mask 1       # one int32 bit-coded plane (SExtractor FLAG_IMAGE)
    maximask image.fits --proba_thresh 0      # float32 probabilities
    maximask mosaic.fits.fz[3] -o masks/      # masks/mosaic.mask3.fits
    maximask night/ --dilate CR=2,SAT=3       # every FITS file of a directory
    maximask files.list --net_dir models/     # a list of files, another model

Options ``--net_dir --config_dir --prior_modif --proba_thresh --single_mask
--batch_size -v`` have the published tool's names and meanings.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from maximask.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    configure_logging,
    nonnegative_int,
    positive_int,
    progress_factory,
    str2bool,
)

__all__ = ["main", "build_parser"]

logger = logging.getLogger("maximask.cli")


def build_parser() -> argparse.ArgumentParser:
    from maximask.inference import DEFAULT_MARGIN, DEFAULT_TILE, PRECISIONS, VIEWS

    p = argparse.ArgumentParser(
        prog="maximask",
        description="MaxiMask: contaminant probability maps and masks of FITS images (Paillassa et al. 2020).",
        epilog="Outputs NAME.mask.fits (NAME.maskN.fits for NAME.fits[N]) with the input's HDU layout.",
    )
    p.add_argument("im_path", help="FITS file (.fits, .fz, .gz), file.fits[N], a directory or a .list file")
    p.add_argument("--net_dir", help="model directory, model card (.json) or weights (.safetensors); "
                   "default: the model installed with maximask")
    p.add_argument("--config_dir", help="directory with classes.flags, classes.priors, classes.thresh "
                   "(default: all classes but BG, published priors, the model's thresholds)")
    p.add_argument("--prior_modif", type=str2bool, nargs="?", const=True, default=True, metavar="BOOL",
                   help="update probabilities to the priors of classes.priors (Eq. 26); default 1")
    p.add_argument("--proba_thresh", type=str2bool, nargs="?", const=True, default=True, metavar="BOOL",
                   help="threshold probabilities into uint8 masks; default 1 (0: float32 probabilities)")
    p.add_argument("--single_mask", type=str2bool, nargs="?", const=True, default=False, metavar="BOOL",
                   help="combine the masks into one int32 bit-coded plane; default 0")
    p.add_argument("--batch_size", type=positive_int, default=1, help="tiles per forward pass (default 1)")
    p.add_argument("-o", "--output-dir", dest="output_dir", help="write outputs here (default: beside the inputs)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--compress", action="store_true", help="write tile-compressed (lossless) HDUs")
    p.add_argument("--dilate", help="grow masks: pixels for all classes (e.g. 2) or per class (CR=2,SAT=3)")
    p.add_argument("--tile", type=positive_int, default=DEFAULT_TILE,
                   help=f"tile side in pixels, multiple of 32 (default {DEFAULT_TILE})")
    p.add_argument("--margin", type=nonnegative_int, default=None,
                   help="pixels cropped from every tile side shared with another tile (default: the model card's "
                   f"tile_margin, 96 for the shipped model, else {DEFAULT_MARGIN}; smaller is faster and "
                   "leaves larger seams, docs/performance.md)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default auto (CUDA if available)")
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's choice)")
    p.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                   help="network arithmetic: fp32 (default) or bf16 autocast (most probabilities change by "
                   "< 0.01, rare pixels by more; faster only on CPUs with AVX512-BF16/AMX or on GPUs)")
    p.add_argument("--views", type=int, choices=list(VIEWS),
                   help="test-time views: predict each tile in N orientations (2: + a quarter turn, 4: the "
                   "quarter turns, 8: also mirrored) and average; N times slower, more accurate (default: "
                   "the model's, 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, only errors")
    p.add_argument("-v", "--verbose", action="store_true", help="detailed log and tracebacks")
    return p


def _settings(args, card):
    from maximask.api import default_thresholds
    from maximask.classes import CLASS_NAMES, DEFAULT_FLAGS, DEFAULT_PRIORS
    from maximask.config_files import read_config_dir
    from maximask.posterior import PosteriorSettings, parse_dilate

    flags = [DEFAULT_FLAGS[n] for n in CLASS_NAMES]
    priors = [DEFAULT_PRIORS[n] for n in CLASS_NAMES]
    thresholds = default_thresholds(card)
    if args.config_dir:
        cfg = read_config_dir(args.config_dir)
        if cfg["flags"] is not None:
            flags = cfg["flags"]
        if cfg["priors"] is not None:
            priors = cfg["priors"]
        if cfg["thresh"] is not None:
            thresholds = cfg["thresh"]
    return PosteriorSettings(
        flags=flags,
        priors=priors if args.prior_modif else None,
        thresholds=thresholds if args.proba_thresh else None,
        single_mask=args.single_mask,
        dilate=parse_dilate(args.dilate),
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    from maximask.allocator import keep_freed_memory

    keep_freed_memory()  # reuse freed tile buffers instead of faulting in fresh pages for every tile
    if args.single_mask and not args.proba_thresh:
        parser.error("--single_mask needs --proba_thresh 1 (masks are made from thresholded probabilities)")
    if args.dilate and not args.proba_thresh:
        parser.error("--dilate needs --proba_thresh 1")

    from maximask import io as mio
    from maximask.api import load_maximask, process_file
    from maximask.config_files import ConfigFileError
    from maximask.inference import DeviceError, MaskPredictor, configure_threads
    from maximask.modelfile import ModelFileError

    t0 = time.perf_counter()
    try:
        configure_threads(args.threads)
        specs = list(mio.iter_inputs(mio.parse_im_path(args.im_path)))
        lm = load_maximask(args.net_dir, device=args.device)
        settings = _settings(args, lm.card)
        predictor = MaskPredictor(lm.model, lm.card, settings, tile=args.tile, margin=args.margin, batch_size=args.batch_size,
                                  precision=args.precision, views=args.views)
        if args.output_dir:
            from pathlib import Path

            Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    except (mio.InputError, ModelFileError, ConfigFileError, DeviceError, ValueError, OSError) as exc:
        if args.verbose:
            logger.exception("setup failed")
        print(f"maximask: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logger.info("model %s (%s), device %s, %d file(s)", lm.info["path"], lm.info["arch"],
                predictor.device, len(specs))

    make_bar = progress_factory(args.quiet)
    n_bad = n_crash = 0
    for spec in specs:
        t = time.perf_counter()
        try:
            out = process_file(spec, predictor, model_info=lm.info, output_dir=args.output_dir,
                               overwrite=args.overwrite, compress=args.compress, progress_factory=make_bar)
        except mio.InputError as exc:
            n_bad += 1
            if args.verbose:
                logger.exception("input error")
            print(f"maximask: error: {exc}", file=sys.stderr)
            continue
        except KeyboardInterrupt:
            print("maximask: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop a directory run
            n_crash += 1
            if args.verbose:
                logger.exception("processing failed")
            print(f"maximask: error: {spec}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
            continue
        if not args.quiet:
            print(f"{spec} -> {out} ({time.perf_counter() - t:.1f} s)")
    n_fail = n_bad + n_crash
    if len(specs) > 1 and n_fail:
        print(f"maximask: {n_fail} of {len(specs)} inputs failed", file=sys.stderr)
    logger.info("all done in %.1f s", time.perf_counter() - t0)
    if n_crash:
        return EXIT_FAILED
    return EXIT_USAGE if n_bad else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
