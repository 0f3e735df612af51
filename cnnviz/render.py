"""Arrays -> pictures: grids, colormaps, overlays, labels, atomic PNG/NPY writes. No torch here.

The one room for pictures: one colour table per colormap (``lut``, cached), one overlay (cv2
blending over that table), one [0, 1] scaling (``normalize01``), one PNG writer (``save_png``,
atomic, cv2) and one array writer (``save_npy``). The explainers return arrays; the CLI, the
report and the gallery write them through here.

Images are ``np.uint8`` ``(H, W, 3)``; maps are float ``(H, W)``, usually in [0, 1].
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from cnnviz.atomic import atomic_path


def normalize01(a: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Min-max scale to [0, 1] (float32); a constant array maps to 0.5."""
    a = np.asarray(a, dtype=np.float32)
    lo = float(a.min()) if lo is None else lo
    hi = float(a.max()) if hi is None else hi
    if hi - lo < 1e-12:
        return np.full_like(a, 0.5)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


@lru_cache(maxsize=16)
def lut(cmap: str = "jet") -> np.ndarray:
    """A ``(256, 3) uint8`` RGB table for matplotlib colormap ``cmap`` (cached: building one costs ms)."""
    from matplotlib import colormaps

    table = (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
    table.flags.writeable = False  # shared by every caller through the cache
    return table


def _index(m: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> ``uint8`` table indices (clipped; NaN -> 0)."""
    a = np.nan_to_num(np.asarray(m, dtype=np.float32), nan=0.0)
    return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)


def colorize(m: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """``(H, W)`` float in [0, 1] -> ``(H, W, 3) uint8`` through a matplotlib colormap."""
    return lut(cmap)[_index(m)]


def as_rgb(img: "np.ndarray | PIL.Image.Image") -> np.ndarray:  # noqa: F821
    """A dataset item or an array -> ``(H, W, 3) uint8``: a PIL image of any mode through
    ``cnnviz.transforms.to_rgb_uint8`` (what ``load_image`` decodes with: 16-bit scaled, transparency on
    white), a ``(H, W)`` / ``(H, W, 1)`` gray array repeated, an ``(H, W, 4)`` one without its alpha."""
    if hasattr(img, "convert") and hasattr(img, "mode"):
        from cnnviz.transforms import to_rgb_uint8

        return to_rgb_uint8(img)
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[..., None]
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise TypeError(f"as_rgb() needs a PIL image or a uint8 (H, W[, 1|3|4]) array, got {a.dtype} {a.shape}")
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else np.ascontiguousarray(a[..., :3])


def overlay(img: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a ``(h, w)`` [0, 1] heatmap over ``img`` ``(H, W, 3) uint8`` -> ``(H, W, 3) uint8``.

    ``heat`` is resized to the image (bilinear) when the sizes differ, so a map at the model's
    input size can be laid over the original photo directly. ``alpha`` is the map's weight.
    """
    import cv2

    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise TypeError(f"overlay() needs an (H, W, 3) uint8 image, got {img.dtype} {img.shape} "
                        "(cnnviz.load_image returns one).")
    h, w = img.shape[:2]
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape[:2] != (h, w):
        heat = cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR)
    col = lut(cmap)[_index(heat)]
    return cv2.addWeighted(np.ascontiguousarray(img), 1.0 - alpha, col, alpha, 0.0)


def label(img: np.ndarray, text: str, scale: float | None = None) -> np.ndarray:
    """A copy of ``img`` with ``text`` on a dark banner across the top (readable on any picture)."""
    import cv2

    out = np.ascontiguousarray(img.copy())
    h, w = out.shape[:2]
    scale = scale or max(0.4, min(1.2, w / 640))
    thick = max(1, int(round(scale * 1.5)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    while tw > w - 8 and len(text) > 4:  # keep it inside the picture
        text = text[:-4] + "..."
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    bar = th + base + 8
    out[:bar] = (out[:bar].astype(np.float32) * 0.35).astype(np.uint8)
    cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def tile(tiles: Sequence[np.ndarray], ncols: int | None = None, pad: int = 2, bg: int = 255, upscale: int = 1) -> np.ndarray:
    """Arrange equal-size ``(h, w, 3) uint8`` tiles in a grid -> one ``uint8`` image.

    ``upscale`` repeats pixels (nearest) so tiny kernels (3x3) stay crisp.
    """
    if not tiles:
        raise ValueError("no tiles")
    ncols = ncols or math.ceil(math.sqrt(len(tiles)))
    nrows = math.ceil(len(tiles) / ncols)
    h, w = tiles[0].shape[:2]
    h2, w2 = h * upscale, w * upscale
    out = np.full((nrows * (h2 + pad) + pad, ncols * (w2 + pad) + pad, 3), bg, dtype=np.uint8)
    for i, t in enumerate(tiles):
        if t.ndim == 2:
            t = np.repeat(t[..., None], 3, axis=2)
        if upscale > 1:
            t = t.repeat(upscale, 0).repeat(upscale, 1)
        r, c = divmod(i, ncols)
        y, x = pad + r * (h2 + pad), pad + c * (w2 + pad)
        out[y : y + h2, x : x + w2] = t
    return out


def save_png(img: np.ndarray, path: str | os.PathLike[str], compression: int = 6) -> Path:
    """Atomically write ``(H, W)`` gray, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA ``uint8`` as PNG.

    ``compression`` is zlib's level, 0-9: 6 (the default, as PIL's) for files that are kept and
    published; 1 writes several times faster for a few percent more bytes (the CLI folder job).
    """
    import cv2

    a = np.ascontiguousarray(img)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise TypeError(f"save_png() needs uint8 (H, W), (H, W, 3) or (H, W, 4), got {a.dtype} {a.shape}")
    if a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = cv2.cvtColor(a, cv2.COLOR_RGBA2BGRA)
    with atomic_path(path, suffix=".png") as tmp:
        ok, buf = cv2.imencode(".png", a, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
        if not ok:
            raise OSError(f"could not encode {path} as PNG")
        Path(tmp).write_bytes(buf.tobytes())
    return Path(path)


def save_npy(arr: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Atomically write an array as ``.npy`` (never pickled: object arrays are refused)."""
    a = np.asarray(arr)
    if a.dtype == object:
        raise TypeError("save_npy() writes numeric arrays only (object arrays would need pickle)")
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, a, allow_pickle=False)
    return Path(path)


def save_figure(fig: "matplotlib.figure.Figure", path: str | os.PathLike[str], dpi: int = 110) -> Path:  # noqa: F821
    """Atomically save a matplotlib figure (format from the suffix), then close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return Path(path)


def new_figure(width: float, height: float) -> "matplotlib.figure.Figure":  # noqa: F821
    """A matplotlib figure on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width, height))


def titled(img: np.ndarray, title: str, path: str | os.PathLike[str], subtitle: str | None = None) -> Path:
    """Save ``img`` with a title above it (matplotlib, crisp nearest-neighbour pixels)."""
    h, w = img.shape[:2]
    dpi = 110
    scale = max(4.0, min(14.0, w / dpi)) / w  # about native size: no blurry upscaling, no huge files
    fig = new_figure(w * scale, h * scale + 0.6)
    ax = fig.add_axes((0, 0, 1, h * scale / (h * scale + 0.6)))
    ax.imshow(img, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(title, fontsize=11, y=0.995, va="top")
    if subtitle:
        fig.text(0.5, 1 - 0.42 / (h * scale + 0.6), subtitle, ha="center", va="top", fontsize=8, color="#444")
    return save_figure(fig, path, dpi=dpi)


# -- gallery pictures (moved from cnnviz.report) ---------------------------------------------------

def display_image(img: np.ndarray, px: int) -> np.ndarray:
    """``(H, W, 3) uint8`` scaled so its longest side is about ``px``: small images crisply (nearest).

    An image at most half of ``px`` is repeated by a whole factor (pixels kept exactly, so a 28x28
    digit stays sharp); a larger one is shrunk to ``px``; one in between is returned as it is.
    """
    from cnnviz.images import resize_image

    h, w = img.shape[:2]
    if max(h, w) * 2 <= px:
        f = px // max(h, w)
        return img.repeat(f, 0).repeat(f, 1)
    if max(h, w) > px:
        s = px / max(h, w)
        return resize_image(img, (max(1, round(h * s)), max(1, round(w * s))))
    return img


def heat_png(heat: np.ndarray, size: tuple[int, int], path: str | os.PathLike[str], cmap: str = "jet") -> Path:
    """A ``(h, w)`` [0, 1] map as an opaque colour PNG at ``size=(H, W)`` (the gallery sets its opacity)."""
    from cnnviz.images import resize_map

    return save_png(colorize(np.clip(resize_map(heat, size), 0, 1), cmap), path)
