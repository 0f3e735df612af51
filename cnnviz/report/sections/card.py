"""A model's card: architecture, accuracy and training time, per-class metrics, curves and confusion."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from cnnviz.cache import digest
from cnnviz.gallery.manifest import ModelEntry, PerClass
from cnnviz.report.config import ModelSource
from cnnviz.report.context import ModelJob

log = logging.getLogger(__name__)


def model_entry(job: ModelJob, src: ModelSource) -> ModelEntry:
    """The card of ``job``'s model (sections are added by the caller)."""
    info = job.info
    metrics = load_metrics(src.spec, info, job.note)
    acc = metrics.get("test_accuracy", metrics.get("accuracy"))
    if isinstance(acc, float) and not math.isfinite(acc):
        job.note(f"the test accuracy of {job.name} is not a number (did its training diverge?); it is shown as –.")
    d, meta = job.get("-", "figures", {"metrics": digest(metrics)}, lambda tmp: _figures(metrics, info, job.name, tmp))
    per_class = [PerClass(name=str(k), precision=_num(v.get("precision")), recall=_num(v.get("recall")),
                          f1=_num(v.get("f1")), support=_int(v.get("support")))
                 for k, v in (metrics.get("per_class") or {}).items() if isinstance(v, dict)]
    return ModelEntry(
        id=job.mid, name=job.name, arch=info.arch, mode=info.mode or (metrics.get("config") or {}).get("mode"),
        weights=info.weights, accuracy=_num(acc), train_seconds=_num(metrics.get("train_seconds")),
        num_classes=info.num_classes, input_size=[int(v) for v in info.input_size],
        params=int(sum(p.numel() for p in job.model.parameters())), per_class=per_class,
        curves=job.rel(d / "curves.png") if meta.get("curves") else None,
        confusion=job.rel(d / "confusion.png") if meta.get("confusion") else None,
    )


def _num(v: Any) -> float | None:
    """A finite number, else None (strict JSON has no NaN)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def load_metrics(spec: str, info: Any, note: Any) -> dict[str, Any]:
    """``metrics.json`` beside a checkpoint (the trainer's run folder), else the checkpoint's own."""
    p = Path(spec)
    m = p.parent / "metrics.json"
    if p.suffix == ".pt" and m.is_file():
        try:
            data = json.loads(m.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
            note(f"{m} is not a JSON object; the checkpoint's own metrics are shown.")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            note(f"{m} is unreadable ({type(e).__name__}); the checkpoint's own metrics are shown.")
    return dict(info.metrics or {})


def _figures(metrics: dict[str, Any], info: Any, name: str, tmp: Path) -> dict[str, Any]:
    """Training curves and confusion matrix from the metrics (nothing when there are none)."""
    import numpy as np

    from cnnviz.train.metrics import plot_confusion, plot_curves

    out = {"curves": False, "confusion": False}
    if metrics.get("history"):
        plot_curves(metrics["history"], tmp / "curves.png", title=name)
        out["curves"] = True
    if metrics.get("confusion"):
        names = list(metrics.get("per_class") or {}) or list(info.class_names)
        plot_confusion(np.asarray(metrics["confusion"]), names, tmp / "confusion.png", title=f"{name}: confusion")
        out["confusion"] = True
    return out
