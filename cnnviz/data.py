"""Dataset specs -> labeled image datasets and loaders.

``open_split(spec, split)`` resolves ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100`` or a folder
into a ``LabeledImages`` dataset whose items are ``(PIL.Image, int)``. Local files come first (a
``--data-root``, ``$CNNVIZ_DATA``, ``~/.cache/cnnviz/data``, Debian's ``/usr/share/datasets/...``);
torchvision downloads only when the network is reachable; otherwise a ``DataError`` says where we
looked and how to fix it. Folders use the ImageFolder layout (``train/`` and ``val/``/``test/``, or one
folder of class subfolders split deterministically: every 5th file of a class is test).

Transforms turn a PIL image into a ``(C, H, W)`` float tensor for a model (``eval_transform``; the
training presets live in ``cnnviz.augment``); ``make_loader`` batches them as ``(B, C, H, W)`` float32
and ``(B,)`` int64.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.errors import DataError, suggestion

log = logging.getLogger(__name__)

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BUILTIN = ("fashion-mnist", "mnist", "cifar10", "cifar100")
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar-100": "cifar100"}
# Debian's dataset-* packages and torchvision's own folder names
_IDX_DIRS = {"fashion-mnist": ("fashion-mnist", "FashionMNIST/raw", "FashionMNIST"), "mnist": ("mnist", "MNIST/raw", "MNIST")}
_CIFAR_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
FOLDER_TEST_EVERY = 5  # single-folder datasets: every 5th file (sorted) of each class is test


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------
class LabeledImages:
    """A map-style dataset of ``(PIL.Image.Image, int)`` with ``class_names`` and ``targets``.

    Subclasses implement ``_image(i)``. ``skipped`` counts files that could not be read (folder
    datasets skip them instead of crashing mid-epoch). ``channels`` is 1 (grayscale) or 3;
    ``image_size`` the native ``(H, W)`` when all images share one, else None.
    """

    name: str = ""
    channels: int = 3
    image_size: tuple[int, int] | None = None

    def __init__(self, targets: Sequence[int], class_names: Sequence[str]) -> None:
        self.targets: list[int] = [int(t) for t in targets]
        self.class_names: list[str] = list(class_names)
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self._image(i % len(self)), self.targets[i]

    def _image(self, i: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> list[int]:
        """Images per class, indexed like ``class_names``."""
        return np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=self.num_classes).tolist()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} images, {self.num_classes} classes)"


class ArrayImages(LabeledImages):
    """Images held in memory as ``(N, H, W)`` (grayscale) or ``(N, H, W, 3)`` uint8."""

    def __init__(self, images: np.ndarray, targets: Sequence[int], class_names: Sequence[str], name: str = "") -> None:
        super().__init__(targets, class_names)
        if len(images) != len(self.targets):
            raise DataError(f"{name}: {len(images)} images but {len(self.targets)} labels; the files do not match.")
        self.images = np.ascontiguousarray(images)
        self.name = name
        self.channels = 1 if self.images.ndim == 3 else 3
        self.image_size = (int(self.images.shape[1]), int(self.images.shape[2]))

    def _image(self, i: int) -> Any:
        from PIL import Image, ImageOps

        from cnnviz.images import to_rgb_uint8

        return Image.fromarray(self.images[i], mode="L" if self.channels == 1 else "RGB")


class FolderImages(LabeledImages):
    """Image files with labels; an unreadable file is skipped (counted in ``skipped``), never fatal.

    Files whose header cannot be read are dropped when the dataset is built. A file that fails
    later, while decoding in ``__getitem__``, is replaced by the next readable image of the dataset
    so a training epoch keeps its batch shapes.
    """

    def __init__(self, paths: Sequence[Path], targets: Sequence[int], class_names: Sequence[str], name: str = "", check: bool = True) -> None:
        keep_p, keep_t, bad = [], [], 0
        for p, t in zip(paths, targets):
            if check and not _header_ok(p):
                bad += 1
                log.warning("skipping unreadable image %s", p)
                continue
            keep_p.append(Path(p))
            keep_t.append(int(t))
        super().__init__(keep_t, class_names)
        self.paths = keep_p
        self.skipped = bad
        self.name = name
        self._bad: set[int] = set()

    def _image(self, i: int) -> Any:
        from PIL import Image, ImageOps

        from cnnviz.images import to_rgb_uint8

        for step in range(len(self.paths)):
            j = (i + step) % len(self.paths)
            if j in self._bad:
                continue
            try:
                with Image.open(self.paths[j]) as im:
                    im.load()
                    im = ImageOps.exif_transpose(im)
                    if im.mode in ("RGB", "L"):
                        return im.copy()
                    # the same decoding as cnnviz.images.load_image (16-bit scaled, alpha on white),
                    # so a model is trained on the pixels it is later explained on
                    return Image.fromarray(to_rgb_uint8(im))
            except Exception as e:  # PIL raises many types for broken files
                self._bad.add(j)
                self.skipped += 1
                log.warning("skipping unreadable image %s (%s)", self.paths[j], type(e).__name__)
        raise DataError(f"{self.name}: none of the {len(self.paths)} images could be read.")


class SubsetImages(LabeledImages):
    """A view on ``base`` restricted to ``indices`` (keeps names, channels, size)."""

    def __init__(self, base: LabeledImages, indices: Sequence[int]) -> None:
        super().__init__([base.targets[i] for i in indices], base.class_names)
        self.base = base
        self.indices = [int(i) for i in indices]
        self.name = base.name
        self.channels = base.channels
        self.image_size = base.image_size

    def _image(self, i: int) -> Any:
        return self.base._image(self.indices[i])

    @property
    def skipped(self) -> int:  # type: ignore[override]
        return getattr(self.base, "skipped", 0)

    @skipped.setter
    def skipped(self, v: int) -> None:  # the base class __init__ assigns it
        pass


def _header_ok(p: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(p) as im:
            im.size  # noqa: B018 - the header has been parsed if this works
        return True
    except Exception:
        return False


# --------------------------------------------------------------------------------------------
# subsets
# --------------------------------------------------------------------------------------------
def stratified_indices(targets: Sequence[int], limit: int, seed: int = 0) -> list[int]:
    """``limit`` indices keeping class proportions (largest remainder), seeded, in original order."""
    t = np.asarray(targets, dtype=np.int64)
    n = len(t)
    if limit >= n:
        return list(range(n))
    if limit <= 0:
        raise DataError(f"--limit must be positive, got {limit}.")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(t, return_counts=True)
    exact = counts * (limit / n)
    quota = np.floor(exact).astype(np.int64)
    rest = limit - int(quota.sum())
    order = np.lexsort((rng.random(len(classes)), -(exact - quota)))  # ties broken by the seed
    quota[order[:rest]] += 1
    chosen: list[np.ndarray] = []
    for c, q in zip(classes, quota):
        idx = np.flatnonzero(t == c)
        chosen.append(rng.permutation(idx)[:q])
    return sorted(int(i) for i in np.concatenate(chosen))


def limit_dataset(ds: LabeledImages, limit: int | None, seed: int = 0) -> LabeledImages:
    """``ds`` itself, or a stratified seeded subset of ``limit`` images."""
    if limit is None or limit >= len(ds):
        return ds
    return SubsetImages(ds, stratified_indices(ds.targets, limit, seed))


# --------------------------------------------------------------------------------------------
# locating files
# --------------------------------------------------------------------------------------------
def data_roots(data_root: str | None = None) -> list[Path]:
    """Where local copies are looked for, in order."""
    roots: list[Path] = []
    if data_root:
        roots.append(Path(data_root).expanduser())
    if os.environ.get("CNNVIZ_DATA"):
        roots.append(Path(os.environ["CNNVIZ_DATA"]).expanduser())
    roots.append(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cnnviz" / "data")
    roots.append(Path("/usr/share/datasets"))
    return roots


def download_root(data_root: str | None = None) -> Path:
    """Where a torchvision download goes: ``--data-root``, ``$CNNVIZ_DATA`` or the cache dir."""
    return data_roots(data_root)[0]


def _find_idx(name: str, split: str, roots: Sequence[Path]) -> tuple[Path, Path] | None:
    prefix = "train" if split == "train" else "t10k"
    for root in roots:
        for sub in _IDX_DIRS[name]:
            d = root / sub
            for ext in (".gz", ""):
                img, lab = d / f"{prefix}-images-idx3-ubyte{ext}", d / f"{prefix}-labels-idx1-ubyte{ext}"
                if img.is_file() and lab.is_file():
                    return img, lab
    return None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) -> uint8 array (``(N,)`` labels or ``(N, H, W)`` images).

    Decoded arrays are remembered per (path, mtime, size): opening a split twice costs nothing.
    """
    st = path.stat()
    arr = _read_idx_cached(str(path), st.st_mtime_ns, st.st_size)
    return arr


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path_str: str, mtime_ns: int, size: int) -> np.ndarray:
    path = Path(path_str)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read '{path}': {e}. Re-download or reinstall the dataset.") from None
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"'{path}' is not an IDX uint8 file (bad magic number).")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim)]
    start = 4 + 4 * ndim
    need = int(np.prod(dims))
    if len(raw) - start < need:
        raise DataError(f"'{path}' is truncated ({len(raw) - start} of {need} bytes).")
    arr = np.frombuffer(raw, dtype=np.uint8, count=need, offset=start).reshape(dims)
    arr.flags.writeable = False  # shared by every dataset opened from this file
    return arr


