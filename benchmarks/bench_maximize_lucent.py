"""The lucent side of bench_maximize.py: one class image per class with torch-lucent, as a user would script it.

Loads the model (the same loader and bundled weights cnnviz uses, so both jobs pay the same load), runs
``lucent.optvis.render.render_vis`` on ONE batch (image ``i`` maximizes class ``classes[i]``'s logit) with
lucent's defaults (FFT + decorrelated colour, ``standard_transforms``, Adam lr 0.05), and writes the images
after each step count in ``--thresholds`` to an ``.npz`` (``step<K>``: ``(N, H, W, 3) uint8``).

    .venv/bin/python benchmarks/bench_maximize_lucent.py --classes 1,281,948 --steps 128 --out /tmp/l.npz

``--size S``: a canvas of S px that the model sees at S px (``fixed_image_size``); without it lucent
upsamples anything under 224 px to 224 before the model.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def last_linear(model: torch.nn.Module) -> str:
    """lucent's name (dots -> underscores) of the model's last ``nn.Linear``: the logits."""
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if not names:
        raise SystemExit("the model has no nn.Linear layer to read the logits from")
    return names[-1].replace(".", "_")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--classes", required=True, help="comma-separated class indices")
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--thresholds", default="", help="extra step counts to keep, e.g. 64")
    ap.add_argument("--size", type=int, default=None, help="canvas side, also the side the model sees")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True, help=".npz path")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from lucent.optvis import objectives, param, render, transform

    from cnnviz.models import load_model

    model, info = load_model(a.model)
    model.eval()
    classes = [int(c) for c in a.classes.split(",")]
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    layer = last_linear(model)
    obj = objectives.channel(layer, classes[0], batch=0)
    for i, c in enumerate(classes[1:], 1):
        obj = obj + objectives.channel(layer, c, batch=i)
    c, h, _ = info.input_size
    size = a.size or h
    # lucent normalizes with ImageNet's mean/std unless told otherwise; give it the model's own
    norm = [transform.normalize()] if tuple(info.mean) == (0.485, 0.456, 0.406) else [
        lambda x: (x - torch.tensor(info.mean).view(1, -1, 1, 1)) / torch.tensor(info.std).view(1, -1, 1, 1)]
    thresholds = sorted({a.steps, *(int(t) for t in a.thresholds.split(",") if t)})
    out = render.render_vis(model, obj, lambda: param.image(size, batch=len(classes), channels=c, decorrelate=c == 3),
                            transforms=transform.standard_transforms + norm, preprocess=False, thresholds=thresholds,
                            show_image=False, progress=False, fixed_image_size=size)
    arrays = {f"step{t}": (np.clip(o, 0, 1) * 255 + 0.5).astype(np.uint8) for t, o in zip(thresholds, out)}
    np.savez(a.out, classes=np.array(classes), **arrays)


if __name__ == "__main__":
    main()
