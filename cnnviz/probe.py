"""LayerProbe: the ONE place cnnviz registers hooks.

Hooks exist only inside the ``with`` block and are removed in ``finally``; the model's per-module
``training`` flags and every parameter's ``requires_grad`` are restored on exit, success or not.

Gradients go through ``torch.autograd.grad`` on the captured activations, never ``.backward()``:
parameters are frozen inside the probe (``freeze_params=True``), so nothing accumulates in
``.grad`` and autograd walks back only from the output to the earliest probed layer. When the
activation at that layer has no graph (frozen params, plain input) the probe re-roots it as a
leaf that requires grad: the backward then stops right there, which is the cost floor for CAMs.

Example::

    with LayerProbe(model, ["features.3"]) as probe:
        logits = probe.run(x)                       # (B, num_classes)
        acts = probe.activations["features.3"]      # (B, C, H, W)

    with LayerProbe(model, ["conv_head"], grad=True) as probe:
        logits = probe.run(x)
        grads = probe.gradients(logits[:, 281].sum())["conv_head"]   # (B, C, H, W)
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cnnviz.layers import resolve_layer


class _StopForward(Exception):
    """Raised from a hook to skip the rest of the forward pass once every probed layer has fired."""


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def _replace_first(output: Any, new: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        return new
    return type(output)([new, *output[1:]]) if isinstance(output, (tuple, list)) else output


class LayerProbe:
    """Capture the outputs (and gradients) of named layers during forward passes.

    Args:
        model: the network; left exactly as found when the context exits.
        layers: dotted names as ``named_modules()`` prints them (validated with close-match hints).
        grad: keep the graph so ``gradients()`` works; otherwise ``run`` uses ``torch.no_grad``.
        eval_mode: put the model in eval mode inside the context (BN/dropout deterministic).
        freeze_params: set ``requires_grad=False`` on all parameters inside the context.
        stop_after: end the forward pass as soon as every probed layer has produced its output
            (``run`` then returns None) -- for activation extraction that needs no logits.
        keep: store activation tensors (False records only shapes and order).
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        *,
        grad: bool = False,
        eval_mode: bool = True,
        freeze_params: bool = True,
        stop_after: bool = False,
        keep: bool = True,
    ) -> None:
        self.model = model
        self.layer_names = list(dict.fromkeys(layers))
        self.grad = grad
        self.eval_mode = eval_mode
        self.freeze_params = freeze_params
        self.stop_after = stop_after
        self.keep = keep
        self.activations: dict[str, torch.Tensor] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.order: list[str] = []  # layers in the order they fired in the last forward
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._saved_training: dict[nn.Module, bool] = {}
        self._saved_requires_grad: dict[nn.Parameter, bool] = {}
        named = dict(model.named_modules())  # once: resolve_layer per name would be O(layers^2)
        self._modules = {name: named[name] if name and name in named else resolve_layer(model, name) for name in self.layer_names}

    # -- context -----------------------------------------------------------------------------
    def __enter__(self) -> LayerProbe:
        try:
            self._saved_training = {m: m.training for m in self.model.modules()}
            self._saved_requires_grad = {p: p.requires_grad for p in self.model.parameters()}
            if self.eval_mode:
                self.model.eval()
            if self.freeze_params:
                for p in self.model.parameters():
                    p.requires_grad_(False)
            for name, module in self._modules.items():
                self._handles.append(module.register_forward_hook(self._make_hook(name)))
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        try:
            for h in self._handles:
                h.remove()
        finally:
            self._handles.clear()
            for m, flag in self._saved_training.items():
                m.training = flag
            for p, flag in self._saved_requires_grad.items():
                p.requires_grad_(flag)

    # -- hooks -------------------------------------------------------------------------------
    def _make_hook(self, name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            t = _first_tensor(output)
            if t is None:
                return None
            if name not in self.order:
                self.order.append(name)
            self.shapes[name] = tuple(t.shape)
            replaced = None
            if self.grad and torch.is_grad_enabled():
                # Re-root as a leaf when nothing upstream needs grad, so backward stops here.
                stored = t if t.requires_grad else t.detach().requires_grad_(True)
                # Downstream gets a copy: an in-place op after this layer (ReLU(inplace=True))
                # must not overwrite what we stored, nor trip autograd's version check.
                replaced = _replace_first(output, stored.clone())
            else:
                stored = t.detach().clone()  # clone: an in-place op downstream would rewrite it
            if self.keep:
                self.activations[name] = stored
            if self.stop_after and all(n in self.shapes for n in self.layer_names):
                raise _StopForward
            return replaced

        return hook

    # -- use ---------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget captured activations (call between batches to keep memory flat)."""
        self.activations.clear()
        self.shapes.clear()
        self.order.clear()

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Forward ``model(*args)`` with fresh captures; no_grad unless ``grad``; None if stopped early."""
        self.clear()
        ctx = contextlib.nullcontext() if self.grad else torch.no_grad()
        with ctx:
            try:
                return self.model(*args, **kwargs)
            except _StopForward:
                return None

    def gradients(self, scalar: torch.Tensor, layers: Sequence[str] | None = None, retain_graph: bool = False) -> dict[str, torch.Tensor]:
        """d scalar / d activation for each probed layer (same shapes as the activations)."""
        if not self.grad:
            raise RuntimeError("LayerProbe(grad=True) is needed for gradients()")
        names = list(layers or self.layer_names)
        acts = [self.activations[n] for n in names]
        grads = torch.autograd.grad(scalar, acts, retain_graph=retain_graph, allow_unused=True)
        return {n: (g if g is not None else torch.zeros_like(a)) for n, a, g in zip(names, acts, grads)}

    @property
    def active(self) -> bool:
        """True while hooks are registered (inside the context)."""
        return bool(self._handles)
