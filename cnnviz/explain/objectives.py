"""Composable feature-visualization objectives.

An ``Objective`` maps what one forward pass produced (logits and probed layer activations, for a
batch of B images) to a ``(B,)`` tensor of values to *maximize*. Objectives add, subtract and scale::

    obj = class_logit(281, batch=0) + class_logit(285, batch=1)     # two images in one batch
    obj = channel("blocks.4", 7) - 0.5 * channel("blocks.4", 9)      # excite 7, suppress 9
    obj = class_logit(281) + diversity("blocks.4", 1e-2)            # several different cats

``batch`` restricts a term to one image of the batch (others get 0), so several objectives are
optimized together in one batched forward/backward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class Ctx:
    """What the objective sees: ``logits (B, K)`` (None when the forward was cut short) and activations."""

    logits: torch.Tensor | None
    acts: dict[str, torch.Tensor]
    batch: int


@dataclass
class Objective:
    """``fn(ctx) -> (B,)`` values to maximize; ``layers`` it reads; whether it needs the logits."""

    fn: Callable[[Ctx], torch.Tensor]
    name: str
    layers: frozenset[str] = field(default_factory=frozenset)
    needs_logits: bool = False

    def __call__(self, ctx: Ctx) -> torch.Tensor:
        return self.fn(ctx)

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, (int, float)):
            return Objective(lambda c: self(c) + other, f"{self.name} + {other}", self.layers, self.needs_logits)
        return Objective(lambda c: self(c) + other(c), f"{self.name} + {other.name}", self.layers | other.layers,
                         self.needs_logits or other.needs_logits)

    __radd__ = __add__

    def __neg__(self) -> Objective:
        return Objective(lambda c: -self(c), f"-{self.name}", self.layers, self.needs_logits)

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-other)

    def __mul__(self, w: float) -> Objective:
        return Objective(lambda c: w * self(c), f"{w} * {self.name}", self.layers, self.needs_logits)

    __rmul__ = __mul__


def _only(values: torch.Tensor, batch: int | None) -> torch.Tensor:
    """``values (B,)`` with everything but image ``batch`` zeroed (all kept when None)."""
    if batch is None:
        return values
    mask = torch.zeros_like(values)
    mask[batch] = 1.0
    return values * mask


def _act(ctx: Ctx, layer: str) -> torch.Tensor:
    a = ctx.acts[layer]
    if a.dim() == 3:  # tokens (B, N, D) -> channels first
        a = a.transpose(1, 2)
    return a


def class_logit(c: int, batch: int | None = None, *, mode: str = "logit") -> Objective:
    """The logit of class ``c`` (``mode="logit"``), or its log-softmax (``"logprob"``): the latter
    also pushes the other classes down, which makes images more specific to ``c``."""

    def fn(ctx: Ctx) -> torch.Tensor:
        if ctx.logits is None:
            raise RuntimeError("class objective needs the logits")
        z = ctx.logits.float()
        v = z[:, c] if mode == "logit" else torch.log_softmax(z, dim=1)[:, c]
        return _only(v, batch)

    return Objective(fn, f"class {c}" + (f"[{batch}]" if batch is not None else ""), frozenset(), True)


def channel(layer: str, k: int, batch: int | None = None) -> Objective:
    """Mean activation of channel ``k`` of ``layer`` over all positions."""

    def fn(ctx: Ctx) -> torch.Tensor:
        a = _act(ctx, layer)
        return _only(a[:, k].reshape(a.shape[0], -1).mean(1), batch)

    return Objective(fn, f"{layer}:{k}", frozenset([layer]))


def neuron(layer: str, k: int, y: int | None = None, x: int | None = None, batch: int | None = None) -> Objective:
    """Activation of channel ``k`` at one position (the centre when ``y``/``x`` are None)."""

    def fn(ctx: Ctx) -> torch.Tensor:
        a = _act(ctx, layer)
        if a.dim() == 2:
            return _only(a[:, k], batch)
        yy = a.shape[2] // 2 if y is None else min(y, a.shape[2] - 1)
        xx = a.shape[3] // 2 if x is None else min(x, a.shape[3] - 1)
        return _only(a[:, k, yy, xx], batch)

    return Objective(fn, f"{layer}:{k}@{y},{x}", frozenset([layer]))


def diversity(layer: str, weight: float = 1e-2, group: Sequence[int] | None = None) -> Objective:
    """Push images apart: minus ``weight`` times each image's mean cosine similarity of its Gram
    matrix at ``layer`` with the other images' (lucid's diversity term), among the batch indices
    in ``group`` (default: the whole batch)."""

    def fn(ctx: Ctx) -> torch.Tensor:
        a = _act(ctx, layer).float()
        b, c = a.shape[:2]
        idx = list(range(b)) if group is None else list(group)
        out = torch.zeros(b, device=a.device)
        if len(idx) < 2:
            return out
        f = a[idx].reshape(len(idx), c, -1)
        gram = torch.nn.functional.normalize((f @ f.transpose(1, 2)).reshape(len(idx), -1), dim=1)
        sim = gram @ gram.T
        off = (sim.sum(1) - sim.diagonal()) / (len(idx) - 1)
        return out.index_add(0, torch.tensor(idx, device=a.device), -weight * off)

    return Objective(fn, f"diversity({layer})", frozenset([layer]))
