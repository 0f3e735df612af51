"""Activation maximization: synthesize the images a class, channel or neuron responds to most.

The image lives in a decorrelated Fourier space with decorrelated colour (``fvparam.ImageParam``),
is seen through random views every step (``fvtransforms.Views``: by default one random zoomed crop
per image, mirrored half the time, with a little pixel noise; sized relative to the canvas, so a
28-px model gets the same relative jitter as a 224-px one), and is optimized by Adam on a
composable ``Objective`` (``objectives``). Several objectives run as one batch: image
``i`` gets the terms with ``batch=i``. Hooks (for channel/neuron objectives) come from
``LayerProbe`` and are gone when this returns; the model's flags are restored.

Example::

    imgs = maximize_classes(model, info, [281, 285, 967], steps=128)   # (3, 224, 224, 3) uint8
    res = maximize(model, info, channel("blocks.4", 7) + diversity("blocks.4"), batch=4)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from cnnviz.errors import CnnvizError, LayerError, TargetError
from cnnviz.explain.fvparam import KINDS, ImageParam, to_uint8
from cnnviz.explain.fvtransforms import VIEW_KINDS, Views, fit_view
from cnnviz.explain.objectives import Ctx, Objective, channel, class_logit, diversity, neuron
from cnnviz.probe import LayerProbe

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
PARAMS = KINDS
TRANSFORMS = VIEW_KINDS
SCHEDULES = ("constant", "cosine")
DEFAULT_LR = 0.1
# cnnviz's default views: crops of 60-100% of the canvas side, no rotation, mirrored half the time,
# noise sd 0.02. Chosen on a tuning draw of classes disjoint from the benchmark's two draws
# (benchmarks/bench_maximize.py; docs/units.md says what the judged numbers were).
DEFAULT_VIEWS = Views(kind="crops", n=1, scale=(0.6, 1.0), shift=0.15, degrees=0.0, flip=True, noise=0.02)


@dataclass
class MaximizeResult:
    """Optimized images and how far each got."""

    images: np.ndarray  # (B, H, W, 3) uint8 at the canvas size
    values: list[float]  # final objective value of each image (on an untransformed view)
    seconds: float
    steps: int
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)  # step -> (B, H, W, 3) uint8


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


def _lr_at(lr: float, schedule: str, step: int, steps: int) -> float:
    """Learning rate of ``step`` (0-based): constant, or cosine from ``lr`` down to ``lr / 10``."""
    if schedule == "cosine":
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps))))
    return lr


def _views(transforms: str | Views, n_views: int | None, view_size: int | None) -> Views:
    if isinstance(transforms, Views):
        v = transforms
    else:
        kind = "lucent" if transforms == "standard" else transforms  # "standard": the name before crops existed
        if kind not in VIEW_KINDS:
            raise CnnvizError(f"--transforms {transforms!r} is not one of {', '.join(TRANSFORMS)}.")
        v = DEFAULT_VIEWS if kind == "crops" else Views(kind=kind, n=1)
    if n_views is not None or view_size is not None:
        v = replace(v, n=v.n if n_views is None else n_views, size=v.size if view_size is None else view_size)
    if v.n < 1:
        raise CnnvizError("views per step must be at least 1.")
    return v


SMALL_INPUT = 64  # px: models that see less get a canvas twice their input (see default_canvas)


def default_canvas(info: "ModelInfo") -> int:  # noqa: F821
    """Canvas side for ``info``'s model: its input height, doubled below ``SMALL_INPUT`` px.

    A 28- or 32-px canvas is too coarse for the random crops: every view is resampled from a handful of
    pixels and the optimization finds pixel-periodic textures. On a twice-as-large canvas each view is an
    antialiased downsample, and a second Fashion-MNIST model recognized the class images about twice as
    often (docs/units.md, "Small-input models").
    """
    h = int(info.input_size[1])
    return 2 * h if h < SMALL_INPUT else h


DEFAULT_BN_PRIOR = 1.0  # chosen on the small-input tuning makers (benchmarks/bench_maximize_small.py)


def batchnorm_fits_data(info: "ModelInfo") -> bool:  # noqa: F821
    """Whether the model's BatchNorm statistics were measured on the data its classes come from: a model
    trained from scratch, or fine-tuned with ``--bn train``. A linear probe or a fine-tune with frozen
    statistics (the default when pretrained) keeps ImageNet's, which would pull a Fashion-MNIST image
    toward ImageNet's statistics; a model loaded by name (``efficientnet_lite0``) has its own data's."""
    if info.weights != "checkpoint":
        return True
    return info.mode == "scratch" or (info.mode in ("ft", "lpft") and info.config.get("bn") == "train")


def default_bn_prior(info: "ModelInfo") -> float:  # noqa: F821
    """The BatchNorm prior's weight for ``info``'s model: ``DEFAULT_BN_PRIOR`` under ``SMALL_INPUT`` px when
    its statistics fit its data (``batchnorm_fits_data``), else 0.

    On 28-32 px checkpoints trained from scratch the prior raised how often other models recognized the
    class images (docs/units.md, "Small-input models").
    """
    small = int(info.input_size[1]) < SMALL_INPUT
    return DEFAULT_BN_PRIOR if small and batchnorm_fits_data(info) else 0.0


def default_base(info: "ModelInfo") -> "np.ndarray | tuple[float, ...] | None":  # noqa: F821
    """What the canvas starts from: the training data's mean image when the checkpoint has one, else its
    mean colour, else None (grey). On Fashion-MNIST the mean image is a garment silhouette on black, and
    other models recognized the class images more often (docs/units.md, "Small-input models")."""
    mean_image = getattr(info, "mean_image", None)
    return mean_image if mean_image is not None else getattr(info, "pixel_mean", None)


def maximize(
    model: nn.Module,
    info: "ModelInfo",  # noqa: F821
    objective: Objective,
    *,
    batch: int = 1,
    steps: int = 128,
    size: int | None = None,
    lr: float = DEFAULT_LR,
    param: str = "fft",
    transforms: str | Views = "crops",
    n_views: int | None = None,
    view_size: int | None = None,
    schedule: str = "constant",
    decay: float = 1.0,
    seed: int = 0,
    progress: Progress | None = None,
    snapshots: Sequence[int] = (),
    base: Sequence[float] | None = None,
    bn_prior: float | None = None,
    bn_groups: str = "image",
    tv: float = 0.0,
    l1: float = 0.0,
) -> MaximizeResult:
    """Optimize ``batch`` images to maximize ``objective`` on ``model``.

    Args:
        model, info: the network and its ``ModelInfo`` (input size, mean/std, channels).
        objective: an ``Objective`` (values ``(B,)`` are summed over images, averaged over views).
        batch: number of images optimized together.
        steps: Adam steps.
        size: canvas side in pixels (default: ``default_canvas``: the model's input height, twice it
            under 64 px); the model always sees views resampled to its own input size (or ``view_size``).
        lr: Adam learning rate (peak, with ``schedule="cosine"``).
        param: ``"fft"`` (decorrelated Fourier + colour), ``"maco"`` (fixed natural magnitude,
            learned phase), ``"pixel"`` or ``"pyramid"`` (pixel grids at halving resolutions, summed).
        transforms: ``"crops"`` (random zoomed crops; the default), ``"lucent"`` (lucent's pad /
            jitter / scale / rotate, scaled to the canvas), ``"none"``, or a ``Views``.
        n_views, view_size: override the views per image per step and the side the model sees.
        schedule: ``"constant"`` or ``"cosine"`` learning rate.
        decay: spectrum exponent of the fft / maco parameterization.
        seed: seeds the initial image and every random view.
        progress: called as ``progress(step, steps)`` after each step.
        snapshots: also keep the images after these step counts (``result.snapshots[k]``); with a
            constant schedule they equal shorter runs, so one run serves several step budgets.
        bn_prior: weight of the BatchNorm-statistics prior (``bnprior``: each image's features kept near
            the statistics the model's BatchNorms stored for its training data); default
            ``default_bn_prior(info)``. 0 turns it off; models without BatchNorm ignore it.
        bn_groups: ``"image"`` (each image's own statistics, over its views and positions) or
            ``"batch"`` (pooled over the whole batch, as DeepInversion does).
        tv, l1: weights of a total-variation penalty and of an L1 pull toward the starting image (both
            measured on small models and not adopted: they lowered recognition; docs/units.md).
        base: what the canvas starts from, in [0, 1]: one colour per channel, or an image ``(C, h, w)``
            resized to the canvas (default: ``default_base``: the training data's mean image or colour
            recorded in a checkpoint; grey 0.5 when unknown).

    Returns:
        ``MaximizeResult`` with ``images (B, size, size, 3) uint8``.
    """
    if bn_groups not in ("image", "batch"):
        raise CnnvizError(f"bn_groups {bn_groups!r} is not 'image' or 'batch'.")
    if param not in PARAMS:
        raise CnnvizError(f"--param {param!r} is not one of {', '.join(PARAMS)}.")
    if schedule not in SCHEDULES:
        raise CnnvizError(f"schedule {schedule!r} is not one of {', '.join(SCHEDULES)}.")
    from cnnviz import limits

    steps = limits.check_int("steps", steps, limits.STEPS)
    batch = limits.check_int("batch", batch, limits.BATCH_SIZE)
    if size is not None:
        size = limits.check_int("size", size, limits.IMAGE_SIDE)
    lr = limits.check_float("lr", lr, 0.0, 10.0, lo_open=True)
    views = _views(transforms, n_views, view_size)
    device = _model_device(model)
    c, mh, mw = info.input_size
    side = size or default_canvas(info)
    ch, cw = side, round(side * mw / mh)
    gen = torch.Generator().manual_seed(int(seed))
    img_param = ImageParam(batch, c, ch, cw, kind=param, decay=decay, generator=gen, device=device,
                           base=base if base is not None else default_base(info))
    opt = _Adam(img_param.raw, lr)
    mean = torch.tensor(info.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=device).view(1, -1, 1, 1)
    layers = sorted(objective.layers)
    keep = {int(k) for k in snapshots if 0 < int(k) <= steps}
    shots: dict[int, np.ndarray] = {}
    t0 = time.perf_counter()

    def forward(probe: LayerProbe, view: torch.Tensor) -> torch.Tensor:
        """Objective values ``(B,)`` averaged over the ``n`` views of each image (view-major rows)."""
        out = probe.run((view - mean) / std)
        logits = out if isinstance(out, torch.Tensor) else None
        n = view.shape[0] // batch
        total = None
        for j in range(n):
            rows = slice(j * batch, (j + 1) * batch)
            ctx = Ctx(logits[rows] if logits is not None else None, {k: a[rows] for k, a in probe.activations.items()}, batch)
            v = objective(ctx)
            total = v if total is None else total + v
        return total / n

    from cnnviz.explain.bnprior import BatchNormPrior

    if bn_prior is None:
        bn_prior = default_bn_prior(info)
    bn_prior = limits.check_float("bn_prior", bn_prior, 0.0, 1e6)
    tv, l1 = limits.check_float("tv", tv, 0.0, 1e6), limits.check_float("l1", l1, 0.0, 1e6)
    # hooks only when asked for: the statistics cost a reduction per BatchNorm per step
    prior = BatchNormPrior(model, groups=batch if bn_groups == "image" else 1, enabled=bn_prior > 0)
    use_prior = bool(prior.layers)
    with LayerProbe(model, layers, grad=True, stop_after=not objective.needs_logits) as probe, prior:
        for step in range(steps):
            opt.lr = _lr_at(lr, schedule, step, steps)
            img = img_param()
            values = forward(probe, views(img, (mh, mw), gen))
            loss = -values.sum()
            if use_prior:
                loss = loss + bn_prior * prior.loss().sum() * (1 if bn_groups == "image" else batch)
            prior.reset()
            if tv > 0:
                loss = loss + tv * batch * ((img[..., 1:, :] - img[..., :-1, :]).abs().mean() + (img[..., 1:] - img[..., :-1]).abs().mean())
            if l1 > 0:
                loss = loss + l1 * batch * (img - torch.sigmoid(img_param.offset)).abs().mean()
            loss.backward()
            opt.step()
            if step + 1 in keep and step + 1 < steps:
                with torch.no_grad():
                    shots[step + 1] = to_uint8(img_param())
            if progress is not None:
                progress(step + 1, steps)
        with torch.no_grad():
            final = img_param()
        final_values = forward(probe, fit_view(final, views.out_hw((mh, mw)))).detach().float().cpu().tolist()
        prior.reset()
    seconds = time.perf_counter() - t0
    log.info("maximize: %d images x %d steps x %d views in %.1fs", batch, steps, views.n, seconds)
    images = to_uint8(final)
    if steps in keep:
        shots[steps] = images
    return MaximizeResult(images, final_values, seconds, steps, shots)


def check_unit(model: nn.Module, info: "ModelInfo", layer: str, k: int,  # noqa: F821
               neuron_yx: tuple[int, int] | None = None) -> tuple[int, ...]:
    """``TargetError`` unless channel ``k`` (and position ``neuron_yx``) exist in ``layer``'s output.

    Runs one zero image at the model's input size; returns the layer's output shape without batch.
    """
    from cnnviz.layers import resolve_layer

    resolve_layer(model, layer)
    with LayerProbe(model, [layer], keep=False) as probe:
        probe.run(torch.zeros(1, *info.input_size, device=_model_device(model)))
        shape = tuple(probe.shapes.get(layer, ()))[1:]
    if not shape:
        raise LayerError(f"layer {layer!r} did not run on a {tuple(info.input_size)} input.")
    if not 0 <= int(k) < shape[0]:
        raise TargetError(f"channel {k} is out of range: {layer!r} has {shape[0]} channels (0-{shape[0] - 1}).")
    if neuron_yx is not None:
        if len(shape) != 3:
            raise TargetError(f"--neuron needs a spatial layer; {layer!r} outputs {list(shape)}.")
        y, x = neuron_yx
        if not (0 <= y < shape[1] and 0 <= x < shape[2]):
            raise TargetError(f"neuron {y},{x} is out of range: {layer!r} is {shape[1]}x{shape[2]} (Y 0-{shape[1] - 1}, X 0-{shape[2] - 1}).")
    return shape


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


__all__ = ["MaximizeResult", "maximize", "default_canvas", "default_base", "default_bn_prior", "DEFAULT_BN_PRIOR", "SMALL_INPUT", "maximize_classes", "class_objective", "unit_objective", "default_diversity_layer",
           "check_unit", "DEFAULT_VIEWS", "DEFAULT_LR", "Views",
           "class_logit", "channel", "neuron", "diversity"]
