"""Image parameterizations and robustness transforms for feature visualization.

* ``ImageParam``: a batch of images as learnable parameters, either raw pixels or a Fourier
  spectrum scaled by ``1 / frequency`` (so every frequency learns at the same rate: the
  "decorrelated" space of Olah et al., Distill 2017), with colours decorrelated by the square root
  of ImageNet's colour covariance and squashed into [0, 1] by a sigmoid.
* ``random_views``: the lucid/lucent transform stack (pad, jitter, scale, rotate, jitter) done as
  ONE affine ``grid_sample`` per image with per-image random parameters, so each step resamples
  once (lucent resamples for scale and again for rotation, and uses the same draw for the whole
  batch), and with magnitudes scaled to the canvas so a 28-px model gets a 1-2 px jitter, not 8.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Square root of the colour correlation of ImageNet images (lucid's published constants).
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
_COLOR_NORM = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


class ImageParam(nn.Module):
    """``forward() -> (B, C, H, W)`` images in [0, 1] from learnable parameters.

    Args:
        batch, channels, height, width: the canvas.
        kind: ``"fft"`` (scaled spectrum) or ``"pixel"``.
        decay: spectrum scale exponent, ``1 / f**decay`` (fft only).
        sd: standard deviation of the initial parameters.
        generator: CPU ``torch.Generator`` for the initial draw (reproducible on any device).
    """

    def __init__(self, batch: int, channels: int, height: int, width: int, *, kind: str = "fft", decay: float = 1.0,
                 sd: float = 0.01, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> None:
        super().__init__()
        if kind not in ("fft", "pixel"):
            raise ValueError(f"kind must be fft or pixel, not {kind!r}")
        self.kind, self.shape = kind, (batch, channels, height, width)
        if kind == "fft":
            fy = torch.fft.fftfreq(height)[:, None]
            fx = torch.fft.rfftfreq(width)[None, :]
            freq = torch.sqrt(fy**2 + fx**2)
            scale = 1.0 / torch.clamp(freq, min=1.0 / max(height, width)) ** decay
            self.register_buffer("scale", scale.to(device), persistent=False)
            init = torch.randn(batch, channels, height, width // 2 + 1, 2, generator=generator) * sd
        else:
            init = torch.randn(batch, channels, height, width, generator=generator) * sd
        self.raw = nn.Parameter(init.to(device))
        self.register_buffer("color", torch.from_numpy(_COLOR_NORM).to(device), persistent=False)

    def forward(self) -> torch.Tensor:
        b, c, h, w = self.shape
        if self.kind == "fft":
            spec = torch.view_as_complex(self.raw) * self.scale
            t = torch.fft.irfft2(spec, s=(h, w), norm="ortho") / 4.0
        else:
            t = self.raw
        if c == 3:  # decorrelated colour -> RGB
            t = torch.einsum("bchw,dc->bdhw", t, self.color)
        return torch.sigmoid(t)


def random_views(img: torch.Tensor, out_hw: tuple[int, int], generator: torch.Generator, *, strength: float = 1.0,
                 pad: int = 12, jitter: tuple[int, int] = (8, 4), scale: tuple[float, float] = (0.9, 1.1),
                 degrees: float = 10.0) -> torch.Tensor:
    """Randomly padded/jittered/scaled/rotated views of ``img`` ``(B, C, H, W)`` -> ``(B, C, *out_hw)``.

    Magnitudes are lucent's for a 224-px canvas, scaled by ``H / 224`` (at least one pixel), and
    by ``strength`` (0 = a plain resize). Areas outside the canvas read as grey 0.5.
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
    grid = F.affine_grid(theta, [b, img.shape[1], *out_hw], align_corners=False)
    return F.grid_sample(img - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5


def fit_view(img: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Deterministic view: ``img`` resized to ``out_hw`` (antialiased when shrinking)."""
    if tuple(img.shape[-2:]) == tuple(out_hw):
        return img
    return F.interpolate(img, size=out_hw, mode="bilinear", align_corners=False,
                         antialias=img.shape[-1] > out_hw[-1])


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """``(B, C, H, W)`` in [0, 1] -> ``(B, H, W, 3) uint8`` (grey channels repeated)."""
    a = (img.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return np.repeat(a, 3, axis=3) if a.shape[3] == 1 else np.ascontiguousarray(a[..., :3])
