"""Training augmentation presets: ``none``, ``basic`` (crop/zoom + flip), ``strong`` (+ affine, colour, erasing).

A preset is a picklable callable PIL image -> normalized ``(C, H, W)`` float32, built from torchvision
transforms; randomness comes from torch's RNG (seeded per run by the trainer, per worker by the
DataLoader), so a seeded run is reproducible and a resumed run continues the same stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnviz.errors import CnnvizError

PRESETS = ("none", "basic", "strong")
PRESET_HELP = {
    "none": "resize only (what evaluation sees)",
    "basic": "random resized crop (zoom 80-100%) + horizontal flip",
    "strong": "crop/zoom 60-100% + flip + affine (rotate 15, shift 10%, shear 5) + colour jitter + random erasing",
}


class TrainTransform:
    """PIL -> ``(chans, size[0], size[1])`` float32 with the ``preset``'s random augmentation."""

    def __init__(self, preset: str, size: tuple[int, int], chans: int, mean: Sequence[float], std: Sequence[float]) -> None:
        if preset not in PRESETS:
            raise CnnvizError(f"--augment {preset!r} is not one of {', '.join(PRESETS)}.")
        self.preset, self.size, self.chans = preset, (int(size[0]), int(size[1])), int(chans)
        self.mean, self.std = tuple(mean), tuple(std)
        self._pil, self._tensor = self._build()

    def _build(self) -> tuple[Any, Any]:
        from torchvision import transforms as T

        h, w = self.size
        if self.preset == "none":
            pil: list[Any] = [T.Resize((h, w), antialias=True)]
        elif self.preset == "basic":
            pil = [T.RandomResizedCrop((h, w), scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True), T.RandomHorizontalFlip()]
        else:
            pil = [
                T.RandomResizedCrop((h, w), scale=(0.6, 1.0), ratio=(0.8, 1.25), antialias=True),
                T.RandomHorizontalFlip(),
                T.RandomAffine(degrees=15, translate=(0.1, 0.1), shear=5),
                T.ColorJitter(0.4, 0.4, 0.4 if self.chans == 3 else 0.0, 0.05 if self.chans == 3 else 0.0),
            ]
        post = [T.RandomErasing(p=0.25, scale=(0.02, 0.15), value=0)] if self.preset == "strong" else []
        return T.Compose(pil), T.Compose(post) if post else None

    def augment_pil(self, img: Any) -> Any:
        """The augmented PIL image (before normalization), for previews."""
        from cnnviz.data import _to_chans

        return self._pil(_to_chans(img, self.chans))

    def __call__(self, img: Any) -> "torch.Tensor":  # noqa: F821
        from cnnviz.data import to_normalized_tensor

        t = to_normalized_tensor(self.augment_pil(img), self.mean, self.std)
        return self._tensor(t) if self._tensor is not None else t


def train_transform(info: "ModelInfo", preset: str = "basic") -> TrainTransform:  # noqa: F821
    """The training transform for a model: ``preset`` at ``info.input_size`` with its mean/std."""
    return TrainTransform(preset, tuple(info.input_size[1:]), info.in_chans, info.mean, info.std)


def augment_samples(image: np.ndarray, preset: str = "basic", n: int = 16, size: int | None = None, seed: int = 0) -> list[np.ndarray]:
    """``n`` augmented versions of an ``(H, W, 3) uint8`` image -> list of ``(S, S, 3) uint8``.

    The first tile is the unaugmented (resized) image. ``size`` defaults to the image's shorter side
    (at most 224). Uses a forked torch RNG seeded with ``seed``: the caller's RNG is untouched.
    """
    import torch
    from PIL import Image

    s = int(size or min(224, min(image.shape[:2])))
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    tf = TrainTransform(preset, (s, s), 3, mean, std)
    plain = TrainTransform("none", (s, s), 3, mean, std)
    pil = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    out = [np.asarray(plain.augment_pil(pil))]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(max(0, n - 1)):
            t = tf(pil)  # (3, s, s) in [0, 1]; includes random erasing for "strong"
            out.append((t.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy())
    return out
