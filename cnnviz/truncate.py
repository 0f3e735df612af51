"""A network cut after one of its layers, with a new linear head on that layer's pooled features.

``cnnviz train --probe-layer blocks.4`` trains a linear probe on an *earlier* layer's features instead
of the pre-logits: every module that runs after ``blocks.4`` becomes ``nn.Identity`` (so it neither
computes nor holds weights), the model's own global pooling stays, and the classifier becomes a
``Linear(D, classes)`` with D the cut layer's channels. The result is the same model class with the
same layer names up to the cut, so checkpoints load (``arch_kwargs["probe_layer"]`` tells
``cnnviz.models.build_model`` to cut again before loading the weights) and every explainer works.

A cut is possible after a module whose ancestors below the root are all ``nn.Sequential``: a stage
(``blocks.4``, ``layer3``, ``features.5``), a block inside one (``blocks.4.1``, ``layer3.0``), or a
layer of a flat list (simplecnn's ``features.6``, its first max-pool).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cnnviz.errors import LayerError, suggestion


def _has_params(m: nn.Module) -> bool:
    return next(m.parameters(), None) is not None


def cut_points(model: nn.Module, head: str) -> list[str]:
    """Layer names the network can be cut after (stages and blocks), input to output; ``head`` is the
    dotted name of its classifier (``cnnviz.models.head_name``), never a cut point."""
    head_root = head.split(".")[0]
    out = []
    for name, m in model.named_modules():
        parts = name.split(".")
        if not name or parts[0] == head_root or (len(parts) == 1 and not _has_params(m)):
            continue
        if all(isinstance(model.get_submodule(".".join(parts[:k])), nn.Sequential) for k in range(1, len(parts))):
            out.append(name)
    return out


def truncate_at(model: nn.Module, layer: str, num_classes: int, input_size: Sequence[int], head: str) -> int:
    """Cut ``model`` in place after ``layer`` and give it a fresh ``num_classes``-way linear head.

    ``input_size`` is ``(C, H, W)`` (one dummy forward finds the pooled feature size D); ``head`` is the
    classifier's dotted name (``cnnviz.models.head_name``). Returns D.
    Raises ``LayerError`` for a layer the network cannot be cut after.
    """
    points = cut_points(model, head)
    if layer not in points:
        shown = ", ".join(p for p in points if p.count(".") <= 1)[:400]
        raise LayerError(f"--probe-layer {layer!r}: the network can be cut only after a stage or a block "
                         f"({shown}).{suggestion(layer, points)}")
    parts = layer.split(".")
    # 1. inside each Sequential on the path, everything after the branch that leads to the layer
    for k in range(len(parts) - 1, 0, -1):
        seq = model.get_submodule(".".join(parts[:k]))
        names = [n for n, _ in seq.named_children()]
        for n in names[names.index(parts[k]) + 1:]:
            setattr(seq, n, nn.Identity())
    # 2. at the root, modules registered after the layer's branch: parameterized ones go (conv_head,
    #    bn2, layer4...); pooling/activation/flatten/dropout stay; the head keeps only its final Linear
    roots = [n for n, _ in model.named_children()]
    head_root = head.split(".")[0]
    for n in roots[roots.index(parts[0]) + 1:]:
        child = getattr(model, n)
        if n == head_root:
            _strip_head(child, head[len(n) + 1:] if "." in head else "")
        elif _has_params(child):
            setattr(model, n, nn.Identity())
    # 3. the new head on the pooled features of the cut layer
    _set(model, head, nn.Identity())
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters())
        with torch.no_grad():
            d = int(model(torch.zeros(1, *[int(v) for v in input_size], device=p.device, dtype=p.dtype)).flatten(1).shape[1])
    finally:
        model.train(was_training)
    _set(model, head, nn.Linear(d, int(num_classes)).to(p.device))
    for attr in ("num_features", "head_hidden_size"):  # timm's reset_classifier builds Linear(num_features, n)
        if isinstance(getattr(model, attr, None), int):
            setattr(model, attr, d)
    return d


def _strip_head(container: nn.Module, linear: str) -> None:
    """Parameterized modules of a head container other than its final Linear become Identity (a norm
    sized for the old features, a hidden layer of an MLP head)."""
    if not linear:
        return
    for name, m in list(container.named_modules()):
        if name and name != linear and not linear.startswith(name + ".") and any(True for _ in m.parameters(recurse=False)):
            _set(container, name, nn.Identity())


def _set(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attr, module)
