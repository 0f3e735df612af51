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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz.errors import close_matches
from cnnviz.explain.inputs import Inputs, check_targets, map_at, names_of, resolve_targets, to_batch  # noqa: F401  (re-exported)
from cnnviz.explain.result import CamStrip, Explanation, MethodError

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
        multi_layer: it fuses maps of several layers (``layer=`` takes a list or ``"stages"``;
            default the stage outputs ``cnnviz compare`` uses).
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
    multi_layer: bool = False


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
_register(MethodSpec("layercam-fused", "cam", "cnnviz",
                     "LayerCAM fused over several layers: tanh-scaled per-layer maps, elementwise max (Jiang et al. 2021)",
                     {"gamma": 2.0}, layer=True, multi_layer=True,
                     cost="1 forward + one backward from the logits to the shallowest layer"))

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
_register(MethodSpec("edges", "baseline", "cnnviz",
                     "Edges: Sobel gradient magnitude of the input, a model-independent edge detector (Adebayo et al. 2018)",
                     gradients=False, cost="1 forward (for the targets)"))
del _name, _summary, _opts, _grad, _cost

# options that must be positive whole numbers when given (None keeps the method's own default)
_POSITIVE_INTS = {"n_steps", "internal_batch_size", "nt_samples", "perturbations_per_eval", "batch_size", "window", "stride"}


def method_names(kinds: Sequence[str] | None = None) -> list[str]:
    """Registered names (of ``kinds`` only, if given), in registry order."""
    return [n for n, s in REGISTRY.items() if kinds is None or s.kind in kinds]


def get_method(name: str, kinds: Sequence[str] | None = None, *, option: str | None = None,
               uses: Mapping[str, str] | None = None) -> MethodSpec:
    """The spec of ``name``; ``MethodError`` (with close matches, and where it does belong) otherwise.

    The one place a method name is checked. ``kinds`` limits the names allowed here; ``option``
    (e.g. ``"--cam"``) starts the message with the setting that was given; ``uses`` maps a kind to
    where that kind is accepted instead (``{"attribution": "--attribute"}``), for the hint.
    """
    allowed = method_names(kinds)
    spec = REGISTRY.get(name)
    if spec is not None and name in allowed:
        return spec
    head = f"{option} {name!r}" if option else f"{name!r}"
    if spec is not None:  # a real method, used where it does not belong
        if uses and spec.kind in uses:
            raise MethodError(f"{head}: that is {_a(spec.kind)} method ({spec.source}), not one of: {', '.join(allowed)}; "
                              f"pass it to {uses[spec.kind]}.")
        where = "cnnviz attribute" if spec.kind == "attribution" else "cnnviz gradcam" if spec.kind in CAM_KINDS else "cnnviz faithfulness"
        raise MethodError(f"{head} is {_a(spec.kind)} method ({spec.source}), not one of: {', '.join(allowed)}. "
                          f"Use it with `{where} --method {name}` or cnnviz.explain(..., {name!r}).")
    found = close_matches(str(name), allowed, 3)
    hint = f" Did you mean: {', '.join(found)}?" if found else ""
    what = f"{head} is not a method" if option else f"unknown method {name!r}"
    raise MethodError(f"{what}.{hint} Choose from: {', '.join(allowed)}.")


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def check_method_list(names: Sequence[str] | str, kinds: Sequence[str] | None = None, *, option: str | None = None,
                      uses: Mapping[str, str] | None = None, allow_empty: bool = False) -> list[str]:
    """Names (a list, or one comma-separated string) stripped, de-duplicated in order, each checked
    by ``get_method``; an empty list is a ``MethodError`` unless ``allow_empty``."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out = list(dict.fromkeys(str(m).strip() for m in items if m is not None and str(m).strip()))
    if not out and not allow_empty:
        what = option or "methods"
        raise MethodError(f"{what} is empty: name at least one of {', '.join(method_names(kinds))}.")
    for m in out:
        get_method(m, kinds, option=option, uses=uses)
    return out


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
    if "gamma" in out and not (isinstance(out["gamma"], (int, float)) and not isinstance(out["gamma"], bool)
                               and 0 < float(out["gamma"]) <= 100):
        raise MethodError(f"{spec.name}: gamma must be a number in (0, 100], got {out['gamma']!r}.")
    if "stdev" in out and not (isinstance(out["stdev"], (int, float)) and 0 <= float(out["stdev"]) <= 10):
        raise MethodError(f"{spec.name}: stdev is a fraction of the input range in [0, 10], got {out['stdev']!r}.")
    return out


def describe_methods(kinds: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One plain dict per method (name, kind, source, summary, options, layer, gradients, signed, cost)."""
    return [{"name": s.name, "kind": s.kind, "source": s.source, "summary": s.summary, "options": dict(s.options),
             "layer": s.layer, "gradients": s.gradients, "signed": s.signed, "cost": s.cost, "multi_layer": s.multi_layer}
            for s in REGISTRY.values() if kinds is None or s.kind in kinds]


