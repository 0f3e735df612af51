"""Top dataset patches: per class, the receptive-field patches of its test images that most excite it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnviz.gallery.manifest import Item, Section
from cnnviz.report.context import ModelJob

PATCH_PX = 64


def examples(job: ModelJob, dataset: Any, data_hash: str | None) -> list[Section]:
    """One strip of ``cfg.examples_k`` patches per class; a note when there is no dataset or it does not fit."""
    from cnnviz.data import SubsetImages
    from cnnviz.explain.examples import top_examples

    cfg, info = job.cfg, job.info
    if dataset is None:
        job.note("no top dataset patches: no --data.")
        return []
    if list(dataset.class_names) != list(info.class_names):
        job.note(f"no top dataset patches for {job.name}: its classes are not the dataset's.")
        return []
    n_classes = min(info.num_classes, cfg.max_classes)
    per_class = max(cfg.examples_k, cfg.examples_limit // max(1, info.num_classes))
    items = []
    for c in range(n_classes):
        # Scan only images labelled c (at most per_class of them): the patches that most excite
        # class c among its own images, at 1/num_classes of the cost of scanning everything.
        # (The dataset is already a seeded stratified pick: the seed is in data_hash.)
        idx = [i for i, t in enumerate(dataset.targets) if t == c][:per_class]
        if not idx:
            continue

        def compute(tmp: Path, c: int = c, idx: list[int] = idx) -> dict[str, Any]:
            from cnnviz.images import resize_image
            from cnnviz.render import save_png, tile

            ex = top_examples(job.model, info, SubsetImages(dataset, idx), target_class=c, k=cfg.examples_k)
            tiles = [resize_image(e.patch, (PATCH_PX, PATCH_PX)) for e in ex]
            if tiles:
                save_png(tile(tiles, ncols=len(tiles), pad=2), tmp / "patches.png")
            return {"n": len(tiles), "scores": [float(e.score) for e in ex], "indices": [idx[e.index] for e in ex]}

        d, meta = job.get(data_hash or "-", "examples", {"class": c, "k": cfg.examples_k, "per_class": per_class}, compute)
        if meta["n"]:
            name = info.class_names[c]
            items.append(Item(src=job.rel(d / "patches.png"), caption=name, cls=name))
    return [Section(id="examples", title="Top dataset patches per class", wide=True, items=items,
                    note="For each class, the patches of its test images (the receptive field of the strongest "
                         "Grad-CAM unit) that most excite the class logit, best first.")]
