"""Class activation maps: Grad-CAM and its family, batched, hook-safe, at the cost floor.

Gradient-weighted methods (gradcam, gradcam++, xgradcam, layercam, hirescam, gradcam-elementwise)
are computed here through ``LayerProbe``: parameters are frozen and the target layer's output is
re-rooted as an autograd leaf, so the backward pass runs from the logits down to that layer only
and never touches parameter ``.grad`` -- one forward plus a short backward, the cost floor.
The math is pytorch-grad-cam's (the field's library; ``tests/test_cam.py`` checks correlation
>= 0.99 against it). The other methods (eigencam, scorecam, ablationcam, fullgrad, ...) call
pytorch-grad-cam itself inside ``cnnviz.probe.frozen``, which fixes its rough edges: hooks are
always released (also on error), parameters stay frozen (no ``.grad`` filled), the model's
training flags are restored, exceptions are not swallowed (its ``with`` block eats
``IndexError``) and its ``print`` warnings go to ``logging`` instead of stdout (which carries
``--json``).

Example::

    model, info = load_model("efficientnet_lite0")
    x = preprocess(load_image("cat.jpg"), info)          # (1, 3, 224, 224)
    cams = compute_cams(model, x, info=info)             # top-1 class, auto layer
    cams.maps[0]                                         # (224, 224) float32 in [0, 1]
"""

from __future__ import annotations

import contextlib
import io
import logging
import weakref
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from cnnviz.errors import LayerError, TargetError
from cnnviz.explain.methods import CAM_KINDS, get_method, method_names
from cnnviz.explain.result import Explanation, MethodError  # noqa: F401  (MethodError: re-exported)
from cnnviz.probe import LayerProbe, frozen, hook_count, model_device, output_layout, to_nchw  # noqa: F401  (hook_count: re-exported)

log = logging.getLogger(__name__)

#: computed natively (LayerProbe, backward stops at the layer) -- see cnnviz.explain.methods
GRADIENT_METHODS = tuple(method_names(["cam"]))
#: computed by pytorch-grad-cam inside cnnviz.probe.frozen (name -> class name in pytorch_grad_cam)
LIBRARY_METHODS = {
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
    "fullgrad": "FullGrad",
    "kpcacam": "KPCA_CAM",
}
METHODS = tuple(method_names(CAM_KINDS))
_LIBRARY_USES_GRADIENTS = {"eigengradcam", "fullgrad"}

#: the result of ``compute_cams``: the one result type of every explainer
CamBatch = Explanation
_DEFAULT_LAYERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {(input size, modules): layer}


# -- layers and reshapes -------------------------------------------------------------------------
def is_vit(model: nn.Module) -> bool:
    """True for timm-style vision transformers (``patch_embed`` + ``blocks`` of token tokens)."""
    return hasattr(model, "patch_embed") and hasattr(model, "blocks") and hasattr(model, "num_prefix_tokens")


def default_cam_layer(model: nn.Module, info: "ModelInfo | None" = None) -> str:  # noqa: F821
    """The layer CAMs use when none is given: the last spatial one.

    CNNs (timm, torchvision, simplecnn): the last module whose output is a ``(B, C, h, w)`` map with
    h*w > 1 (``bn2`` for EfficientNet-Lite, ``layer4`` for ResNet, ``features`` for simplecnn).
    Channels-last models (timm's Swin): the last ``(B, h, w, C)`` map (``norm``).
    ViT/DeiT: the last block's first norm (``blocks.11.norm1``), whose tokens are reshaped to a grid.
    """
    if is_vit(model):
        return f"blocks.{len(model.blocks) - 1}.norm1"
    from cnnviz.probe import spatial_layers

    size = tuple(info.input_size) if info is not None else (3, 224, 224)
    # one traced forward per model and size (a notebook calls explain() again and again); the key
    # includes the module count, so a model whose layers were swapped is traced afresh
    key = (size, sum(1 for _ in model.modules()))
    cached = _DEFAULT_LAYERS.get(model, {})
    if key in cached:
        return cached[key]
    found = spatial_layers(model, size, layouts=("NCHW", "NHWC"))
    if not found:
        raise LayerError(f"{type(model).__name__} has no layer with a spatial (B, C, H, W) output: pass --layer.")
    _DEFAULT_LAYERS.setdefault(model, {})[key] = found[-1]
    return found[-1]


