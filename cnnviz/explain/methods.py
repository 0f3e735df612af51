"""The registry of explanation methods and the one way to run any of them.

Every method is registered once, here, with its kind, where it comes from, the options it takes
(with defaults) and what it needs. Names are checked in one place (``get_method``: one error
class, ``MethodError``, with a close-match suggestion); every method returns one type,
``Explanation`` (maps ``(B, H, W)`` in [0, 1], targets, probs, method, layer, and signed ``raw``
attributions where the method has them). The CLI (gradcam, attribute, faithfulness),
faithfulness scoring and the report go through ``Explainer`` / ``explain``.

Kinds:
    ``cam``          Grad-CAM family computed by cnnviz (one forward + a backward to the layer only).
    ``library-cam``  pytorch-grad-cam's other CAMs, run inside ``cnnviz.probe.frozen``.
    ``attribution``  captum's pixel attributions on a private working copy of the model.
    ``baseline``     ``random``: the map any method should beat in ``cnnviz faithfulness``.

Example (the captum / torchcam idiom: build once, call on batches)::

    cam = Explainer(model, "gradcam", info=info)            # layer: the last spatial one
    e = cam(x)                                              # x: (B, C, H, W) tensor
    e = cam([img1, img2], target="tabby")                   # or (H, W, 3) uint8 images
    e.maps, e.targets, e.probs                              # (B, H, W) in [0, 1], [int], (B, K)

This module imports no torch at load time (names, kinds and options are plain data), so
``cnnviz gradcam --help`` and the gallery can list methods cheaply.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz.errors import TargetError, close_matches
from cnnviz.explain.result import Explanation, MethodError

log = logging.getLogger(__name__)

KINDS = ("cam", "library-cam", "attribution", "baseline")
CAM_KINDS = ("cam", "library-cam")


@dataclass(frozen=True)
class MethodSpec:
    """One registered method.

    Attributes:
        name: what ``--method`` and ``explain(..., method)`` take.
        kind: one of ``KINDS``.
        source: who computes it: ``cnnviz``, ``pytorch-grad-cam`` or ``captum``.
        summary: one line for help texts and the docs.
        options: the keyword options it takes, with their defaults.
        layer: it explains at a spatial layer (``layer=`` / ``--layer``; default the last spatial one).
        gradients: it needs a backward pass through the model.
        signed: ``Explanation.raw`` holds its signed ``(B, C, H, W)`` attributions.
        cost: what one batch costs, roughly.
    """

    name: str
    kind: str
    source: str
    summary: str
    options: dict[str, Any] = field(default_factory=dict)
    layer: bool = False
    gradients: bool = True
    signed: bool = False
    cost: str = ""


REGISTRY: dict[str, MethodSpec] = {}


def _register(spec: MethodSpec) -> None:
    if spec.name in REGISTRY:
        raise ValueError(f"method {spec.name!r} registered twice")
    if spec.kind not in KINDS:
        raise ValueError(f"unknown kind {spec.kind!r}")
    REGISTRY[spec.name] = spec


_FLOOR = "1 forward + a backward from the logits to the layer only"
for _name, _summary in (
    ("gradcam", "Grad-CAM: channel weights = mean gradient (Selvaraju et al. 2017)"),
    ("gradcam++", "Grad-CAM++: second-order channel weights, better for several instances"),
    ("xgradcam", "XGrad-CAM: activation-weighted gradient average (axiom-based)"),
    ("layercam", "LayerCAM: positive gradient x activation, per position (finer maps at early layers)"),
    ("hirescam", "HiResCAM: gradient x activation summed over channels (no averaging)"),
    ("gradcam-elementwise", "Grad-CAM elementwise: ReLU(gradient x activation) summed over channels"),
):
    _register(MethodSpec(_name, "cam", "cnnviz", _summary, layer=True, cost=_FLOOR))

# name -> (summary, options, uses gradients, cost)
_LIBRARY: dict[str, tuple[str, dict[str, Any], bool, str]] = {
    "eigencam": ("EigenCAM: first principal component of the activations (no gradients, class-agnostic)", {}, False, "1 forward"),
    "eigengradcam": ("EigenGradCAM: first principal component of gradient x activation", {}, True, "1 forward + full backward"),
    "scorecam": ("Score-CAM: each channel's mask scored by a forward pass", {"batch_size": 32}, False, "1 forward per channel"),
    "ablationcam": ("Ablation-CAM: the score drop when each channel is zeroed", {"batch_size": 32}, False, "1 forward per channel"),
    "fullgrad": ("FullGrad: input gradient plus every bias gradient, summed over layers", {}, True, "1 forward + full backward"),
    "kpcacam": ("KPCA-CAM: kernel PCA of the activations", {}, False, "1 forward"),
}
for _name, (_summary, _opts, _grad, _cost) in _LIBRARY.items():
    _register(MethodSpec(_name, "library-cam", "pytorch-grad-cam", _summary, dict(_opts), layer=True, gradients=_grad, cost=_cost))

_register(MethodSpec("saliency", "attribution", "captum", "Saliency: the input gradient (Simonyan et al. 2014)",
                     signed=True, cost="1 forward + full backward"))
_register(MethodSpec("integrated-gradients", "attribution", "captum",
                     "Integrated Gradients: gradients averaged on the path from a black image (Sundararajan et al. 2017)",
                     {"n_steps": 32, "internal_batch_size": 16}, signed=True, cost="n_steps forwards + backwards"))
_register(MethodSpec("smoothgrad", "attribution", "captum", "SmoothGrad: input gradients averaged over noisy copies (seeded)",
                     {"nt_samples": 16, "stdev": 0.15, "internal_batch_size": 16, "seed": 0}, signed=True,
                     cost="nt_samples forwards + backwards"))
_register(MethodSpec("occlusion", "attribution", "captum", "Occlusion: the score drop when a window is blacked out",
                     {"window": None, "stride": None, "perturbations_per_eval": 16}, gradients=False, signed=True,
                     cost="1 forward per window position"))
_register(MethodSpec("guided-backprop", "attribution", "captum", "Guided backpropagation: only positive gradients through ReLUs",
                     signed=True, cost="1 forward + full backward"))
_register(MethodSpec("guided-gradcam", "attribution", "captum", "Guided Grad-CAM: guided backprop x Grad-CAM at the layer",
                     layer=True, signed=True, cost="2 forwards + 2 full backwards"))
_register(MethodSpec("deeplift", "attribution", "captum", "DeepLift: rescale rule from a black-image baseline (ReLU6 split exactly)",
                     signed=True, cost="2 forwards + full backward"))
_register(MethodSpec("random", "baseline", "cnnviz", "Random: a seeded uniform map, the reference any method should beat",
                     {"seed": 0}, gradients=False, cost="1 forward (for the targets)"))
del _name, _summary, _opts, _grad, _cost

# options that must be positive whole numbers when given (None keeps the method's own default)
_POSITIVE_INTS = {"n_steps", "internal_batch_size", "nt_samples", "perturbations_per_eval", "batch_size", "window", "stride"}


def method_names(kinds: Sequence[str] | None = None) -> list[str]:
    """Registered names (of ``kinds`` only, if given), in registry order."""
    return [n for n, s in REGISTRY.items() if kinds is None or s.kind in kinds]


def get_method(name: str, kinds: Sequence[str] | None = None) -> MethodSpec:
    """The spec of ``name``; ``MethodError`` (with close matches, and where it does belong) otherwise."""
    allowed = method_names(kinds)
    spec = REGISTRY.get(name)
    if spec is not None and name in allowed:
        return spec
    if spec is not None:  # a real method, used where it does not belong
        where = "cnnviz attribute" if spec.kind == "attribution" else "cnnviz gradcam" if spec.kind in CAM_KINDS else "cnnviz faithfulness"
        raise MethodError(f"{name!r} is a {spec.kind} method ({spec.source}), not one of: {', '.join(allowed)}. "
                          f"Use it with `{where} --method {name}` or cnnviz.explain(..., {name!r}).")
    found = close_matches(str(name), allowed, 3)
    hint = f" Did you mean: {', '.join(found)}?" if found else ""
    raise MethodError(f"unknown method {name!r}.{hint} Choose from: {', '.join(allowed)}.")


def check_options(spec: MethodSpec, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` merged over ``spec``'s defaults; an option it does not take is a ``MethodError``."""
    extra = sorted(set(options) - set(spec.options))
    if extra:
        takes = ", ".join(spec.options) if spec.options else "no options"
        raise MethodError(f"{spec.name} does not take {', '.join(extra)} (it takes {takes}).")
    out = {**spec.options, **options}
    for k, v in out.items():
        if k in _POSITIVE_INTS and v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise MethodError(f"{spec.name}: {k} must be a whole number >= 1, got {v!r}.")
    if "stdev" in out and not (isinstance(out["stdev"], (int, float)) and 0 <= float(out["stdev"]) <= 10):
        raise MethodError(f"{spec.name}: stdev is a fraction of the input range in [0, 10], got {out['stdev']!r}.")
    return out


