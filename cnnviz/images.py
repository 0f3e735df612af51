"""Load any image robustly, preprocess it for a model, and map results back to its pixels.

Images are handled as ``np.uint8`` arrays of shape ``(H, W, 3)`` (RGB). For explanations the whole
image is resized to the model's input size (no centre crop), so a map computed at input resolution
lines up with the original pixels after ``resize_map``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from cnnviz.errors import ImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")
MAX_SIDE = 4096  # larger images are downsampled while decoding (JPEG draft) to bound memory
# Formats without reduced-resolution decoding (PNG, TIFF...) are decoded whole: refuse absurd sizes
# (a decompression bomb or a 1 GB bitmap) with a clear message instead of exhausting memory.
MAX_DECODE_PIXELS = 200_000_000
SAMPLE_IMAGES = ("chelsea", "coffee", "astronaut", "rocket", "cat")


def load_image(path: str | os.PathLike[str], max_side: int = MAX_SIDE) -> np.ndarray:
    """Read ``path`` -> ``(H, W, 3) uint8`` RGB, EXIF-rotated, at most ``max_side`` px on a side.

    Handles grayscale, RGBA/LA (composited on white), palette, 16-bit and float TIFFs, CMYK.
    Raises ``ImageError`` with the file name for anything unreadable.
    """
    from PIL import Image, ImageOps

    p = Path(path)
    if not p.exists():
        raise ImageError(f"image not found: '{p}'")
    if p.is_dir():
        raise ImageError(f"'{p}' is a folder, not an image")
    Image.MAX_IMAGE_PIXELS = None  # we bound memory ourselves via draft()/reduce below
    try:
        with Image.open(p) as im:
            if im.format == "JPEG" and max(im.size) > max_side:
                im.draft("RGB", (max_side, max_side))  # decode at 1/2, 1/4, 1/8 scale: never the full bitmap
            elif im.size[0] * im.size[1] > MAX_DECODE_PIXELS:
                raise ImageError(
                    f"image '{p}' is {im.size[0]}x{im.size[1]} pixels, too large to decode as {im.format}; "
                    "downscale it first or save it as JPEG (decoded at reduced size)."
                )
            im.load()
            im = ImageOps.exif_transpose(im)
            arr = to_rgb_uint8(im)
    except ImageError:
        raise
    except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ValueError...
        raise ImageError(f"cannot read image '{p}': {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if max(arr.shape[:2]) > max_side:
        arr = resize_image(arr, _fit(arr.shape[:2], max_side))
    return arr


def _fit(hw: Sequence[int], max_side: int) -> tuple[int, int]:
    h, w = hw
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


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


def resize_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(H, W[, C]) uint8`` to ``size=(h, w)``; area filter when shrinking, bilinear otherwise."""
    import cv2

    h, w = size
    interp = cv2.INTER_AREA if h * w < img.shape[0] * img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


def resize_map(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Upsample a ``(h, w)`` float map to ``size=(H, W)`` (bilinear, align-corners off) as float32."""
    import cv2

    return cv2.resize(np.asarray(heat, dtype=np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def sample_image(name: str = "chelsea") -> np.ndarray:
    """A photo bundled with scikit-image (``chelsea`` a cat, ``coffee`` an espresso, ...) as RGB uint8."""
    import skimage.data

    if name not in SAMPLE_IMAGES:
        raise ImageError(f"unknown sample image {name!r}; choose from {', '.join(SAMPLE_IMAGES)}")
    arr = getattr(skimage.data, name)()
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3]).astype(np.uint8)


def expand_image_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, folders expanded (recursively, sorted) to the images inside.

    Raises ``ImageError`` for a missing path or a folder with no images.
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ImageError(f"no images in folder '{p}' (looked for {', '.join(IMAGE_EXTENSIONS)})")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise ImageError(f"image not found: '{p}'")
    return out


def to_tensor(
    img: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    size: tuple[int, int],
) -> "torch.Tensor":  # noqa: F821
    """``(H, W, 3) uint8`` -> normalized ``(1, C, h, w)`` float tensor, C = ``len(mean)`` (1 or 3).

    The whole image is resized to ``size`` (no crop). One-channel models get the luminance.
    """
    import torch

    x = resize_image(img, size).astype(np.float32) / 255.0
    if len(mean) == 1:
        x = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return ((t - m) / s).unsqueeze(0)


def preprocess(img: np.ndarray, info: "ModelInfo", size: tuple[int, int] | None = None) -> "torch.Tensor":  # noqa: F821
    """``to_tensor`` with the model's own mean/std and input size: ``(1, C, H, W)``."""
    return to_tensor(img, info.mean, info.std, size or tuple(info.input_size[1:]))


def denormalize(x: "torch.Tensor", mean: Sequence[float], std: Sequence[float]) -> np.ndarray:  # noqa: F821
    """Inverse of ``to_tensor`` for display: ``(C, H, W)`` or ``(1, C, H, W)`` -> ``(H, W, 3) uint8``."""
    import torch

    t = x.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    a = ((t * s + m).clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else np.ascontiguousarray(a)
