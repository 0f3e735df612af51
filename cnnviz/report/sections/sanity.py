"""Per model and method: ``cnnviz sanity``'s verdict on the gallery's images, shown beside each map.

The verdict (docs/sanity.md) reads one cascade step, so it costs two explanations per image and method
(``cnnviz.explain.sanity.sanity_verdicts``): the trained maps and the maps once the top half of the
network is random. Cached like every result: the key is the model's weights, the images (all of
them: the verdict is over the set), the method and the seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnviz.explain.sanity import UnchangedWeights
from cnnviz.gallery.manifest import Verdict
from cnnviz.report.config import ImageRef
from cnnviz.report.context import ModelJob
from cnnviz.report.explainers import sanity_verdict


def verdicts(job: ModelJob, images: Sequence[ImageRef]) -> list[Verdict]:
    """One ``Verdict`` per ``--cam`` and ``--attribute`` method of ``job``'s model; none without images
    or with ``cfg.sanity`` off."""
    cfg = job.cfg
    if not cfg.sanity or not images:
        return []
    key = hashlib.sha256("".join(im.digest() for im in images).encode()).hexdigest()[:24]
    out = []
    for method in [*cfg.cam_methods, *cfg.attr_methods]:
        def compute(tmp: Path, method: str = method) -> dict[str, Any]:
            return sanity_verdict(job.model, job.info, [im.load for im in images], method, cfg.seed)

        try:
            _, v = job.get(key, f"sanity:{method}", {"seed": cfg.seed, "rule": 1}, compute)
        except UnchangedWeights as e:  # not a failure: this model is the untrained draw of this seed
            job.note(f"no sanity verdicts for {job.name}: {e}")
            return []
        out.append(Verdict(method=method, passes=v.get("passes"), mean=v.get("mean"), ci95=list(v.get("ci95") or []),
                           step=v.get("step"), step_index=v.get("step_index"), steps=v.get("cascade_steps"),
                           measure=v.get("measure"), threshold=v.get("threshold"), images=v.get("images"), seed=cfg.seed))
    return out