# -- the explainer -------------------------------------------------------------------------------
LayerSpec = Any  # a layer name, "stages", a comma-separated string or a list of names


def _layer_list(layer: LayerSpec) -> list[str] | str | None:
    """``"a,b"`` / ``["a", "b"]`` -> a list; ``"stages"`` and None stay as they are; one name -> that name."""
    if layer is None or isinstance(layer, (list, tuple)):
        return None if layer is None else [str(v).strip() for v in layer if str(v).strip()]
    layer = str(layer)
    if layer == "stages":
        return layer
    return [v.strip() for v in layer.split(",") if v.strip()] if "," in layer else layer


class Explainer:
    """Any registered method, set up once for a model and called on batches.

    Args:
        model: the network (``nn.Module``); left as found after every call.
        method: a registered name (``method_names()``); default ``gradcam``.
        info: the model's ``ModelInfo`` (from ``cnnviz.load_model``): needed to preprocess images,
            to look up class names, and for the black-image baselines.
        layer: the spatial layer of CAMs and guided Grad-CAM (default: the last spatial one;
            a ViT's last ``norm1``). A layer whose output is not a spatial map is refused here.
            Methods that fuse several layers (``layercam-fused``) take a list, a comma-separated
            string or ``"stages"`` (the default: the stage outputs ``cnnviz compare`` uses). For
            one map per layer use ``cam_strip``.
        size: ``(H, W)`` images are resized to for the model (default: ``info.input_size``).
        **options: the method's own options (``get_method(method).options``), e.g.
            ``n_steps=16`` for integrated gradients or ``window=16`` for occlusion.
    """

    def __init__(self, model: Any, method: str = "gradcam", *, info: Any = None, layer: LayerSpec = None,
                 size: Sequence[int] | None = None, **options: Any) -> None:
        self.spec = get_method(method)
        self.method = method
        self.options = check_options(self.spec, options)
        self.model, self.info = model, info
        self.size = (int(size[0]), int(size[1])) if size is not None else (tuple(info.input_size[1:]) if info is not None else None)
        self.layer: str | None = None
        self.layers: list[str] = []  # the fused layers of a multi-layer method, shallow to deep
        if info is not None and self.size is not None and tuple(self.size) != tuple(info.input_size[1:]):
            from cnnviz.probe import check_input_size

            check_input_size(model, (info.input_size[0], *self.size))  # a size of the user's: refuse it before work
        wanted = _layer_list(layer)
        if self.spec.multi_layer:
            from cnnviz.explain.cam import strip_layers

            self.layers = strip_layers(model, wanted if wanted is not None else "stages", self._input_size())
            self.layer = ",".join(self.layers)
        elif isinstance(wanted, list) or wanted == "stages":
            if len(wanted) == 1 and isinstance(wanted, list):
                wanted = wanted[0]
            else:
                raise MethodError(f"{method} draws one layer's map; for a map per layer use "
                                  f"cnnviz.cam_strip(model, inputs, layers={layer!r}, method={method!r}) "
                                  f"(`cnnviz gradcam --layers`), or fuse them with method 'layercam-fused'.")
        if not self.spec.multi_layer:
            if self.spec.layer:
                self.layer = self._layer(wanted)
            elif wanted is not None:
                log.debug("%s takes no layer; %r ignored", method, layer)
        if self.spec.kind == "attribution":
            if self.size is not None:
                self._check_window(min(self.size))
            from cnnviz.explain.attribute import Attributor

            # one private working copy of the model per Explainer, reused for every batch
            self._attributor = Attributor(model, method, info=info, layer=self.layer, **self.options)

    def _input_size(self) -> tuple[int, int, int]:
        c = self.info.input_size[0] if self.info is not None else 3
        return (c, *(self.size or (224, 224)))

    def _layer(self, layer: str | None) -> str:
        from cnnviz.explain.cam import default_cam_layer, is_vit
        from cnnviz.probe import check_spatial_layer

        size = self._input_size()
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
        x, images = to_batch(inputs, self.info, self.size)
        if self.spec.kind == "attribution":
            self._check_window(int(min(x.shape[-2:])))
        t = resolve_targets(target, x.shape[0], self.info)
        e = self._run(x, t)
        e.target_names = names_of(e.targets, self.info)
        if images is not None:
            sizes = [tuple(a.shape[:2]) for a in images]
            e.image_sizes = sizes  # type: ignore[assignment]
            if len(set(sizes)) == 1:
                e.maps = np.stack([map_at(m, sizes[0]) for m in e.maps])
        return e

    attribute = __call__  # captum's spelling: explainer.attribute(x, target=3)

    def _run(self, x: Any, targets: list[int] | None) -> Explanation:
        kind = self.spec.kind
        if self.spec.multi_layer:
            from cnnviz.explain.cam import compute_fused_cams

            return compute_fused_cams(self.model, x, self.layers, targets=targets, **self.options)
        if kind in CAM_KINDS:
            from cnnviz.explain.cam import compute_cams

            return compute_cams(self.model, x, layer=self.layer, method=self.method, targets=targets, info=self.info,
                                **self.options)
        if kind == "attribution":
            return self._attributor(x, targets)
        from cnnviz.explain import baselines

        if self.method == "edges":
            return baselines.edges_explanation(self.model, x, targets)
        return baselines.random_explanation(self.model, x, targets, int(self.options["seed"]))

    def __repr__(self) -> str:
        layer = f", layer={self.layer!r}" if self.layer else ""
        return f"Explainer({self.method!r}{layer}, {self.spec.kind} from {self.spec.source})"


