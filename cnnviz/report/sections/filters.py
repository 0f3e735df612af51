"""Filters: the kernels of the first conv and of the chosen layers, as grids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnviz.errors import LayerError
from cnnviz.gallery.manifest import Item, Section
from cnnviz.report.context import ModelJob

MAX_FILTERS = 64


def filters(job: ModelJob) -> list[Section]:
    """One section per layer with kernels: the first conv, then each chosen layer."""
    from cnnviz.explain import filters as F

    out = []
    for layer in dict.fromkeys([job.layers.first_conv, *job.layers.chosen]):
        try:
            F.find_conv(job.model, layer)  # the layer exists (planned); this error only means "no single conv"
        except LayerError as e:
            job.note(f"no filters of {layer} for {job.name}: {e}")
            continue

        def compute(tmp: Path, layer: str = layer) -> dict[str, Any]:
            from cnnviz.render import save_png

            k = F.layer_kernels(job.model, layer)
            save_png(F.filter_grid(k, max_filters=MAX_FILTERS, tile_px=40), tmp / "filters.png")
            o, _, kh, kw = k.weights.shape
            return {"caption": f"{k.layer}: {min(o, MAX_FILTERS)} of {o} filters, {kh}x{kw}, {k.kind}"}

        d, meta = job.get("-", "filters", {"layer": layer, "max": MAX_FILTERS}, compute)
        out.append(Section(id=f"filters-{layer}", title=f"Filters: {layer}", wide=True, pixelated=True,
                           items=[Item(src=job.rel(d / "filters.png"), caption=meta["caption"])]))
    return out
