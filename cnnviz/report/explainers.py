"""The report's one door to the per-image explainers: the registry (``cnnviz.explain.methods``).

``check_methods`` refuses unknown names before any work (through ``get_method``, the one place a
method name is checked); ``explain_image`` explains one image with one ``Explainer`` per model and
method, built on first use and kept in the model's ``workers`` (an attribution explainer holds a
working copy of the model: building it costs more than explaining one image); ``strip_image`` draws
the CAM at every stage of one image; ``sanity_verdict`` is ``cnnviz sanity``'s verdict of one method
on the gallery's images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cnnviz.errors import CnnvizError
from cnnviz.explain.methods import CAM_KINDS, check_method_list, get_method

_KINDS = {"--cam": CAM_KINDS, "--attribute": ("attribution",)}
_USES = {"cam": "--cam", "library-cam": "--cam", "attribution": "--attribute", "baseline": "`cnnviz faithfulness --methods`"}


def check_methods(cam_methods: Sequence[str], attr_methods: Sequence[str], strip_method: str | None = None) -> None:
    """``CnnvizError`` naming the option (``--cam`` / ``--attribute``) of the first unknown or misplaced
    method; ``strip_method`` (the strips' CAM) must be a one-layer CAM."""
    for option, given in (("--cam", cam_methods), ("--attribute", attr_methods)):
        check_method_list(given, _KINDS[option], option=option, uses=_USES, allow_empty=True)
    if strip_method is not None:
        spec = get_method(strip_method, CAM_KINDS, option="the strips' method")
        if spec.multi_layer:
            raise CnnvizError(f"the strips' method {strip_method!r} fuses layers; a strip needs a one-layer CAM such as gradcam.")


def explainer(model: Any, info: Any, method: str, workers: dict[str, Any]) -> Any:
    """The model's ``Explainer`` for ``method`` (made once, kept in ``workers``)."""
    from cnnviz.explain.methods import Explainer

    key = f"explainer:{method}"
    if key not in workers:
        workers[key] = Explainer(model, method, info=info)
    return workers[key]


def explain_image(model: Any, info: Any, img: np.ndarray, method: str, workers: dict[str, Any]) -> Any:
    """Explain ``img`` ``(H, W, 3) uint8`` with ``method`` for its top-1 class.

    Returns an ``Explanation`` of one: ``maps`` ``(1, h, w)`` in [0, 1] at the model's input size,
    ``targets`` ``[class]``, ``probs`` ``(1, num_classes)``.
    """
    from cnnviz.images import preprocess
    from cnnviz.probe import model_device

    x = preprocess(img, info).to(model_device(model))  # a tensor: maps stay at the model's input size
    return explainer(model, info, method, workers)(x)


def strip_layers(model: Any, info: Any, workers: dict[str, Any]) -> list[str]:
    """The stage outputs the strips show (``cnnviz.explain.cam.strip_layers("stages")``), once per model."""
    from cnnviz.explain.cam import strip_layers as _layers

    if "strip-layers" not in workers:
        workers["strip-layers"] = _layers(model, "stages", tuple(info.input_size))
    return workers["strip-layers"]


def strip_image(model: Any, info: Any, img: np.ndarray, method: str, workers: dict[str, Any]) -> Any:
    """``method``'s CAM of ``img`` at every stage (one forward + one backward): a ``CamStrip`` of one,
    maps ``(1, L, h, w)`` at the model's input size."""
    from cnnviz.explain.cam import compute_cam_strip
    from cnnviz.images import preprocess
    from cnnviz.probe import model_device

    x = preprocess(img, info).to(model_device(model))
    return compute_cam_strip(model, x, strip_layers(model, info, workers), method=method)


def sanity_verdict(model: Any, info: Any, images: Sequence[np.ndarray | Callable[[], np.ndarray]], method: str, seed: int,
                   batch_size: int = 8) -> dict[str, Any]:
    """``cnnviz sanity``'s verdict (default cascade, each image's top-1, ``seed``) of ``method`` on
    ``images`` (``(H, W, 3) uint8`` each, or functions that load one: only a batch is decoded at a
    time), at the model's input size: ``cnnviz.explain.sanity.sanity_verdicts``."""
    import torch

    from cnnviz.explain.sanity import merge, resolve_cascade, sanity_verdicts
    from cnnviz.images import preprocess

    units = resolve_cascade(model, torch.zeros(1, *info.input_size))  # as `cnnviz sanity` derives it
    parts = []
    for i in range(0, len(images), batch_size):
        x = torch.cat([preprocess(img() if callable(img) else img, info) for img in images[i : i + batch_size]])
        parts.append(sanity_verdicts(model, x, [method], info=info, cascade=units, seed=seed, batch_size=batch_size))
    merged = merge(parts)
    return {**merged.methods[0].verdict, "images": merged.n_images, "cascade_steps": len(merged.cascade)}
