"""How a MaxiMask model responds to simulated fringes of growing amplitude.

    python benchmarks/fringe_response.py [MODEL ...] [--n 6] [--size 256] [--scales 0.5 1 2.5 5] [--out FILE.json]

For each seed 1000..1000+n-1 it simulates the same scene twice with only
fringes (plus the always-present saturation): once with the fringe pattern
at amplitude factor ``scale`` (``inject_fringes(scale=...)``; the training
sets draw it log-uniformly in ``maximask.simulate.fringes.SCALE_RANGE``) and once without fringes. On the
pixels of the FR truth it reports the mean raw probability (no prior update)
of FR, NEB and BG in both images: a model that sees fringes raises FR there
and lowers BG; one that does not gives the same numbers with and without.
MODEL defaults to the shipped model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from maximask import api
from maximask.classes import CLASS_NAMES
from maximask.simulate.pipeline import simulate_scene

CLASSES = ("FR", "NEB", "BG")


def fringe_response(model, *, n: int, size: int, scales) -> dict:
    idx = {c: CLASS_NAMES.index(c) for c in CLASSES}
    fr = idx["FR"]
    out = {}
    for scale in scales:
        with_f = {c: [] for c in CLASSES}
        without = {c: [] for c in CLASSES}
        for s in range(n):
            a = simulate_scene((size, size), rng=np.random.default_rng(1000 + s), contaminants=["FR"],
                               options={"FR": {"scale": float(scale)}})
            b = simulate_scene((size, size), rng=np.random.default_rng(1000 + s), contaminants=["FR"],
                               probabilities={"FR": 0.0})
            truth = a.scene.truth[fr]
            pa = api.predict_probabilities(a.compressed, model, priors=None)
            pb = api.predict_probabilities(b.compressed, model, priors=None)
            for c, i in idx.items():
                with_f[c].append(float(pa[i][truth].mean()))
                without[c].append(float(pb[i][truth].mean()))
        out[str(scale)] = {c: {"with_fringes": float(np.mean(with_f[c])), "without": float(np.mean(without[c]))}
                           for c in CLASSES}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=[None])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 2.5, 5.0])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    report = {}
    for path in args.models:
        model = api.load_maximask(path)
        res = fringe_response(model, n=args.n, size=args.size, scales=args.scales)
        name = str(path or "shipped")
        report[name] = res
        print(name)
        print("scale  " + "  ".join(f"{c + ' with/without':>20s}" for c in CLASSES))
        for scale, r in res.items():
            print(f"{float(scale):5.1f}  " + "  ".join(f"{r[c]['with_fringes']:9.3f} / {r[c]['without']:7.3f}"
                                                    for c in CLASSES))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
