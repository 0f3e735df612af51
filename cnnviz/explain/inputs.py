"""What every explainer accepts: inputs in any notebook form -> one batch, targets -> class indices,
and maps back at the images' size.

Torch is imported only when a batch is built (``to_batch``), so the registry and the CLI's help
stay light.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnviz.errors import TargetError
from cnnviz.explain.result import MethodError

#: (B, C, H, W) / (C, H, W) tensor, (H, W, 3) uint8 array, (B, H, W, 3) array, a PIL image, a path, or a list of them
Inputs = Any


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


def as_images(inputs: Inputs) -> list[np.ndarray] | None:
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


def to_batch(inputs: Inputs, info: Any, size: Sequence[int] | None) -> tuple[Any, list[np.ndarray] | None]:
    """``(x, images)``: the ``(B, C, H, W)`` tensor the model sees and the ``(H, W, 3)`` images it came
    from (None for tensor inputs). Images are preprocessed for ``info`` at ``size`` (``cnnviz.images``)."""
    import torch

    images = as_images(inputs)
    if images is None:
        x = inputs if inputs.dim() == 4 else inputs.unsqueeze(0)
        if x.dim() != 4:
            raise MethodError(f"a tensor input must be (B, C, H, W) or (C, H, W); got {tuple(inputs.shape)}.")
        return x, None
    if info is None:
        raise MethodError("explaining images needs info= (the ModelInfo from cnnviz.load_model) for their "
                          "size and normalization; or pass a ready (B, C, H, W) tensor.")
    from cnnviz.images import preprocess

    return torch.cat([preprocess(a, info, size) for a in images]), images


def resolve_targets(target: Any, b: int, info: Any) -> list[int] | None:
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


def check_targets(targets: Sequence[int] | None, b: int, num_classes: int) -> list[int] | None:
    """Class indices for a batch of ``b``: one for all or one each, each in ``[0, num_classes)``
    (``TargetError`` otherwise); None stays None (each input's top-1)."""
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


def names_of(targets: Sequence[int], info: Any) -> list[str] | None:
    """The class names of ``targets`` (their numbers where a name is missing); None without ``info``."""
    if info is None:
        return None
    names = list(info.class_names)
    return [names[i] if 0 <= i < len(names) else str(i) for i in targets]