def explain(model: Any, inputs: Inputs, method: str = "gradcam", *, info: Any = None, layer: LayerSpec = None,
            target: Any = None, size: Sequence[int] | None = None, **options: Any) -> Explanation:
    """Explain what ``model`` sees in ``inputs`` with any registered ``method``.

    Args:
        model, info: from ``cnnviz.load_model(spec)`` -- a timm / torchvision name, a ``ckpt.pt``.
        inputs: an ``(H, W, 3) uint8`` image (``cnnviz.load_image``), a PIL image, an image
            path, a list of those, or a ready ``(B, C, H, W)`` tensor (then ``info`` is optional).
        method: ``gradcam`` (default) or any name of ``cnnviz.list_methods()``.
        layer: CAM layer (default: the last spatial one); a list / ``"stages"`` for
            ``layercam-fused``. A map per layer: ``cam_strip``. target: class index or name, one
            per input, or None for each input's top-1 class. size: the model's input ``(H, W)``.
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


def cam_strip(model: Any, inputs: Inputs, layers: LayerSpec = "stages", method: str = "gradcam", *, info: Any = None,
              target: Any = None, size: Sequence[int] | None = None, **options: Any) -> CamStrip:
    """One CAM per layer, shallow to deep: where in depth does the model localize the object?

    torchcam's ``GradCAM(model, target_layer=[...])`` / pytorch-grad-cam's ``target_layers`` idiom,
    without the fusion: every layer keeps its own map. All layers of a batch cost one forward pass
    plus one backward from the logits to the shallowest layer (``cnnviz.explain.cam.compute_cam_strip``).

    Args:
        layers: ``"stages"`` (default: the spatial stage outputs ``cnnviz compare`` uses, from
            ``cnnviz.compare.layersel``), a comma-separated string or a list of layer names; they
            are put in forward order.
        method: a CAM (``list_methods(["cam", "library-cam"])``); the others as in ``explain``.

    Returns:
        ``CamStrip``: ``maps`` ``(B, L, H, W)`` in [0, 1] (at the images' size for images),
        ``layers`` (forward order), ``targets``, ``probs``; ``strip[layer]`` is one layer's
        ``Explanation``; ``strip.picture(i, img)`` draws image ``i``'s strip.

    Example::

        s = cnnviz.cam_strip(model, img, info=info)          # bn1, blocks.1, blocks.3, blocks.5, bn2 for Lite0
        cnnviz.show(s.picture(0, img))
    """
    from cnnviz.explain.cam import compute_cam_strip, strip_layers

    spec = get_method(method, CAM_KINDS)
    if spec.multi_layer:
        raise MethodError(f"{method} fuses several layers into one map: use cnnviz.explain(..., {method!r}, layer=...); "
                          "a strip takes a one-layer CAM such as gradcam.")
    opts = check_options(spec, options)
    c = info.input_size[0] if info is not None else 3
    x, images = to_batch(inputs, info, size)
    names = strip_layers(model, _layer_list(layers) or "stages", (c, *x.shape[-2:]))
    t = resolve_targets(target, x.shape[0], info)
    s = compute_cam_strip(model, x, names, method=method, targets=t, **opts)
    s.target_names = names_of(s.targets, info)
    if images is not None:
        sizes = [tuple(a.shape[:2]) for a in images]
        s.image_sizes = sizes  # type: ignore[assignment]
        if len(set(sizes)) == 1:
            s.maps = np.stack([np.stack([map_at(m, sizes[0]) for m in row]) for row in s.maps])
    return s
