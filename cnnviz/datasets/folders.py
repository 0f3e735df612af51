"""Image folders in the ImageFolder layout -> ``FolderImages``.

``DIR/train/CLASS/*.jpg`` with ``DIR/val/`` (or ``valid/``, ``validation/``, ``test/``), or one
``DIR/CLASS/*.jpg`` folder split deterministically: every 5th file (sorted) of each class is test,
independent of ``--seed``, so train and test never overlap.
"""

from __future__ import annotations

from pathlib import Path

from cnnviz.datasets.base import FolderImages
from cnnviz.errors import DataError

FOLDER_TEST_EVERY = 5  # single-folder datasets: every 5th file (sorted) of each class is test


def class_files(folder: Path) -> tuple[list[str], list[list[Path]]]:
    """Sorted class folder names and, for each, its image files (sorted, recursive)."""
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


def open_folder(root: Path, split: str) -> FolderImages:
    """``split`` (``train`` | ``test``) of the image folder ``root``."""
    if not root.is_dir():
        raise DataError(f"data folder '{root}' is not a directory.")
    test_dir = next((root / n for n in ("test", "val", "valid", "validation") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        classes, _ = class_files(root / "train")
        folder = root / "train" if split == "train" else test_dir
        here, files = class_files(folder)
        unknown = [c for c in here if c not in classes]
        if unknown:
            raise DataError(f"'{folder}' has classes not in '{root / 'train'}': {', '.join(unknown[:5])}.")
        paths = [p for c, fs in zip(here, files) for p in fs]
        targets = [classes.index(c) for c, fs in zip(here, files) for _ in fs]
        return FolderImages(paths, targets, classes, name=str(root))
    if (root / "train").is_dir() and split != "train":
        raise DataError(f"'{root}' has train/ but no val/ or test/ folder to evaluate on.")
    classes, files = class_files(root / "train" if (root / "train").is_dir() else root)
    paths, targets = [], []
    for k, fs in enumerate(files):
        picked = [p for i, p in enumerate(fs) if (i % FOLDER_TEST_EVERY == FOLDER_TEST_EVERY - 1) == (split != "train")]
        if len(fs) >= 2 and not picked:
            picked = fs[-1:] if split != "train" else fs[:-1]
        paths += picked
        targets += [k] * len(picked)
    if not paths:
        raise DataError(f"'{root}' has too few images to split into train and test.")
    return FolderImages(paths, targets, classes, name=str(root))
