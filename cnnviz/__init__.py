"""cnnviz: see what convolutional networks learn.

The library computes; the CLI (``cnnviz.cli``) renders and saves; the gallery (``cnnviz.gallery``)
publishes. ``import cnnviz`` is light: torch, timm and the rest load when a name below is first
used (module ``__getattr__``), so scripts and ``cnnviz --help`` start instantly.

In a notebook::

    import cnnviz
    model, info = cnnviz.load_model("efficientnet_lite0")       # or a ckpt.pt, timm / torchvision name
    img = cnnviz.load_image("cat.jpg")                           # (H, W, 3) uint8
    e = cnnviz.explain(model, img, "gradcam", info=info)         # any of cnnviz.list_methods()
    e.maps, e.targets, e.probs                                   # (B, H, W) in [0, 1] at the image's size
    cnnviz.show(img, cnnviz.overlay(img, e.maps[0]))             # pictures inline

Also: ``Explainer`` (set up once, call on batches, captum's ``.attribute`` spelling), ``filters``,
``kernels``, ``activations``, ``describe_layers``, ``maximize``, ``receptive_field``,
``effective_receptive_field``, ``top_examples``, ``open_dataset``, ``train_model``, ``evaluate``,
``compare_models``, ``build_gallery``; pictures: ``overlay``, ``colorize``, ``tile``, ``save_png``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from cnnviz.errors import CnnvizError  # noqa: E402  (light, no torch)

# public name -> (module, attribute); imported on first use
_LAZY: dict[str, tuple[str, str]] = {
    "load_model": ("cnnviz.models", "load_model"),
    "build_model": ("cnnviz.models", "build_model"),
    "save_model": ("cnnviz.models", "save_model"),
    "ModelInfo": ("cnnviz.models", "ModelInfo"),
    "load_image": ("cnnviz.images", "load_image"),
    "sample_image": ("cnnviz.images", "sample_image"),
    "preprocess": ("cnnviz.images", "preprocess"),
    "Explainer": ("cnnviz.explain.methods", "Explainer"),
    "Explanation": ("cnnviz.explain.result", "Explanation"),
    "MethodError": ("cnnviz.explain.result", "MethodError"),
    "list_methods": ("cnnviz.explain.methods", "method_names"),
    "describe_methods": ("cnnviz.explain.methods", "describe_methods"),
    "overlay": ("cnnviz.render", "overlay"),
    "colorize": ("cnnviz.render", "colorize"),
    "tile": ("cnnviz.render", "tile"),
    "save_png": ("cnnviz.render", "save_png"),
    "show": ("cnnviz.api", "show"),
    "kernels": ("cnnviz.api", "kernels"),
    "filters": ("cnnviz.api", "filters"),
    "activations": ("cnnviz.api", "activations"),
    "describe_layers": ("cnnviz.api", "describe_layers"),
    "maximize": ("cnnviz.api", "maximize"),
    "receptive_field": ("cnnviz.api", "receptive_field"),
    "effective_receptive_field": ("cnnviz.api", "effective_receptive_field"),
    "top_examples": ("cnnviz.api", "top_examples"),
    "open_dataset": ("cnnviz.api", "open_dataset"),
    "train_model": ("cnnviz.api", "train_model"),
    "evaluate": ("cnnviz.api", "evaluate"),
    "compare_models": ("cnnviz.api", "compare_models"),
    "build_gallery": ("cnnviz.api", "build_gallery"),
}

__all__ = ["CnnvizError", "__version__", "explain", *_LAZY]


def __getattr__(name: str):  # noqa: ANN202 - PEP 562: called only for names not defined above
    if name == "explain":  # the callable subpackage (see cnnviz/explain/__init__.py)
        import cnnviz.explain

        return cnnviz.explain
    entry = _LAZY.get(name)
    if entry is None:
        raise AttributeError(f"module 'cnnviz' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(entry[0]), entry[1])
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
