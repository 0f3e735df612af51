"""Arrays -> pictures: grids, colormaps, overlays, labels, atomic PNG writes. No torch here.

Images are ``np.uint8`` ``(H, W, 3)``; maps are float ``(H, W)``, usually in [0, 1].
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
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


def colorize(m: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """``(H, W)`` float in [0, 1] -> ``(H, W, 3) uint8`` through a matplotlib colormap."""
    from matplotlib import colormaps

    lut = (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
    idx = np.clip(np.asarray(m, dtype=np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
    return lut[idx]


def overlay(img: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a ``(H, W)`` [0, 1] heatmap over ``(H, W, 3) uint8`` ``img`` (resized to match if needed)."""
    if heat.shape[:2] != img.shape[:2]:
        from cnnviz.images import resize_map

        heat = resize_map(heat, img.shape[:2])
    col = colorize(np.clip(heat, 0, 1), cmap).astype(np.float32)
    out = (1 - alpha) * img.astype(np.float32) + alpha * col
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


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


def save_png(img: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Atomically write ``(H, W[, 3]) uint8`` as PNG."""
    from PIL import Image

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(np.ascontiguousarray(img)).save(tmp, format="PNG")
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
