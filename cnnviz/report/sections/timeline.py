"""Timeline: what a model learned epoch by epoch (``cnnviz train --timeline``'s ``timeline.json``).

Per model: the CKA-to-init / to-final and drift curves per tracked layer with a table of the last
epoch, and one strip per watched test image (the image, then its Grad-CAM after each epoch). In the
comparison: every model with a finished timeline side by side by depth (scratch vs transferred).

A checkpoint without ``timeline.json`` beside it has no timeline section (nothing to note: most runs
are trained without one). A ``timeline.json`` that does not describe the checkpoint beside it (another
run was trained into the folder later without ``--timeline``) is left out with a note.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnviz.cache import Cache, digest
from cnnviz.gallery.manifest import Item, ModelEntry, Section, Table
from cnnviz.report.config import ModelSource
from cnnviz.report.context import ModelJob

MAX_STRIPS = 40  # watched images shown per model


def read_timeline(spec: str) -> tuple[Path, dict[str, Any]] | None:
    """``(run_dir, timeline.json)`` beside a checkpoint, or None (no file, or not a checkpoint)."""
    p = Path(spec)
    f = p.parent / "timeline.json"
    if p.suffix != ".pt" or not f.is_file():
        return None
    return p.parent, json.loads(f.read_text(encoding="utf-8"), parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _stale(doc: dict[str, Any], info: Any) -> str | None:
    """Why ``doc`` does not describe the checkpoint ``info`` came from (None when it does)."""
    cfg = dict(info.config or {})
    mine = doc.get("config") or {}
    diff = [k for k in mine if k in cfg and cfg[k] != mine[k]]
    if diff:
        return f"it was recorded by a run with other options ({', '.join(diff[:3])})"
    metrics = info.metrics or {}
    hist = metrics.get("history") or []
    at = hist[-1].get("epoch") if hist and isinstance(hist[-1], dict) else metrics.get("epoch")
    if isinstance(at, int) and at != doc["epochs"][-1]:
        return f"it ends at epoch {doc['epochs'][-1]}, the checkpoint at epoch {at}"
    return None


def _load(job: ModelJob, src: ModelSource) -> tuple[Path, dict[str, Any]] | None:
    try:
        found = read_timeline(src.spec)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        job.note(f"the timeline of {job.name} is unreadable ({type(e).__name__}); it is not shown.")
        return None
    if found is None:
        return None
    why = _stale(found[1], job.info)
    if why:
        job.note(f"{found[0] / 'timeline.json'} does not describe {job.name}'s checkpoint ({why}); its timeline is not shown.")
        return None
    return found


def _fmt(v: Any) -> Any:
    return round(float(v), 3) if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


def timeline(job: ModelJob, src: ModelSource) -> list[Section]:
    """The model's timeline sections (none when its run recorded no timeline)."""
    found = _load(job, src)
    if found is None:
        return []
    run_dir, doc = found
    if not doc.get("epochs"):
        return []

    def compute(tmp: Path) -> dict[str, Any]:
        from cnnviz.render import save_png
        from cnnviz.train.timeline_plot import image_strip, plot_curves

        plot_curves(doc, tmp / "curves.png", job.name)
        captions = []
        for k, im in enumerate(doc.get("images", [])[:MAX_STRIPS]):
            save_png(image_strip(doc, run_dir, k), tmp / f"cams-{k:03d}.png")
            p = [v for v in im.get("prob", []) if isinstance(v, (int, float))]
            captions.append(f"{im['label']} (test #{im['index']})" + (f": p(true) {p[0]:.2f} → {p[-1]:.2f}" if p else ""))
        return {"captions": captions}

    d, meta = job.get("-", "timeline", {"timeline": digest(doc)}, compute)
    last = doc["epochs"][-1]
    rows = [[l, _fmt(doc["cka_to_init"][l][-1]), _fmt(doc["cka_to_final"][l][0]), _fmt(doc["drift"][l][-1])]
            for l in doc["layers"]]
    note = (f"Linear CKA on {doc.get('cka_images', '?')} fixed test images of each tracked layer to epoch 0 and to the "
            f"final model, and weight drift {doc.get('drift_norm', '')}; epoch 0 = before training."
            + ("" if doc.get("complete") else f" The run stopped at epoch {last}: CKA to the final model is not known yet."))
    out = [Section(id="timeline-curves", title="Timeline: representations and weights by epoch", note=note, wide=True,
                   items=[Item(src=job.rel(d / "curves.png"), caption=f"epochs 0-{last}")],
                   table=Table(columns=["layer", f"CKA to epoch 0 (epoch {last})", "CKA epoch 0 to final",
                                        f"drift (epoch {last})"], rows=rows))]
    images = doc.get("images", [])[:MAX_STRIPS]
    if images:
        out.append(Section(id="timeline-cams", title=f"Timeline: {doc.get('method', 'gradcam')} across epochs", wide=True,
                           pixelated=True, note="Each watched test image, then its map for the true class after each epoch.",
                           items=[Item(src=job.rel(d / f"cams-{k:03d}.png"), caption=c, cls=im["label"])
                                  for k, (im, c) in enumerate(zip(images, meta["captions"]))]))
    return out


def side_by_side(models: Sequence[ModelSource], entries: Sequence[ModelEntry], hashes: Sequence[str], *, cache: Cache,
                 man_dir: Path) -> list[Section]:
    """The comparison's timeline section: finished timelines of >= 2 models by depth, and their curves."""
    runs = []
    for src, e, h in zip(models, entries, hashes):
        try:
            found = read_timeline(src.spec)
        except (OSError, UnicodeDecodeError, ValueError):
            continue  # the model's own section has said so
        if found is not None and found[1].get("complete") and any(s.id == "timeline-curves" for s in e.sections):
            runs.append((e.name or "", found[1], h))
    if len(runs) < 2:
        return []

    def compute(tmp: Path) -> dict[str, Any]:
        from cnnviz.train.timeline_plot import plot_depth

        plot_depth([(n, doc) for n, doc, _ in runs], tmp / "depth.png", "after the last epoch")
        return {}

    names = [n for n, _, _ in runs]
    d, _ = cache.get("+".join(names), "+".join(h for *_, h in runs), "-", "timeline-depth",
                     {"timelines": [digest(doc) for _, doc, _ in runs], "names": names}, compute)
    items = [Item(src=os.path.relpath(d / "depth.png", man_dir), caption="CKA to epoch 0 and drift by depth")]
    items += [Item(src=s.items[0].src, caption=e.name)  # each model's curves, already relative to man_dir
              for e in entries for s in e.sections if s.id == "timeline-curves" and s.items]
    return [Section(id="timeline-depth", title="Timeline: how far each depth moved, model by model", wide=True,
                    note="Neyshabur et al. (2020): a network fine-tuned from pretrained weights keeps its lower layers "
                         "close to where they started; one trained from scratch moves them far.", items=items)]
