"""Ensembling as a transfer idea: are class images made on two models together recognized more by a third?

For every pair of ``--maker`` checkpoints (same data, same input size and normalization), one image per class
is made on the pair (the mean of their logits) and one on each maker alone, ``--seeds`` seeds each, 96 steps
by default. Each image is judged (top 1) by the makers outside the pair and by every ``--judge``; printed: the
hit rates of the pair's images and of the single makers' images on the same judges::

    python benchmarks/bench_maximize_ensemble.py --maker a/ckpt.pt --maker b/ckpt.pt --maker c/ckpt.pt \\
        --judge d/ckpt.pt
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_maximize import wilson  # noqa: E402
from bench_maximize_small import top1_hits  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maker", action="append", required=True)
    ap.add_argument("--judge", action="append", default=[])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch
    from torch import nn

    from cnnviz.explain.maximize import class_objective, maximize
    from cnnviz.models import load_model

    class MeanLogits(nn.Module):
        def __init__(self, members: list[nn.Module]) -> None:
            super().__init__()
            self.members = nn.ModuleList(members)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([m(x) for m in self.members]).mean(0)

    torch.set_num_threads(a.threads)
    models = {p: load_model(p) for p in dict.fromkeys(a.maker + a.judge)}
    seeds = [int(s) for s in a.seeds.split(",")]
    hits: dict[str, list[np.ndarray]] = {"pair": [], "single": []}
    for x, y in itertools.combinations(a.maker, 2):
        info = models[x][1]
        classes = list(range(info.num_classes))
        judges = [j for j in a.maker if j not in (x, y)] + a.judge

        def images(model: nn.Module) -> np.ndarray:
            return np.concatenate([maximize(model, info, class_objective(classes), batch=len(classes), steps=a.steps,
                                            seed=s).images for s in seeds])

        made = {"pair": [images(MeanLogits([models[x][0], models[y][0]]).eval())],
                "single": [images(models[x][0]), images(models[y][0])]}
        for kind, sets in made.items():
            for imgs in sets:
                for j in judges:
                    hits[kind].append(top1_hits(models[j][0], models[j][1], imgs, classes * len(seeds)))
    for kind, hs in hits.items():
        h = np.concatenate(hs)
        lo, hi = wilson(int(h.sum()), len(h))
        print(f"{kind:7s} images, judged by the models outside the pair: {int(h.sum())}/{len(h)} = {h.mean():.0%} [{lo:.0%}-{hi:.0%}]")


if __name__ == "__main__":
    main()
