"""DataLoaders over labeled images: uint8 images decoded (and augmented) per sample, resized per batch.

A transform from ``cnnviz.transforms`` has two halves: ``sample(img)`` (decode/augment, uint8 at the
image's own size - what a worker process does) and ``batch(x)`` (resize + normalize a stacked batch,
on whatever device it is). ``make_loader`` runs both and yields finished float batches on the CPU;
the trainer asks for the uint8 batches (``finish=False``) and finishes them on its device. Images of
different sizes cannot be stacked: each is finished on its own (the same function, so the same
tensor). A file that fails to decode is dropped from its batch and reported, never replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cnnviz.datasets.base import LabeledImages


def is_split_transform(transform: Any) -> bool:
    """Whether ``transform`` has the ``sample`` / ``batch`` halves of ``cnnviz.transforms.Transform``."""
    return callable(getattr(transform, "sample", None)) and callable(getattr(transform, "batch", None))


class SampleDataset:
    """``ds[i] -> (transform.sample(image) or None, label, i)``.

    A ``LabeledImages`` is read through ``ds.array(i)`` (no PIL on the way; None for a file that
    cannot be decoded); any other map-style dataset of ``(image, label)`` through ``ds[i]``.
    """

    def __init__(self, ds: Any, transform: Any) -> None:
        self.ds, self.transform = ds, transform
        self.direct = isinstance(ds, LabeledImages)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Any, int, int]:
        if self.direct:
            a, y = self.ds.array(i), self.ds.targets[i]
        else:
            a, y = self.ds[i]
        return (None if a is None else self.transform.sample(a)), int(y), int(i)


class Collate:
    """Stack samples into ``(x, y (B,) int64, bad, idx)``: ``bad`` lists the indices that could not be
    decoded, ``idx`` (a tensor) those of the rows of ``x``.

    ``x`` is the uint8 batch ``(B, C, H, W)`` when all samples share a size and ``finish`` is False,
    else the finished float batch (``transform.batch``); None when no sample of the batch was readable.
    A class so DataLoader workers can pickle it.
    """

    def __init__(self, transform: Any, finish: bool) -> None:
        self.transform, self.finish = transform, finish

    def __call__(self, items: Sequence[tuple[Any, int, int]]) -> tuple[Any, Any, list[int], Any]:
        import torch

        good = [it for it in items if it[0] is not None]
        bad = [it[2] for it in items if it[0] is None]
        y = torch.as_tensor([it[1] for it in good], dtype=torch.long)
        idx = torch.as_tensor([it[2] for it in good], dtype=torch.long)
        if not good:
            return None, y, bad, idx
        xs = [it[0] for it in good]
        if all(t.shape == xs[0].shape for t in xs):
            x = torch.stack(xs)
            return (self.transform.batch(x) if self.finish else x), y, bad, idx
        return torch.cat([self.transform.batch(t.unsqueeze(0)) for t in xs]), y, bad, idx


class TransformedDataset:
    """``ds[i] -> (transform(image), label)`` for any callable transform (the per-image path)."""

    def __init__(self, ds: LabeledImages, transform: Callable[[Any], Any]) -> None:
        self.ds, self.transform = ds, transform

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img, y = self.ds[i]
        return self.transform(img), y


class _Finished:
    """Iterate a sample loader as ``(x float (B, C, H, W), y)`` pairs, skipping empty batches."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y, _, _ in self.loader:
            if x is not None:
                yield x, y

    def __getattr__(self, name: str) -> Any:  # batch_size, dataset, sampler... of the DataLoader
        return getattr(self.loader, name)


def sample_loader(
    ds: LabeledImages,
    transform: Any,
    *,
    batch_size: int,
    finish: bool,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    sampler: Any = None,
    pin_memory: bool = False,
) -> "torch.utils.data.DataLoader":  # noqa: F821
    """A DataLoader of ``(x, y, bad, idx)`` batches (see ``Collate``) for a split transform."""
    import torch
    from torch.utils.data import DataLoader

    gen = torch.Generator().manual_seed(int(seed))
    return DataLoader(
        SampleDataset(ds, transform), batch_size=batch_size, shuffle=shuffle if sampler is None else False,
        sampler=sampler, num_workers=num_workers, drop_last=drop_last, generator=gen, pin_memory=pin_memory,
        collate_fn=Collate(transform, finish), persistent_workers=num_workers > 0,
        worker_init_fn=seed_worker if num_workers > 0 else None,
    )


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
) -> Any:
    """Batches ``(x (B, C, H, W) float32, y (B,) int64)`` of ``ds`` through ``transform``.

    With a ``cnnviz.transforms`` transform, images are decoded per sample and resized per batch (an
    unreadable file is left out of its batch); any other callable is applied per image. Shuffling
    uses its own ``torch.Generator`` seeded with ``seed`` (never the global RNG); pinned memory is
    on when CUDA is available unless ``pin_memory`` says otherwise.
    """
    import torch
    from torch.utils.data import DataLoader

    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    if is_split_transform(transform):
        return _Finished(sample_loader(ds, transform, batch_size=batch_size, finish=True, shuffle=shuffle, seed=seed,
                                       num_workers=num_workers, drop_last=drop_last, sampler=sampler, pin_memory=pin_memory))
    gen = torch.Generator().manual_seed(int(seed))
    return DataLoader(
        TransformedDataset(ds, transform), batch_size=batch_size, shuffle=shuffle if sampler is None else False,
        sampler=sampler, num_workers=num_workers, drop_last=drop_last, generator=gen, pin_memory=pin_memory,
        persistent_workers=num_workers > 0, worker_init_fn=seed_worker if num_workers > 0 else None,
    )


def seed_worker(worker_id: int) -> None:
    import random

    import torch

    s = torch.initial_seed() % 2**32  # DataLoader derives each worker's seed from its generator
    np.random.seed(s)
    random.seed(s)


def materialize(ds: LabeledImages, transform: Callable[[Any], Any], batch_size: int = 256) -> tuple["torch.Tensor", "torch.Tensor"]:  # noqa: F821
    """Apply a deterministic transform to every image once -> ``(x (N, C, H, W), y (N,))`` tensors.

    Holds the whole split as float: for small splits and benchmarks only (training never does this).
    """
    import torch

    xs, ys = [], []
    for x, y in make_loader(ds, transform, batch_size=batch_size, pin_memory=False):
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)
