"""The one image -> tensor path: every caller (training, evaluation, compare, examples, the explainers,
the gallery) turns images into model inputs here, so the same image gives the same tensor everywhere.

Images stay ``uint8`` at their own size until the last moment. ``prepare_batch`` turns a uint8 batch
``(B, C, H, W)`` (on any device) into the model's normalized float batch ``(B, chans, h, w)``:

1. channel adaptation: RGB -> 1 channel by luminance (ITU-R 601: 0.299 R + 0.587 G + 0.114 B, with PIL's
   ``convert("L")`` fixed-point formula on uint8, so a gray RGB image gives its gray values back);
   1 channel -> RGB by replication (after the resize, which is then 3x cheaper);
2. to float in [0, 1] (``x / 255``);
3. resize of the whole image (no crop) with torch's antialiased bilinear ``interpolate`` - the filter of
   PIL's ``BILINEAR`` resize, computed in float (no rounding to uint8 after resizing) and on the GPU when
   the batch is there;
4. ``(x - mean) / std``.

The per-image entry points (``preprocess``, ``to_tensor``, ``Transform.__call__``) call the same function
on a batch of one; ``interpolate`` treats batch rows independently, so a row of a batch and the image
alone give bit-identical tensors on the same device.

Augmentation (``TrainTransform``) works on the uint8 image at its native size (torchvision's v2 ops on
uint8 tensors) before that same resize, so a DataLoader moves small uint8 images and the resize runs
once per batch where the model is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnviz.errors import CnnvizError, ImageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from cnnviz.models import ModelInfo

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, the weights PIL's convert("L") uses (here in float)
PRESETS = ("none", "basic", "strong")
PRESET_HELP = {
    "none": "resize only (what evaluation sees)",
    "basic": "random resized crop (zoom 80-100%) + horizontal flip",
    "strong": "crop/zoom 60-100% + flip + affine (rotate 15, shift 10%, shear 5) + colour jitter + random erasing",
}


# --------------------------------------------------------------------------------------------
# images -> uint8 (C, H, W)
# --------------------------------------------------------------------------------------------
def as_chw(img: Any) -> "torch.Tensor":
    """An image -> ``(C, H, W)`` tensor at its own size, C = 1 or 3, without copying when possible.

    Accepts a PIL image (``L`` stays one channel; any other mode is decoded like ``load_image``:
    16-bit scaled, transparency composited on white), a numpy array ``(H, W)``, ``(H, W, 1|3|4)``
    (uint8, or float in [0, 1]), or a tensor ``(C, H, W)`` / ``(H, W)``. uint8 stays uint8.
    """
    import torch

    if isinstance(img, torch.Tensor):
        t = img if img.dim() == 3 else img.unsqueeze(0) if img.dim() == 2 else None
        if t is None or t.shape[0] not in (1, 3):
            raise ImageError(f"expected an image tensor (C, H, W) with 1 or 3 channels, got shape {tuple(img.shape)}.")
        return t
    if not isinstance(img, np.ndarray):
        img = _pil_to_array(img)
    a = img
    if a.ndim == 3 and a.shape[2] == 4:
        from PIL import Image

        a = to_rgb_uint8(Image.fromarray(np.ascontiguousarray(a.astype(np.uint8)), "RGBA"))
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ImageError(f"expected an image array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {img.shape}.")
    if a.dtype != np.uint8 and not np.issubdtype(a.dtype, np.floating):
        if a.size and (a.min() < 0 or a.max() > 255):  # 16-bit data: scaling is load_image's job
            raise ImageError(f"expected uint8 pixel values (0-255), got {a.dtype} in {a.min()}..{a.max()}; "
                             "read the file with cnnviz.images.load_image (it scales 16-bit images).")
        a = a.astype(np.uint8)
    if not a.flags.writeable:  # torch.from_numpy warns on read-only memory (cached dataset arrays)
        a = a.copy()
    return torch.from_numpy(a).permute(2, 0, 1)


def _pil_to_array(im: Any) -> np.ndarray:
    if not hasattr(im, "mode"):
        raise ImageError(f"expected a PIL image, a numpy array or a tensor, got {type(im).__name__}.")
    if im.mode in ("L", "RGB"):
        return np.asarray(im)
    return to_rgb_uint8(im)


def _to_chans(img: Any, chans: int) -> Any:
    """A PIL image in mode ``L`` (chans 1) or ``RGB`` (chans 3) - kept for callers of the old API."""
    want = "L" if chans == 1 else "RGB"
    return img if img.mode == want else img.convert(want)


# --------------------------------------------------------------------------------------------
# the one function: uint8 batch -> the model's normalized float batch
# --------------------------------------------------------------------------------------------
def prepare_batch(
    x: "torch.Tensor",
    size: Sequence[int] | None,
    chans: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> "torch.Tensor":
    """``(B, C, H, W)`` uint8 (or float in [0, 1]) -> normalized ``(B, chans, h, w)`` float32 on ``x.device``.

    ``size`` is ``(h, w)`` (None keeps ``(H, W)``); C and ``chans`` are 1 or 3; ``mean``/``std`` have
    ``chans`` entries. See the module docstring for the steps.
    """
    import torch
    import torch.nn.functional as F

    if x.dim() != 4:
        raise ValueError(f"prepare_batch expects (B, C, H, W), got shape {tuple(x.shape)}")
    if len(mean) != chans or len(std) != chans:
        raise CnnvizError(f"mean/std have {len(mean)}/{len(std)} values for a {chans}-channel model.")
    c = x.shape[1]
    if c not in (1, 3) or chans not in (1, 3):
        raise ImageError(f"cannot feed a {c}-channel image to a {chans}-channel model (1 or 3 channels).")
    if c == 3 and chans == 1:  # luminance first: resizing one channel is 3x cheaper
        x = _luminance(x)
    x = x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32)
    if size is not None and tuple(x.shape[-2:]) != (int(size[0]), int(size[1])):
        x = F.interpolate(x, size=(int(size[0]), int(size[1])), mode="bilinear", align_corners=False, antialias=True)
    if c == 1 and chans == 3:  # replicate after resizing (3x cheaper)
        x = x.expand(-1, 3, -1, -1)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return ((x - m) / s).contiguous()


def _luminance(x: "torch.Tensor") -> "torch.Tensor":
    """``(B, 3, H, W)`` -> ``(B, 1, H, W)`` luma. uint8 uses PIL's fixed-point formula (so a gray RGB
    image gives back exactly its gray values, and results equal ``convert("L")``); float uses ``LUMA``."""
    import torch

    if x.dtype == torch.uint8:
        r, g, b = (x[:, k:k + 1].to(torch.int32) for k in range(3))
        return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8)
    return x[:, 0:1] * LUMA[0] + x[:, 1:2] * LUMA[1] + x[:, 2:3] * LUMA[2]


class Transform:
    """The evaluation transform of one model: image -> normalized ``(chans, size[0], size[1])`` float32.

    ``sample(img)`` is what a DataLoader worker produces (``(C, H, W)`` uint8 at the image's size),
    ``batch(x)`` finishes a stacked uint8 batch ``(B, C, H, W)`` on its device, and ``transform(img)``
    does both for one image. A class (not a closure) so DataLoader worker processes can pickle it.
    """

    def __init__(self, size: Sequence[int], chans: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.chans, self.mean, self.std = int(chans), tuple(float(v) for v in mean), tuple(float(v) for v in std)

    def sample(self, img: Any) -> "torch.Tensor":
        """``(C, H, W)`` at the image's own size (uint8 for uint8 input); nothing random."""
        return as_chw(img)

    def batch(self, x: "torch.Tensor") -> "torch.Tensor":
        """``(B, C, H, W)`` uint8 -> ``(B, chans, h, w)`` normalized float32 (see ``prepare_batch``)."""
        return prepare_batch(x, self.size, self.chans, self.mean, self.std)

    def __call__(self, img: Any) -> "torch.Tensor":
        return self.batch(self.sample(img).unsqueeze(0))[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, chans={self.chans}, mean={self.mean}, std={self.std})"


def eval_transform(info: "ModelInfo", size: Sequence[int] | None = None) -> Transform:
    """The model's transform: image -> ``(info.in_chans, H, W)`` normalized float32, ``(H, W) = size or info.input_size[1:]``."""
    return Transform(tuple(size or info.input_size[1:]), info.in_chans, info.mean, info.std)


def to_tensor(img: Any, mean: Sequence[float], std: Sequence[float], size: Sequence[int]) -> "torch.Tensor":
    """``(H, W, 3) uint8`` (or any ``as_chw`` input) -> normalized ``(1, C, h, w)``, C = ``len(mean)`` (1 or 3).

    The whole image is resized to ``size`` (no crop). One-channel models get the luminance.
    """
    return prepare_batch(as_chw(img).unsqueeze(0), size, len(mean), mean, std)


def preprocess(img: Any, info: "ModelInfo", size: Sequence[int] | None = None) -> "torch.Tensor":
    """``to_tensor`` with the model's own mean/std and input size: ``(1, C, H, W)``."""
    return to_tensor(img, info.mean, info.std, tuple(size or info.input_size[1:]))


def denormalize(x: "torch.Tensor", mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Inverse of ``to_tensor`` for display: ``(C, H, W)`` or ``(1, C, H, W)`` -> ``(H, W, 3) uint8``."""
    import torch

    t = x.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    a = ((t * s + m).clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else np.ascontiguousarray(a)


def to_uint8_image(x: "torch.Tensor") -> np.ndarray:
    """A ``(C, H, W)`` float image in [0, 1] -> ``(H, W, 3) uint8`` (rounded)."""
    return denormalize(x, (0.0,) * x.shape[-3], (1.0,) * x.shape[-3])


# --------------------------------------------------------------------------------------------
# augmentation: uint8 at the native size, then the same resize
# --------------------------------------------------------------------------------------------
class TrainTransform(Transform):
    """``Transform`` whose ``sample`` applies the ``preset``'s random augmentation first.

    The augmentation keeps each image's own size and dtype (uint8), so ``batch`` - the same
    resize + normalization as evaluation - finishes it on the training device. Randomness comes
    from torch's RNG (seeded per run by the trainer, per worker by the DataLoader).
    """

    def __init__(self, preset: str, size: Sequence[int], chans: int, mean: Sequence[float], std: Sequence[float]) -> None:
        if preset not in PRESETS:
            raise CnnvizError(f"--augment {preset!r} is not one of {', '.join(PRESETS)}.")
        super().__init__(size, chans, mean, std)
        self.preset = preset
        self._ops: dict[int, Any] = {}  # image channels -> the v2 pipeline (built lazily; picklable)

    def _pipeline(self, c: int) -> Any:
        if c not in self._ops:
            from torchvision.transforms import v2

            ops: list[Any] = []
            if self.preset != "none":
                ops.append(v2.RandomHorizontalFlip())
            if self.preset == "strong":
                fill = _fill(self.mean, c)
                ops += [v2.RandomAffine(degrees=15, translate=(0.1, 0.1), shear=5, fill=fill),
                        v2.ColorJitter(0.4, 0.4, 0.4 if c == 3 else 0.0, 0.05 if c == 3 else 0.0),
                        v2.RandomErasing(p=0.25, scale=(0.02, 0.15), value=fill)]
            self._ops[c] = v2.Compose(ops) if ops else None
        return self._ops[c]

    def augment(self, x: "torch.Tensor") -> "torch.Tensor":
        """``(C, H, W)`` uint8 -> an augmented ``(C, H, W)`` uint8 of the same size."""
        if self.preset == "none":
            return x
        scale, ratio = ((0.8, 1.0), (0.9, 1.1)) if self.preset == "basic" else ((0.6, 1.0), (0.8, 1.25))
        x = random_resized_crop(x, scale, ratio)
        ops = self._pipeline(x.shape[0])
        return ops(x) if ops is not None else x

    def sample(self, img: Any) -> "torch.Tensor":
        import torch

        x = as_chw(img)
        if x.dtype != torch.uint8:
            x = (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        return self.augment(x)

    def augment_pil(self, img: Any) -> Any:
        """The augmented image at the transform's size as a PIL image (before normalization), for previews."""
        from PIL import Image

        x = prepare_batch(self.sample(img).unsqueeze(0), self.size, self.chans, (0.0,) * self.chans, (1.0,) * self.chans)[0]
        a = to_uint8_image(x)
        return Image.fromarray(a[..., 0] if self.chans == 1 else a, "L" if self.chans == 1 else "RGB")

    def __repr__(self) -> str:
        return f"TrainTransform({self.preset!r}, size={self.size}, chans={self.chans})"


def _fill(mean: Sequence[float], c: int) -> list[int]:
    """The model's mean colour as uint8 values for ``c`` image channels (erased / exposed pixels)."""
    m = list(mean) if len(mean) == c else [sum(mean) / len(mean)] * c
    return [int(round(255 * v)) for v in m]


def random_resized_crop(x: "torch.Tensor", scale: tuple[float, float], ratio: tuple[float, float]) -> "torch.Tensor":
    """A random crop of ``scale`` of the area and ``ratio`` aspect, resized back to ``x``'s own ``(H, W)``."""
    from torchvision.transforms import RandomResizedCrop
    from torchvision.transforms.v2 import functional as TF

    h, w = x.shape[-2:]
    top, left, ch, cw = RandomResizedCrop.get_params(x, list(scale), list(ratio))
    return TF.resized_crop(x, top, left, ch, cw, [int(h), int(w)], antialias=True)


def train_transform(info: "ModelInfo", preset: str = "basic") -> TrainTransform:
    """The training transform for a model: ``preset`` at ``info.input_size`` with its mean/std."""
    return TrainTransform(preset, tuple(info.input_size[1:]), info.in_chans, info.mean, info.std)


def augment_samples(image: np.ndarray, preset: str = "basic", n: int = 16, size: int | None = None, seed: int = 0) -> list[np.ndarray]:
    """``n`` augmented versions of an ``(H, W, 3) uint8`` image -> list of ``(S, S, 3) uint8``.

    The first tile is the unaugmented (resized) image. ``size`` defaults to the image's shorter side
    (at most 224). Uses a forked torch RNG seeded with ``seed``: the caller's RNG is untouched.
    """
    import torch

    s = int(size or min(224, min(image.shape[:2])))
    zeros, ones = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    tf = TrainTransform(preset, (s, s), 3, zeros, ones)
    plain = Transform((s, s), 3, zeros, ones)
    out = [to_uint8_image(plain(image))]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(max(0, n - 1)):
            out.append(to_uint8_image(tf(image)))
    return out


def to_rgb_uint8(im: "PIL.Image.Image") -> np.ndarray:  # noqa: F821
    """A decoded PIL image of any mode -> ``(H, W, 3) uint8``: 16-bit/float scaled, transparency on white."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        lo, hi = (0.0, 65535.0) if im.mode.startswith("I;16") else (float(a.min()), float(a.max()))
        if im.mode == "I" and a.max() <= 65535 and a.min() >= 0:
            lo, hi = 0.0, 65535.0 if a.max() > 255 else 255.0
        a = np.clip((a - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode in ("RGB", "L") and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    a = np.asarray(im.convert("RGB"))
    if a.dtype != np.uint8:
        a = a.astype(np.uint8)
    return np.ascontiguousarray(a)
