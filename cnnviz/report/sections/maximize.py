"""Class-maximizing images: one optimized input per class (the first ``cfg.max_classes``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnviz.gallery.manifest import Item, Section
from cnnviz.report.context import ModelJob

DISPLAY_PX = 128


def maximize(job: ModelJob) -> list[Section]:
    from cnnviz.explain.bnprior import batchnorm_layers
    from cnnviz.explain.maximize import DEFAULT_LR, DEFAULT_VIEWS, default_bn_prior, default_canvas, maximize_classes

    cfg, info = job.cfg, job.info
    classes = list(range(min(info.num_classes, cfg.max_classes)))
    prior = default_bn_prior(info) if batchnorm_layers(job.model) else 0.0
    start = "the training data's mean image" if info.mean_image is not None else (
        "the training data's mean colour" if info.pixel_mean else "")
    params = {"classes": classes, "steps": cfg.maximize_steps, "size": cfg.maximize_size, "seed": cfg.seed,
              "loop": {"views": repr(DEFAULT_VIEWS), "lr": DEFAULT_LR, "canvas": cfg.maximize_size or default_canvas(info),
                       "base": info.pixel_mean, "start": start, "bn_prior": prior}}  # a new default loop recomputes cached images

    def compute(tmp: Path) -> dict[str, Any]:
        import numpy as np

        from cnnviz.render import display_image, save_png

        imgs = maximize_classes(job.model, info, classes, steps=cfg.maximize_steps, size=cfg.maximize_size, seed=cfg.seed)
        for c, img in zip(classes, imgs):
            save_png(display_image(np.asarray(img), DISPLAY_PX), tmp / f"class{c}.png")
        return {"classes": classes}

    d, meta = job.get("-", "maximize", params, compute)
    items = [Item(src=job.rel(d / f"class{c}.png"), caption=info.class_names[c], cls=info.class_names[c]) for c in meta["classes"]]
    return [Section(id="maximize", title="Class-maximizing images", pixelated=True, items=items,
                    note=f"Inputs optimized to maximize each class logit ({cfg.maximize_steps} steps, "
                         f"{cfg.maximize_size or default_canvas(info)} px canvas"
                         + (f", starting from {start}" if start else "")
                         + (f", features held near the model's BatchNorm statistics (weight {prior:g})" if prior else "")
                         + ").")]
