"""The report's inputs: image files (each decoded once up front) or a stratified pick of a test split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.errors import ImageError
from cnnviz.report.config import ImageRef, ReportConfig


@dataclass
class Inputs:
    """What a gallery shows: images, the images skipped as unreadable, the evaluation dataset."""

    images: list[ImageRef]
    dataset: Any = None  # cnnviz.data.LabeledImages (the test split) or None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    total: int = 0  # image inputs given (files after expanding folders)


def open_inputs(images: Sequence[str], data: str | None, cfg: ReportConfig, data_root: str | None = None) -> Inputs:
    """Image refs from ``images`` (else ``cfg.num_images`` test images of ``data``) and the test split.

    An unreadable image among several is skipped and listed in ``skipped`` (the caller names it and
    exits 3); a lone unreadable image, or none readable, is an ``ImageError``.
    """
    dataset = None
    if data:
        from cnnviz.data import open_split

        dataset = open_split(data, "test", data_root=data_root, limit=max(cfg.eval_limit, cfg.examples_limit), seed=cfg.seed)
    if images:
        refs, skipped, total = image_refs(images)
        return Inputs(refs, dataset, skipped, total)
    refs = dataset_refs(dataset, cfg.num_images) if dataset is not None else []
    return Inputs(refs, dataset, [], len(refs))


def image_refs(paths: Sequence[str]) -> tuple[list[ImageRef], list[tuple[str, str]], int]:
    """``(refs, skipped, total)`` for files and folders; every file is decoded once now."""
    from cnnviz.images import expand_image_paths, load_image

    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for raw in paths:
        try:
            files.extend(expand_image_paths([raw]))
        except ImageError as e:
            skipped.append((str(raw), str(e)))
    good: list[Path] = []
    for p in files:
        try:
            load_image(p)
        except ImageError as e:
            skipped.append((str(p), str(e)))
        else:
            good.append(p)
    total = len(files) + len(skipped) - (len(files) - len(good))  # files + paths that named no image
    if skipped and (total == 1 or not good):
        raise ImageError(skipped[0][1] if total == 1 else "no readable image: " + "; ".join(w for _, w in skipped[:3]))
    names = _display_names(good)
    return [ImageRef(n, lambda p=p: load_image(p)) for n, p in zip(names, good)], skipped, total


def _display_names(paths: Sequence[Path]) -> list[str]:
    """File names, with as many parent folders as it takes to tell equal names apart."""
    out = []
    for p in paths:
        depth = 1
        while depth < len(p.parts) and sum(1 for q in paths if q.parts[-depth:] == p.parts[-depth:]) > 1:
            depth += 1
        out.append("/".join(p.parts[-depth:]))
    return out


def dataset_refs(ds: Any, n: int) -> list[ImageRef]:
    """``n`` images of labelled dataset ``ds``, round-robin over classes, so every class appears.

    Labels come from ``ds.targets``: nothing is decoded until an image is used.
    """
    import numpy as np

    targets = [int(t) for t in ds.targets]
    names = list(ds.class_names)
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        by_class.setdefault(t, []).append(i)
    picks: list[int] = []
    for rank in range(max((len(v) for v in by_class.values()), default=0)):
        for c in sorted(by_class):
            if rank < len(by_class[c]) and len(picks) < n:
                picks.append(by_class[c][rank])
        if len(picks) >= n:
            break

    def load(i: int) -> np.ndarray:
        img = ds[i][0]
        a = np.asarray(img.convert("RGB") if hasattr(img, "convert") else img)
        return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a

    return [ImageRef(f"test #{i}", lambda i=i: load(i), names[targets[i]] if names else str(targets[i])) for i in picks]
