"""Per-image pictures: the image itself for the gallery, and each model's CAMs and attributions of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnviz.cache import Cache
from cnnviz.gallery.manifest import ImageEntry, Result
from cnnviz.report.config import ImageRef
from cnnviz.report.context import ModelJob
from cnnviz.report.explainers import explain_image


def image_results(job: ModelJob, im: ImageRef) -> list[Result]:
    """``job``'s model explains ``im`` with every ``--cam`` and ``--attribute`` method, in that order."""
    import numpy as np

    px = job.cfg.image_px
    out = []
    for method in [*job.cfg.cam_methods, *job.cfg.attr_methods]:
        def compute(tmp: Path, method: str = method) -> dict[str, Any]:
            from cnnviz.render import display_image, heat_png

            img = im.load()
            res = explain_image(job.model, job.info, img, method, job.workers)
            heat_png(res.maps[0], display_image(img, px).shape[:2], tmp / "heat.png")
            probs = np.asarray(res.probs[0], dtype=np.float64)
            top = int(probs.argmax())
            names = job.info.class_names
            return {"pred": names[top], "prob": float(probs[top]), "target": names[int(res.targets[0])]}

        d, meta = job.get(im.digest(), method, {"px": px}, compute)
        out.append(Result(model=job.mid, method=method, heat=job.rel(d / "heat.png"), pred=meta["pred"],
                          prob=meta["prob"], target=meta["target"]))
    return out


def image_entry(cache: Cache, man_dir: Path, index: int, im: ImageRef, px: int, results: list[Result]) -> ImageEntry:
    """The image's own picture (shared by every model) and its results."""
    import os

    def compute(tmp: Path) -> dict[str, Any]:
        from cnnviz.render import display_image, save_png

        save_png(display_image(im.load(), px), tmp / "image.png")
        return {}

    d, _ = cache.get("-", "-", im.digest(), "display", {"px": px}, compute)
    return ImageEntry(id=f"img{index}-{im.digest()[:8]}", name=im.name, cls=im.cls,
                      src=os.path.relpath(d / "image.png", man_dir), results=results)
