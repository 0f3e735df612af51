"""Load any image robustly, preprocess it for a model, and map results back to its pixels.

Images are handled as ``np.uint8`` arrays of shape ``(H, W, 3)`` (RGB). For explanations the whole
image is resized to the model's input size (no centre crop), so a map computed at input resolution
lines up with the original pixels after ``resize_map``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cnnviz.errors import ImageError
from cnnviz.transforms import to_rgb_uint8  # noqa: F401  (decoding uses it; one home: transforms)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")
MAX_SIDE = 4096  # larger images are downsampled while decoding (JPEG draft) to bound memory
# Formats without reduced-resolution decoding (PNG, TIFF...) are decoded whole: refuse more than this
# many pixels (a decompression bomb: a few KB of PNG can claim 13000x13000) with a clear message
# instead of exhausting memory. 40 MP is a 7300x5500 photo, about 120 MB as RGB.
MAX_DECODE_PIXELS = 40_000_000
SAMPLE_IMAGES = ("chelsea", "coffee", "astronaut", "rocket", "cat")


def load_image(path: str | os.PathLike[str], max_side: int = MAX_SIDE) -> np.ndarray:
    """Read ``path`` -> ``(H, W, 3) uint8`` RGB, EXIF-rotated, at most ``max_side`` px on a side.

    Handles grayscale, RGBA/LA (composited on white), palette, 16-bit and float TIFFs, CMYK.
    Memory stays bounded whatever the file claims: JPEGs larger than ``max_side`` are decoded at
    reduced size (1/2 ... 1/8), other formats over ``MAX_DECODE_PIXELS`` are refused. PIL's global
    decompression-bomb guard is left as it is. Raises ``ImageError`` with the file name for
    anything unreadable or too large.
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"image not found: '{p}'")
    if p.is_dir():
        raise ImageError(f"'{p}' is a folder, not an image")
    if not p.is_file():  # a FIFO or a device (/dev/zero) would block or never end
        raise ImageError(f"'{p}' is not a regular file, not an image")
    return decode_image(p, str(p), max_side)


def decode_image(src: "str | os.PathLike[str] | BinaryIO", name: str, max_side: int = MAX_SIDE) -> np.ndarray:
    """``load_image`` for a path or an open binary file (e.g. a member of an archive) named ``name``."""
    import warnings

    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            # PIL warns above its own pixel guard; our limits below are tighter and raise instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(src)
        with im:
            w, h = im.size
            if im.format == "JPEG" and max(w, h) > max_side:
                fh, fw = _fit((h, w), max_side)
                im.draft("RGB", (fw, fh))  # decode at 1/2, 1/4, 1/8 scale: never the full bitmap
            # after a JPEG draft at most ~(2 max_side)^2 pixels remain; other formats decode whole
            limit = MAX_DECODE_PIXELS if im.format != "JPEG" else 2 * MAX_DECODE_PIXELS
            if im.size[0] * im.size[1] > limit:
                raise ImageError(
                    f"image '{name}' is {w}x{h} pixels ({w * h / 1e6:.0f} MP), more than cnnviz decodes for "
                    f"{im.format} ({limit / 1e6:.0f} MP); downscale it first, or save it as JPEG (decoded at reduced size)."
                )
            im.load()
            im = ImageOps.exif_transpose(im)
            arr = to_rgb_uint8(im)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"image '{name}' claims more pixels than PIL's decompression-bomb guard allows; refusing to decode it.") from None
    except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ValueError...
        raise ImageError(f"cannot read image '{name}': {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if max(arr.shape[:2]) > max_side:
        arr = resize_image(arr, _fit(arr.shape[:2], max_side))
    return arr


def _fit(hw: Sequence[int], max_side: int) -> tuple[int, int]:
    h, w = hw
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


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


# The image -> tensor functions live in cnnviz.transforms (the one path every caller uses); these
# names stay importable from here.
def to_tensor(img: np.ndarray, mean: Sequence[float], std: Sequence[float], size: tuple[int, int]) -> "torch.Tensor":  # noqa: F821
    """``(H, W, 3) uint8`` -> normalized ``(1, C, h, w)``; see ``cnnviz.transforms.to_tensor``."""
    from cnnviz.transforms import to_tensor as _to_tensor

    return _to_tensor(img, mean, std, size)


def preprocess(img: np.ndarray, info: "ModelInfo", size: tuple[int, int] | None = None) -> "torch.Tensor":  # noqa: F821
    """The model's input ``(1, C, H, W)`` for an image; see ``cnnviz.transforms.preprocess``."""
    from cnnviz.transforms import preprocess as _preprocess

    return _preprocess(img, info, size)


def denormalize(x: "torch.Tensor", mean: Sequence[float], std: Sequence[float]) -> np.ndarray:  # noqa: F821
    """``(C, H, W)`` or ``(1, C, H, W)`` -> ``(H, W, 3) uint8``; see ``cnnviz.transforms.denormalize``."""
    from cnnviz.transforms import denormalize as _denormalize

    return _denormalize(x, mean, std)
