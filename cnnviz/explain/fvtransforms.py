"""Transformation robustness for feature visualization: the random views the model sees each step.

An image that maximizes a class only through one exact pixel grid is an adversarial pattern of that
one network; an image that keeps maximizing it under random crops, zooms, shifts and rotations has to
draw the class's features at several places and scales, and another network recognizes it far more
often. Two view families, each ONE affine ``grid_sample`` per view with per-view random parameters:

* ``crop_views`` (cnnviz's default): ``n`` random square crops per image and step, each covering a
  random fraction of the canvas side (zoom-in), centred near the middle, lightly rotated, optionally
  mirrored, plus a little pixel noise; resampled to the side the model sees.
* ``lucent_views``: lucid/lucent's pad / jitter / scale / rotate / jitter stack composed into one
  resampling, with its magnitudes scaled to the canvas (a 28-px model gets 1-2 px of jitter, not 8).

Both take ``(B, C, H, W)`` images in [0, 1] and return ``(n * B, C, h, w)`` views ordered view-major
(view ``j`` of image ``i`` is row ``j * B + i``); areas outside the canvas read as grey 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

VIEW_KINDS = ("crops", "lucent", "none")


@dataclass(frozen=True)
class Views:
    """How the model looks at the canvas each step.

    Args:
        kind: ``"crops"``, ``"lucent"`` or ``"none"`` (the whole canvas, resized).
        n: views per image per step (their objectives are averaged).
        scale: crops: side of a view as a fraction of the canvas side, drawn uniformly in this range.
        shift: crops: standard deviation of the view centre, as a fraction of the canvas half-side
            (clamped so a crop stays on the canvas where it can).
        degrees: crops: rotation drawn uniformly in ``±degrees``.
        flip: crops: mirror half of the views left-right.
        noise: standard deviation of Gaussian pixel noise added to each view (in [0, 1] units).
        size: side the model sees (None: its own input size). A smaller side makes each view cheaper.
        strength: lucent: multiplies all its magnitudes (0 = a plain resize).
    """

    kind: str = "crops"
    n: int = 1
    scale: tuple[float, float] = (0.6, 1.0)
    shift: float = 0.15
    degrees: float = 5.0
    flip: bool = False
    noise: float = 0.0
    size: int | None = None
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in VIEW_KINDS:
            raise ValueError(f"views kind must be one of {VIEW_KINDS}, not {self.kind!r}")
        if self.n < 1 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"views need n >= 1 and 0 < scale[0] <= scale[1], not n={self.n}, scale={self.scale}")

    def out_hw(self, model_hw: tuple[int, int]) -> tuple[int, int]:
        """The ``(h, w)`` the model sees: ``size`` on the shorter side, the model's aspect kept."""
        if self.size is None:
            return model_hw
        mh, mw = model_hw
        return (self.size, max(1, round(self.size * mw / mh))) if mh <= mw else (max(1, round(self.size * mh / mw)), self.size)

    def __call__(self, img: torch.Tensor, model_hw: tuple[int, int], gen: torch.Generator) -> torch.Tensor:
        out = self.out_hw(model_hw)
        if self.kind == "none":
            v = fit_view(img, out).repeat(self.n, 1, 1, 1)
        elif self.kind == "lucent":
            v = torch.cat([lucent_views(img, out, gen, strength=self.strength) for _ in range(self.n)])
        else:
            v = crop_views(img, out, gen, n=self.n, scale=self.scale, shift=self.shift, degrees=self.degrees, flip=self.flip)
        if self.noise > 0:
            v = v + torch.randn(v.shape, generator=gen).to(v.device) * self.noise
        return v


