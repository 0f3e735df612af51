"""MNIST / Fashion-MNIST in the IDX format (Debian's dataset packages and torchvision's raw folders)."""

from __future__ import annotations

import functools
import gzip
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnviz.datasets.base import ArrayImages
from cnnviz.datasets.locate import data_roots, download, offline_error
from cnnviz.errors import DataError

log = logging.getLogger(__name__)

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IDX_DIRS = {"fashion-mnist": ("fashion-mnist", "FashionMNIST/raw", "FashionMNIST"), "mnist": ("mnist", "MNIST/raw", "MNIST")}
# The payload an IDX header may claim. A few KB of gzip can inflate to many GB, so the header's size is
# checked before anything is read, and only that many bytes are read. 2 GiB holds EMNIST many times over.
MAX_IDX_BYTES = 2**31


def find_idx(name: str, split: str, roots: Sequence[Path]) -> tuple[Path, Path] | None:
    prefix = "train" if split == "train" else "t10k"
    for root in roots:
        for sub in IDX_DIRS[name]:
            d = root / sub
            for ext in (".gz", ""):
                img, lab = d / f"{prefix}-images-idx3-ubyte{ext}", d / f"{prefix}-labels-idx1-ubyte{ext}"
                if img.is_file() and lab.is_file():
                    return img, lab
    return None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) -> uint8 array (``(N,)`` labels or ``(N, H, W)`` images).

    Decoded arrays are remembered per (path, mtime, size): opening a split twice costs nothing.
    The array is read-only (shared by every dataset opened from the file).
    """
    st = path.stat()
    return _read_idx_cached(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path_str: str, mtime_ns: int, size: int) -> np.ndarray:
    path = Path(path_str)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08 or not 1 <= head[3] <= 4:
                raise DataError(f"'{path}' is not an IDX uint8 file (bad magic number).")
            ndim = head[3]
            raw_dims = fh.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DataError(f"'{path}' is truncated (incomplete header).")
            dims = [int.from_bytes(raw_dims[4 * k: 4 * k + 4], "big") for k in range(ndim)]
            need = int(np.prod(dims, dtype=np.int64))
            if need > MAX_IDX_BYTES:
                raise DataError(f"'{path}' claims {need} bytes of images ({'x'.join(map(str, dims))}), more than "
                                f"cnnviz reads from an IDX file ({MAX_IDX_BYTES}); the file is corrupt or not a dataset.")
            raw = fh.read(need)
    except EOFError:
        raise DataError(f"'{path}' is truncated (the compressed stream ends early). Re-download or reinstall the dataset.") from None
    except OSError as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read '{path}': {e}. Re-download or reinstall the dataset.") from None
    if len(raw) < need:
        raise DataError(f"'{path}' is truncated ({len(raw)} of {need} bytes).")
    arr = np.frombuffer(raw, dtype=np.uint8, count=need).reshape(dims)
    arr.flags.writeable = False  # shared by every dataset opened from this file
    return arr


def load_idx_dataset(name: str, split: str, data_root: str | None) -> ArrayImages:
    roots = data_roots(data_root)
    found = find_idx(name, split, roots)
    if found is None:
        download(name, data_root, roots)
        found = find_idx(name, split, roots)
        if found is None:
            raise offline_error(name, roots, "download finished but the files were not where expected")
    img_path, lab_path = found
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(f"'{img_path}' / '{lab_path}': expected (N, H, W) images and (N,) labels, got {images.shape} and {labels.shape}.")
    names = FASHION_CLASSES if name == "fashion-mnist" else [str(i) for i in range(10)]
    log.info("%s %s: %d images from %s", name, split, len(labels), img_path.parent)
    return ArrayImages(images, labels.astype(np.int64), names, name=name, source=str(img_path.parent))
