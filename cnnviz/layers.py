"""Dotted layer names: list them, resolve them (with close-match hints), describe them."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cnnviz.errors import LayerError, suggestion


@dataclass
class LayerSummary:
    """One row of ``cnnviz layers``."""

    name: str
    type: str
    output_shape: list[int] | None  # (C, H, W) or (N, D) without batch; None if it did not run
    params: int  # parameters including children
    trainable: bool = True

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "output_shape": self.output_shape, "params": self.params}


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


def describe_layers(model: nn.Module, input_size: tuple[int, int, int]) -> list[LayerSummary]:
    """Name, type, output shape (one zero image at ``input_size`` = (C, H, W)) and params of every layer."""
    import torch

    from cnnviz.probe import LayerProbe

    names = layer_names(model)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with LayerProbe(model, names, keep=False) as probe:
        probe.run(torch.zeros(1, *input_size, device=device))
        shapes = dict(probe.shapes)
    modules = dict(model.named_modules())
    rows = []
    for n in names:
        m = modules[n]
        shape = shapes.get(n)
        rows.append(LayerSummary(n, type(m).__name__, list(shape[1:]) if shape else None, sum(p.numel() for p in m.parameters())))
    return rows


def spatial_layers(model: nn.Module, input_size: tuple[int, int, int]) -> list[str]:
    """Layers whose output is a ``(B, C, H, W)`` map with H*W > 1, in forward order."""
    import torch

    from cnnviz.probe import LayerProbe

    names = layer_names(model)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with LayerProbe(model, names, keep=False) as probe:
        probe.run(torch.zeros(1, *input_size, device=device))
        return [n for n in probe.order if len(probe.shapes[n]) == 4 and probe.shapes[n][2] * probe.shapes[n][3] > 1]
