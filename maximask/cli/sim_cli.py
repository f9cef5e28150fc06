"""``maximask-sim``: write simulated training/test shards and a gallery.

Examples
--------
    maximask-sim maximask shards/train --n 4000 --size 128 --seed 0 --shard-size 256 --workers 2
    maximask-sim maximask shards/cr_only --n 1000 --contaminants CR --seed 7
    maximask-sim maximask shards/train --real-data /work/shared/realdata/calib
    maximask-sim cr-sampling shards/cr --n 1000 --size 128 --with-raw   # well_sampled/ + undersampled/
    maximask-sim maxitrack shards/track --n 2000 --size 256
    maximask-sim gallery gallery.png --n 8 --seed 0

The real-data directory may also be given by ``$MAXIMASK_REAL_DATA``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]

logger = logging.getLogger("maximask.simulate")


def _add_common(p: argparse.ArgumentParser, *, n_default: int, size_default: int) -> None:
    p.add_argument("out_dir", type=Path, help="output directory of the shards")
    p.add_argument("--n", type=int, default=n_default, help="number of samples (default %(default)s)")
    p.add_argument("--size", type=int, default=size_default, help="image side, pixels (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default %(default)s)")
    p.add_argument("--shard-size", type=int, default=256, help="samples per shard (default %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="processes (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maximask-sim", description="Simulate MaxiMask/MaxiTrack training data.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("maximask", help="shards of (compressed image, 14-class truth bit field)")
    _add_common(p, n_default=4000, size_default=128)
    p.add_argument("--contaminants", help="comma-separated subset, e.g. CR or CR,HP (single-contaminant sets)")
    p.add_argument("--probabilities",
                   help="presence probability per contaminant, e.g. FR=0.6,TRL=0.5 (others keep their defaults; "
                        "with --contaminants the default is 1)")
    p.add_argument("--real-data", type=Path, help="directory with the real dark / ITL cosmic-ray table")
    p.add_argument("--with-raw", action="store_true", help="also store raw ADU images, background, sigma, gain, read noise")
    p.add_argument("--overscan-edge-bands", type=_probability, default=0.0, metavar="P",
                   help="probability, per overscan strip, of a glow or roll-off band on the data next to it "
                        "(default 0: none)")

    p = sub.add_parser("cr-sampling", help="cosmic-ray-only sets, well-sampled (FWHM > 2.5 px) and undersampled (Sect. 4.1.3)")
    _add_common(p, n_default=1000, size_default=128)
    p.add_argument("--real-data", type=Path, help="directory with the real dark / ITL cosmic-ray table")

    p = sub.add_parser("maxitrack", help="shards of (compressed image, tracking-error label)")
    _add_common(p, n_default=4000, size_default=256)
    p.add_argument("--real-data", type=Path, help="directory with the real cosmic-ray data (for the local contaminants)")
    p.add_argument("--min-bright-stars", type=float, default=None,
                   help="redraw the sky until this many stars above 20 sigma are expected (default 8; "
                        "0: any sky, sparse fields included)")

    p = sub.add_parser("gallery", help="PNG grid of samples with their truth (Fig. 8 colour code)")
    p.add_argument("out_png", type=Path)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--contaminants", help="comma-separated subset")
    p.add_argument("--real-data", type=Path)
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return parser


def _progress(total: int, quiet: bool, desc: str):
    if quiet:
        return None, (lambda m: None)
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr)
    return bar, bar.update


def _contaminants(arg: str | None) -> tuple[str, ...] | None:
    if not arg:
        return None
    from maximask.simulate.pipeline import CONTAMINANT_ORDER

    names = tuple(c.strip().upper() for c in arg.split(",") if c.strip())
    unknown = [c for c in names if c not in CONTAMINANT_ORDER]
    if unknown or not names:
        msg = f"--contaminants: unknown {', '.join(unknown) or '(empty)'}; choose among {','.join(CONTAMINANT_ORDER)}"
        raise SystemExit(msg)
    return names


def _probabilities(arg: str | None) -> dict[str, float] | None:
    """Parse ``NAME=P,NAME=P`` into a dict of presence probabilities in [0, 1]."""
    if not arg:
        return None
    from maximask.simulate.pipeline import CONTAMINANT_ORDER

    out: dict[str, float] = {}
    for item in (x.strip() for x in arg.split(",") if x.strip()):
        name, sep, value = item.partition("=")
        name = name.strip().upper()
        try:
            p = float(value)
        except ValueError:
            p = float("nan")
        if not sep or name not in CONTAMINANT_ORDER or not 0.0 <= p <= 1.0:
            msg = (f"--probabilities: cannot read {item!r}; expected NAME=P with NAME among "
                   f"{','.join(CONTAMINANT_ORDER)} and P in [0, 1], e.g. FR=0.6,TRL=0.5")
            raise SystemExit(msg)
        out[name] = p
    return out or None


def _probability(arg: str) -> float:
    """A probability in [0, 1] (argparse type)."""
    try:
        value = float(arg)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        msg = f"expected a probability in [0, 1], got {arg!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _real_data(arg: Path | None) -> str | None:
    if arg is not None:
        if not arg.is_dir():
            msg = f"--real-data {arg}: no such directory"
            raise SystemExit(msg)
        return str(arg)
    env = os.environ.get("MAXIMASK_REAL_DATA")
    return env or None


def _run(out_dir: Path, job, args, desc: str) -> None:
    from maximask.simulate.dataset import generate_shards

    bar, update = _progress(args.n, args.quiet, desc)
    t0 = time.perf_counter()
    paths = generate_shards(out_dir, job, n=args.n, seed=args.seed, shard_size=args.shard_size, workers=args.workers, progress=update)
    if bar is not None:
        bar.close()
    dt = time.perf_counter() - t0
    logger.info("%d samples in %d shards under %s (%.1f s, %.1f samples/s)", args.n, len(paths), out_dir, dt, args.n / max(dt, 1e-9))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from maximask.simulate.dataset import ShardJob

    if args.command == "maximask":
        contaminants = _contaminants(args.contaminants)
        job = ShardJob(kind="maximask", shape=(args.size, args.size), contaminants=contaminants,
                       probabilities=_probabilities(args.probabilities),
                       real_data=_real_data(args.real_data), with_raw=args.with_raw,
                       overscan_edge_bands=args.overscan_edge_bands)
        _run(args.out_dir, job, args, "maximask")
    elif args.command == "cr-sampling":
        rd = _real_data(args.real_data)
        for sub, rng_ in (("well_sampled", (2.5, 8.0)), ("undersampled", (1.0, 2.5))):
            job = ShardJob(kind="maximask", shape=(args.size, args.size), contaminants=("CR",), real_data=rd,
                           with_raw=True, fwhm_range=rng_, probabilities={"SAT": 1.0})
            _run(args.out_dir / sub, job, args, sub)
    elif args.command == "maxitrack":
        job = ShardJob(kind="maxitrack", shape=(args.size, args.size), real_data=_real_data(args.real_data),
                       min_bright_stars=args.min_bright_stars)
        _run(args.out_dir, job, args, "maxitrack")
    elif args.command == "gallery":
        from maximask.simulate.gallery import write_gallery

        contaminants = _contaminants(args.contaminants)
        write_gallery(args.out_png, n=args.n, size=args.size, seed=args.seed, contaminants=contaminants,
                      real_data=_real_data(args.real_data))
        logger.info("gallery written to %s", args.out_png)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
