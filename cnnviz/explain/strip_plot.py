"""The picture of ``cnnviz gradcam --layers``: per image, one row per model, the photo then each layer's
CAM over it, shallow to deep, so rows of a scratch and a transferred model can be read column by column.
Arrays in, an ``(H, W, 3) uint8`` picture out (written by the CLI through ``cnnviz.render.save_png``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cnnviz.explain.result import CamStrip

TILE_PX = 176  # longest side of one tile
_GAP = 4
_HEAD = 24  # height of a row's title band


@dataclass
class StripRow:
    """One model's strip of one image: ``strip`` holds a batch, ``index`` picks the image."""

    title: str  # e.g. "lite0 (ImageNet): Egyptian cat 49.8%"
    strip: CamStrip
    index: int = 0


def _text_band(width: int, text: str) -> np.ndarray:
    import cv2

    band = np.full((_HEAD, width, 3), 255, np.uint8)
    scale, thick = 0.48, 1
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    while tw > width - 8 and len(text) > 4:
        text = text[:-4] + "..."
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.putText(band, text, (4, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), thick, cv2.LINE_AA)
    return band


def strips_picture(image: np.ndarray, rows: Sequence[StripRow], px: int = TILE_PX, alpha: float = 0.5) -> np.ndarray:
    """``image`` ``(H, W, 3) uint8`` and one ``StripRow`` per model -> one picture.

    Each row: a title band, then the photo and each layer's map over it (labelled with the layer and
    its grid), shallow to deep. Rows with fewer layers are padded with white on the right.
    """
    from cnnviz.explain.inputs import map_at
    from cnnviz.render import display_image, label, overlay

    if not rows:
        raise ValueError("no rows")
    base = display_image(image, px)
    h, w = base.shape[:2]
    lines = []
    for r in rows:
        tiles = [label(base, "input")]
        for k, name in enumerate(r.strip.layers):
            heat = map_at(r.strip.maps[r.index, k], (h, w))
            grid = r.strip.grids[k] if r.strip.grids else None
            tiles.append(label(overlay(base, heat, alpha=alpha), f"{name} {grid[0]}x{grid[1]}" if grid else name))
        gap = np.full((h, _GAP, 3), 255, np.uint8)
        line = tiles[0]
        for t in tiles[1:]:
            line = np.concatenate([line, gap, t], axis=1)
        lines.append((r.title, line))
    width = max(line.shape[1] for _, line in lines)
    out = []
    for title, line in lines:
        line = np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=255)
        out += [_text_band(width, title), line, np.full((_GAP * 2, width, 3), 255, np.uint8)]
    return np.concatenate(out[:-1], axis=0)
