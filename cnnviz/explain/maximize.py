"""Activation maximization: synthesize the images a class, channel or neuron responds to most.

The image lives in a decorrelated Fourier space with decorrelated colour (``fvparam.ImageParam``),
is seen through random pad/jitter/scale/rotate views every step (``fvparam.random_views``, scaled
to the canvas so small-input models get pixel-sized jitter instead of a blur), and is optimized by
Adam on a composable ``Objective`` (``objectives``). Several objectives run as one batch: image
``i`` gets the terms with ``batch=i``. Hooks (for channel/neuron objectives) come from
``LayerProbe`` and are gone when this returns; the model's flags are restored.

Example::

    imgs = maximize_classes(model, info, [281, 285, 967], steps=128)   # (3, 224, 224, 3) uint8
    res = maximize(model, info, channel("blocks.4", 7) + diversity("blocks.4"), batch=4)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnviz.errors import CnnvizError, LayerError, TargetError
from cnnviz.explain.fvparam import ImageParam, fit_view, random_views, to_uint8
from cnnviz.explain.objectives import Ctx, Objective, channel, class_logit, diversity, neuron
from cnnviz.probe import LayerProbe

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
PARAMS = ("fft", "pixel")
TRANSFORMS = ("standard", "none")


@dataclass
class MaximizeResult:
    """Optimized images and how far each got."""

    images: np.ndarray  # (B, H, W, 3) uint8 at the canvas size
    values: list[float]  # final objective value of each image (on an untransformed view)
    seconds: float
    steps: int


class _Adam:
    """Plain Adam on one tensor. torch.optim's first ``step()`` imports torch._dynamo (5-10 s on a
    busy CPU), which would dominate a short optimization; the update itself is four lines."""

    def __init__(self, p: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.p, self.lr, self.b1, self.b2, self.eps, self.t = p, lr, betas[0], betas[1], eps, 0
        self.m, self.v = torch.zeros_like(p), torch.zeros_like(p)

    @torch.no_grad()
    def step(self) -> None:
        g = self.p.grad
        if g is None:
            return
        self.t += 1
        self.m.mul_(self.b1).add_(g, alpha=1 - self.b1)
        self.v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        denom = (self.v / (1 - self.b2**self.t)).sqrt_().add_(self.eps)
        self.p.addcdiv_(self.m, denom, value=-self.lr / (1 - self.b1**self.t))
        self.p.grad = None


def _model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def maximize(
    model: nn.Module,
    info: "ModelInfo",  # noqa: F821
    objective: Objective,
    *,
    batch: int = 1,
    steps: int = 128,
    size: int | None = None,
    lr: float = 0.05,
    param: str = "fft",
    transforms: str = "standard",
    seed: int = 0,
    progress: Progress | None = None,
    views: dict | None = None,
) -> MaximizeResult:
    """Optimize ``batch`` images to maximize ``objective`` on ``model``.

    Args:
        model, info: the network and its ``ModelInfo`` (input size, mean/std, channels).
        objective: an ``Objective`` (values ``(B,)`` are summed).
        batch: number of images optimized together.
        steps: Adam steps.
        size: canvas side in pixels (default: the model's input height); the model always sees
            views resampled to its own input size.
        lr: Adam learning rate.
        param: ``"fft"`` (decorrelated Fourier + colour) or ``"pixel"``.
        transforms: ``"standard"`` (random views) or ``"none"``.
        seed: seeds the initial image and every random view.
        progress: called as ``progress(step, steps)`` after each step.
        views: overrides for ``fvparam.random_views`` (``strength``, ``scale``, ``degrees``...).

    Returns:
        ``MaximizeResult`` with ``images (B, size, size, 3) uint8``.
    """
    if param not in PARAMS:
        raise CnnvizError(f"--param {param!r} is not one of {', '.join(PARAMS)}.")
    if transforms not in TRANSFORMS:
        raise CnnvizError(f"--transforms {transforms!r} is not one of {', '.join(TRANSFORMS)}.")
    if steps < 1 or batch < 1:
        raise CnnvizError("steps and batch must be at least 1.")
    device = _model_device(model)
    c, mh, mw = info.input_size
    ch, cw = (size, round(size * mw / mh)) if size else (mh, mw)
    gen = torch.Generator().manual_seed(int(seed))
    img_param = ImageParam(batch, c, ch, cw, kind=param, generator=gen, device=device)
    opt = _Adam(img_param.raw, lr)
    mean = torch.tensor(info.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=device).view(1, -1, 1, 1)
    layers = sorted(objective.layers)
    t0 = time.perf_counter()

    def forward(probe: LayerProbe, view: torch.Tensor) -> torch.Tensor:
        logits = probe.run((view - mean) / std)
        return objective(Ctx(logits if isinstance(logits, torch.Tensor) else None, probe.activations, batch))

    with LayerProbe(model, layers, grad=True, stop_after=not objective.needs_logits) as probe:
        for step in range(steps):
            img = img_param()
            if transforms == "standard":
                view = random_views(img, (mh, mw), gen, **(views or {}))
            else:
                view = fit_view(img, (mh, mw))
            values = forward(probe, view)
            (-values.sum()).backward()
            opt.step()
            if progress is not None:
                progress(step + 1, steps)
        with torch.no_grad():
            final = img_param()
        final_values = forward(probe, fit_view(final, (mh, mw))).detach().float().cpu().tolist()
    seconds = time.perf_counter() - t0
    log.info("maximize: %d images x %d steps in %.1fs", batch, steps, seconds)
    return MaximizeResult(to_uint8(final), final_values, seconds, steps)


def default_diversity_layer(model: nn.Module, info: "ModelInfo") -> str:  # noqa: F821
    """A spatial layer about two thirds of the way through: where diversity is judged by default."""
    from cnnviz.probe import spatial_layers

    names = spatial_layers(model, info.input_size)
    if not names:
        raise LayerError("the model has no spatial layer to measure diversity on; give --layer.")
    return names[min(len(names) - 1, (2 * len(names)) // 3)]


def class_objective(classes: Sequence[int], mode: str = "logit") -> Objective:
    """Image ``i`` maximizes class ``classes[i]``."""
    obj: Objective | None = None
    for i, k in enumerate(classes):
        term = class_logit(int(k), batch=i, mode=mode)
        obj = term if obj is None else obj + term
    if obj is None:
        raise TargetError("no classes given.")
    return obj


def maximize_classes(
    model: nn.Module,
    info: "ModelInfo",  # noqa: F821
    classes: Sequence[int],
    *,
    steps: int = 128,
    size: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    mode: str = "logit",
    **kwargs,
) -> np.ndarray:
    """One class-maximizing image per entry of ``classes``, optimized as one batch.

    Returns ``(N, H, W, 3) uint8``. ``mode`` is the class objective (see ``class_logit``): the raw
    logit (default) keeps climbing and gives images another network recognizes more often than
    log-softmax, which saturates once the class wins (docs/bench/units.md).
    """
    for k in classes:
        if not 0 <= int(k) < info.num_classes:
            raise TargetError(f"class index {k} is out of range: the model has {info.num_classes} classes.")
    res = maximize(model, info, class_objective(classes, mode), batch=len(classes), steps=steps, size=size, seed=seed,
                   progress=progress, **kwargs)
    return res.images


def unit_objective(layer: str, k: int, neuron_yx: tuple[int, int] | None = None) -> Objective:
    """Channel ``k`` of ``layer`` (mean over positions), or one neuron of it at ``neuron_yx``."""
    if neuron_yx is None:
        return channel(layer, k)
    return neuron(layer, k, *neuron_yx)


__all__ = ["MaximizeResult", "maximize", "maximize_classes", "class_objective", "unit_objective", "default_diversity_layer",
           "class_logit", "channel", "neuron", "diversity"]