def _offline_error(name: str, roots: Sequence[Path], why: str) -> DataError:
    where = ", ".join(str(r) for r in roots)
    hint = "`apt install dataset-fashion-mnist`, or " if name == "fashion-mnist" else ""
    return DataError(
        f"dataset {name!r} is not available locally (looked in {where}) and could not be downloaded ({why}). "
        f"Fix: {hint}copy the files into --data-root DIR (torchvision layout), or run once with internet access."
    )


def _load_idx_dataset(name: str, split: str, data_root: str | None) -> ArrayImages:
    roots = data_roots(data_root)
    found = _find_idx(name, split, roots)
    if found is None:
        _download(name, data_root, roots)
        found = _find_idx(name, split, roots)
        if found is None:
            raise _offline_error(name, roots, "download finished but the files were not where expected")
    img_path, lab_path = found
    images, labels = read_idx(img_path), read_idx(lab_path)
    names = FASHION_CLASSES if name == "fashion-mnist" else [str(i) for i in range(10)]
    log.info("%s %s: %d images from %s", name, split, len(labels), img_path.parent)
    return ArrayImages(images, labels.astype(np.int64), names, name=name)


def _load_cifar(name: str, split: str, data_root: str | None) -> ArrayImages:
    roots = data_roots(data_root)
    folder = next((r / _CIFAR_DIRS[name] for r in roots if (r / _CIFAR_DIRS[name]).is_dir()), None)
    if folder is None:
        _download(name, data_root, roots)
        folder = download_root(data_root) / _CIFAR_DIRS[name]
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        meta, key, label_key = "batches.meta", "label_names", "labels"
    else:
        files = ["train"] if split == "train" else ["test"]
        meta, key, label_key = "meta", "fine_label_names", "fine_labels"
    xs, ys = [], []
    for f in files:
        d = _unpickle(folder / f)
        xs.append(np.asarray(d[b"data"] if b"data" in d else d["data"], dtype=np.uint8))
        ys.extend(d.get(label_key.encode(), d.get(label_key, [])))
    names_raw = _unpickle(folder / meta)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names_raw.get(key.encode(), names_raw.get(key, []))]
    images = np.concatenate(xs).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return ArrayImages(images, ys, names or CIFAR10_CLASSES, name=name)


