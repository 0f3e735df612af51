"""Image parameterizations for feature visualization (the views the model sees: ``fvtransforms``).

``ImageParam`` holds a batch of images as learnable parameters, in one of three spaces, with colours
decorrelated by the square root of ImageNet's colour covariance and squashed into [0, 1] by a sigmoid:

* ``"fft"``: a Fourier spectrum scaled by ``1 / frequency`` (so every frequency learns at the same
  rate: the "decorrelated" space of Olah et al., Distill 2017; lucid/lucent's default).
* ``"maco"``: magnitude-constrained (after Fel et al. 2023, MACO): the spectrum's magnitude is fixed
  to a natural-image power law ``1 / f**decay`` and only the phase is learned, then the image is
  standardized, so contrast and spectrum stay those of a photograph.
* ``"pixel"``: raw pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

# Square root of the colour correlation of ImageNet images (lucid's published constants).
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
_COLOR_NORM = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


KINDS = ("fft", "maco", "pixel", "pyramid")


def _freqs(height: int, width: int) -> torch.Tensor:
    """``(height, width // 2 + 1)`` spatial frequencies of an ``rfft2`` spectrum (cycles per pixel)."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    return torch.sqrt(fy**2 + fx**2)


class ImageParam(nn.Module):
    """``forward() -> (B, C, H, W)`` images in [0, 1] from learnable parameters.

    Args:
        batch, channels, height, width: the canvas.
        kind: ``"fft"`` (scaled spectrum), ``"maco"`` (fixed magnitude, learned phase), ``"pixel"``, or
            ``"pyramid"``: pixel grids at 1, 1/2, 1/4 ... of the canvas (down to 4 px), each upsampled
            bilinearly and summed, so coarse structure is one parameter away (lucid's multi-resolution idea).
        decay: spectrum exponent, ``1 / f**decay`` (fft: the learning-rate scale; maco: the magnitude).
        sd: standard deviation of the initial parameters.
        generator: CPU ``torch.Generator`` for the initial draw (reproducible on any device).
        base: colour in [0, 1] (one value, or one per channel) the canvas starts from; None: grey 0.5.
    """

    def __init__(self, batch: int, channels: int, height: int, width: int, *, kind: str = "fft", decay: float = 1.0,
                 sd: float = 0.01, generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                 base: Sequence[float] | None = None) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        self.kind, self.shape = kind, (batch, channels, height, width)
        if kind == "maco":
            scale = 1.0 / torch.clamp(_freqs(height, width), min=1.0 / max(height, width)) ** decay
            scale[0, 0] = 0.0  # no DC term: the mean is set by the standardization
            self.register_buffer("scale", scale.to(device), persistent=False)
            init = torch.rand(batch, channels, height, width // 2 + 1, generator=generator) * (2 * math.pi)
        elif kind == "fft":
            scale = 1.0 / torch.clamp(_freqs(height, width), min=1.0 / max(height, width)) ** decay
            self.register_buffer("scale", scale.to(device), persistent=False)
            init = torch.randn(batch, channels, height, width // 2 + 1, 2, generator=generator) * sd
        elif kind == "pyramid":  # pixel grids at 1, 1/2, 1/4 ... of the canvas (down to 4 px), upsampled and summed
            self.levels = [(max(1, -(-height // 2**k)), max(1, -(-width // 2**k))) for k in range(8)
                           if min(height, width) // 2**k >= 4 or k == 0]
            init = torch.randn(batch, channels, sum(h * w for h, w in self.levels), generator=generator) * sd
        else:
            init = torch.randn(batch, channels, height, width, generator=generator) * sd
        self.raw = nn.Parameter(init.to(device))
        self.register_buffer("color", torch.from_numpy(_COLOR_NORM).to(device), persistent=False)
        # The colour the canvas starts from (and is pulled back to by the sigmoid): grey by default, the
        # training data's mean when known, so a dark-background dataset's class images start dark.
        if base is not None and np.ndim(base) == 3:  # a mean image (C', h, w): resized to the canvas
            b = torch.as_tensor(np.asarray(base, dtype=np.float32))[None]
            b = b.mean(1, keepdim=True).expand(1, channels, -1, -1) if b.shape[1] != channels else b
            b = torch.nn.functional.interpolate(b, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        else:
            b = torch.tensor([0.5] if base is None else [float(v) for v in base])
            b = (b.expand(channels) if b.numel() in (1, channels) else b.mean().expand(channels)).view(1, channels, 1, 1)
        self.register_buffer("offset", torch.logit(b.clamp(0.02, 0.98)).to(device), persistent=False)

    def forward(self) -> torch.Tensor:
        b, c, h, w = self.shape
        if self.kind == "fft":
            spec = torch.view_as_complex(self.raw) * self.scale
            t = torch.fft.irfft2(spec, s=(h, w), norm="ortho") / 4.0
        elif self.kind == "maco":
            t = torch.fft.irfft2(torch.polar(self.scale.expand_as(self.raw), self.raw), s=(h, w), norm="ortho")
            t = (t - t.mean(dim=(1, 2, 3), keepdim=True)) / (t.std(dim=(1, 2, 3), keepdim=True) + 1e-6)
        elif self.kind == "pyramid":
            t, start = 0.0, 0
            for lh, lw in self.levels:
                level = self.raw[..., start:start + lh * lw].reshape(b, c, lh, lw)
                start += lh * lw
                t = t + (level if (lh, lw) == (h, w) else
                         torch.nn.functional.interpolate(level, size=(h, w), mode="bilinear", align_corners=False))
        else:
            t = self.raw
        if c == 3:  # decorrelated colour -> RGB
            t = torch.einsum("bchw,dc->bdhw", t, self.color)
        return torch.sigmoid(t + self.offset)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """``(B, C, H, W)`` in [0, 1] -> ``(B, H, W, 3) uint8`` (grey channels repeated)."""
    a = (img.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return np.repeat(a, 3, axis=3) if a.shape[3] == 1 else np.ascontiguousarray(a[..., :3])
