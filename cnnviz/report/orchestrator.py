"""``Report``: run every section over models x images, through the cache, and write the manifest.

One model is loaded at a time, images are loaded one at a time, and every result goes to disk as
soon as it is computed (``cnnviz.cache``), so memory stays bounded and time is linear in the number
of images. A rebuild finds every result in the cache and computes nothing; adding a model computes
only that model's work (and the new comparison).

Nothing is hidden: ``check`` refuses bad methods and layers before any work, and an error in a
section propagates (with a note naming the model and section). Only work that does not apply -- no
dataset, classes that differ, a layer without kernels -- becomes a note the gallery shows.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnviz.cache import Cache, Stats, dataset_hash, model_hash
from cnnviz.errors import CnnvizError
from cnnviz.gallery.manifest import ImageEntry, Manifest, ModelEntry, Result, Strip, write_manifest
from cnnviz.report import plan
from cnnviz.report.config import ImageRef, ModelSource, ReportConfig
from cnnviz.report.context import ModelJob
from cnnviz.report.explainers import check_methods
from cnnviz.report.sections import activations, card, comparison, examples, filters, maximize, per_image, receptive, sanity
from cnnviz.report.sections import timeline

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class Report:
    """Computes (or finds in the cache under ``cache_dir``) everything the gallery shows.

    ``progress(desc)`` is called once per step: per model 1 (load) + 5 (sections) + one per image
    + 1 (sanity verdicts), then one for the comparison (``steps``).
    """

    def __init__(self, cache_dir: str | os.PathLike[str], cfg: ReportConfig | None = None, progress: Progress | None = None) -> None:
        self.cfg = cfg or ReportConfig()
        self.root = Path(cache_dir)
        self.stats = Stats()
        self.progress = progress or (lambda desc: None)
        self._checked: list[ModelSource] | None = None

    @staticmethod
    def steps(n_models: int, n_images: int) -> int:
        """How many times ``run`` calls ``progress``."""
        return n_models * (7 + n_images) + 1

    def check(self, models: Sequence[ModelSource]) -> None:
        """Refuse bad settings, unknown methods and layers that are in none of ``models``, before any work."""
        from cnnviz.device import resolve_device

        if not models:
            raise CnnvizError("the gallery needs at least one --model.")
        self.cfg.validate()
        check_methods(self.cfg.cam_methods, self.cfg.attr_methods, self.cfg.strip_method if self.cfg.strips else None)
        resolve_device(self.cfg.device)  # an unavailable --device fails now
        named = [m.name for m in models if m.name]
        if len(set(named)) < len(named):
            dup = next(n for n in named if named.count(n) > 1)
            raise CnnvizError(f"--name {dup!r} is given to two models; give each model its own name.")
        plan.check_layers(models, self.cfg.layers)
        self._checked = list(models)

    def run(self, models: Sequence[ModelSource], images: Sequence[ImageRef], *, data: str | None = None,
            dataset: Any = None, title: str = "cnnviz gallery", manifest_name: str = "manifest") -> Path:
        """Everything for ``models`` x ``images`` (+ ``dataset``, the test split) -> the manifest's path."""
        from cnnviz.device import resolve_device
        from cnnviz.models import load_model

        t0 = time.perf_counter()
        if self._checked != list(models):
            self.check(models)
        cfg = self.cfg
        dev = resolve_device(cfg.device)
        cache = Cache(self.root, self.stats)
        data_hash = dataset_hash(data or "", dataset) if dataset is not None else None
        man_dir = cache.root / "manifests"
        man_dir.mkdir(parents=True, exist_ok=True)
        entries: list[ModelEntry] = []
        hashes: list[str] = []
        results: list[list[Result]] = [[] for _ in images]
        strips: list[list[Strip]] = [[] for _ in images]
        for mi, src in enumerate(models):
            self.progress(f"loading {src.name or src.spec}")
            model, info = load_model(src.spec, weights=src.weights, device=dev)
            name = unique_name(src.name or default_name(src, info, mi), [e.name for e in entries])
            layers = plan.pick_layers(model, cfg.layers, name, self.stats.note)
            job = ModelJob(mid=f"m{mi}", name=name, model=model, info=info, mhash=model_hash(model, info),
                           layers=layers, cfg=cfg, cache=cache, man_dir=man_dir)
            entry = card.model_entry(job, src)
            steps: list[tuple[str, Callable[[], list[Any]]]] = [
                ("filters", lambda: filters.filters(job)),
                ("activations", lambda: activations.activations(job, images)),
                ("maximize", lambda: maximize.maximize(job)),
                ("receptive fields", lambda: receptive.receptive(job)),
                ("top patches", lambda: examples.examples(job, dataset, data_hash)),
            ]
            for what, section in steps:
                self.progress(f"{name}: {what}")
                entry.sections.extend(_loudly(section, f"the {what} of model {name!r}"))
            entry.sections.extend(_loudly(lambda: timeline.timeline(job, src), f"the timeline of model {name!r}"))
            for ii, im in enumerate(images):
                self.progress(f"{name}: {im.name}")
                where = f"model {name!r} on image {im.name!r}"
                results[ii].extend(_loudly(lambda: per_image.image_results(job, im), where))
                strip = _loudly(lambda: per_image.image_strip(job, im), f"the strip of {where}")
                if strip is not None:
                    strips[ii].append(strip)
            self.progress(f"{name}: sanity verdicts")
            entry.sanity = _loudly(lambda: sanity.verdicts(job, images), f"the sanity verdicts of model {name!r}")
            entries.append(entry)
            hashes.append(job.mhash)
            del model, job  # one model in memory at a time
        imgs: list[ImageEntry] = [per_image.image_entry(cache, man_dir, ii, im, cfg.image_px, results[ii], strips[ii])
                                  for ii, im in enumerate(images)]
        comp = comparison.comparison(models, entries, hashes, cfg=cfg, cache=cache, man_dir=man_dir, dataset=dataset,
                                     data_hash=data_hash, device=dev, progress=self.progress)
        if comp is not None:
            comp.sections.extend(timeline.side_by_side(models, entries, hashes, cache=cache, man_dir=man_dir))
        self.stats.seconds = time.perf_counter() - t0
        manifest = Manifest(title=title, generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), models=entries,
                            images=imgs, comparison=comp, notes=list(self.stats.notes))
        path = write_manifest(manifest, man_dir / f"{manifest_name}.json")
        log.info("report: %d computed, %d from cache, %.1f s", len(self.stats.computed), self.stats.hits, self.stats.seconds)
        return path


def _loudly(fn: Callable[[], Any], what: str) -> Any:
    """``fn()``; an exception carries a note saying which section of which model failed."""
    try:
        return fn()
    except Exception as e:
        e.add_note(f"cnnviz report: while computing {what}")
        raise


def unique_name(name: str, taken: Sequence[str | None]) -> str:
    """``name``, or ``name #2``, ``#3``... when an earlier model has it (two ``runs/*/a/ckpt.pt``)."""
    out, k = name, 1
    while out in taken:
        k += 1
        out = f"{name} #{k}"
    return out


def default_name(src: ModelSource, info: Any, i: int) -> str:
    """A checkpoint's run folder (``runs/lpft/ckpt.pt`` -> ``lpft``) or file stem, else the model's label."""
    p = Path(src.spec)
    if p.suffix == ".pt":
        base = p.parent.name if p.stem in ("ckpt", "model", "best", "last") else p.stem
        return base or f"model{i}"
    return info.label
