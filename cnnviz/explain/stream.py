"""Stream images through an explainer in batches with flat memory and overlapped I/O.

``image_batches`` decodes the next batch on a worker thread while the current one is being
explained (PIL and cv2 release the GIL while decoding/resizing), and reports unreadable files
instead of stopping. ``fast_overlay`` is ``cnnviz.render.overlay`` with a cached colour table and
``cv2`` blending -- the per-image cost that dominates a folder job after the network itself.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from cnnviz.errors import ImageError

log = logging.getLogger(__name__)


@dataclass
class ImageBatch:
    """Up to ``batch_size`` readable images and the unreadable ones met on the way."""

    paths: list[Path]
    images: list[np.ndarray]  # original (H, W, 3) uint8 each
    x: "torch.Tensor | None"  # noqa: F821  (B, C, H, W) preprocessed for the model; None if no image was readable
    bad: list[tuple[Path, str]] = field(default_factory=list)


def _load_one(path: Path, info: "ModelInfo", size: tuple[int, int] | None):  # noqa: F821
    from cnnviz.images import load_image, preprocess

    img = load_image(path)
    return img, preprocess(img, info, size)


def _load_batch(paths: Sequence[Path], info: "ModelInfo", size: tuple[int, int] | None) -> ImageBatch:  # noqa: F821
    import torch

    ok_paths, imgs, xs, bad = [], [], [], []
    for p in paths:
        try:
            img, x = _load_one(p, info, size)
        except ImageError as e:
            bad.append((p, str(e)))
            continue
        ok_paths.append(p)
        imgs.append(img)
        xs.append(x)
    return ImageBatch(ok_paths, imgs, torch.cat(xs) if xs else None, bad)


def image_batches(paths: Sequence[Path], info: "ModelInfo", batch_size: int = 16,  # noqa: F821
                  size: tuple[int, int] | None = None, prefetch: bool = True) -> Iterator[ImageBatch]:
    """Yield ``ImageBatch`` es over ``paths`` in order; the next one loads while the caller works.

    At most two batches are alive at once, so memory does not grow with the number of images.
    """
    chunks = [list(paths[i : i + batch_size]) for i in range(0, len(paths), batch_size)]
    if not prefetch or len(chunks) <= 1:
        for c in chunks:
            yield _load_batch(c, info, size)
        return
    with cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnnviz-load") as pool:
        fut = pool.submit(_load_batch, chunks[0], info, size)
        for nxt in chunks[1:] + [None]:
            batch = fut.result()
            if nxt is not None:
                fut = pool.submit(_load_batch, nxt, info, size)
            yield batch


@lru_cache(maxsize=8)
def _lut(cmap: str) -> np.ndarray:
    """A ``(256, 3) uint8`` RGB lookup table for ``cmap`` (cached: building it costs milliseconds)."""
    from matplotlib import colormaps

    return (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)


def fast_overlay(img: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend ``heat`` ``(h, w)`` in [0, 1] (resized to the image) over ``img`` ``(H, W, 3) uint8``.

    Same picture as ``cnnviz.render.overlay`` (to rounding), several times faster on large photos.
    """
    import cv2

    h, w = img.shape[:2]
    if heat.shape[:2] != (h, w):
        heat = cv2.resize(np.asarray(heat, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    idx = np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)
    col = _lut(cmap)[idx]
    return cv2.addWeighted(np.ascontiguousarray(img), 1.0 - alpha, col, alpha, 0.0)


def save_png_fast(img: np.ndarray, path: str | os.PathLike[str], compression: int = 1) -> Path:
    """Atomically write ``(H, W, 3) uint8`` RGB as PNG with cv2 (low compression: fast, a bit larger)."""
    import cv2

    from cnnviz.atomic import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        ok = cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, compression])
        if not ok:
            raise OSError(f"could not write {path}")
    return Path(path)


def save_npy(arr: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Atomically write an array as ``.npy``."""
    from cnnviz.atomic import atomic_path

    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)
    return Path(path)


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique (``x``, ``x-2``, ...) when two inputs share one (folders with subfolders)."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        s = p.stem
        n = seen.get(s, 0) + 1
        seen[s] = n
        out.append(s if n == 1 else f"{s}-{n}")
    return out