def _unpickle(path: Path) -> dict:
    # CIFAR's official python files are pickles of plain dicts/lists/bytes/numpy arrays.
    if not path.is_file():
        raise DataError(f"'{path}' is missing: the CIFAR folder is incomplete. Delete it and download again.")
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="bytes")
    except Exception as e:
        raise DataError(f"cannot read '{path}' ({type(e).__name__}); the CIFAR folder is corrupt.") from None


def _download(name: str, data_root: str | None, roots: Sequence[Path]) -> None:
    """torchvision download into ``download_root`` (raises DataError when offline)."""
    import torchvision.datasets as tvd

    cls = {"fashion-mnist": tvd.FashionMNIST, "mnist": tvd.MNIST, "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}[name]
    root = download_root(data_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except Exception as e:  # URLError, socket timeouts, HTTP errors, checksum failures...
        msg = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise _offline_error(name, roots, msg) from None


# --------------------------------------------------------------------------------------------
# folders
# --------------------------------------------------------------------------------------------
def _class_files(folder: Path) -> tuple[list[str], list[list[Path]]]:
    from cnnviz.images import IMAGE_EXTENSIONS

    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"'{folder}' has no class subfolders: expected the ImageFolder layout ({folder}/CLASS/image.jpg).")
    files = []
    for c in classes:
        fs = sorted(p for p in (folder / c).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not fs:
            raise DataError(f"class folder '{folder / c}' has no images (looked for {', '.join(IMAGE_EXTENSIONS)}). Add images or remove it.")
        files.append(fs)
    return classes, files


def _open_folder(root: Path, split: str) -> FolderImages:
    if not root.is_dir():
        raise DataError(f"data folder '{root}' is not a directory.")
    test_dir = next((root / n for n in ("test", "val", "valid", "validation") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        classes, _ = _class_files(root / "train")
        folder = root / "train" if split == "train" else test_dir
        here, files = _class_files(folder)
        unknown = [c for c in here if c not in classes]
        if unknown:
            raise DataError(f"'{folder}' has classes not in '{root / 'train'}': {', '.join(unknown[:5])}.")
        paths = [p for c, fs in zip(here, files) for p in fs]
        targets = [classes.index(c) for c, fs in zip(here, files) for _ in fs]
        return FolderImages(paths, targets, classes, name=str(root))
    if (root / "train").is_dir() and split != "train":
        raise DataError(f"'{root}' has train/ but no val/ or test/ folder to evaluate on.")
    classes, files = _class_files(root / "train" if (root / "train").is_dir() else root)
    paths, targets = [], []
    for k, fs in enumerate(files):
        # a fixed split that does not depend on --seed, so train and test never overlap
        picked = [p for i, p in enumerate(fs) if (i % FOLDER_TEST_EVERY == FOLDER_TEST_EVERY - 1) == (split != "train")]
        if len(fs) >= 2 and not picked:
            picked = fs[-1:] if split != "train" else fs[:-1]
        paths += picked
        targets += [k] * len(picked)
    if not paths:
        raise DataError(f"'{root}' has too few images to split into train and test.")
    return FolderImages(paths, targets, classes, name=str(root))


# --------------------------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------------------------
def canonical_name(spec: str) -> str:
    s = spec.strip()
    low = s.lower()
    return _ALIASES.get(low, low) if _ALIASES.get(low, low) in BUILTIN else s


def open_split(spec: str, split: str = "train", *, data_root: str | None = None, limit: int | None = None, seed: int = 0) -> LabeledImages:
    """Open ``split`` (``train`` | ``test``; ``val`` means test) of a dataset spec.

    ``spec`` is ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100`` or a folder path. ``limit`` takes
    a stratified subset of that many images chosen with ``seed``. Raises ``DataError`` for an unknown
    spec, missing files while offline, an empty folder or a class without images.
    """
    if split not in ("train", "test", "val"):
        raise DataError(f"split {split!r} is not one of train, test, val.")
    split = "test" if split == "val" else split
    if not spec or not str(spec).strip():
        raise DataError(f"--data is empty: use one of {', '.join(BUILTIN)} or a folder.")
    name = canonical_name(str(spec))
    if name in ("fashion-mnist", "mnist"):
        ds: LabeledImages = _load_idx_dataset(name, split, data_root)
    elif name in ("cifar10", "cifar100"):
        ds = _load_cifar(name, split, data_root)
    elif Path(name).expanduser().exists():
        ds = _open_folder(Path(name).expanduser(), split)
    else:
        raise DataError(f"unknown dataset {spec!r}: not one of {', '.join(BUILTIN)} and not an existing folder.{suggestion(name.lower(), BUILTIN)}")
    if len(ds) == 0:
        raise DataError(f"dataset {spec!r} ({split}) has no readable images.")
    return limit_dataset(ds, limit, seed)


# --------------------------------------------------------------------------------------------
# transforms and loaders
# --------------------------------------------------------------------------------------------
def _to_chans(img: Any, chans: int) -> Any:
    want = "L" if chans == 1 else "RGB"
    return img if img.mode == want else img.convert(want)


def to_normalized_tensor(img: Any, mean: Sequence[float], std: Sequence[float]) -> "torch.Tensor":  # noqa: F821
    """PIL image (``L`` or ``RGB``) -> normalized ``(C, H, W)`` float32."""
    import torch

    a = np.asarray(img, dtype=np.float32) * (1.0 / 255.0)
    if a.ndim == 2:
        a = a[None]
    else:
        a = a.transpose(2, 0, 1)
    t = torch.from_numpy(np.ascontiguousarray(a))
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (t - m) / s


class EvalTransform:
    """Whole image resized to ``size`` (no crop), channels adapted, normalized: PIL -> ``(C, H, W)``.

    A class (not a closure) so DataLoader worker processes can pickle it.
    """

    def __init__(self, size: tuple[int, int], chans: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.size, self.chans, self.mean, self.std = (int(size[0]), int(size[1])), int(chans), tuple(mean), tuple(std)

    def __call__(self, img: Any) -> "torch.Tensor":  # noqa: F821
        from PIL import Image

        img = _to_chans(img, self.chans)
        if img.size != (self.size[1], self.size[0]):
            img = img.resize((self.size[1], self.size[0]), Image.BILINEAR)
        return to_normalized_tensor(img, self.mean, self.std)


def eval_transform(info: "ModelInfo") -> Callable[[Any], "torch.Tensor"]:  # noqa: F821
    """The evaluation transform for a model: PIL -> ``(info.in_chans, H, W)`` normalized float32."""
    return EvalTransform(tuple(info.input_size[1:]), info.in_chans, info.mean, info.std)


class TransformedDataset:
    """``ds[i] -> (transform(image), label)``: what DataLoader batches."""

    def __init__(self, ds: LabeledImages, transform: Callable[[Any], Any]) -> None:
        self.ds, self.transform = ds, transform

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img, y = self.ds[i]
        return self.transform(img), y


def make_loader(
    ds: LabeledImages,
    transform: Callable[[Any], Any],
    *,
    batch_size: int = 64,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    sampler: Any = None,
    pin_memory: bool | None = None,
) -> "torch.utils.data.DataLoader":  # noqa: F821
    """A DataLoader yielding ``(x (B, C, H, W) float32, y (B,) int64)``.

    Shuffling uses its own ``torch.Generator`` seeded with ``seed`` (never the global RNG); pinned
    memory is on when CUDA is available unless ``pin_memory`` says otherwise.
    """
    import torch
    from torch.utils.data import DataLoader

    gen = torch.Generator().manual_seed(int(seed))
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return DataLoader(
        TransformedDataset(ds, transform), batch_size=batch_size, shuffle=shuffle if sampler is None else False,
        sampler=sampler, num_workers=num_workers, drop_last=drop_last, generator=gen, pin_memory=pin_memory,
        persistent_workers=num_workers > 0, worker_init_fn=_seed_worker if num_workers > 0 else None,
    )


def _seed_worker(worker_id: int) -> None:
    import random

    import torch

    s = torch.initial_seed() % 2**32  # DataLoader derives each worker's seed from its generator
    np.random.seed(s)
    random.seed(s)


def materialize(ds: LabeledImages, transform: Callable[[Any], Any], batch_size: int = 256) -> tuple["torch.Tensor", "torch.Tensor"]:  # noqa: F821
    """Apply a deterministic transform to every image once -> ``(x (N, C, H, W), y (N,))`` tensors."""
    import torch

    xs, ys = [], []
    for x, y in make_loader(ds, transform, batch_size=batch_size, pin_memory=False):
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)
