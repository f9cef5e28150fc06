"""Does reflect-padding a small image to more context help MaxiMask?

    python benchmarks/small_image_padding.py TEST_SHARDS [MODEL] [--pad-to 256] [--max-images 256]

Runs the model on each image of TEST_SHARDS (e.g. the 128x128 test set) as it
is, and reflect-padded to ``--pad-to`` pixels with the prediction cropped back
to the image, and prints the per-class AUC of both (4000 logit-spaced bins, the
evaluation's metric). MODEL defaults to the shipped MaxiMask.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from maximask.classes import CLASS_NAMES
from maximask.evaluate.metrics import ConfusionAccumulator
from maximask.modelfile import default_model_path, load_model
from maximask.train.shards import ShardArrays


def reflect_pad(x: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, 1, H, W) images by reflection to at least ``size`` per axis; return them and (top, left)."""
    h, w = x.shape[-2:]
    top = left = 0
    # reflection cannot exceed the current size in one go: repeat until large enough
    while x.shape[-2] < size or x.shape[-1] < size:
        need_h = min(max(size - x.shape[-2], 0), x.shape[-2] - 1)
        need_w = min(max(size - x.shape[-1], 0), x.shape[-1] - 1)
        t, l_ = need_h // 2, need_w // 2
        x = torch.nn.functional.pad(x, (l_, need_w - l_, t, need_h - t), mode="reflect")
        top, left = top + t, left + l_
    return x, (top, left)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("model", nargs="?", default=None)
    p.add_argument("--pad-to", type=int, default=256)
    p.add_argument("--max-images", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model or default_model_path("maximask"), kind="maximask")
    model.eval()
    data = ShardArrays(args.data, max_images=args.max_images)
    accs = {"as is": ConfusionAccumulator(len(CLASS_NAMES), 4000, scale="logit"),
            f"reflect-padded to {args.pad_to}": ConfusionAccumulator(len(CLASS_NAMES), 4000, scale="logit")}
    with torch.inference_mode():
        for start in range(0, len(data), 8):
            index = np.arange(start, min(start + 8, len(data)))
            image, target = data.batch(index)
            x = torch.from_numpy(image)
            truth = target.astype(bool)
            h, w = x.shape[-2:]
            plain = torch.sigmoid(model(x)).numpy()
            xp, (top, left) = reflect_pad(x, args.pad_to)
            padded = torch.sigmoid(model(xp))[..., top:top + h, left:left + w].numpy()
            for acc, probs in zip(accs.values(), (plain, padded)):
                acc.update(probs, truth)
    aucs = {name: acc.result().auc() for name, acc in accs.items()}
    names = list(aucs)
    print(f"| class | {' | '.join(names)} |")
    print("|---|" + "---|" * len(names))
    for i, c in enumerate(CLASS_NAMES):
        print(f"| {c} | " + " | ".join(f"{aucs[n][i]:.3f}" for n in names) + " |")
    print("| mean | " + " | ".join(f"{np.nanmean(aucs[n]):.3f}" for n in names) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
