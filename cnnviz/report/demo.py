"""The demo: train scratch / LP / (FT) / LP-FT EfficientNet-Lite0 and a small CNN, compare them, publish a gallery.

``OUT/runs/NAME/`` holds each trainer run (reused when its recipe is unchanged: ``demo-recipe.json``),
``OUT/cache/`` the explainers' results and ``OUT/site/`` the gallery, so a second demo only rebuilds
what changed. Both folders the demo owns are checked before the first run is trained.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnviz.atomic import check_output_dir, dumps_json, write_text
from cnnviz.report.config import CLASS_IMAGE_STEPS, ModelSource, ReportConfig
from cnnviz.report.job import GalleryJob, GalleryResult, Progress

RECIPE_FILE = "demo-recipe.json"
QUICK_NATURAL_SIZE = 96  # px; see demo_runs
FULL_NATURAL_SIZE = 128


SMALL_GREY = ("fashion-mnist", "mnist")  # 28-px grey digits/clothes: the demo's offline fallback
AUTO = "auto"


def demo_runs(quick: bool, data: str) -> list[tuple[str, dict[str, Any]]]:
    """The demo's training runs: ``(name, TrainConfig fields)``.

    Natural images (CIFAR-10, a photo folder) get a larger input for Lite0 than 28-px Fashion-MNIST: ImageNet
    features need objects at roughly ImageNet scale (see docs/training.md, the image-size study), and every Lite0
    run uses the same size, data and epochs so scratch vs transfer is a fair comparison.
    """
    natural = data not in SMALL_GREY
    if quick:
        # Sized for a few CPU-minutes of training on 2 cores.
        common = {"data": data, "limit": 2000 if natural else 1000, "eval_limit": 1000 if natural else 500,
                  "batch_size": 32, "augment": "none"}
        lite = {**common, "model": "efficientnet_lite0", "image_size": QUICK_NATURAL_SIZE if natural else 48}
        return [
            ("simplecnn-scratch", {**common, "model": "simplecnn:width=16,depth=2", "mode": "scratch", "epochs": 4}),
            ("lite0-scratch", {**lite, "mode": "scratch", "epochs": 2 if natural else 1}),
            ("lite0-lp", {**lite, "mode": "lp", "epochs": 2 if natural else 3}),  # LP epochs reuse cached features
            ("lite0-lpft", {**lite, "mode": "lpft", "epochs": 2 if natural else 3, "lp_epochs": 1 if natural else 2}),
        ]  # on CIFAR-10 every Lite0 run gets 2 epochs (LP-FT: 1 probe + 1 fine-tune); FT lr: the trainer's, BN kept
    # The full demo is the seed's study at CPU size: every Lite0 mode at the same 5,000 images, 128 px and 3 epochs
    # (LP-FT: the trainer's default 1 probe + 2 fine-tune epochs, i.e. the command a user types:
    # `cnnviz train --data cifar10 --mode lpft --limit 5000 --epochs 3`), plus plain fine-tuning, so the gallery
    # is the scratch / LP / FT / LP-FT table of docs/reproductions.md. About 40 minutes on 2 idle cores.
    common = {"data": data, "limit": 5000, "eval_limit": 2000, "batch_size": 64, "augment": "none"}
    lite = {**common, "model": "efficientnet_lite0", "image_size": FULL_NATURAL_SIZE if natural else 64}
    return [
        ("simplecnn-scratch", {**common, "model": "simplecnn", "mode": "scratch", "epochs": 8}),
        ("lite0-scratch", {**lite, "mode": "scratch", "epochs": 3}),
        ("lite0-lp", {**lite, "mode": "lp", "epochs": 3}),
        ("lite0-ft", {**lite, "mode": "ft", "epochs": 3}),
        ("lite0-lpft", {**lite, "mode": "lpft", "epochs": 3}),
    ]


def resolve_demo_data(data: str, data_root: str | None, say: Callable[[str], None] = lambda msg: None) -> str:
    """``auto`` -> ``cifar10`` when a copy is reachable (local archive/folder/batches, or a torchvision download
    when online), else ``fashion-mnist`` (offline, Debian's dataset-fashion-mnist). Any other spec is kept."""
    if data != AUTO:
        return data
    from cnnviz.datasets.cifar import find_cifar
    from cnnviz.datasets.locate import data_roots, download
    from cnnviz.errors import DataError

    roots = data_roots(data_root)
    if find_cifar("cifar10", roots) is None:
        try:
            download("cifar10", data_root, roots)
        except DataError:
            say("CIFAR-10 is not reachable (no local copy, no download): the demo uses Fashion-MNIST. "
                "Put cifar10-jpeg.tar.gz in --data-root DIR for the natural-image demo.")
            return "fashion-mnist"
    return "cifar10"


def demo_report_config(quick: bool, seed: int, device: str) -> ReportConfig:
    """What the demo's gallery computes."""
    return ReportConfig(maximize_steps=CLASS_IMAGE_STEPS, examples_limit=200 if quick else 500,
                        eval_limit=200 if quick else 1000, num_images=10 if quick else 20, seed=seed, device=device,
                        attr_methods=("saliency",) if quick else ("saliency", "integrated-gradients"))


def finished_run(run_dir: Path, recipe: dict[str, Any]) -> dict[str, Any] | None:
    """The run's metrics if ``run_dir`` holds a finished run of this recipe (so a second demo is fast)."""
    m, ck, stamp = run_dir / "metrics.json", run_dir / "ckpt.pt", run_dir / RECIPE_FILE
    if not (m.is_file() and ck.is_file() and stamp.is_file()):
        return None
    try:
        if json.loads(stamp.read_text(encoding="utf-8")) != json.loads(dumps_json(recipe)):
            return None
        metrics = json.loads(m.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return metrics if isinstance(metrics, dict) else None


@dataclass
class DemoRow:
    name: str
    mode: str
    accuracy: float | None
    train_seconds: float | None
    reused: bool


@dataclass
class DemoResult:
    rows: list[DemoRow]
    gallery: GalleryResult
    seconds: float
    data: str = ""  # the dataset it ran on (``auto`` resolved)


def run_demo(*, quick: bool, data: str, out: str | Path, data_root: str | None = None, device: str = "auto", seed: int = 0,
             say: Callable[[str], None] = lambda msg: None, train_progress: bool = True,
             progress: Progress | None = None) -> DemoResult:
    """Train (or reuse) every run of ``demo_runs``, then build the gallery of all of them into ``OUT/site``.

    ``say`` receives one line per phase; ``train_progress`` is the trainer's own progress bars;
    ``progress`` follows the gallery build (see ``GalleryJob.run``).
    """
    from cnnviz.train import TrainConfig, train_run

    root = Path(out)
    check_output_dir(root / "site", "gallery")  # refused now, not after minutes of training
    check_output_dir(root / "cache", "cache")
    data = resolve_demo_data(data, data_root, say)
    t0 = time.perf_counter()
    rows = []
    for name, fields in demo_runs(quick, data):
        run_dir = root / "runs" / name
        recipe = {**fields, "seed": seed}
        metrics = finished_run(run_dir, recipe)
        reused = metrics is not None
        if metrics is None:
            say(f"training {name} ...")
            cfg = TrainConfig(**fields, seed=seed, device=device, out=str(run_dir), data_root=data_root)
            metrics = train_run(cfg, progress=train_progress)
            write_text(run_dir / RECIPE_FILE, dumps_json(recipe))
        rows.append(DemoRow(name, fields["mode"], metrics.get("test_accuracy"), metrics.get("train_seconds"), reused))
    say("building the gallery ...")
    srcs = [ModelSource(str(root / "runs" / r.name / "ckpt.pt"), r.name) for r in rows]
    job = GalleryJob.prepare(srcs, root / "site", data=data, data_root=data_root, cache=root / "cache",
                             cfg=demo_report_config(quick, seed, device), title=f"cnnviz demo: {data}")
    gallery = job.run(progress)
    return DemoResult(rows, gallery, time.perf_counter() - t0, data)
