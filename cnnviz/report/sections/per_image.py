"""Per-image pictures: the image itself for the gallery, each model's CAMs and attributions of it, and
each model's CAM at every stage (the strip)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnviz.cache import Cache
from cnnviz.gallery.manifest import ImageEntry, Result, Strip, StripLayer
from cnnviz.report.config import ImageRef
from cnnviz.report.context import ModelJob
from cnnviz.report.explainers import explain_image, strip_image, strip_layers


def image_results(job: ModelJob, im: ImageRef) -> list[Result]:
    """``job``'s model explains ``im`` with every ``--cam`` and ``--attribute`` method, in that order."""
    px = job.cfg.image_px
    out = []
    for method in [*job.cfg.cam_methods, *job.cfg.attr_methods]:
        def compute(tmp: Path, method: str = method) -> dict[str, Any]:
            from cnnviz.render import display_image, heat_png

            img = im.load()
            res = explain_image(job.model, job.info, img, method, job.workers)
            heat_png(res.maps[0], display_image(img, px).shape[:2], tmp / "heat.png")
            return _prediction(job, res.probs[0], res.targets[0])

        d, meta = job.get(im.digest(), method, {"px": px}, compute)
        out.append(Result(model=job.mid, method=method, heat=job.rel(d / "heat.png"), pred=meta["pred"],
                          prob=meta["prob"], target=meta["target"]))
    return out


def image_strip(job: ModelJob, im: ImageRef) -> Strip | None:
    """``job``'s model's ``strip_method`` CAM of ``im`` at every stage (one heatmap PNG per layer); None
    when strips are off."""
    cfg = job.cfg
    if not cfg.strips:
        return None
    layers = strip_layers(job.model, job.info, job.workers)
    px = cfg.image_px

    def compute(tmp: Path) -> dict[str, Any]:
        from cnnviz.render import display_image, heat_png

        img = im.load()
        s = strip_image(job.model, job.info, img, cfg.strip_method, job.workers)
        hw = display_image(img, px).shape[:2]
        for k in range(len(s.layers)):
            heat_png(s.maps[0, k], hw, tmp / f"layer{k}.png")
        grids = [f"{g[0]}x{g[1]}" for g in (s.grids or [])]
        return {**_prediction(job, s.probs[0], s.targets[0]), "layers": list(s.layers), "grids": grids}

    d, meta = job.get(im.digest(), f"strip:{cfg.strip_method}", {"px": px, "layers": layers}, compute)
    grids = meta.get("grids") or [None] * len(meta["layers"])
    return Strip(model=job.mid, method=cfg.strip_method, pred=meta["pred"], prob=meta["prob"], target=meta["target"],
                 layers=[StripLayer(layer=n, grid=g, heat=job.rel(d / f"layer{k}.png"))
                         for k, (n, g) in enumerate(zip(meta["layers"], grids))])


def _prediction(job: ModelJob, probs: Any, target: int) -> dict[str, Any]:
    import numpy as np

    p = np.asarray(probs, dtype=np.float64)
    top = int(p.argmax())
    names = job.info.class_names
    return {"pred": names[top], "prob": float(p[top]), "target": names[int(target)]}


def image_entry(cache: Cache, man_dir: Path, index: int, im: ImageRef, px: int, results: list[Result],
                strips: list[Strip] | None = None) -> ImageEntry:
    """The image's own picture (shared by every model), its results and strips."""
    import os

    def compute(tmp: Path) -> dict[str, Any]:
        from cnnviz.render import display_image, save_png

        save_png(display_image(im.load(), px), tmp / "image.png")
        return {}

    d, _ = cache.get("-", "-", im.digest(), "display", {"px": px}, compute)
    return ImageEntry(id=f"img{index}-{im.digest()[:8]}", name=im.name, cls=im.cls,
                      src=os.path.relpath(d / "image.png", man_dir), results=results, strips=list(strips or []))
