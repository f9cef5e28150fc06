"""``maxitrack``: probability that FITS exposures are affected by tracking errors.

Examples
--------
    maxitrack image.fits                  # appends "image.fits 0.0123" to ./maxitrack.out
    maxitrack mosaic.fits.fz --frac 0.25  # a random quarter of the mosaic's HDUs
    maxitrack night/ -o results/          # every FITS file of a directory -> results/maxitrack.out

Options ``--net_dir --prior --frac --batch_size -v`` have the published tool's names and meanings.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from maximask.cli._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, configure_logging, positive_int

__all__ = ["main", "build_parser"]

logger = logging.getLogger("maximask.cli")
OUT_NAME = "maxitrack.out"


def _frac(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        msg = f"number expected, got {value!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not (0.0 < f <= 1.0):
        msg = f"must lie in (0, 1], got {value}"
        raise argparse.ArgumentTypeError(msg)
    return f


def _prior(value: str) -> float | None:
    if value.strip().lower() in ("none", "no", "off"):
        return None
    try:
        f = float(value)
    except ValueError:
        msg = f"number expected, got {value!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not (0.0 < f < 1.0):
        msg = f"must lie strictly between 0 and 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return f


def build_parser() -> argparse.ArgumentParser:
    from maximask.inference import PRECISIONS, VIEWS

    p = argparse.ArgumentParser(
        prog="maxitrack",
        description="MaxiTrack: probability that exposures are affected by tracking errors (Paillassa et al. 2020).",
        epilog=f"Appends 'name probability' lines to {OUT_NAME} (current directory or --output-dir) and prints them.",
    )
    p.add_argument("im_path", help="FITS file (.fits, .fz, .gz), file.fits[N], a directory or a .list file")
    p.add_argument("--net_dir", help="model directory, card (.json) or weights (.safetensors); default: installed model")
    p.add_argument("--prior", type=_prior, default=0.05,
                   help="observation prior of tracking errors (Eq. 26), default 0.05; 'none': no update")
    p.add_argument("--frac", type=_frac, default=1.0, help="fraction of the image HDUs used (random), default 1")
    p.add_argument("--seed", type=int, default=0, help="random seed of --frac (default 0)")
    p.add_argument("--batch_size", type=positive_int, default=16, help="tiles per forward pass (default 16)")
    p.add_argument("--views", type=int, choices=list(VIEWS),
                   help="orientations each tile is seen in, log-odds averaged (2: + a quarter turn, 4: the "
                   "quarter turns, 8: also mirrored); N times slower, more accurate; default: the model's (1)")
    p.add_argument("-o", "--output-dir", dest="output_dir", help=f"directory of {OUT_NAME} (default: current)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's choice)")
    p.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                   help="network arithmetic: fp32 (default) or bf16 autocast (the probability changes by "
                   "~0.01 or less; faster only on CPUs with AVX512-BF16/AMX or on GPUs)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("-v", "--verbose", action="store_true", help="detailed log and tracebacks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    from maximask.allocator import keep_freed_memory

    keep_freed_memory()  # reuse freed tile buffers instead of faulting in fresh pages for every tile

    import numpy as np

    from maximask import io as mio
    from maximask.api import load_maxitrack, track_file
    from maximask.inference import DeviceError, TrackPredictor, configure_threads
    from maximask.modelfile import ModelFileError

    try:
        configure_threads(args.threads)
        specs = list(mio.iter_inputs(mio.parse_im_path(args.im_path)))
        lm = load_maxitrack(args.net_dir, device=args.device)
        predictor = TrackPredictor(lm.model, lm.card, args.prior, batch_size=args.batch_size,
                                   precision=args.precision, views=args.views)
        out_dir = Path(args.output_dir) if args.output_dir else Path.cwd()
        out_dir.mkdir(parents=True, exist_ok=True)
    except (mio.InputError, ModelFileError, DeviceError, ValueError, OSError) as exc:
        if args.verbose:
            logger.exception("setup failed")
        print(f"maxitrack: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    rng = np.random.default_rng(args.seed)
    n_bad = n_crash = 0
    out_file = out_dir / OUT_NAME
    try:
        from tqdm import tqdm

        iterator = tqdm(specs, desc="files", unit="file", leave=False, disable=True if args.quiet else None)
        for spec in iterator:
            try:
                p = track_file(spec, predictor, frac=args.frac, rng=rng)
            except mio.InputError as exc:
                n_bad += 1
                if args.verbose:
                    logger.exception("input error")
                print(f"maxitrack: error: {exc}", file=sys.stderr)
                continue
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop a directory run
                n_crash += 1
                if args.verbose:
                    logger.exception("processing failed")
                print(f"maxitrack: error: {spec}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
                continue
            line = f"{spec} {p:.4f}"
            with open(out_file, "a") as fh:
                fh.write(line + "\n")
            if not args.quiet:
                print(line)
    except KeyboardInterrupt:
        print("maxitrack: interrupted", file=sys.stderr)
        return 130
    n_fail = n_bad + n_crash
    if len(specs) > 1 and n_fail:
        print(f"maxitrack: {n_fail} of {len(specs)} inputs failed", file=sys.stderr)
    if n_crash:
        return EXIT_FAILED
    return EXIT_USAGE if n_bad else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
