"""Checks before any work: the methods, and the ``--layers`` against every model's layer names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cnnviz.errors import LayerError, suggestion
from cnnviz.report.config import ModelSource
from cnnviz.report.context import ModelLayers


def check_layers(models: Sequence[ModelSource], wanted: Sequence[str]) -> None:
    """``LayerError`` (with close matches) for a wanted layer that is in none of ``models``.

    Loads each model once, on the CPU, one at a time; nothing is computed or cached.
    """
    if not wanted:
        return
    from cnnviz.layers import layer_names
    from cnnviz.models import load_model

    seen: list[str] = []
    for src in models:
        model, _ = load_model(src.spec, weights=src.weights, device="cpu")
        seen.extend(n for n in layer_names(model) if n not in seen)
        del model
    for w in wanted:
        if w not in seen:
            raise LayerError(f"--layers {w!r} is in none of the models.{suggestion(w, seen)} "
                             "See `cnnviz layers --model SPEC`.")


def pick_layers(model: Any, wanted: Sequence[str], who: str, note: Callable[[str], None]) -> ModelLayers:
    """The first conv and the chosen layers present in ``model`` (default: a mid-depth spatial conv).

    A wanted layer this model lacks is noted (it is shown for the models that have it).
    """
    from torch import nn

    from cnnviz.layers import layer_names

    names = layer_names(model)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise LayerError(f"{who} has no Conv2d layer: the gallery shows convolutional networks.")
    chosen = [w for w in wanted if w in names]
    missing = [w for w in wanted if w not in names]
    if not chosen:
        spatial = [n for n in convs if max(model.get_submodule(n).kernel_size) > 1] or convs
        chosen = [spatial[len(spatial) // 2]]
    if missing:
        note(f"--layers {', '.join(missing)}: not in {who}; it shows {', '.join(chosen)}.")
    return ModelLayers(names=names, first_conv=convs[0], chosen=chosen)

