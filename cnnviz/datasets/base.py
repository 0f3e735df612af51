"""Labeled image datasets: images held as uint8 arrays, or files decoded when read; subsets and relabelings.

Every dataset is map-style: ``ds[i] -> (PIL.Image, int)`` for code that wants PIL images, and
``ds.array(i) -> (H, W) | (H, W, 3) uint8`` (or None for a file that cannot be decoded) for the
loaders, which never go through PIL. ``class_names``, ``targets``, ``channels`` (1 or 3),
``image_size`` (the native ``(H, W)`` when all images share one) and ``skipped`` (unreadable files
met so far) describe it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.errors import DataError, ImageError

log = logging.getLogger(__name__)


class LabeledImages:
    """A map-style dataset of ``(PIL.Image.Image, int)`` with ``class_names`` and ``targets``.

    Subclasses implement ``array(i)``. ``source`` says where the images came from (a path).
    ``skipped`` counts unreadable files met so far in this process: ``header_skipped`` (dropped when
    the dataset was built) plus those that failed to decode when read.
    """

    name: str = ""
    source: str = ""
    channels: int = 3
    image_size: tuple[int, int] | None = None
    header_skipped: int = 0

    def __init__(self, targets: Sequence[int], class_names: Sequence[str]) -> None:
        self.targets: list[int] = [int(t) for t in targets]
        self.class_names: list[str] = list(class_names)

    @property
    def skipped(self) -> int:
        return self.header_skipped

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return self._image(i), self.targets[i]

    def array(self, i: int) -> np.ndarray | None:  # pragma: no cover - abstract
        """Image ``i`` as ``(H, W)`` or ``(H, W, 3)`` uint8 at its own size; None if it cannot be decoded."""
        raise NotImplementedError

    def _image(self, i: int) -> Any:
        from PIL import Image

        a = self.array(i)
        if a is None:
            raise ImageError(f"{self.name}: image {i} cannot be decoded.")
        return Image.fromarray(a, mode="L" if a.ndim == 2 else "RGB")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> list[int]:
        """Images per class, indexed like ``class_names``."""
        return np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=self.num_classes).tolist()

    def mean_image(self, channels: int, size: tuple[int, int], n: int = 512) -> np.ndarray:
        """``(channels, h, w) float32`` in [0, 1]: the mean of (up to) ``n`` evenly spaced images, each
        made into the model's input by the one transform (``cnnviz.transforms.prepare_batch`` with mean 0 and
        std 1: resized whole, RGB -> grey by luminance, grey -> RGB by replication). Class images start from it: on
        Fashion-MNIST it is a garment-shaped silhouette on black, on CIFAR-10 a nearly even grey-brown. Its mean
        over positions is the data's mean colour (dark, about 0.29, on Fashion-MNIST; about 0.47 on CIFAR-10).
        """
        import torch

        from cnnviz.transforms import as_chw, prepare_batch

        h, w = int(size[0]), int(size[1])
        idx = np.linspace(0, len(self) - 1, num=min(n, len(self))).round().astype(np.int64) if len(self) else []
        total, count = torch.zeros(1, channels, h, w), 0
        for i in idx:
            a = self.array(int(i))
            if a is None:
                continue
            # the model's own transform (mean 0, std 1): exactly the [0, 1] input the model sees
            total += prepare_batch(as_chw(a).unsqueeze(0), (h, w), channels, (0.0,) * channels, (1.0,) * channels)
            count += 1
        mean = (total / count)[0] if count else torch.full((channels, h, w), 0.5)
        return mean.clamp_(0, 1).numpy().astype(np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} images, {self.num_classes} classes)"


class ArrayImages(LabeledImages):
    """Images held in memory as ``(N, H, W)`` (grayscale) or ``(N, H, W, 3)`` uint8 at their own size."""

    def __init__(self, images: np.ndarray, targets: Sequence[int], class_names: Sequence[str], name: str = "", source: str = "") -> None:
        super().__init__(targets, class_names)
        if len(images) != len(self.targets):
            raise DataError(f"{name}: {len(images)} images but {len(self.targets)} labels; the files do not match.")
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] != 3):
            raise DataError(f"{name}: images must be (N, H, W) or (N, H, W, 3) uint8, got {images.dtype} {images.shape}.")
        self.images = images if images.flags.c_contiguous else np.ascontiguousarray(images)
        self.name, self.source = name, source
        self.channels = 1 if self.images.ndim == 3 else 3
        self.image_size = (int(self.images.shape[1]), int(self.images.shape[2]))
        bad = [t for t in set(self.targets) if not 0 <= t < len(self.class_names)]
        if bad:
            raise DataError(f"{name}: labels {sorted(bad)[:5]} are outside the {len(self.class_names)} classes.")

    def array(self, i: int) -> np.ndarray:
        return self.images[i]

    def arrays(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(B, H, W[, 3])`` uint8 for ``indices`` (one gather, no per-image work)."""
        return self.images[np.asarray(indices, dtype=np.int64)]


