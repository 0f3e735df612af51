"""The notebook face of cnnviz: thin, typed entry points over the library.

``import cnnviz`` reaches these lazily (``cnnviz.filters``, ``cnnviz.activations``, ...), next to
``cnnviz.load_model``, ``cnnviz.load_image``, ``cnnviz.explain`` and ``cnnviz.overlay``. Each one
accepts what a notebook has at hand -- a model and its ``ModelInfo``, an image array or a path, a
spec string -- and returns arrays or the library's small dataclasses. Nothing here writes files
except ``train_model`` (its run folder) and ``build_gallery`` (the site), whose job that is.

Example::

    import cnnviz
    model, info = cnnviz.load_model("efficientnet_lite0")
    img = cnnviz.load_image("cat.jpg")
    cnnviz.show(img, cnnviz.filters(model, "conv_stem"), cnnviz.activations(model, img, "blocks.2", info=info).picture(img))
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # for the type hints only: importing cnnviz stays free of torch
    from torch import nn

    from cnnviz.compare import Comparison
    from cnnviz.explain.activations import ActivationMaps
    from cnnviz.explain.erf import ERF
    from cnnviz.explain.examples import Example
    from cnnviz.explain.filters import Kernels
    from cnnviz.explain.receptive import ReceptiveField
    from cnnviz.explain.sanity import SanityResult
    from cnnviz.models import ModelInfo

log = logging.getLogger(__name__)

ImageLike = Any  # an (H, W, 3) uint8 array, or a path to an image file


def _image(image: ImageLike) -> np.ndarray:
    from cnnviz.images import load_image

    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.dtype != np.uint8 or a.ndim != 3:
        raise TypeError(f"an image must be (H, W, 3) uint8 (cnnviz.load_image gives one), got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a[..., :3])


# -- inside a network -------------------------------------------------------------------------
def kernels(model: nn.Module, layer: str) -> Kernels:
    """The weights of conv ``layer`` (or the one conv inside it, e.g. a ViT's ``patch_embed``)."""
    from cnnviz.explain.filters import layer_kernels

    return layer_kernels(model, layer)


def filters(model: nn.Module, layer: str, *, max_filters: int = 64, in_channel: int | None = None,
            normalize: str = "per-filter", tile_px: int = 48) -> np.ndarray:
    """``layer``'s kernels as one ``(H, W, 3) uint8`` grid: RGB for a first layer, else blue/white/red.

    ``normalize``: ``per-filter`` (each kernel its own range) or ``shared`` (compare magnitudes);
    ``in_channel``: show that input channel instead of the mean over inputs.
    """
    from cnnviz.explain.filters import filter_grid

    return filter_grid(kernels(model, layer), max_filters=max_filters, in_channel=in_channel, normalize=normalize,
                       tile_px=tile_px)


def activations(model: nn.Module, image: ImageLike, layer: str, *, info: ModelInfo | None = None, top: int = 16,
                size: Sequence[int] | None = None) -> ActivationMaps:
    """The ``top`` feature maps of ``layer`` for one image (ranked by mean activation).

    ``image``: an ``(H, W, 3) uint8`` array or a path (``info`` needed to preprocess it), or a ready
    ``(1, C, H, W)`` tensor. ``.maps`` is ``(K, h, w)``; ``.picture(img)`` draws them beside the image.
    """
    from cnnviz.explain.activations import activation_maps
    from cnnviz.probe import model_device

    if hasattr(image, "dim"):
        x = image
    else:
        if info is None:
            raise TypeError("activations() of an image needs info= (the ModelInfo from cnnviz.load_model)")
        from cnnviz.images import preprocess

        x = preprocess(_image(image), info, tuple(size) if size else None)
    return activation_maps(model, x.to(model_device(model)), layer, top=top)


def describe_layers(model: nn.Module, info: ModelInfo | None = None, input_size: Sequence[int] | None = None) -> list[Any]:
    """Every layer: name (what ``layer=`` takes), type, output shape, layout, parameters (``cnnviz layers``)."""
    from cnnviz.probe import describe_layers as _describe

    size = tuple(input_size) if input_size is not None else tuple(info.input_size) if info is not None else (3, 224, 224)
    return _describe(model, size)


def maximize(model: nn.Module, info: ModelInfo, target: Any = None, *, layer: str | None = None,
             channel: int | None = None, neuron: tuple[int, int] | None = None, steps: int = 128,
             size: int | None = None, seed: int = 0, **options: Any) -> np.ndarray:
    """Images that maximize class(es) ``target`` (an index, a name, or a list), or unit ``layer``/``channel``.

    Returns ``(N, H, W, 3) uint8``, one image per class (or one for the unit). ``options`` go to
    ``cnnviz.explain.maximize.maximize`` (``lr``, ``param``, ``transforms``, ...).
    """
    from cnnviz.errors import TargetError
    from cnnviz.explain import maximize as mx

    if target is not None:
        items = list(target) if isinstance(target, (list, tuple)) else [target]
        classes = [info.class_index(t) for t in items]
        return mx.maximize_classes(model, info, classes, steps=steps, size=size, seed=seed, **options)
    if layer is None or channel is None:
        raise TargetError("maximize() needs a target class, or a layer and a channel.")
    return mx.maximize(model, info, mx.unit_objective(layer, int(channel), neuron), steps=steps, size=size, seed=seed,
                       **options).images


def receptive_field(model: nn.Module, layer: str, *, info: ModelInfo | None = None,
                    input_size: Sequence[int] | None = None, ignore_gates: bool = False) -> ReceptiveField:
    """The analytic receptive field of ``layer`` (size, stride, padding in input pixels; correct on branches)."""
    from cnnviz.explain.receptive import receptive_field as _rf

    size = tuple(input_size) if input_size is not None else tuple(info.input_size) if info is not None else (3, 224, 224)
    return _rf(model, size, layer, ignore_gates=ignore_gates)


def effective_receptive_field(model: nn.Module, layer: str, *, info: ModelInfo, images: Any = None, n: int = 8,
                              seed: int = 0) -> ERF:
    """The effective receptive field (Luo et al. 2016) of ``layer``'s centre unit: ``.heat`` ``(H, W)``
    sums to 1, ``.r50`` / ``.r90`` are the radii holding half / 90% of it. ``images``: a
    ``(B, C, H, W)`` tensor (default ``n`` noise images)."""
    from cnnviz.explain.erf import effective_receptive_field as _erf

    return _erf(model, info, layer, images, n=n, seed=seed)


def top_examples(model: nn.Module, info: ModelInfo, data: Any, *, target: Any = None, layer: str | None = None,
                 channel: int | None = None, k: int = 9, limit: int | None = 500, split: str = "test") -> list[Example]:
    """The ``k`` dataset images (and the patch of each) that most excite class ``target`` or a unit.

    ``data``: a dataset (``cnnviz.open_dataset``) or a spec such as ``"fashion-mnist"``.
    """
    from cnnviz.explain.examples import top_examples as _top

    ds = open_dataset(data, split) if isinstance(data, str) else data
    cls = info.class_index(target) if target is not None else None
    return _top(model, info, ds, target_class=cls, layer=layer, channel=channel, k=k, limit=limit)


def sanity(model: nn.Module, images: Any, methods: Sequence[str] | str = ("gradcam", "saliency", "guided-backprop"), *,
           info: ModelInfo | None = None, target: Any = None, layer: str | None = None, cascade: str | Sequence[str] | None = None,
           independent: bool = False, seed: int = 0, size: Sequence[int] | None = None, verdict_only: bool = False,
           hog: bool = False, keep_maps: bool = True, batch_size: int = 8) -> SanityResult:
    """Adebayo et al.'s model-parameter randomization test (``cnnviz sanity``): do ``methods``' maps of
    ``images`` change when the model's layers are re-initialized from the logits down?

    ``images``: ``(H, W, 3) uint8`` arrays, paths, or a ready ``(N, C, H, W)`` tensor (``info`` needed for
    images). ``methods``: registered names (a list or ``"gradcam,saliency"``), the baselines ``edges``
    and ``random`` included. The caller's model is never changed (everything runs on a copy).
    ``verdict_only``: compute only the cascade step the verdict reads (two explanations per method
    instead of S + 1; the same verdict). Returns a ``SanityResult``: ``res.methods[i].verdict``
    (``passes`` True / False / None for unclear), ``.steps`` (Spearman, SSIM per image at each step),
    ``.maps`` ``(S + 1, N, H, W)`` with ``keep_maps``, and ``res.to_json()`` -- what ``--json`` prints.

    Example::

        res = cnnviz.sanity(model, [img1, img2], "gradcam,guided-backprop", info=info)
        {m.method: m.verdict["passes"] for m in res.methods}      # {'gradcam': True, 'guided-backprop': False}
    """
    from cnnviz.explain.inputs import resolve_targets, to_batch
    from cnnviz.explain.sanity import cascading_randomization, check_methods, sanity_verdicts

    wanted = check_methods(methods)
    x, _ = to_batch(images, info, tuple(size) if size is not None else None)
    targets = resolve_targets(target, x.shape[0], info)
    if verdict_only:
        if independent:
            from cnnviz.explain.sanity import SanityError

            raise SanityError("verdict_only reads the cascading test; the independent test gives no verdict.")
        return sanity_verdicts(model, x, wanted, info=info, targets=targets, layer=layer, cascade=cascade, seed=seed,
                               batch_size=batch_size)
    return cascading_randomization(model, x, wanted, info=info, targets=targets, layer=layer, cascade=cascade,
                                   independent=independent, seed=seed, hog=hog, batch_size=batch_size, keep_maps=keep_maps)


# -- data, training, comparing ------------------------------------------------------------------
def open_dataset(spec: str, split: str = "test", *, limit: int | None = None, data_root: str | None = None,
                 seed: int = 0) -> Any:
    """A dataset (``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100`` or an image folder); items ``(PIL image, label)``."""
    from cnnviz.data import open_split

    return open_split(spec, split, data_root=data_root, limit=limit, seed=seed)


@dataclass
class Trained:
    """A finished training run: the model (eval mode), its ``ModelInfo``, ``metrics.json`` and the folder."""

    model: Any
    info: Any
    metrics: dict[str, Any]
    run_dir: Path

    def __iter__(self):  # model, info = cnnviz.train_model(...)
        return iter((self.model, self.info))


def train_model(data: str = "fashion-mnist", model: str = "simplecnn", mode: str = "scratch", *, epochs: int = 1,
                out: str | os.PathLike[str] | None = None, progress: bool = False, timeline: Any = False, **config: Any) -> Trained:
    """Train ``model`` on ``data`` in ``mode`` (scratch, lp, ft, lpft) and load the result.

    ``config``: any other ``cnnviz.train.TrainConfig`` field (``limit``, ``eval_limit``, ``image_size``,
    ``lr``, ``batch_size``, ``seed``, ``device``...). ``out`` is the run folder (default
    ``runs/<model>-<mode>-<data>``); it gets ``ckpt.pt``, ``metrics.json`` and the plots, as
    ``cnnviz train`` writes them. ``timeline=True`` (or a ``cnnviz.train.timeline.Timeline``) also records
    CKA to the initial/final model, weight drift and Grad-CAM per epoch: ``RUN_DIR/timeline.json``.
    """
    from cnnviz.models import load_model
    from cnnviz.train import TrainConfig, default_run_dir, train_run

    cfg = TrainConfig(data=data, model=model, mode=mode, epochs=epochs, out=None if out is None else str(out), **config)
    run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    cfg.out = str(run_dir)
    if timeline is True:
        from cnnviz.train.timeline import Timeline

        timeline = Timeline()
    metrics = train_run(cfg, progress=progress, on_epoch=timeline or None)
    m, info = load_model(str(run_dir / "ckpt.pt"))
    return Trained(m, info, metrics, run_dir)


def evaluate(model: nn.Module, info: ModelInfo, data: Any, *, split: str = "test", limit: int | None = None,
             batch_size: int = 128) -> dict[str, Any]:
    """Accuracy, macro F1, per-class metrics and confusion of ``model`` on ``data`` (a dataset or a spec)."""
    from cnnviz.probe import model_device
    from cnnviz.train import evaluate_model

    ds = open_dataset(data, split, limit=limit) if isinstance(data, str) else data
    return evaluate_model(model, info, ds, batch_size=batch_size, device=model_device(model))


def compare_models(models: Sequence[Any], data: Any, *, names: Sequence[str] | None = None, split: str = "test",
                   eval_limit: int | None = 500, **options: Any) -> Comparison:
    """CKA layer by layer, filter drift, Grad-CAM agreement and per-class accuracy of >= 2 models.

    ``models``: ``(model, info)`` pairs (``Trained`` results work too) or ``--model`` spec strings;
    ``data``: a dataset or a spec. ``options`` go to ``cnnviz.compare.compare_models``
    (``layers``, ``batch_size``, ``cam``...). The result has ``to_json()`` and ``write_figures(dir)``.
    """
    from cnnviz.compare import compare_models as _compare
    from cnnviz.models import load_model

    pairs = []
    for m in models:
        if isinstance(m, (str, os.PathLike)):
            m = load_model(str(m))
        model, info = tuple(m)
        pairs.append((model, info))
    ds = open_dataset(data, split) if isinstance(data, str) else data
    if "device" not in options:
        from cnnviz.probe import model_device

        options["device"] = model_device(pairs[0][0])
    return _compare(pairs, ds, names=names, eval_limit=eval_limit, **options)


def build_gallery(models: Sequence[Any], out: str | os.PathLike[str], *, data: str | None = None,
                  images: Sequence[str] = (), title: str = "cnnviz gallery", cache: str | None = None,
                  data_root: str | None = None, progress: bool = False, **report: Any) -> Path:
    """A static HTML gallery of ``models`` (spec strings or ``(spec, name)`` pairs) in folder ``out``.

    ``report``: ``cnnviz.report.ReportConfig`` fields (``cam_methods``, ``layers``, ``eval_limit``...).
    Everything is checked before any work (``cnnviz.report.job.GalleryJob``). Returns the path of
    ``index.html``.
    """
    from cnnviz.report import ModelSource, ReportConfig
    from cnnviz.report.job import build_gallery as _build

    srcs = []
    for m in models:
        spec, name = (m, None) if isinstance(m, (str, os.PathLike)) else tuple(m)
        srcs.append(ModelSource(str(spec), name))
    tick = (lambda desc, done, total: log.info("gallery %d/%d: %s", done, total, desc)) if progress else None
    result = _build(srcs, out, images=list(images), data=data, data_root=data_root, cfg=ReportConfig(**report), cache=cache,
                    title=title, progress=tick)
    return Path(result.index)


# -- showing pictures inline --------------------------------------------------------------------
def show(*images: Any, titles: Sequence[str] | None = None, height: int = 160, ncols: int | None = None,
         cmap: str = "jet") -> Any:
    """Pictures side by side as one PIL image (Jupyter displays it inline; ``.save(path)`` writes it).

    Each argument is an ``(H, W, 3)`` / ``(H, W)`` uint8 array, an ``(N, H, W, 3)`` stack, or a
    ``(H, W)`` float map in [0, 1] (drawn with colormap ``cmap``). Every picture is scaled to ``height``
    pixels (nearest-neighbour when enlarging, so small kernels stay crisp); ``titles`` label them.
    """
    from PIL import Image

    from cnnviz.images import resize_image
    from cnnviz.render import colorize, label

    pics: list[np.ndarray] = []
    for a in images:
        a = np.asarray(a)
        stack = a if a.ndim == 4 else a[None]
        for p in stack:
            if p.dtype != np.uint8:
                p = colorize(np.clip(p, 0, 1), cmap) if p.ndim == 2 else (np.clip(p, 0, 1) * 255 + 0.5).astype(np.uint8)
            if p.ndim == 2:
                p = np.repeat(p[..., None], 3, axis=2)
            pics.append(np.ascontiguousarray(p[..., :3]))
    if not pics:
        raise TypeError("show() needs at least one picture")
    tiles = []
    for i, p in enumerate(pics):
        w = max(1, round(p.shape[1] * height / p.shape[0]))
        if height >= p.shape[0]:
            f = max(1, height // p.shape[0])
            p = p.repeat(f, 0).repeat(f, 1)
        p = resize_image(p, (height, w)) if p.shape[:2] != (height, w) else p
        if titles is not None and i < len(titles) and titles[i]:
            p = label(p, str(titles[i]), scale=0.4)
        tiles.append(p)
    n = len(tiles)
    ncols = ncols or n
    rows = []
    gap = np.full((height, 4, 3), 255, np.uint8)
    for r in range(0, n, ncols):
        row = tiles[r : r + ncols]
        line = row[0]
        for t in row[1:]:
            line = np.concatenate([line, gap, t], axis=1)
        rows.append(line)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return Image.fromarray(np.concatenate(rows, axis=0)[:-4])
