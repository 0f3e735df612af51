"""CIFAR-10 / CIFAR-100 from local files, offline first.

Looked for in each data root, in this order:

* torchvision's layout: ``cifar-10-batches-py/`` (``cifar-100-python/``), pickled batches. They are read
  with a restricted unpickler that admits only what those files hold (dicts, lists, bytes, str, ints
  and numpy arrays): a batch file carrying code is refused with one line, and the code never runs.
* CIFAR-10 as JPEGs: the extracted ``cifar10/`` folder (``cifar10/train/<class>/NNNN.jpg``,
  ``cifar10/test/<class>/NNNN.jpg``) or the ``cifar10-jpeg.tar.gz`` archive holding it. Both are decoded
  once (like ``cnnviz.images.load_image``) into uint8 arrays kept in the decoded-image cache
  (``cnnviz.datasets.cache``); the archive is read as a stream and never extracted or modified.

When nothing is found, torchvision downloads the official files (online only).
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.datasets.base import ArrayImages
from cnnviz.datasets.cache import cache_key, cached_arrays, source_stamp
from cnnviz.datasets.locate import data_roots, download, download_root, offline_error
from cnnviz.errors import DataError, ImageError

log = logging.getLogger(__name__)

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
JPEG_FOLDER, JPEG_ARCHIVE = "cifar10", "cifar10-jpeg.tar.gz"
SIDE = 32
MAX_MEMBER_BYTES = 1 << 20  # a 32x32 JPEG is ~1 KB; a bigger archive member is not a CIFAR image
MAX_IMAGES = 200_000  # per archive/folder: CIFAR-10 has 60,000
_MEMBER = re.compile(r"^(?:\./)?cifar10/(train|test)/([^/]+)/([^/]+\.jpe?g)$", re.IGNORECASE)
SPLITS = ("train", "test")


def find_cifar(name: str, roots: Sequence[Path]) -> tuple[str, Path] | None:
    """``(kind, path)`` of the first local copy: kind ``batches`` | ``folder`` | ``archive``."""
    for root in roots:
        d = root / CIFAR_DIRS[name]
        if d.is_dir():
            return "batches", d
        if name == "cifar10":
            f = root / JPEG_FOLDER
            if (f / "train").is_dir() and (f / "test").is_dir():
                return "folder", f
            if (root / JPEG_ARCHIVE).is_file():
                return "archive", root / JPEG_ARCHIVE
    return None


def load_cifar(name: str, split: str, data_root: str | None) -> ArrayImages:
    """One split of CIFAR-10/100 as uint8 ``(N, 32, 32, 3)`` images (see the module docstring)."""
    roots = data_roots(data_root)
    found = find_cifar(name, roots)
    if found is None:
        download(name, data_root, roots)
        d = download_root(data_root) / CIFAR_DIRS[name]
        if not d.is_dir():
            raise offline_error(name, roots, "download finished but the files were not where expected")
        found = ("batches", d)
    kind, path = found
    if kind == "batches":
        images, labels, names = read_batches(name, split, path)
    else:
        arrays = decoded_jpegs(kind, path, split)
        images, labels, names = arrays[f"{split}-images"], np.asarray(arrays[f"{split}-labels"]), CIFAR10_CLASSES
    log.info("%s %s: %d images from %s", name, split, len(labels), path)
    return ArrayImages(images, labels.astype(np.int64), names, name=name, source=str(path))


# --------------------------------------------------------------------------------------------
# torchvision's pickled batches, unpickled safely
# --------------------------------------------------------------------------------------------
def _safe_globals() -> dict[tuple[str, str], Any]:
    import codecs

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]

    def latin1(text: str, encoding: str = "latin1") -> bytes:  # how protocol-2 pickles spell bytes
        if str(encoding).lower() not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError(f"unexpected encoding {encoding!r} in _codecs.encode")
        return codecs.encode(text, "latin1")

    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                           ("_codecs", "encode"): latin1}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _reconstruct
        allowed[(mod, "scalar")] = scalar
    return allowed


class _DataUnpickler(pickle.Unpickler):
    """Only plain containers and numpy arrays: every other global is refused before it is touched."""

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if _DataUnpickler._allowed is None:
            _DataUnpickler._allowed = _safe_globals()
        try:
            return _DataUnpickler._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it references {module}.{name}") from None


def safe_unpickle(path: Path) -> dict:
    """A CIFAR batch file -> its dict; anything but plain data is refused (``DataError``, one line)."""
    if not path.is_file():
        raise DataError(f"'{path}' is missing: the CIFAR folder is incomplete. Delete it and download again.")
    try:
        with open(path, "rb") as fh:
            d = _DataUnpickler(fh, encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"refusing to read '{path}': {e}; CIFAR batch files hold only dicts, lists, bytes and numpy "
                        "arrays. Delete the folder and download CIFAR again.") from None
    except Exception as e:  # truncated / garbage: EOFError, ValueError, struct errors...
        raise DataError(f"cannot read '{path}' ({type(e).__name__}); the CIFAR folder is corrupt.") from None
    if not isinstance(d, dict):
        raise DataError(f"'{path}' holds a {type(d).__name__}, not a CIFAR batch dict; the CIFAR folder is corrupt.")
    return d


def _get(d: dict, key: str) -> Any:
    return d.get(key.encode(), d.get(key))


def read_batches(name: str, split: str, folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(images (N, 32, 32, 3) uint8, labels (N,), class names)`` from torchvision's files."""
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        meta, key, label_key = "batches.meta", "label_names", "labels"
    else:
        files = ["train"] if split == "train" else ["test"]
        meta, key, label_key = "meta", "fine_label_names", "fine_labels"
    xs, ys = [], []
    for f in files:
        d = safe_unpickle(folder / f)
        data, labels = _get(d, "data"), _get(d, label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE \
                or labels is None or len(labels) != len(data):
            raise DataError(f"'{folder / f}' is not a CIFAR batch (expected uint8 data (N, 3072) and N labels).")
        xs.append(data)
        ys.append(np.asarray(labels, dtype=np.int64))
    names_raw = _get(safe_unpickle(folder / meta), key) or []
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names_raw]
    images = np.concatenate(xs).reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    default = CIFAR10_CLASSES if name == "cifar10" else [str(i) for i in range(100)]
    return np.ascontiguousarray(images), np.concatenate(ys), names or default


