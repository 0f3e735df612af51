"""Stream images through an explainer in batches with flat memory and overlapped I/O.

``image_batches`` decodes the next batch on a worker thread while the current one is being
explained (PIL and cv2 release the GIL while decoding/resizing), and reports unreadable files
instead of stopping. Each image also carries its size as stored in the file (read from the
header, without decoding again): ``load_image`` caps the decoded side at 4096 px, and raw maps
are saved at the file's own resolution. Nothing here writes files (``cnnviz.render`` does).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnviz.errors import ImageError

log = logging.getLogger(__name__)


@dataclass
class ImageBatch:
    """Up to ``batch_size`` readable images and the unreadable ones met on the way."""

    paths: list[Path]
    images: list[np.ndarray]  # decoded (H, W, 3) uint8 each (at most 4096 px a side)
    x: "torch.Tensor | None"  # noqa: F821  (B, C, H, W) preprocessed for the model; None if no image was readable
    bad: list[tuple[Path, str]] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)  # position of each readable image in the input list
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (H, W) of each as stored in its file (EXIF-rotated)


_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def stored_size(path: str | os.PathLike[str], decoded: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(H, W)`` of the image in ``path`` as ``load_image`` orients it, from the header only.

    ``decoded`` (the decoded array's ``(H, W)``) is returned when the header cannot be read.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112) in _TRANSPOSED:
                h, w = w, h
            return int(h), int(w)
    except Exception as e:  # noqa: BLE001 - the image decoded already; only its header size is missing
        log.debug("no header size for %s: %s", path, e)
        if decoded is None:
            raise
        return decoded


def _load_one(path: Path, info: "ModelInfo", size: tuple[int, int] | None):  # noqa: F821
    from cnnviz.images import load_image, preprocess

    img = load_image(path)
    return img, preprocess(img, info, size), stored_size(path, img.shape[:2])


def _load_batch(paths: Sequence[Path], info: "ModelInfo", size: tuple[int, int] | None, start: int = 0) -> ImageBatch:  # noqa: F821
    import torch

    out = ImageBatch([], [], None)
    xs = []
    for i, p in enumerate(paths):
        try:
            img, x, hw = _load_one(p, info, size)
        except ImageError as e:
            out.bad.append((p, str(e)))
            continue
        out.paths.append(p)
        out.images.append(img)
        out.indices.append(start + i)
        out.sizes.append(hw)
        xs.append(x)
    out.x = torch.cat(xs) if xs else None
    return out


def image_batches(paths: Sequence[Path], info: "ModelInfo", batch_size: int = 16,  # noqa: F821
                  size: tuple[int, int] | None = None, prefetch: bool = True) -> Iterator[ImageBatch]:
    """Yield ``ImageBatch`` es over ``paths`` in order; the next one loads while the caller works.

    At most two batches are alive at once, so memory does not grow with the number of images.
    """
    starts = list(range(0, len(paths), batch_size))
    chunks = [(list(paths[i : i + batch_size]), i) for i in starts]
    if not prefetch or len(chunks) <= 1:
        for c, i in chunks:
            yield _load_batch(c, info, size, i)
        return
    with cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnnviz-load") as pool:
        fut = pool.submit(_load_batch, chunks[0][0], info, size, chunks[0][1])
        for nxt in chunks[1:] + [None]:
            batch = fut.result()
            if nxt is not None:
                fut = pool.submit(_load_batch, nxt[0], info, size, nxt[1])
            yield batch
