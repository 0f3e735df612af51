"""Dataset specs -> labeled image datasets and loaders.

``open_split(spec, split)`` resolves ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100`` or a folder
into a ``LabeledImages`` dataset: ``ds[i] -> (PIL.Image, int)``, ``ds.array(i) -> uint8 (H, W[, 3])``.
Local files come first (a ``--data-root``, ``$CNNVIZ_DATA``, ``~/.cache/cnnviz/data``, Debian's
``/usr/share/datasets/...``); torchvision downloads only when the network is reachable; otherwise a
``DataError`` says where we looked and how to fix it. Built-in datasets are held as uint8 arrays at
their own size; folders are decoded per image when read. See ``cnnviz.datasets`` for the parts.

Images become model inputs through ``cnnviz.transforms`` (``eval_transform``; the training presets
are ``cnnviz.transforms.train_transform``); ``make_loader`` batches them as ``(B, C, H, W)`` float32 and
``(B,)`` int64.
"""

from __future__ import annotations

from pathlib import Path

from cnnviz.datasets.base import (  # noqa: F401 - the public names of cnnviz.data
    ArrayImages,
    FolderImages,
    LabeledImages,
    SubsetImages,
    base_arrays,
    limit_dataset,
    permuted_labels,
    stratified_indices,
)
from cnnviz.datasets.cifar import CIFAR10_CLASSES, CIFAR_DIRS  # noqa: F401
from cnnviz.datasets.folders import FOLDER_TEST_EVERY, class_files, open_folder  # noqa: F401
from cnnviz.datasets.idx import FASHION_CLASSES, read_idx  # noqa: F401
from cnnviz.datasets.loader import TransformedDataset, make_loader, materialize  # noqa: F401
from cnnviz.datasets.locate import data_roots, download_root  # noqa: F401
from cnnviz.errors import DataError, suggestion
from cnnviz.transforms import eval_transform  # noqa: F401 - cnnviz.data.eval_transform is public

BUILTIN = ("fashion-mnist", "mnist", "cifar10", "cifar100")
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar-100": "cifar100"}


def canonical_name(spec: str) -> str:
    """``fashion-mnist`` / ``mnist`` / ``cifar10`` / ``cifar100`` for a built-in spec (aliases, any case), else ``spec``."""
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
        from cnnviz.datasets.idx import load_idx_dataset

        ds: LabeledImages = load_idx_dataset(name, split, data_root)
    elif name in ("cifar10", "cifar100"):
        from cnnviz.datasets.cifar import load_cifar

        ds = load_cifar(name, split, data_root)
    elif Path(name).expanduser().exists():
        ds = open_folder(Path(name).expanduser(), split)
    else:
        raise DataError(f"unknown dataset {spec!r}: not one of {', '.join(BUILTIN)} and not an existing folder.{suggestion(name.lower(), BUILTIN)}")
    if len(ds) == 0:
        raise DataError(f"dataset {spec!r} ({split}) has no readable images.")
    return limit_dataset(ds, limit, seed)
