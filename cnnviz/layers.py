"""Dotted layer names: list them and resolve them (with close-match hints).

Shapes, layouts and forward order come from tracing the model, which lives in ``cnnviz.probe``
(``describe_layers``, ``spatial_layers``, ``trace_shapes``); this module never runs a model.
"""

from __future__ import annotations

from torch import nn

from cnnviz.errors import LayerError, suggestion


def layer_names(model: nn.Module) -> list[str]:
    """Every dotted module name (``named_modules()`` order), without the root."""
    return [n for n, _ in model.named_modules() if n]


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; ``LayerError`` listing close names if there is none."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    names = [n for n in modules if n]
    raise LayerError(f"no layer named {name!r}.{suggestion(name, names)} Run `cnnviz layers` to list them.")
