"""MaxiTrack AUC per kind and length of the simulated tracking error.

    python benchmarks/maxitrack_smear_length.py TEST_DIR MODEL [MODEL ...]

TEST_DIR holds ``maximask-sim maxitrack`` shards of images of any size; each
image is scored as ``maximask-evaluate maxitrack`` and the ``maxitrack`` tool
score it (:func:`maximask.evaluate.report.track_image_scores`: mean probability of the network-input-size tiles, at the default
observation prior). For each group of affected images (smear length bins, in pixels, and
kinds of error) it prints the AUC of those images against all clean images of
the set, so the groups share the same negatives.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from maximask.evaluate.metrics import exact_auc
from maximask.evaluate.report import track_image_scores
from maximask.modelfile import load_model
from maximask.train.shards import list_shards

LENGTH_BINS = ((0, 3), (3, 5), (5, 10), (10, np.inf))


def _against_clean(p_pos: np.ndarray, p_neg: np.ndarray) -> float:
    labels = np.r_[np.ones(len(p_pos), bool), np.zeros(len(p_neg), bool)]
    return float(exact_auc(np.r_[p_pos, p_neg], labels))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("test_dir")
    ap.add_argument("models", nargs="+")
    args = ap.parse_args(argv)
    samples, images, labels = [], [], []
    for f in list_shards(args.test_dir):
        z = np.load(f)
        samples += json.loads(str(z["meta"]))["samples"]
        images.append(z["image"])
        labels.append(z["label"])
    images = np.concatenate(images)
    labels = np.concatenate(labels).astype(bool)
    length = np.array([(s.get("tracking") or {}).get("length", 0.0) for s in samples])
    kind = np.array([(s.get("tracking") or {}).get("kind", "-") for s in samples])
    for path in args.models:
        model, card = load_model(path, kind="maxitrack")
        p, _ = track_image_scores(model, card, images)
        neg = p[~labels]
        print(f"{path}: AUC {exact_auc(p, labels):.3f} ({labels.sum()} affected, {(~labels).sum()} clean)")
        for lo, hi in LENGTH_BINS:
            sel = labels & (length >= lo) & (length < hi)
            if sel.any():
                print(f"  length [{lo}, {hi}) px: {sel.sum():4d} images, AUC {_against_clean(p[sel], neg):.3f}")
        for k in sorted(set(kind[labels])):
            sel = labels & (kind == k)
            print(f"  kind {k:8s}: {sel.sum():4d} images, AUC {_against_clean(p[sel], neg):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
