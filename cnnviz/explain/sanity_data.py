"""The data-randomization test (Adebayo et al. 2018, Section 5): train the same recipe on real and on
permuted labels, then compare the maps of the two models.

A model trained on permuted labels can only memorize; an explanation that depends on the relation
between images and labels the model learned must differ between the two models. A method that draws
the same map for both (Guided Backprop, in the paper) explains the images, not the model.

``train_label_pair`` trains both runs with cnnviz's trainer (``TrainConfig.random_labels``: the
training labels permuted with the seed; evaluation labels stay true, so the random-label model's test
accuracy is at chance); ``label_randomization`` compares two models' maps and returns the same
``SanityResult`` as the cascade, with one step named ``random-labels``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnviz.explain.sanity import (DEFAULT_METHODS, MethodSanity, SanityError, SanityResult, Step, _cam_like, _explain_all,
                                   check_methods, private_copy, top1)

log = logging.getLogger(__name__)

STEP_NAME = "random-labels"


def require_random_labels() -> None:
    """``SanityError`` unless this build's trainer can permute the training labels."""
    from cnnviz.train.config import TrainConfig

    if "random_labels" not in {f.name for f in dataclasses.fields(TrainConfig)}:
        raise SanityError("the data-randomization test needs a trainer with random labels (TrainConfig.random_labels, "
                          "`cnnviz train --random-labels`), which this build does not have yet.")


def train_label_pair(cfg: "TrainConfig", out: str | Path, progress: bool = True) -> dict[str, dict]:  # noqa: F821
    """Train ``cfg`` twice, on real and on permuted labels, under ``out/real-labels`` and ``out/random-labels``.

    Everything but ``random_labels`` (and ``out``) is the same recipe, seed included, so the two runs
    see the same images in the same order. Returns ``{"real": metrics, "random": metrics}`` with each
    run's ``ckpt`` path added.
    """
    from cnnviz.train.loop import train_run

    require_random_labels()
    out = Path(out)
    result = {}
    for key, flag in (("real", False), ("random", True)):
        run = dataclasses.replace(cfg, out=str(out / f"{key}-labels"), random_labels=flag, resume=False)
        metrics = dict(train_run(run, progress=progress))
        metrics["ckpt"] = str(out / f"{key}-labels" / "ckpt.pt")
        result[key] = metrics
    return result


def label_randomization(real: nn.Module, random: nn.Module, x: torch.Tensor, methods: Sequence[str] = DEFAULT_METHODS, *,
                        info: "ModelInfo | None" = None, targets: Sequence[int] | None = None,  # noqa: F821
                        layer: str | None = None, hog: bool = False, batch_size: int = 8, keep_maps: bool = True,
                        progress: Callable[[int], None] | None = None) -> SanityResult:
    """Maps of ``real`` (trained on true labels) vs ``random`` (same recipe, permuted labels) on ``x``
    ``(N, C, H, W)``, for ``targets`` (None: the real-label model's top-1). Neither model is modified."""
    from cnnviz.explain.cam import _check_targets, default_cam_layer
    from cnnviz.explain.similarity import compare_maps

    methods = check_methods(methods)
    a, b = private_copy(real), private_copy(random)
    dev = next((p.device for p in a.parameters()), torch.device("cpu"))
    b.to(dev)
    x = x.detach().to(dev).float()
    if any(m in _cam_like() for m in methods):
        layer = layer or default_cam_layer(a, info)
    if targets is None:
        targets = top1(a, x)
    else:
        with torch.no_grad():
            targets = _check_targets(targets, x.shape[0], a(x[:1]).shape[1])
    targets = [int(t) for t in targets]
    out = []
    for m in methods:
        ref = _explain_all(a, x, m, targets, info, layer, batch_size)
        new = _explain_all(b, x, m, targets, info, layer, batch_size)
        c = compare_maps(ref[0], new[0], ref_signed=ref[1], signed=new[1], with_hog=hog)
        step = Step(STEP_NAME, 1.0, c["spearman"], c["ssim"], c["spearman_signed"], c["hog"], c["constant"])
        maps = np.stack([ref[0], new[0]]).astype(np.float16) if keep_maps else None
        out.append(MethodSanity(m, ref[1] is not None, [step], maps))
        if progress:
            progress(x.shape[0])
    return SanityResult(out, [STEP_NAME], "labels", 0, targets, layer)
