"""The report's one door to the per-image explainers (the Grad-CAM family and the attributions).

``check_methods`` refuses unknown names before any work; ``explain_image`` explains one image.
Until the explainer registry (``cnnviz.explain.methods``) is on main, both map names onto
``cnnviz.explain.cam.compute_cams`` and ``cnnviz.explain.attribute.Attributor`` here, and nowhere
else in the report; at merge they become calls of the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnviz.errors import CnnvizError, suggestion


def method_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(CAM methods, attribution methods)`` the report can draw."""
    from cnnviz.explain.attribute import ATTRIBUTION_METHODS
    from cnnviz.explain.cam import METHODS

    return tuple(METHODS), tuple(ATTRIBUTION_METHODS)


def check_methods(cam_methods: Sequence[str], attr_methods: Sequence[str]) -> None:
    """``CnnvizError`` naming the option (``--cam`` / ``--attribute``) of the first unknown method."""
    cams, attrs = method_names()
    for option, given, known, other, other_option in (("--cam", cam_methods, cams, attrs, "--attribute"),
                                                      ("--attribute", attr_methods, attrs, cams, "--cam")):
        for m in given:
            if m in known:
                continue
            if m in other:
                raise CnnvizError(f"{option} {m!r}: that is not a {option[2:]} method; pass it to {other_option}.")
            raise CnnvizError(f"{option} {m!r} is not a method.{suggestion(m, known)} Methods: {', '.join(known)}.")


def explain_image(model: Any, info: Any, img: np.ndarray, method: str, workers: dict[str, Any]) -> Any:
    """Explain ``img`` ``(H, W, 3) uint8`` with ``method`` for its top-1 class.

    Returns a batch of one with ``maps`` ``(1, h, w)`` in [0, 1] (at the model's input size),
    ``targets`` ``[class]`` and ``probs`` ``(1, num_classes)``. ``workers`` keeps one attribution
    working copy per method for this model (building it costs more than explaining one image).
    """
    from cnnviz.explain.attribute import ATTRIBUTION_METHODS, Attributor
    from cnnviz.explain.cam import compute_cams
    from cnnviz.images import preprocess

    device = next((p.device for p in model.parameters()), "cpu")
    x = preprocess(img, info).to(device)
    if method in ATTRIBUTION_METHODS:
        if method not in workers:
            workers[method] = Attributor(model, method, info=info)
        return workers[method](x)
    return compute_cams(model, x, method=method, info=info)
