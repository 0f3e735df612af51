"""Pictures of a training timeline (``timeline.json`` dicts): curves per layer, CAMs across epochs, runs side by side."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_PANELS = (("cka_to_init", "linear CKA to epoch 0"), ("cka_to_final", "linear CKA to the final model"),
           ("drift", "weight drift ||W-W0|| / ||W0||"))


def _vals(v: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if x is None else float(x) for x in v], dtype=float)


def _colors(n: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(0.9 * i / max(n - 1, 1)) for i in range(n)]  # dark = shallow, yellow = deep


def plot_curves(doc: dict[str, Any], path: str | os.PathLike[str], title: str = "") -> Path:
    """Three panels (CKA to init, CKA to final, drift) with one line per tracked layer, shallow to deep."""
    from cnnviz.render import new_figure, save_figure

    fig = new_figure(13, 3.8)
    epochs = doc["epochs"]
    cols = _colors(len(doc["layers"]))
    for k, (key, label) in enumerate(_PANELS):
        ax = fig.add_subplot(1, 3, k + 1)
        for layer, c in zip(doc["layers"], cols):
            y = _vals(doc[key][layer])
            if np.isfinite(y).any():
                ax.plot(epochs, y, "o-", color=c, label=layer, ms=4)
        if key == "cka_to_final" and not doc.get("complete"):
            ax.text(0.5, 0.5, "after the last epoch", transform=ax.transAxes, ha="center", color="#888")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch (0 = before training)")
        ax.set_xticks(epochs if len(epochs) <= 12 else epochs[:: math.ceil(len(epochs) / 12)])
        if key != "drift":
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7, title="layer (shallow to deep)", title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def image_strip(doc: dict[str, Any], root: str | os.PathLike[str], k: int, px: int = 96, title: str | None = None) -> np.ndarray:
    """Watched image ``k``: the image, then its CAM after each epoch, left to right, labelled -> ``(h, w, 3) uint8``.

    ``title``: the first tile's label (default: the image's class)."""
    from cnnviz.images import load_image
    from cnnviz.render import display_image, label, tile

    im = doc["images"][k]
    root = Path(root)
    tiles = [display_image(load_image(root / im["src"]), px)]
    tiles += [display_image(load_image(root / c), px) for c in im["cams"]]
    h, w = tiles[0].shape[:2]
    tiles = [t if t.shape[:2] == (h, w) else _fit(t, (h, w)) for t in tiles]
    names = [title or im["label"]] + [f"ep {e}" for e in doc["epochs"]]
    return tile([label(t, n, scale=0.35) for t, n in zip(tiles, names)], ncols=len(tiles), pad=2)


def _fit(t: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    from cnnviz.images import resize_image

    return resize_image(t, hw)


def cam_grid(doc: dict[str, Any], root: str | os.PathLike[str], path: str | os.PathLike[str], px: int = 96) -> Path:
    """Every watched image as one row (image, then its CAM per epoch): ``timeline/cams.png``."""
    from cnnviz.render import save_png

    rows = [image_strip(doc, root, k, px) for k in range(len(doc["images"]))]
    w = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return save_png(np.concatenate(rows, axis=0), path)


def plot_depth(runs: Sequence[tuple[str, dict[str, Any]]], path: str | os.PathLike[str], title: str = "") -> Path:
    """Runs side by side by depth: at the last epoch, each tracked layer's CKA to epoch 0 and its drift,
    against the layer's relative depth (0 = first tracked layer, 1 = pre-logits). One line per run."""
    from cnnviz.render import new_figure, save_figure

    fig = new_figure(11, 3.8)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, doc in runs:
        layers = doc["layers"]
        x = np.linspace(0, 1, len(layers)) if len(layers) > 1 else np.zeros(1)
        cka = _vals([doc["cka_to_init"][l][-1] for l in layers])
        drift = _vals([doc["drift"][l][-1] for l in layers])
        line, = ax1.plot(x, cka, "o-", label=f"{name} (epoch {doc['epochs'][-1]})")
        ok = np.isfinite(drift)
        ax2.plot(x[ok], drift[ok], "o-", color=line.get_color(), label=name)
        for xi, yi, l in zip(x, cka, layers):
            ax1.annotate(l, (xi, yi if np.isfinite(yi) else 0.0), fontsize=6, rotation=30, color=line.get_color(),
                         xytext=(2, 3), textcoords="offset points")
    ax1.set_title("CKA to epoch 0 after training (1 = unchanged)", fontsize=9)
    ax1.set_ylim(-0.02, 1.08)
    ax2.set_title("weight drift from epoch 0 after training", fontsize=9)
    for ax in (ax1, ax2):
        ax.set_xlabel("depth of the tracked layer (0 = first, 1 = pre-logits)")
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
