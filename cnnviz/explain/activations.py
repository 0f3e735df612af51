"""Feature maps of one layer for one image, ranked by mean activation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnviz.errors import LayerError
from cnnviz.probe import LayerProbe, output_layout


@dataclass
class ActivationMaps:
    """Top-K channels of a layer's output for one input."""

    layer: str
    maps: np.ndarray  # (K, h, w) float32, raw activations
    channels: list[int]  # channel index of each map
    means: list[float]  # mean activation of each map (the ranking key)
    shape: tuple[int, ...]  # full layer output shape without batch, (C, h, w)

    def picture(self, img: np.ndarray, shared_scale: bool = False, tile_px: int = 96) -> np.ndarray:
        """The input image beside the maps (``render_activations``): one ``(H, W, 3) uint8`` picture."""
        return render_activations(img, self, shared_scale=shared_scale, tile_px=tile_px)


def activation_maps(model: nn.Module, x: torch.Tensor, layer: str, top: int = 16) -> ActivationMaps:
    """Run ``x`` (``(1, C, H, W)``) to ``layer`` and keep its ``top`` channels by mean activation.

    Layers with token outputs ``(1, N, D)`` (ViTs) are reshaped to a square grid when N or N-1 is
    a square (a class token is dropped); channels-last maps ``(1, h, w, C)`` (timm's Swin) are
    transposed to ``(C, h, w)``; other non-spatial outputs are a ``LayerError``.
    """
    with LayerProbe(model, [layer], stop_after=True) as probe:
        probe.run(x)
        out = probe.activations[layer]
        if output_layout(out.shape, x.shape[-2:], probe.modules[layer]) == "NHWC":
            out = out.permute(0, 3, 1, 2)
        a = out[0].float()
    if a.dim() == 2:  # tokens (N, D) -> (D, s, s)
        n = a.shape[0]
        s = int(round(n**0.5))
        s1 = int(round((n - 1) ** 0.5))
        if s * s == n:
            a = a.T.reshape(-1, s, s)
        elif s1 * s1 == n - 1:
            a = a[1:].T.reshape(-1, s1, s1)
        else:
            raise LayerError(f"layer {layer!r} outputs {n} tokens, which do not form a square grid.")
    if a.dim() != 3:
        raise LayerError(f"layer {layer!r} outputs shape {tuple(a.shape)}, not feature maps (C, H, W). Pick a convolutional layer (see `cnnviz layers`).")
    means = a.mean(dim=(1, 2))
    k = min(top, a.shape[0])
    order = torch.argsort(means, descending=True)[:k]
    return ActivationMaps(layer, a[order].cpu().numpy(), order.tolist(), means[order].tolist(), tuple(a.shape))


def render_activations(img: np.ndarray, acts: ActivationMaps, shared_scale: bool = False, tile_px: int = 96) -> np.ndarray:
    """The input image beside a grid of the feature maps (viridis), as one ``uint8`` picture."""
    from cnnviz.images import resize_image, resize_map
    from cnnviz.render import colorize, label, normalize01, tile

    lo, hi = (float(acts.maps.min()), float(acts.maps.max())) if shared_scale else (None, None)
    # tiles keep the photo's aspect: the maps were computed on the whole (resized) image
    th, tw = (tile_px, max(8, round(tile_px * img.shape[1] / img.shape[0])))
    tiles = []
    for m, c in zip(acts.maps, acts.channels):
        t = colorize(normalize01(resize_map(m, (th, tw)), lo, hi), "viridis")
        tiles.append(label(t, f"ch {c}", scale=0.35))
    grid = tile(tiles, pad=2)
    h = grid.shape[0]
    scale = h / img.shape[0]
    left = resize_image(img, (h, max(1, int(round(img.shape[1] * scale)))))
    gap = np.full((h, 6, 3), 255, np.uint8)
    return np.concatenate([left, gap, grid], axis=1)
