"""The comparison page: accuracy table and headline, then CKA / drift / agreement / per-class of the models."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnviz.atomic import dumps_json, write_text
from cnnviz.cache import Cache
from cnnviz.gallery.manifest import Comparison, Item, ModelEntry, Section, Table
from cnnviz.report.config import ModelSource, ReportConfig


def comparison(models: Sequence[ModelSource], entries: Sequence[ModelEntry], hashes: Sequence[str], *, cfg: ReportConfig,
               cache: Cache, man_dir: Path, dataset: Any, data_hash: str | None, device: Any,
               progress: Callable[[str], None]) -> Comparison | None:
    """``None`` for one model without an accuracy; else the headline and sections (models compared when >= 2)."""
    headline = accuracy_headline(entries)
    rows = [[e.name, e.mode or "–", e.accuracy if e.accuracy is not None else "–",
             round(e.train_seconds, 1) if e.train_seconds is not None else "–"] for e in entries]
    sections = [Section(id="accuracy", title="Accuracy and training time",
                        table=Table(columns=["model", "mode", "test accuracy", "train seconds"], rows=rows))]
    if len(models) < 2:
        return Comparison(headline=headline, sections=sections) if headline else None
    if not cfg.compare:
        return Comparison(headline=headline, sections=sections)
    if dataset is None:
        cache.stats.note("no model comparison (CKA, drift, agreement): no --data.")
        return Comparison(headline=headline, sections=sections)
    progress("comparing models")
    labels = [e.name or "" for e in entries]

    def compute(tmp: Path) -> dict[str, Any]:
        from cnnviz.compare import compare_models
        from cnnviz.models import load_model

        loaded = [load_model(src.spec, weights=src.weights, device=device) for src in models]
        comp = compare_models(loaded, dataset, eval_limit=cfg.eval_limit, device=device, seed=cfg.seed, names=labels)
        figs = [p.name for p in comp.write_figures(tmp / "fig")]
        write_text(tmp / "comparison.json", dumps_json(comp.to_json()))
        return {"figures": figs}

    d, meta = cache.get("+".join(labels), "+".join(hashes), data_hash or "-", "compare",
                        {"eval_limit": cfg.eval_limit, "labels": labels, "seed": cfg.seed, "named": 1}, compute)
    data = json.loads((d / "comparison.json").read_text(encoding="utf-8"))
    headline += comparison_headline(data)
    for f in meta.get("figures", []):
        sections.append(Section(id=f"fig-{Path(f).stem}", title=figure_title(f), wide=True, hero="grid" in f,
                                items=[Item(src=os.path.relpath(d / "fig" / f, man_dir), caption=Path(f).stem)]))
    sections.extend(comparison_tables(data))
    return Comparison(headline=headline, sections=sections)


def accuracy_headline(entries: Sequence[ModelEntry]) -> list[str]:
    scored = [e for e in entries if e.accuracy is not None]
    if not scored:
        return []
    best = max(scored, key=lambda e: e.accuracy)
    out = [f"Best test accuracy: {best.name} at {100 * best.accuracy:.1f}%."]
    worst = min(scored, key=lambda e: e.accuracy)
    if worst is not best:
        out.append(f"{best.name} beats {worst.name} by {100 * (best.accuracy - worst.accuracy):.1f} points.")
    timed = [e for e in scored if e.train_seconds]
    if len(timed) > 1:
        fast = min(timed, key=lambda e: e.train_seconds)
        out.append(f"Fastest to train: {fast.name} ({fast.train_seconds:.0f} s).")
    return out


def comparison_headline(data: dict[str, Any]) -> list[str]:
    """Mean diagonal CKA of each same-architecture pair (``compare.json``'s ``cka`` entries)."""
    import numpy as np

    out = []
    arch = {m.get("name"): m.get("arch") for m in data.get("models") or []}
    for e in data.get("cka") or []:
        # layer-by-layer CKA along the diagonal means something only between two copies of one architecture
        if e.get("a") != e.get("b") and e.get("matrix") and arch.get(e.get("a")) == arch.get(e.get("b")):
            m = np.asarray(e["matrix"], dtype=np.float64)  # null (a dead layer) -> nan
            if m.shape[0] == m.shape[1] and m.size and np.isfinite(np.diag(m)).any():
                out.append(f"CKA {e['a']} vs {e['b']}: mean diagonal {float(np.nanmean(np.diag(m))):.2f} (1 = same features).")
    return out[:4]


def comparison_tables(data: dict[str, Any]) -> list[Section]:
    """Small tables from the comparison JSON (the figures carry the detail)."""
    pc = data.get("per_class") or {}
    rows = pc.get("rows") if isinstance(pc, dict) else None
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        cols = list(rows[0])
        return [Section(id="per-class", title="Per-class accuracy",
                        table=Table(columns=[str(c) for c in cols], rows=[[_cell(r.get(c)) for c in cols] for r in rows]))]
    return []


def _cell(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)


def figure_title(name: str) -> str:
    stem = Path(name).stem.lower()
    for key, title in (("cka", "CKA heatmaps"), ("drift", "Filter drift"), ("agree", "Attention agreement"),
                       ("class", "Per-class deltas"), ("cam", "Grad-CAM agreement examples")):
        if key in stem:
            return f"{title} ({Path(name).stem})"
    return Path(name).stem