class FolderImages(LabeledImages):
    """Image files with labels, decoded when read (like ``cnnviz.images.load_image``: the same pixels
    the explainers see). Files whose header cannot be read are dropped when the dataset is built;
    a file that fails later, while decoding, is skipped by the loaders and counted in ``skipped``.
    ``ds[i]`` on such a file returns the next readable image *with its own label*, so labels never
    shift.
    """

    def __init__(self, paths: Sequence[Path], targets: Sequence[int], class_names: Sequence[str], name: str = "", check: bool = True) -> None:
        keep_p, keep_t, bad, sizes = [], [], 0, set()
        for p, t in zip(paths, targets):
            size = header_size(p) if check else None
            if check and size is None:
                bad += 1
                log.warning("skipping unreadable image %s", p)
                continue
            sizes.add(size)
            keep_p.append(Path(p))
            keep_t.append(int(t))
        super().__init__(keep_t, class_names)
        if check and len(sizes) == 1:  # every image the same (H, W): the native size, as for array datasets
            self.image_size = next(iter(sizes))
        self.paths = keep_p
        self.header_skipped = bad
        self.name = self.source = name
        self._bad: set[int] = set()

    @property
    def skipped(self) -> int:
        return self.header_skipped + len(self._bad)

    def array(self, i: int) -> np.ndarray | None:
        from cnnviz.images import load_image

        if i in self._bad:
            return None
        try:
            return load_image(self.paths[i])
        except ImageError as e:
            self._bad.add(i)
            log.warning("skipping unreadable image %s", str(e).removeprefix("cannot read image "))
            return None

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        if not -len(self) <= i < len(self):
            raise IndexError(i)
        for step in range(len(self.paths)):
            j = (i + step) % len(self.paths)
            a = self.array(j)
            if a is not None:
                return Image.fromarray(a), self.targets[j]
        raise DataError(f"{self.name}: none of the {len(self.paths)} images could be read.")


class SubsetImages(LabeledImages):
    """A view on ``base`` restricted to ``indices``, optionally with other ``targets`` (same classes)."""

    def __init__(self, base: LabeledImages, indices: Sequence[int], targets: Sequence[int] | None = None) -> None:
        idx = [int(i) for i in indices]
        super().__init__([base.targets[i] for i in idx] if targets is None else targets, base.class_names)
        if len(self.targets) != len(idx):
            raise ValueError("one target per index")
        self.base, self.indices = base, idx
        self.name, self.source = base.name, base.source
        self.channels, self.image_size = base.channels, base.image_size

    def array(self, i: int) -> np.ndarray | None:
        return self.base.array(self.indices[i])

    def _image(self, i: int) -> Any:
        return self.base._image(self.indices[i])

    def __getitem__(self, i: int) -> tuple[Any, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        if isinstance(self.base, FolderImages):  # the base substitutes unreadable files: keep its label with its image
            img, y = self.base[self.indices[i]]
            return img, (self.targets[i] if y == self.base.targets[self.indices[i]] else y)
        return self._image(i), self.targets[i]

    @property
    def skipped(self) -> int:
        return self.base.skipped

    @property
    def header_skipped(self) -> int:  # type: ignore[override]
        return self.base.header_skipped


def header_size(p: Path) -> tuple[int, int] | None:
    """``(H, W)`` from ``p``'s header if PIL can parse it, else None (cheap: no pixels are decoded)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
        return int(h), int(w)
    except Exception:
        return None


def header_ok(p: Path) -> bool:
    """Whether PIL can parse ``p``'s header (cheap: no pixels are decoded)."""
    return header_size(p) is not None


def base_arrays(ds: LabeledImages) -> tuple[ArrayImages, np.ndarray] | None:
    """``(ArrayImages, indices into it)`` when ``ds`` is one (or a chain of subsets of one), else None."""
    idx: np.ndarray | None = None
    while isinstance(ds, SubsetImages):
        here = np.asarray(ds.indices, dtype=np.int64)
        idx = here if idx is None else here[idx]
        ds = ds.base
    if not isinstance(ds, ArrayImages):
        return None
    return ds, (np.arange(len(ds)) if idx is None else idx)


# --------------------------------------------------------------------------------------------
# subsets and relabelings
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


def permuted_labels(ds: LabeledImages, seed: int) -> SubsetImages:
    """``ds`` with its labels shuffled among its images by ``seed`` (class counts unchanged).

    The label-randomization test of Adebayo et al. 2018: a model trained on these labels can only
    memorize, so explanations that do not change for it do not depend on what a model learned.
    """
    perm = np.random.default_rng([int(seed), 0x5EED]).permutation(len(ds))
    t = np.asarray(ds.targets, dtype=np.int64)[perm]
    return SubsetImages(ds, range(len(ds)), targets=t.tolist())
