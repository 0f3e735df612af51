"""A gallery build, checked whole before any work: ``GalleryJob.prepare(...)`` then ``.run()``.

``prepare`` refuses, before anything is computed or written: bad settings, unknown ``--cam`` /
``--attribute`` methods, ``--layers`` that are in none of the models (with close matches), missing
checkpoints, an ``--out`` or cache folder cnnviz may not write (``cnnviz.atomic``), and unreadable
images (one among several is skipped and listed in ``skipped``; a lone one is an error). ``run``
computes the report through the cache and builds the site into ``out``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnnviz.atomic import check_output_dir
from cnnviz.cache import Stats
from cnnviz.errors import CnnvizError
from cnnviz.report.config import ModelSource, ReportConfig
from cnnviz.report.explainers import check_methods
from cnnviz.report.inputs import Inputs, open_inputs
from cnnviz.report.orchestrator import Report

#: ``progress(desc, done, total)``, called once per step of a run
Progress = Callable[[str, int, int], None]


@dataclass
class GalleryResult:
    index: Path  # OUT/index.html
    stats: Stats
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unreadable images (path, why)
    total_images: int = 0


@dataclass
class GalleryJob:
    models: list[ModelSource]
    out: Path
    cache_dir: Path
    cfg: ReportConfig
    inputs: Inputs
    title: str
    data: str | None
    report: Report

    @classmethod
    def prepare(cls, models: Sequence[ModelSource], out: str | Path, *, images: Sequence[str] = (), data: str | None = None,
                data_root: str | None = None, cfg: ReportConfig | None = None, cache: str | Path | None = None,
                title: str = "cnnviz gallery") -> GalleryJob:
        """Check everything (see the module docstring), cheapest first; nothing is computed or written."""
        cfg = cfg or ReportConfig()
        out = Path(out)
        cache_dir = Path(cache) if cache else out.resolve().parent / ".cnnviz-cache"
        if not models:
            raise CnnvizError("the gallery needs at least one --model.")
        cfg.validate()
        check_methods(cfg.cam_methods, cfg.attr_methods)
        check_specs(models)
        if cache_dir.resolve().is_relative_to(out.resolve()):
            raise CnnvizError(f"the cache '{cache_dir}' is inside the site folder '{out}'; give a --cache outside it.")
        check_output_dir(out, "gallery")
        check_output_dir(cache_dir, "cache")
        inputs = open_inputs(images, data, cfg, data_root)
        report = Report(cache_dir, cfg)
        report.check(models)  # loads each model once (its layer names); computes nothing
        return cls(list(models), out, cache_dir, cfg, inputs, title, data, report)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return self.inputs.skipped

    @property
    def steps(self) -> int:
        """How many times ``run`` calls ``progress``."""
        return Report.steps(len(self.models), len(self.inputs.images)) + 1

    def run(self, progress: Progress | None = None) -> GalleryResult:
        """Report (through the cache) + site -> ``GalleryResult``."""
        from cnnviz.gallery import build_site

        total, done = self.steps, 0

        def tick(desc: str) -> None:
            nonlocal done
            done += 1
            if progress:
                progress(desc, done, total)

        self.report.progress = tick
        manifest = self.report.run(self.models, self.inputs.images, data=self.data, dataset=self.inputs.dataset,
                                   title=self.title, manifest_name=manifest_name(self.out))
        tick("writing the site")
        index = build_site(manifest, self.out)
        return GalleryResult(index, self.report.stats, list(self.skipped), self.inputs.total)


def build_gallery(models: Sequence[ModelSource], out: str | Path, *, progress: Progress | None = None,
                  **kw: object) -> GalleryResult:
    """``GalleryJob.prepare(models, out, **kw).run(progress)``: the gallery in one call."""
    return GalleryJob.prepare(models, out, **kw).run(progress)  # type: ignore[arg-type]


def manifest_name(out: Path) -> str:
    """One manifest per site folder inside a shared cache."""
    return "".join(c if c.isalnum() else "_" for c in str(out.resolve()))[-80:]


def check_specs(models: Sequence[ModelSource]) -> None:
    """Fail before any work when a checkpoint path does not exist (the common typo)."""
    from cnnviz.errors import CheckpointError
    from cnnviz.models import parse_spec

    for src in models:
        kind, name, _ = parse_spec(src.spec)
        if kind == "checkpoint" and not Path(name).is_file():
            raise CheckpointError(f"checkpoint not found: '{name}'. Pass a file written by `cnnviz train` (RUN_DIR/ckpt.pt).")
