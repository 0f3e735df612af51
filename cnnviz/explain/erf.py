"""Effective receptive field (Luo et al., NeurIPS 2016).

The analytic receptive field says which input pixels *can* reach a unit; the effective one says
how much each actually does: the magnitude of the gradient of the centre unit of a layer with
respect to the input, averaged over images. It is roughly Gaussian, much smaller than the
analytic field, and grows with training. We summarize it by the radii (in input pixels, around
the unit's analytic centre) of the discs holding 50% and 90% of the gradient mass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnviz.errors import LayerError
from cnnviz.explain.receptive import ReceptiveField, receptive_field
from cnnviz.probe import LayerProbe, model_device


@dataclass
class ERF:
    """An effective receptive field."""

    layer: str
    heat: np.ndarray  # (H, W) float32, mean |d unit / d input| over images, sums to 1
    r50: float  # radius (input pixels) of the disc around ``center`` holding 50% of the mass
    r90: float
    center: tuple[float, float]  # (y, x) in input pixels: centre of the unit's analytic field
    unit: tuple[int, int]  # (y, x) of the unit in the layer's grid
    analytic: ReceptiveField
    n_images: int

    def to_dict(self) -> dict:
        return {"layer": self.layer, "r50": round(self.r50, 2), "r90": round(self.r90, 2),
                "center": [round(v, 2) for v in self.center], "unit": list(self.unit),
                "analytic": self.analytic.to_dict(), "n_images": self.n_images}


def mass_radius(heat: np.ndarray, center: tuple[float, float], fraction: float) -> float:
    """Smallest radius of a disc around ``center`` holding ``fraction`` of ``heat``'s mass."""
    h, w = heat.shape
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(yy - center[0], xx - center[1]).ravel()
    order = np.argsort(d, kind="stable")
    mass = heat.ravel()[order].astype(np.float64)
    total = mass.sum()
    if total <= 0:
        return float("nan")
    cum = np.cumsum(mass) / total
    i = int(np.searchsorted(cum, fraction - 1e-9))
    return float(d[order][min(i, len(d) - 1)])


def effective_receptive_field(
    model: nn.Module,
    info: "ModelInfo",  # noqa: F821
    layer: str,
    images: torch.Tensor | None = None,
    *,
    n: int = 8,
    channel: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
) -> ERF:
    """ERF of the centre unit of ``layer``.

    Args:
        model, info: the network and its ``ModelInfo``.
        layer: a layer with a spatial ``(B, C, h, w)`` output.
        images: normalized inputs ``(B, C, H, W)``; None = ``n`` standard-normal noise images
            (what Luo et al. use), drawn from ``seed``.
        channel: one channel of the unit; None = all channels summed.

    Returns:
        ``ERF`` with ``heat (H, W)`` normalized to sum 1 and the 50% / 90% radii.
    """
    from cnnviz import limits

    n = limits.check_int("effective_receptive_field(n=...) / --num", n, limits.DRAWS)
    batch_size = limits.check_int("effective_receptive_field(batch_size=...)", batch_size, limits.BATCH_SIZE)
    if channel is not None:
        channel = limits.check_int("--channel", channel, (0, 1 << 20))
    device = model_device(model)
    c, h, w = info.input_size
    if images is None:
        gen = torch.Generator().manual_seed(int(seed))
        images = torch.randn(n, c, h, w, generator=gen)
    if images.dim() != 4:
        raise ValueError("images must be (B, C, H, W)")
    rf = receptive_field(model, tuple(images.shape[1:]), layer, ignore_gates=True)
    total = torch.zeros(images.shape[2:], dtype=torch.float64)
    unit = (0, 0)
    with LayerProbe(model, [layer], grad=True, stop_after=True) as probe:
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device).float().requires_grad_(True)
            probe.run(x)
            a = probe.activations[layer]
            if a.dim() != 4 or a.shape[2] * a.shape[3] < 1:
                raise LayerError(f"layer {layer!r} outputs shape {tuple(a.shape[1:])}, not a spatial map (C, h, w).")
            if channel is not None and channel >= a.shape[1]:
                raise LayerError(f"--channel {channel} is out of range: {layer!r} has {a.shape[1]} channels (0-{a.shape[1] - 1}).")
            unit = ((a.shape[2] - 1) // 2, (a.shape[3] - 1) // 2)
            sel = a[:, :, unit[0], unit[1]] if channel is None else a[:, channel, unit[0], unit[1]]
            (g,) = torch.autograd.grad(sel.sum(), x)
            total += g.detach().abs().sum(1).sum(0).double().cpu()
    heat = total.numpy()
    heat = (heat / heat.sum()) if heat.sum() > 0 else heat
    H, W = heat.shape
    if rf.is_global:
        center = ((H - 1) / 2, (W - 1) / 2)
    else:
        (rh, rw), (sh, sw), (ph, pw) = rf.rf, rf.stride, rf.padding  # type: ignore[misc]
        center = (unit[0] * sh - ph + (rh - 1) / 2, unit[1] * sw - pw + (rw - 1) / 2)
    return ERF(layer, heat.astype(np.float32), mass_radius(heat, center, 0.5), mass_radius(heat, center, 0.9),
               (float(center[0]), float(center[1])), unit, rf, int(len(images)))


def render_erfs(erfs: list[tuple[str, ERF]], tile_px: int = 224) -> np.ndarray:
    """Side-by-side heatmaps (title, ERF) with the 50%/90% circles and the analytic field's box."""
    import cv2

    from cnnviz.images import resize_image
    from cnnviz.render import colorize, label

    tiles = []
    for title, e in erfs:
        m = e.heat / max(float(e.heat.max()), 1e-12)
        img = resize_image(colorize(np.sqrt(m), "inferno"), (tile_px, tile_px))  # sqrt: show the tails too
        sy, sx = tile_px / e.heat.shape[0], tile_px / e.heat.shape[1]
        cy, cx = e.center
        for r, col in ((e.r50, (80, 255, 80)), (e.r90, (80, 200, 255))):
            if np.isfinite(r):
                cv2.circle(img, (int(round(cx * sx)), int(round(cy * sy))), max(1, int(round(r * sx))), col, 1, cv2.LINE_AA)
        if not e.analytic.is_global:
            y0, x0, y1, x1 = e.analytic.region(*e.unit)
            cv2.rectangle(img, (int(x0 * sx), int(y0 * sy)), (int(x1 * sx) - 1, int(y1 * sy) - 1), (255, 255, 255), 1)
        tiles.append(label(img, f"{title}: r50 {e.r50:.0f} r90 {e.r90:.0f} px", scale=0.38))
    gap = np.full((tile_px, 6, 3), 255, np.uint8)
    out = tiles[0]
    for t in tiles[1:]:
        out = np.concatenate([out, gap, t], axis=1)
    return out