def token_reshape(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """For a ViT: ``(B, N, D)`` tokens -> ``(B, D, h, w)`` (prefix tokens dropped); None for CNNs."""
    if not is_vit(model):
        return None
    prefix = int(getattr(model, "num_prefix_tokens", 1))

    def reshape(t: torch.Tensor) -> torch.Tensor:
        if t.dim() != 3:
            return t
        n = t.shape[1] - prefix
        s = int(round(n**0.5))
        if s * s != n:
            raise LayerError(f"{n} patch tokens do not form a square grid; cannot draw a CAM for this layer.")
        return t[:, prefix:, :].reshape(t.shape[0], s, s, t.shape[2]).permute(0, 3, 1, 2)

    return reshape


def layer_reshape(model: nn.Module, layer: str, input_hw: Sequence[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``layer``'s output (or its gradient) -> ``(B, C, h, w)``.

    ViT tokens become a grid (``token_reshape``); channels-last maps ``(B, h, w, C)`` (timm's Swin)
    are permuted, told apart from conv maps by ``cnnviz.probe.output_layout``. Also pytorch-grad-cam's
    ``reshape_transform``, so its CAMs work on the same layers.
    """
    tokens = token_reshape(model)
    module = model.get_submodule(layer)
    hw = (int(input_hw[0]), int(input_hw[1]))

    def reshape(t: torch.Tensor) -> torch.Tensor:
        if tokens is not None and t.dim() == 3:
            return tokens(t)
        if t.dim() == 4:
            return to_nchw(t, output_layout(t.shape, hw, module))
        return t

    return reshape


def _layout(model: nn.Module, layer: str, x: torch.Tensor) -> str | None:
    """``output_layout`` of ``layer`` for input ``x`` (one traced zero image of x's size)."""
    from cnnviz.probe import trace_shapes

    t = trace_shapes(model, tuple(x.shape[1:]), [layer])
    return t.layout(layer, model)


def _as_maps(t: torch.Tensor, layer: str, reshape: Callable | None) -> torch.Tensor:
    if reshape is not None:
        t = reshape(t)
    if t.dim() != 4:
        raise LayerError(f"layer {layer!r} outputs shape {tuple(t.shape)}, not a spatial map (B, C, H, W); "
                         "pick a convolutional layer (see `cnnviz layers`).")
    return t


# -- the native gradient methods ------------------------------------------------------------------
def cam_from_gradients(acts: torch.Tensor, grads: torch.Tensor, method: str) -> torch.Tensor:
    """pytorch-grad-cam's formulas on torch tensors: ``(B, K, h, w)`` x2 -> ``(B, h, w)`` before ReLU."""
    a, g = acts.float(), grads.float()
    if method == "gradcam":
        w = g.mean(dim=(2, 3))
        return (w[:, :, None, None] * a).sum(1)
    if method == "gradcam++":
        g2 = g * g
        g3 = g2 * g
        sum_a = a.sum(dim=(2, 3), keepdim=True)
        aij = g2 / (2 * g2 + sum_a * g3 + 1e-6)
        aij = torch.where(g != 0, aij, torch.zeros_like(aij))
        w = (g.clamp_min(0) * aij).sum(dim=(2, 3))
        return (w[:, :, None, None] * a).sum(1)
    if method == "xgradcam":
        sum_a = a.sum(dim=(2, 3), keepdim=True)
        w = (g * a / (sum_a + 1e-7)).sum(dim=(2, 3))
        return (w[:, :, None, None] * a).sum(1)
    if method == "layercam":
        return (g.clamp_min(0) * a).sum(1)
    if method == "hirescam":
        return (g * a).sum(1)
    if method == "gradcam-elementwise":
        return (g * a).clamp_min(0).sum(1)
    raise MethodError(f"unknown gradient CAM method {method!r}")


def normalize_maps(cam: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """ReLU, per-map min-max to [0, 1] (as pytorch-grad-cam), bilinear to ``size``: ``(B, H, W)`` float32."""
    cam = cam.float().clamp_min(0)
    lo = cam.flatten(1).min(1).values[:, None, None]
    cam = cam - lo
    hi = cam.flatten(1).max(1).values[:, None, None]
    cam = cam / (hi + 1e-7)
    if tuple(cam.shape[-2:]) != tuple(size):
        cam = torch.nn.functional.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return cam.clamp(0, 1).detach().cpu().numpy().astype(np.float32, copy=False)


def _check_targets(targets: Sequence[int] | None, b: int, num_classes: int) -> list[int] | None:
    if targets is None:
        return None
    t = [int(v) for v in targets]
    if len(t) == 1 and b > 1:
        t = t * b
    if len(t) != b:
        raise TargetError(f"{len(t)} targets for a batch of {b} images")
    for v in t:
        if not 0 <= v < num_classes:
            raise TargetError(f"class index {v} is out of range: the model has {num_classes} classes (0-{num_classes - 1}).")
    return t


def compute_cams(
    model: nn.Module,
    x: torch.Tensor,
    *,
    layer: str | None = None,
    method: str = "gradcam",
    targets: Sequence[int] | None = None,
    info: "ModelInfo | None" = None,  # noqa: F821
    batch_size: int = 32,
) -> Explanation:
    """CAMs of ``x`` ``(B, C, H, W)`` for ``targets`` (None: each image's top-1 class).

    ``layer`` defaults to ``default_cam_layer``. Returns an ``Explanation`` with maps ``(B, H, W)``
    in [0, 1] at x's size. ``batch_size``: masks per forward for scorecam / ablationcam. The model
    is left as found (hooks removed, training flags and ``requires_grad`` restored, no parameter
    ``.grad`` written). ``cnnviz.explain.methods.Explainer`` is the general entry point.
    """
    get_method(method, CAM_KINDS)
    if x.dim() != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
    layer = layer or default_cam_layer(model, info)
    x = x.to(model_device(model))
    if method in GRADIENT_METHODS:
        return _gradient_cams(model, x, layer, method, targets)
    return _library_cams(model, x, layer, method, targets, batch_size)


def _gradient_cams(model: nn.Module, x: torch.Tensor, layer: str, method: str, targets: Sequence[int] | None) -> Explanation:
    with LayerProbe(model, [layer], grad=True) as probe:
        reshape = layer_reshape(model, layer, x.shape[-2:])
        logits = probe.run(x)
        if layer not in probe.activations:
            raise LayerError(f"layer {layer!r} did not run in the forward pass; pick another (see `cnnviz layers`).")
        t = _check_targets(targets, x.shape[0], logits.shape[1])
        t = logits.argmax(1).tolist() if t is None else t
        idx = torch.tensor(t, device=logits.device)[:, None]
        score = logits.gather(1, idx).sum()  # batch items are independent in eval mode: one backward for all
        grads = probe.gradients(score)[layer]
        acts = probe.activations[layer]
        with torch.no_grad():
            a = _as_maps(acts.detach(), layer, reshape)
            g = _as_maps(grads, layer, reshape)
            maps = normalize_maps(cam_from_gradients(a, g, method), tuple(x.shape[-2:]))
            probs = torch.softmax(logits.detach().float(), 1).cpu().numpy()
        probe.clear()
    return Explanation(maps=maps, targets=list(t), probs=probs, method=method, layer=layer)


# -- pytorch-grad-cam, with its rough edges filed off -------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pytorch-grad-cam's prints (stdout, which carries --json) and tqdm bars (stderr) go to the log."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            yield
    finally:
        if out.getvalue().strip():
            log.debug("pytorch-grad-cam said: %s", out.getvalue().strip())


def _library_cams(model: nn.Module, x: torch.Tensor, layer: str, method: str, targets: Sequence[int] | None,
                  batch_size: int = 32) -> Explanation:
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from cnnviz.layers import resolve_layer

    module = resolve_layer(model, layer)
    vit = is_vit(model)
    reshape = layer_reshape(model, layer, x.shape[-2:])
    cls = getattr(pytorch_grad_cam, LIBRARY_METHODS[method])
    with frozen(model), _quiet():
        with torch.no_grad():
            logits = model(x).float()
        t = _check_targets(targets, x.shape[0], logits.shape[1])
        t = logits.argmax(1).tolist() if t is None else t
        kwargs: dict = {}
        if method == "ablationcam" and (vit or _layout(model, layer, x) != "NCHW"):
            # ablates along the last axis: the channels of ViT tokens and of channels-last maps (Swin)
            kwargs["ablation_layer"] = pytorch_grad_cam.AblationLayerVit()
        # FullGrad hooks every conv/BN bias layer (4-D maps), never the token layer
        rt = None if method == "fullgrad" else reshape
        cam = cls(model=model, target_layers=[module], reshape_transform=rt, **kwargs)
        try:
            if method in ("scorecam", "ablationcam"):
                cam.batch_size = int(batch_size)
            inp = x.detach().clone()
            if method in _LIBRARY_USES_GRADIENTS:
                inp.requires_grad_(True)  # params are frozen: the graph must start at the input
            maps = cam(input_tensor=inp, targets=[ClassifierOutputTarget(c) for c in t])
        finally:
            cam.activations_and_grads.release()  # its __exit__ would also swallow IndexError; we never use it
        probs = torch.softmax(logits, 1).cpu().numpy()
    maps = np.clip(np.nan_to_num(np.asarray(maps, dtype=np.float32)), 0, 1)
    return Explanation(maps=maps, targets=list(t), probs=probs, method=method, layer=layer)

