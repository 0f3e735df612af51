"""The trainer's batches: uint8 images at their own size, resized per batch on the training device.

Memory is bounded by a batch, not by the split: a dataset held in memory (Fashion-MNIST, CIFAR: an
``ArrayImages``) stays uint8 at its native size (CIFAR-10's 50,000 training images are 150 MB;
transformed to float at 224 px they would be 30 GB), and each batch is gathered, moved to the device
and finished there by the model's transform (``cnnviz.transforms.prepare_batch``). Folders are decoded
per batch by a DataLoader (worker processes with ``--num-workers``); augmentation runs per sample on
the uint8 image in the loader. Linear-probe epochs can instead train on backbone features computed
once (``cache_features``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from cnnviz.datasets.base import LabeledImages, base_arrays
from cnnviz.datasets.loader import sample_loader

GPU_RESIDENT_MAX_BYTES = 2_000_000_000  # uint8 images held on the GPU up to this size (else pinned in RAM)


class EpochIndices:
    """A sampler whose index list is replaced every epoch (so one DataLoader, and its workers, live on)."""

    def __init__(self) -> None:
        self.indices: list[int] = []

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class Source:
    """The images of one split as a run reads them.

    ``held``: the split's images as one uint8 tensor ``(N, C, H, W)`` at their own size (in-memory
    datasets only; on the GPU when it fits), ``y`` their labels ``(N,)``. ``feats``: cached backbone
    features ``(N, D)`` (linear probe). Otherwise images are decoded per batch. ``bad`` holds the
    positions of files that could not be decoded (skipped, never replaced by another image).
    """

    def __init__(self, ds: LabeledImages, transform: Any, batch_size: int, num_workers: int = 0) -> None:
        self.ds, self.transform, self.batch_size, self.num_workers = ds, transform, int(batch_size), int(num_workers)
        self.held: torch.Tensor | None = None
        self.y = torch.as_tensor(ds.targets, dtype=torch.long)
        self.feats: torch.Tensor | None = None
        self.bad: set[int] = set()
        self._sampler = EpochIndices()
        self._loader: Any = None

    # ----------------------------------------------------------------------------------------
    def hold(self, device: torch.device, allow_gpu: bool = True) -> bool:
        """Gather an in-memory dataset's images into ``held`` once; False when ``ds`` is not in memory."""
        found = base_arrays(self.ds)
        if found is None:
            return False
        base, idx = found
        import numpy as np

        a = base.arrays(idx)  # (N, H, W) or (N, H, W, 3) uint8: one gather, a copy of just this split
        a = a[:, None] if a.ndim == 3 else np.ascontiguousarray(a.transpose(0, 3, 1, 2))
        held = torch.from_numpy(a)
        if device.type == "cuda":
            if allow_gpu and held.numel() <= GPU_RESIDENT_MAX_BYTES:
                held, self.y = held.to(device), self.y.to(device)
            else:
                held = held.pin_memory()
        self.held = held
        return True

    @property
    def held_bytes(self) -> int:
        """Bytes of images (and features) this source keeps for the whole run."""
        n = self.held.numel() * self.held.element_size() if self.held is not None else 0
        return n + (self.feats.numel() * self.feats.element_size() if self.feats is not None else 0)

    def n_batches(self, count: int, drop_last: bool) -> int:
        return count // self.batch_size if drop_last else math.ceil(count / self.batch_size)

    # ----------------------------------------------------------------------------------------
    def batches(self, indices: Sequence[int], drop_last: bool, acc: Any, features: bool = True
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(x, y, idx)`` on ``acc.device`` for ``indices`` in order: ``x`` the finished model input
        ``(B, C, h, w)`` (or cached features ``(B, D)`` when ``features`` and they exist), ``idx``
        the dataset positions of the rows (files that fail to decode are left out)."""
        bs = self.batch_size
        n = (len(indices) // bs) * bs if drop_last else len(indices)
        order = list(indices[:n])
        dev = acc.device
        if features and self.feats is not None:
            if self.bad:
                order = [i for i in order if i not in self.bad]
            idx = torch.as_tensor(order, dtype=torch.long)
            for b in range(0, len(order), bs):
                j = idx[b: b + bs]
                jf = j.to(self.feats.device)
                yield self.feats[jf].to(dev, non_blocking=True), self.y.to(jf.device)[jf].to(dev, non_blocking=True), j
            return
        if self.held is not None:
            idx = torch.as_tensor(order, dtype=torch.long)
            for b in range(0, n, bs):
                j = idx[b: b + bs]
                jh = j.to(self.held.device)
                x = acc.finish(self.transform, self.held[jh])
                yield x, self.y.to(jh.device)[jh].to(dev, non_blocking=True), j
            return
        if self._loader is None:
            self._loader = sample_loader(self.ds, self.transform, batch_size=bs, finish=False, sampler=self._sampler,
                                         num_workers=self.num_workers, pin_memory=dev.type == "cuda")
        self._sampler.indices = order
        for x, y, bad, good in self._loader:
            self.bad.update(bad)
            if x is None:
                continue
            yield acc.finish(self.transform, x), y.to(dev, non_blocking=True), good
