"""Class images of small-input checkpoints (28-64 px): which loop settings give images OTHER models recognize.

Each ``--maker`` checkpoint makes one image per class (all classes in one batch) for every ``--seeds`` seed and
every ``--variant``; every image is classified by the maker itself and by each ``--judge`` that is not the
maker (a hit: the class is the judge's top 1). Reported per variant: hits by the makers themselves and by the
other models, pooled over makers and seeds, with Wilson 95% intervals. Seeds of one maker often converge to
similar images, so the makers and the classes, not the seeds, are the independent samples.

Variants are ``NAME=JSON`` keyword arguments of ``cnnviz.explain.maximize.maximize`` (``"views"`` becomes a
``Views``; ``"mode"`` is the class objective's, ``"steps"`` overrides ``--steps``; ``"base": "colour"`` is the
maker's recorded mean colour, a number a grey level, ``"size": "input"`` the model's input side). The defaults
retrace the small-input changes one at a time - the 28/32-px canvas from grey; the canvas twice the input
and the data's mean colour (the earlier default); the data's mean image; the BatchNorm prior (today's
default) - plus two alternatives: the prior pooled over the batch, and lucent's transform magnitudes at
their pixel sizes (``strength`` 4).

``--data`` gives makers whose checkpoint predates them the mean colour and mean image ``cnnviz train`` now
records (from 512 evenly spaced training images of the whole split, where the trainer takes its
``--limit`` subset), so the default variant is what a user with a new checkpoint gets:

    python benchmarks/bench_maximize_small.py --maker a/ckpt.pt --maker b/ckpt.pt --judge a/ckpt.pt \\
        --judge b/ckpt.pt --judge c/ckpt.pt --seeds 0,1,2 --steps 96 --data fashion-mnist
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_maximize import wilson  # noqa: E402  (the same interval as the ImageNet benchmark)

VARIANTS = {
    "input canvas, grey start": {"size": "input", "base": 0.5, "bn_prior": 0.0},
    "canvas x2, data colour": {"base": "colour", "bn_prior": 0.0},
    "+ data mean image": {"bn_prior": 0.0},
    "+ BN prior (default)": {},
    "BN prior pooled over the batch": {"bn_groups": "batch"},
    "lucent transforms x4": {"views": {"kind": "lucent", "n": 1, "strength": 4.0}},
}


def top1_hits(model, info, images: np.ndarray, classes: list[int]) -> np.ndarray:
    """``(N,)`` 1.0 where ``model``'s top class for image ``i`` is ``classes[i]``."""
    import torch

    from cnnviz.images import preprocess

    with torch.no_grad():
        z = torch.cat([model(torch.cat([preprocess(im, info) for im in images[i:i + 25]])) for i in range(0, len(images), 25)])
    return (z.argmax(1) == torch.tensor(classes)).float().numpy()


def fill_data_stats(info, spec: str, data_root: str | None) -> None:
    """Give ``info`` the mean colour and mean image of ``spec``'s training split if its checkpoint lacks them."""
    from cnnviz.checkpoint import mean_image_size
    from cnnviz.data import open_split

    ds = open_split(spec, "train", data_root=data_root)
    mean_image = ds.mean_image(info.in_chans, mean_image_size(info.input_size))  # as cnnviz train records them
    if info.mean_image is None:
        info.mean_image = mean_image
    if info.pixel_mean is None:
        info.pixel_mean = tuple(float(v) for v in mean_image.mean(axis=(1, 2)))


def real_reference(makers: dict, judges: dict, spec: str, data_root: str | None, n: int = 1000) -> np.ndarray:
    """The same question on real images: of ``n`` test images a maker classifies correctly, which each other
    judge also gets right (``(hits,)`` pooled over makers and judges)."""
    from cnnviz.data import open_split

    ds = open_split(spec, "test", data_root=data_root, limit=n, seed=5)
    images, ys = np.stack([ds.array(i) for i in range(len(ds))]), list(ds.targets)
    right = {name: top1_hits(m, info, images, ys).astype(bool) for name, (m, info) in {**judges, **makers}.items()}
    return np.concatenate([right[j][right[mk]] for mk in makers for j in judges if j != mk] or [np.zeros(0)])