def describe_methods(kinds: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One plain dict per method (name, kind, source, summary, options, layer, gradients, signed, cost)."""
    return [{"name": s.name, "kind": s.kind, "source": s.source, "summary": s.summary, "options": dict(s.options),
             "layer": s.layer, "gradients": s.gradients, "signed": s.signed, "cost": s.cost}
            for s in REGISTRY.values() if kinds is None or s.kind in kinds]


# -- maps back at the images' size -----------------------------------------------------------------
def map_at(m: np.ndarray, hw: Sequence[int]) -> np.ndarray:
    """A ``(h, w)`` map at ``hw = (H, W)``: bilinear, clipped to [0, 1], float32.

    The one resize that ``Explanation.maps`` (for images), ``cnnviz gradcam --save-raw`` and the
    overlays use, so a notebook and the CLI give the same numbers.
    """
    from cnnviz.images import resize_map

    hw = (int(hw[0]), int(hw[1]))
    m = np.asarray(m, dtype=np.float32)
    if tuple(m.shape) != hw:
        m = resize_map(m, hw)
    return np.clip(m, 0.0, 1.0).astype(np.float32, copy=False)


# -- inputs and targets --------------------------------------------------------------------------
Inputs = Any  # (B, C, H, W) / (C, H, W) tensor, (H, W, 3) uint8 array, (B, H, W, 3) array, a PIL image, a path, or a list of them


def _as_images(inputs: Inputs) -> list[np.ndarray] | None:
    """The inputs as a list of ``(H, W, 3) uint8`` images, or None when they are a tensor."""
    if hasattr(inputs, "dim") and hasattr(inputs, "dtype"):  # a torch.Tensor (without importing torch)
        return None
    if isinstance(inputs, (str, os.PathLike)) or hasattr(inputs, "__array_interface__"):  # a path, a PIL image
        inputs = [inputs]
    if isinstance(inputs, np.ndarray):
        if inputs.ndim == 4:
            return [np.asarray(a) for a in inputs]
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise MethodError(f"explain() takes a (B, C, H, W) tensor, an (H, W, 3) image, a path or a list of them; "
                          f"got {type(inputs).__name__}{' (empty)' if isinstance(inputs, (list, tuple)) else ''}.")
    from cnnviz.images import load_image

    out = []
    for a in inputs:
        if isinstance(a, (str, os.PathLike)):
            a = load_image(a)
        a = np.asarray(a)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise MethodError(f"an image must be (H, W, 3) uint8 (cnnviz.load_image gives one); got shape {a.shape}.")
        if a.dtype != np.uint8:
            if np.issubdtype(a.dtype, np.floating) and float(np.nanmax(a)) <= 1.0:
                a = (np.clip(np.nan_to_num(a), 0, 1) * 255 + 0.5).astype(np.uint8)
            else:
                raise MethodError(f"an image must be uint8 (0-255) or float in [0, 1]; got {a.dtype} up to {np.nanmax(a)}.")
        out.append(np.ascontiguousarray(a[..., :3]))
    return out


def _targets(target: Any, b: int, info: Any) -> list[int] | None:
    """``target`` (None, an index, a class name, or one per input) -> a list of B indices or None."""
    if target is None:
        return None
    if hasattr(target, "tolist"):  # numpy / torch scalars and arrays
        target = target.tolist()
    items = list(target) if isinstance(target, (list, tuple)) else [target]
    out = []
    for t in items:
        if isinstance(t, float) and t.is_integer():
            t = int(t)
        if isinstance(t, str):
            if info is None:
                raise TargetError(f"target {t!r} is a class name: pass info= (from cnnviz.load_model) to look it up.")
            out.append(info.class_index(t))
        elif isinstance(t, int) and not isinstance(t, bool):
            out.append(info.class_index(t) if info is not None else t)  # the range is checked either way
        else:
            raise TargetError(f"target {t!r} is not a class index or a class name.")
    if len(out) == 1 and b > 1:
        out = out * b
    if len(out) != b:
        raise TargetError(f"{len(out)} targets for a batch of {b} inputs: give one, or one per input.")
    return out


# -- the explainer -------------------------------------------------------------------------------
class Explainer:
    """Any registered method, set up once for a model and called on batches.

    Args:
        model: the network (``nn.Module``); left as found after every call.
        method: a registered name (``method_names()``); default ``gradcam``.
        info: the model's ``ModelInfo`` (from ``cnnviz.load_model``): needed to preprocess images,
            to look up class names, and for the black-image baselines.
        layer: the spatial layer of CAMs and guided Grad-CAM (default: the last spatial one;
            a ViT's last ``norm1``). A layer whose output is not a spatial map is refused here.
        size: ``(H, W)`` images are resized to for the model (default: ``info.input_size``).
        **options: the method's own options (``get_method(method).options``), e.g.
            ``n_steps=16`` for integrated gradients or ``window=16`` for occlusion.
    """

    def __init__(self, model: Any, method: str = "gradcam", *, info: Any = None, layer: str | None = None,
                 size: Sequence[int] | None = None, **options: Any) -> None:
        self.spec = get_method(method)
        self.method = method
        self.options = check_options(self.spec, options)
        self.model, self.info = model, info
        self.size = (int(size[0]), int(size[1])) if size is not None else (tuple(info.input_size[1:]) if info is not None else None)
        self.layer: str | None = None
        if info is not None and self.size is not None and tuple(self.size) != tuple(info.input_size[1:]):
            from cnnviz.probe import check_input_size

            check_input_size(model, (info.input_size[0], *self.size))  # a size of the user's: refuse it before work
        if self.spec.layer:
            self.layer = self._layer(layer)
        elif layer is not None:
            log.debug("%s takes no layer; %r ignored", method, layer)
        if self.spec.kind == "attribution":
            if self.size is not None:
                self._check_window(min(self.size))
            from cnnviz.explain.attribute import Attributor

            # one private working copy of the model per Explainer, reused for every batch
            self._attributor = Attributor(model, method, info=info, layer=self.layer, **self.options)

    def _layer(self, layer: str | None) -> str:
        from cnnviz.explain.cam import default_cam_layer, is_vit
        from cnnviz.probe import check_spatial_layer

        c = self.info.input_size[0] if self.info is not None else 3
        size = (c, *(self.size or (224, 224)))
        if layer is None:
            info = self.info
            if info is not None and self.size is not None and tuple(self.size) != tuple(info.input_size[1:]):
                from dataclasses import replace

                info = replace(info, input_size=size)
            return default_cam_layer(self.model, info)
        if self.info is not None or self.size is not None:  # refuse a non-spatial layer before any work
            check_spatial_layer(self.model, layer, size, tokens_ok=is_vit(self.model))
        else:
            from cnnviz.layers import resolve_layer

            resolve_layer(self.model, layer)
        return layer

    def _check_window(self, side: int) -> None:
        """Occlusion's window and stride fit in the input (a 100000 px window would allocate ~40 GB)."""
        for k in ("window", "stride"):
            v = self.options.get(k)
            if v is not None and v > side:
                raise MethodError(f"occlusion {k} {v} is larger than the input side {side} px: use at most {side}.")

    def __call__(self, inputs: Inputs, target: Any = None) -> Explanation:
        """Explain ``inputs`` for ``target`` (None: each input's top-1 class; an index, a class
        name, or one per input). Returns an ``Explanation``; see ``explain`` for the input forms."""
        import torch

        images = _as_images(inputs)
        if images is None:
            x = inputs if inputs.dim() == 4 else inputs.unsqueeze(0)
            if x.dim() != 4:
                raise MethodError(f"a tensor input must be (B, C, H, W) or (C, H, W); got {tuple(inputs.shape)}.")
        else:
            if self.info is None:
                raise MethodError("explaining images needs info= (the ModelInfo from cnnviz.load_model) for their "
                                  "size and normalization; or pass a ready (B, C, H, W) tensor.")
            from cnnviz.images import preprocess

            x = torch.cat([preprocess(a, self.info, self.size) for a in images])
        if self.spec.kind == "attribution":
            self._check_window(int(min(x.shape[-2:])))
        t = _targets(target, x.shape[0], self.info)
        e = self._run(x, t)
        if self.info is not None:
            names = list(self.info.class_names)
            e.target_names = [names[i] if 0 <= i < len(names) else str(i) for i in e.targets]
        if images is not None:
            sizes = [tuple(a.shape[:2]) for a in images]
            e.image_sizes = sizes  # type: ignore[assignment]
            if len(set(sizes)) == 1:
                e.maps = np.stack([map_at(m, sizes[0]) for m in e.maps])
        return e

    attribute = __call__  # captum's spelling: explainer.attribute(x, target=3)

    def _run(self, x: Any, targets: list[int] | None) -> Explanation:
        kind = self.spec.kind
        if kind in CAM_KINDS:
            from cnnviz.explain.cam import compute_cams

            return compute_cams(self.model, x, layer=self.layer, method=self.method, targets=targets, info=self.info,
                                **self.options)
        if kind == "attribution":
            return self._attributor(x, targets)
        return _random(self.model, x, targets, int(self.options["seed"]))

    def __repr__(self) -> str:
        layer = f", layer={self.layer!r}" if self.layer else ""
        return f"Explainer({self.method!r}{layer}, {self.spec.kind} from {self.spec.source})"


def _random(model: Any, x: Any, targets: list[int] | None, seed: int) -> Explanation:
    """The baseline: a seeded uniform random map per input, with the model's own targets and probs."""
    import torch

    from cnnviz.explain.cam import _check_targets
    from cnnviz.probe import frozen, model_device

    with frozen(model), torch.no_grad():
        logits = model(x.to(model_device(model))).float()
    t = _check_targets(targets, x.shape[0], logits.shape[1])
    t = logits.argmax(1).tolist() if t is None else t
    b, _, h, w = x.shape
    maps = np.random.default_rng(seed).random((b, h, w), dtype=np.float32)
    return Explanation(maps=maps, targets=list(t), probs=torch.softmax(logits, 1).cpu().numpy(), method="random")


def explain(model: Any, inputs: Inputs, method: str = "gradcam", *, info: Any = None, layer: str | None = None,
            target: Any = None, size: Sequence[int] | None = None, **options: Any) -> Explanation:
    """Explain what ``model`` sees in ``inputs`` with any registered ``method``.

    Args:
        model, info: from ``cnnviz.load_model(spec)`` -- a timm / torchvision name, a ``ckpt.pt``.
        inputs: an ``(H, W, 3) uint8`` image (``cnnviz.load_image``), a PIL image, an image
            path, a list of those, or a ready ``(B, C, H, W)`` tensor (then ``info`` is optional).
        method: ``gradcam`` (default) or any name of ``cnnviz.list_methods()``.
        layer: CAM layer (default: the last spatial one). target: class index or name, one per
            input, or None for each input's top-1 class. size: the model's input ``(H, W)``.
        **options: the method's options, e.g. ``n_steps=16`` (integrated gradients).

    Returns:
        ``Explanation``: ``maps`` ``(B, H, W)`` float32 in [0, 1] at the images' size (at the
        tensor's size for tensor inputs), ``targets``, ``probs``, ``method``, ``layer``, ``raw``.

    Example::

        model, info = cnnviz.load_model("efficientnet_lite0")
        e = cnnviz.explain(model, cnnviz.load_image("cat.jpg"), "gradcam", info=info)
        cnnviz.overlay(img, e.maps[0])
    """
    return Explainer(model, method, info=info, layer=layer, size=size, **options)(inputs, target=target)
