"""``ModelJob``: one model under report -- what every section reads, and its one way to the cache."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.cache import Cache, Compute
from cnnviz.report.config import ReportConfig


@dataclass
class ModelLayers:
    """The layers a model's sections show."""

    names: list[str]  # every named module (``cnnviz layers``)
    first_conv: str  # the first Conv2d (its filters look at pixels)
    chosen: list[str]  # filters (where they have kernels) and activation maps


@dataclass
class ModelJob:
    """One loaded model and what the sections need to report on it."""

    mid: str  # id in the manifest (m0, m1, ...)
    name: str  # display name
    model: Any  # nn.Module, eval mode, on the report's device
    info: Any  # ModelInfo
    mhash: str  # cnnviz.cache.model_hash
    layers: ModelLayers
    cfg: ReportConfig
    cache: Cache
    man_dir: Path  # where the manifest is written: picture paths are relative to it
    workers: dict[str, Any] = field(default_factory=dict)  # per-model explainer state (see report.explainers)

    def get(self, input_hash: str, method: str, params: dict[str, Any], compute: Compute,
            model_hash: str | None = None) -> tuple[Path, dict[str, Any]]:
        """``Cache.get`` for this model (``model_hash`` overrides its weights hash, e.g. for arch-only work)."""
        return self.cache.get(self.name, model_hash or self.mhash, input_hash, method, params, compute)

    def rel(self, path: Path) -> str:
        """``path`` as the manifest names it."""
        return os.path.relpath(path, self.man_dir)

    def note(self, text: str) -> None:
        """Work that does not apply to this model (shown in the gallery); never a failure."""
        self.cache.stats.note(text)

    @property
    def device(self) -> Any:
        return next((p.device for p in self.model.parameters()), "cpu")