# --------------------------------------------------------------------------------------------
# CIFAR-10 as JPEGs: the archive or its extracted folder, decoded once into the cache
# --------------------------------------------------------------------------------------------
def decoded_jpegs(kind: str, path: Path, split: str) -> dict[str, np.ndarray]:
    """``{"<split>-images": (N, 32, 32, 3) uint8, "<split>-labels": (N,) int64}`` for the archive / folder at
    ``path`` (both splits are decoded and cached on the first call)."""
    names = [f"{s}-{k}" for s in SPLITS for k in ("images", "labels")]
    stamp = source_stamp(path) if kind == "archive" else _folder_stamp(path)
    return cached_arrays(cache_key("cifar10-jpeg", kind, *stamp), names, lambda: _decode(kind, path),
                         want=[f"{split}-images", f"{split}-labels"])


def _folder_stamp(folder: Path) -> tuple[str, int, int, int]:
    """``(path, files, total bytes, newest mtime)`` of the folder's JPEGs: changes when any file does."""
    n = size = newest = 0
    for split in SPLITS:
        for cls in os.scandir(folder / split):
            if cls.is_dir():
                for e in os.scandir(cls.path):
                    if e.is_file():
                        st = e.stat()
                        n, size, newest = n + 1, size + st.st_size, max(newest, st.st_mtime_ns)
    return str(folder.resolve()), n, size, newest


def _decode(kind: str, path: Path) -> dict[str, np.ndarray]:
    from cnnviz.images import decode_image, load_image

    log.info("decoding CIFAR-10 JPEGs from %s once (cached for the next runs)...", path)
    found: dict[str, list[tuple[str, str, bytes]]] = {s: [] for s in SPLITS}  # split -> (class, file, pixels)

    def add(split: str, cls: str, fname: str, arr: np.ndarray, where: str) -> None:
        if arr.shape != (SIDE, SIDE, 3):
            raise DataError(f"'{where}' is {arr.shape[1]}x{arr.shape[0]}, not a {SIDE}x{SIDE} CIFAR image.")
        if sum(len(v) for v in found.values()) >= MAX_IMAGES:
            raise DataError(f"'{path}' holds more than {MAX_IMAGES} images: not CIFAR-10.")
        found[split].append((cls, fname, arr.tobytes()))

    try:
        if kind == "archive":
            with tarfile.open(path, "r|gz") as tf:  # a stream: members are read in order, nothing is extracted
                for m in tf:
                    hit = _MEMBER.match(m.name)
                    if not hit or not m.isfile():
                        continue
                    if m.size > MAX_MEMBER_BYTES:
                        raise DataError(f"'{path}': member {m.name} is {m.size} bytes, too large for a CIFAR image.")
                    fh = tf.extractfile(m)
                    data = fh.read() if fh is not None else b""
                    add(*hit.groups(), decode_image(io.BytesIO(data), f"{path}:{m.name}"), f"{path}:{m.name}")
        else:
            for split in SPLITS:
                for cls in sorted(p for p in (path / split).iterdir() if p.is_dir()):
                    for f in sorted(cls.iterdir()):
                        if f.is_file() and f.suffix.lower() in (".jpg", ".jpeg"):
                            add(split, cls.name, f.name, load_image(f), str(f))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"cannot read '{path}' ({type(e).__name__}: {str(e)[:100]}); the archive is damaged.") from None
    except ImageError as e:
        raise DataError(f"CIFAR-10 JPEGs in '{path}': {e}") from None
    out: dict[str, np.ndarray] = {}
    for split in SPLITS:
        items = sorted(found[split])
        classes = sorted({c for c, _, _ in items})
        if classes != CIFAR10_CLASSES:
            raise DataError(f"'{path}' ({split}) has classes {', '.join(classes[:12]) or 'none'}; expected the ten CIFAR-10 "
                            f"classes ({', '.join(CIFAR10_CLASSES)}) as cifar10/{split}/<class>/*.jpg.")
        out[f"{split}-images"] = np.frombuffer(b"".join(px for _, _, px in items), np.uint8).reshape(-1, SIDE, SIDE, 3).copy()
        out[f"{split}-labels"] = np.asarray([CIFAR10_CLASSES.index(c) for c, _, _ in items], dtype=np.int64)
    return out