def _sample(theta: torch.Tensor, img: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    grid = F.affine_grid(theta, [img.shape[0], img.shape[1], *out_hw], align_corners=False)
    # resample the grey-centred image so zero padding reads as grey 0.5, not black
    return F.grid_sample(img - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5


def crop_views(img: torch.Tensor, out_hw: tuple[int, int], gen: torch.Generator, *, n: int = 1,
               scale: tuple[float, float] = (0.6, 1.0), shift: float = 0.15, degrees: float = 5.0,
               flip: bool = False) -> torch.Tensor:
    """``n`` random square-ish crops of each image of ``img (B, C, H, W)`` -> ``(n * B, C, *out_hw)``."""
    b, c, h, w = img.shape
    m = n * b
    x = img.repeat(n, 1, 1, 1)
    u = torch.rand(m, 4, generator=gen)
    g = torch.randn(m, 2, generator=gen)
    s = scale[0] + (scale[1] - scale[0]) * u[:, 0]  # view side / canvas side
    lim = (1.0 - s).clamp(min=0.0)  # centre offsets that keep the crop on the canvas
    cy = torch.maximum(torch.minimum(g[:, 0] * shift, lim), -lim)
    cx = torch.maximum(torch.minimum(g[:, 1] * shift, lim), -lim)
    ang = (u[:, 1] * 2 - 1) * math.radians(degrees)
    mirror = torch.where(u[:, 2] < 0.5, -1.0, 1.0) if flip else torch.ones(m)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.zeros(m, 2, 3)
    # normalized coordinates: a crop of side s keeps the canvas aspect; rotation about its centre
    theta[:, 0, 0] = cos * s * mirror
    theta[:, 0, 1] = -sin * s * (h / w)
    theta[:, 1, 0] = sin * s * mirror * (w / h)
    theta[:, 1, 1] = cos * s
    theta[:, 0, 2] = cx
    theta[:, 1, 2] = cy
    return _sample(theta.to(img.device), x, out_hw)


def lucent_views(img: torch.Tensor, out_hw: tuple[int, int], generator: torch.Generator, *, strength: float = 1.0,
                 pad: int = 12, jitter: tuple[int, int] = (8, 4), scale: tuple[float, float] = (0.9, 1.1),
                 degrees: float = 10.0) -> torch.Tensor:
    """lucent's standard transforms as one resampling per image: ``(B, C, H, W)`` -> ``(B, C, *out_hw)``.

    Magnitudes are lucent's for a 224-px canvas, scaled by ``H / 224`` (at least one pixel), and
    by ``strength`` (0 = a plain resize). Each image gets its own draw (lucent draws one per batch).
    """
    b, _, h, w = img.shape
    px = h / 224.0
    p = max(1.0, pad * px) * strength
    j1, j2 = (max(1.0, j * px) * strength for j in jitter)
    u = torch.rand(b, 6, generator=generator).to(img.device)
    s = 1.0 + (scale[0] - 1.0 + (scale[1] - scale[0]) * u[:, 0]) * strength
    ang = (u[:, 1] * 2 - 1) * math.radians(degrees) * strength
    # centre offset in canvas pixels: sum of the two jitters, as lucent's two crops do
    dy = (u[:, 2] - 0.5) * j1 + (u[:, 4] - 0.5) * j2
    dx = (u[:, 3] - 0.5) * j1 + (u[:, 5] - 0.5) * j2
    # the view spans the padded canvas less the jitter crops, zoomed by 1/s
    span_y = (h + 2 * p - j1 - j2) / h / s
    span_x = (w + 2 * p - j1 - j2) / w / s
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.zeros(b, 2, 3, device=img.device)
    theta[:, 0, 0] = cos * span_x
    theta[:, 0, 1] = -sin * span_y * (h / w)
    theta[:, 1, 0] = sin * span_x * (w / h)
    theta[:, 1, 1] = cos * span_y
    theta[:, 0, 2] = 2 * dx / w
    theta[:, 1, 2] = 2 * dy / h
    return _sample(theta, img, out_hw)


def fit_view(img: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Deterministic view: ``img`` resized to ``out_hw`` (antialiased when shrinking)."""
    if tuple(img.shape[-2:]) == tuple(out_hw):
        return img
    return F.interpolate(img, size=out_hw, mode="bilinear", align_corners=False,
                         antialias=img.shape[-1] > out_hw[-1])
