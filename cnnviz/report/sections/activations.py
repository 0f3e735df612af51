"""Activation maps: the strongest channels of each chosen layer on the first images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnviz.gallery.manifest import Item, Section
from cnnviz.report.config import ImageRef
from cnnviz.report.context import ModelJob

DISPLAY_PX = 160


def activations(job: ModelJob, images: Sequence[ImageRef]) -> list[Section]:
    """One section per chosen layer, one picture per image (the first ``cfg.activation_images``)."""
    from cnnviz.explain.activations import activation_maps, render_activations

    if not images:
        job.note("no activation maps: no images (give --images or --data).")
        return []
    top = job.cfg.top_channels
    out = []
    for layer in job.layers.chosen:
        items = []
        for im in images[: job.cfg.activation_images]:
            def compute(tmp: Path, im: ImageRef = im, layer: str = layer) -> dict[str, Any]:
                from cnnviz.images import preprocess
                from cnnviz.render import display_image, save_png

                img = im.load()
                acts = activation_maps(job.model, preprocess(img, job.info).to(job.device), layer, top=top)
                save_png(render_activations(display_image(img, DISPLAY_PX), acts, tile_px=64), tmp / "acts.png")
                return {"caption": f"{im.name}: top {len(acts.channels)} of {acts.shape[0]} channels"}

            d, meta = job.get(im.digest(), "activations", {"layer": layer, "top": top}, compute)
            items.append(Item(src=job.rel(d / "acts.png"), caption=meta["caption"], cls=im.cls))
        out.append(Section(id=f"acts-{layer}", title=f"Activation maps: {layer}", wide=True, items=items))
    return out
