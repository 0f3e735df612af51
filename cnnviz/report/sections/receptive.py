"""Receptive fields: the analytic table of conv/pool layers, and the effective field of the last chosen layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnviz.cache import digest
from cnnviz.gallery.manifest import Item, Section, Table
from cnnviz.report.context import ModelJob

MAX_ROWS = 60
ERF_PX = 192


def receptive(job: ModelJob) -> list[Section]:
    from cnnviz.explain.receptive import receptive_fields

    info, chosen = job.info, job.layers.chosen

    def compute(tmp: Path) -> dict[str, Any]:
        rows = []
        for r in receptive_fields(job.model, info.input_size):
            if "Conv" in r.type or "Pool" in r.type or r.layer in chosen:
                d = r.to_dict()
                rows.append([d["layer"], d["type"], _pair(d["rf"]), _pair(d["stride"]), _pair(d["padding"])])
        return {"rows": rows[:MAX_ROWS]}

    # the analytic field depends on the architecture and input size, not on the weights: models
    # that share an architecture (scratch / LP / LP-FT) share this entry
    arch_key = "arch:" + digest([info.arch, info.arch_kwargs, list(info.input_size), info.num_classes])
    d, meta = job.get("-", "receptive", {"input_size": list(info.input_size)}, compute, model_hash=arch_key)
    out = [Section(id="receptive", title="Receptive fields",
                   note="Theoretical receptive field (pixels), stride and effective padding of each conv/pool layer.",
                   table=Table(columns=["layer", "type", "receptive field", "stride", "padding"], rows=meta["rows"]))]
    if job.cfg.erf:
        out.append(_effective(job, chosen[-1]))
    return out


def _effective(job: ModelJob, layer: str) -> Section:
    """The effective receptive field (Luo et al. 2016) of ``layer``'s centre unit."""
    from cnnviz.explain.erf import effective_receptive_field

    def compute(tmp: Path) -> dict[str, Any]:
        import numpy as np

        from cnnviz.render import heat_png, normalize01

        r = effective_receptive_field(job.model, job.info, layer, seed=job.cfg.seed)
        heat_png(normalize01(np.asarray(r.heat)), (ERF_PX, ERF_PX), tmp / "erf.png", cmap="magma")
        return {"caption": f"{layer}: 50% of gradient mass within r={_fmt(r.r50)} px, 90% within r={_fmt(r.r90)} px"}

    d, meta = job.get("-", "erf", {"layer": layer, "seed": job.cfg.seed}, compute)
    return Section(id="erf", title="Effective receptive field", note="Gradient of the centre unit w.r.t. the input (Luo et al. 2016).",
                   items=[Item(src=job.rel(d / "erf.png"), caption=meta["caption"])])


def _fmt(v: Any) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def _pair(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return _fmt(v[0]) if len(set(v)) == 1 else "x".join(_fmt(x) for x in v)
    return str(v)
