"""A layer's kernels as pictures: first-layer RGB filters, deeper filters per output channel.

Works on ``nn.Conv2d`` (any groups, so depthwise convs too) and on modules that hold exactly one
conv, such as a ViT's ``patch_embed`` (whose ``proj`` kernels are the patch filters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from cnnviz.errors import LayerError
from cnnviz.layers import resolve_layer


@dataclass
class Kernels:
    """Weights of one conv layer, ``(out, in_per_group, kh, kw)`` float32, and how to show them."""

    layer: str  # the conv actually used (e.g. ``patch_embed.proj``)
    weights: np.ndarray
    groups: int
    kind: str  # "rgb" (3 input channels) | "gray" (1 input) | "depthwise" | "multi" (many inputs)


def find_conv(model: nn.Module, layer: str) -> tuple[str, nn.Conv2d]:
    """The ``nn.Conv2d`` named ``layer``, or the single conv inside it; ``LayerError`` otherwise."""
    module = resolve_layer(model, layer)
    if isinstance(module, nn.Conv2d):
        return layer, module
    convs = [(f"{layer}.{n}", m) for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    if len(convs) == 1:
        return convs[0]
    kind = type(module).__name__
    if convs:
        raise LayerError(f"layer {layer!r} ({kind}) holds {len(convs)} convolutions; pick one: {', '.join(n for n, _ in convs[:6])}.")
    raise LayerError(f"layer {layer!r} is a {kind}, which has no convolution kernels to show. Pick a Conv2d layer (see `cnnviz layers`).")


def layer_kernels(model: nn.Module, layer: str) -> Kernels:
    """Read the kernels of ``layer`` (see ``find_conv``) into a ``Kernels``."""
    name, conv = find_conv(model, layer)
    w = conv.weight.detach().float().cpu().numpy()
    cin = w.shape[1]
    if conv.groups > 1 and cin == 1:
        kind = "depthwise"
    elif cin == 3:
        kind = "rgb"
    elif cin == 1:
        kind = "gray"
    else:
        kind = "multi"
    return Kernels(name, w, conv.groups, kind)


def filter_tiles(
    kernels: Kernels,
    *,
    max_filters: int | None = 64,
    in_channel: int | None = None,
    normalize: str = "per-filter",
) -> list[np.ndarray]:
    """One ``(kh, kw, 3) uint8`` picture per output channel (at most ``max_filters``).

    RGB first-layer kernels are shown in colour. Other kernels are reduced to one map per output
    channel -- the mean over input channels, or ``in_channel`` -- and drawn on a diverging scale
    (blue negative, white zero, red positive). ``normalize``: ``per-filter`` scales each kernel to
    its own range; ``shared`` uses one range for all, so magnitudes compare across filters.
    """
    from cnnviz.render import colorize

    if normalize not in ("per-filter", "shared"):
        raise LayerError(f"--normalize {normalize!r} is not one of per-filter, shared.")
    w = kernels.weights
    if max_filters is not None:
        w = w[:max_filters]
    if kernels.kind == "rgb" and in_channel is None:
        maps = w.transpose(0, 2, 3, 1)  # (O, kh, kw, 3)
        if normalize == "shared":
            lim = float(np.abs(maps).max()) or 1.0
            return [((m / lim) * 0.5 + 0.5).clip(0, 1).__mul__(255).astype(np.uint8) for m in maps]
        out = []
        for m in maps:
            lim = float(np.abs(m).max()) or 1.0
            out.append(((m / lim) * 0.5 + 0.5).clip(0, 1).__mul__(255).astype(np.uint8))
        return out
    if in_channel is not None:
        if not 0 <= in_channel < w.shape[1]:
            raise LayerError(f"--in-channel {in_channel} is out of range: layer {kernels.layer} kernels have {w.shape[1]} input channels per group.")
        maps = w[:, in_channel]
    else:
        maps = w.mean(axis=1)  # (O, kh, kw)
    if normalize == "shared":
        lims = np.full(len(maps), float(np.abs(maps).max()) or 1.0)
    else:
        lims = np.array([float(np.abs(m).max()) or 1.0 for m in maps])
    return [colorize((m / lim) * 0.5 + 0.5, "RdBu_r") for m, lim in zip(maps, lims)]


def filter_grid(
    kernels: Kernels,
    *,
    max_filters: int | None = 64,
    in_channel: int | None = None,
    normalize: str = "per-filter",
    tile_px: int = 48,
) -> np.ndarray:
    """All tiles of ``filter_tiles`` in one ``uint8`` grid image, each kernel upscaled crisply."""
    from cnnviz.render import tile

    tiles = filter_tiles(kernels, max_filters=max_filters, in_channel=in_channel, normalize=normalize)
    k = max(tiles[0].shape[:2])
    return tile(tiles, upscale=max(1, tile_px // k), pad=max(2, tile_px // 16))