def kwargs_for(spec: dict, info) -> dict:
    from cnnviz.explain.fvtransforms import Views

    kw = dict(spec)
    if kw.get("size") == "input":
        kw["size"] = int(info.input_size[1])
    if kw.get("base") == "colour":
        kw["base"] = info.pixel_mean
    if isinstance(kw.get("base"), (int, float)):
        kw["base"] = (float(kw["base"]),) * info.in_chans
    if "views" in kw:
        kw["transforms"] = Views(**{k: tuple(v) if isinstance(v, list) else v for k, v in kw.pop("views").items()})
    return kw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maker", action="append", required=True, help="checkpoint that makes the images (repeatable)")
    ap.add_argument("--judge", action="append", default=[], help="checkpoint that classifies them (repeatable)")
    ap.add_argument("--variant", action="append", default=None, metavar="NAME=JSON", help="loop settings [the set above]")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--data", default=None, help="the makers' dataset: fills in the statistics old checkpoints lack")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--reference", action="store_true",
                    help="also the real-image reference: test images the maker gets right, right by the others (needs --data)")
    a = ap.parse_args()
    if a.reference and not a.data:
        ap.error("--reference needs --data")

    import torch

    from cnnviz.explain.maximize import class_objective, maximize
    from cnnviz.models import load_model

    torch.set_num_threads(a.threads)
    variants = dict(v.split("=", 1) for v in a.variant) if a.variant else None
    variants = {k: json.loads(v) for k, v in variants.items()} if variants else VARIANTS
    makers = {m: load_model(m) for m in a.maker}
    if a.data:
        for _, info in makers.values():
            fill_data_stats(info, a.data, a.data_root)
    judges = {j: makers[j] if j in makers else load_model(j) for j in a.judge}
    seeds = [int(s) for s in a.seeds.split(",")]
    results = {}
    print(f"{a.steps} steps, seeds {seeds}; makers {a.maker}; judges {a.judge}; top-1 hits (Wilson 95%)")
    for name, spec in variants.items():
        own, other, per_judge, per_maker, t0 = [], [], {}, {}, time.perf_counter()
        for mk, (model, info) in makers.items():
            classes = list(range(info.num_classes))
            kw = kwargs_for(spec, info)
            objective = class_objective(classes, kw.pop("mode", "logit"))
            steps = kw.pop("steps", a.steps)
            imgs = np.concatenate([maximize(model, info, objective, batch=len(classes), steps=steps, seed=s, **kw).images
                                   for s in seeds])
            cls = classes * len(seeds)
            own.append(top1_hits(model, info, imgs, cls))
            for jn, (jm, ji) in judges.items():
                if jn == mk:
                    continue
                h = top1_hits(jm, ji, imgs, cls)
                other.append(h)
                per_judge.setdefault(jn, []).append(h)
                per_maker.setdefault(mk, []).append(h)
        own_h, other_h = np.concatenate(own), np.concatenate(other) if other else np.zeros(0)

        def rate(h: np.ndarray) -> str:
            lo, hi = wilson(int(h.sum()), len(h))
            return f"{int(h.sum())}/{len(h)} = {h.mean():.0%} [{lo:.0%}-{hi:.0%}]" if len(h) else "-"

        print(f"{name:36s} itself {rate(own_h):24s} other models {rate(other_h):24s} ({time.perf_counter() - t0:.0f} s)")
        for jn, hs in per_judge.items():
            print(f"{'':36s}   judge {jn}: {rate(np.concatenate(hs))}")
        for mk, hs in per_maker.items():
            print(f"{'':36s}   maker {mk}: others {rate(np.concatenate(hs))}")
        results[name] = {"spec": spec, "itself": own_h.tolist(), "others": other_h.tolist(),
                         "per_judge": {jn: np.concatenate(hs).tolist() for jn, hs in per_judge.items()},
                         "per_maker": {mk: np.concatenate(hs).tolist() for mk, hs in per_maker.items()}}
    if a.reference:
        ref = real_reference(makers, judges, a.data, a.data_root)
        lo, hi = wilson(int(ref.sum()), len(ref))
        print(f"{'real test images (reference)':36s} {'':31s} other models {ref.mean():.0%} [{lo:.0%}-{hi:.0%}] of {len(ref)}")
        results["real test images (reference)"] = {"others": ref.tolist()}
    if a.json_out:
        from cnnviz.atomic import dumps_json, write_text

        write_text(a.json_out, dumps_json({"steps": a.steps, "seeds": seeds, "makers": a.maker, "judges": a.judge, "data": a.data,
                                           "variants": results}))


if __name__ == "__main__":
    main()
