"""Which layers to compare by default: a few evenly spaced stage outputs plus the pre-logits features.

CKA over every module of a network is slow and mostly redundant (a conv, its BatchNorm and its ReLU
carry nearly the same representation). The default picks *stage outputs* -- the top-level children,
with a top-level ``Sequential``/``ModuleList`` (``features``, ``blocks``, ``layer1``) expanded one level --
keeping only units whose output is not immediately rewritten elementwise by the next unit (so a
conv followed by its BatchNorm/ReLU is represented by the ReLU), then ``n`` evenly spaced ones, then
the pre-logits vector (the input of the classifier head).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from cnnviz.errors import LayerError
from cnnviz.probe import forward_shapes  # noqa: F401  (the trace lives in probe; imported here by compare.core)

#: modules that rewrite their input elementwise: the unit before them is an intermediate value
_FOLLOWERS = (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.LeakyReLU,
              nn.ELU, nn.Sigmoid, nn.Tanh, nn.Mish, nn.Dropout, nn.Dropout2d, nn.Identity, nn.GroupNorm, nn.LayerNorm)


def _units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    out = []
    for name, child in model.named_children():
        kids = list(child.named_children())
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(kids) > 1:
            out.extend((f"{name}.{k}", m) for k, m in kids)
        else:
            out.append((name, child))
    return out


def stage_layers(model: nn.Module, order: Sequence[str], shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Stage outputs with a spatial ``(B, C, H, W)`` map (H*W > 1), in forward order."""
    pos = {n: i for i, n in enumerate(order)}
    units = [(n, m) for n, m in _units(model) if n in pos]
    units.sort(key=lambda t: pos[t[0]])
    keep = []
    for i, (name, m) in enumerate(units):
        s = shapes[name]
        if len(s) != 4 or s[2] * s[3] <= 1:
            continue
        nxt = units[i + 1][1] if i + 1 < len(units) else None
        is_leaf = not list(m.children())
        if is_leaf and nxt is not None and isinstance(nxt, _FOLLOWERS) and not isinstance(m, _FOLLOWERS[1:]):
            continue  # a conv/BN immediately rewritten by the next unit
        keep.append(name)
    return keep


def prelogits_layer(model: nn.Module, order: Sequence[str], shapes: dict[str, tuple[int, ...]]) -> str | None:
    """The module just before the head whose output has ``head.in_features`` values per example (outermost, earliest)."""
    from cnnviz.models import head_name

    try:
        head = head_name(model)
    except Exception:  # noqa: BLE001 - no linear head: no pre-logits layer
        return None
    want = model.get_submodule(head).in_features
    if head not in order:
        return None
    run: list[str] = []
    for name in reversed(order[: order.index(head)]):
        if head.startswith(name + "."):
            continue  # a container of the head
        if int(np.prod(shapes[name][1:])) != want:
            break
        run.append(name)
    # the outermost module of the run (global_pool rather than global_pool.pool), earliest on ties
    return min(reversed(run), key=lambda n: n.count(".")) if run else None


def default_layers(model: nn.Module, info: Any, n: int = 5) -> list[str]:
    """``n`` evenly spaced stage outputs plus the pre-logits features (see the module docstring)."""
    order, shapes = forward_shapes(model, tuple(info.input_size))
    stages = stage_layers(model, order, shapes)
    if not stages:  # unusual model: fall back to any spatial layer
        stages = [o for o in order if len(shapes[o]) == 4 and shapes[o][2] * shapes[o][3] > 1]
    if len(stages) > n:
        idx = np.unique(np.round(np.linspace(0, len(stages) - 1, n)).astype(int))
        stages = [stages[i] for i in idx]
    pre = prelogits_layer(model, order, shapes)
    out = stages + ([pre] if pre and pre not in stages else [])
    if not out:
        raise LayerError(f"could not pick layers to compare in {type(model).__name__}: pass --layers.")
    return out
