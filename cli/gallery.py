"""``cnnviz gallery`` (models x images -> static HTML site) and ``cnnviz demo`` (train, compare, publish)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from cnnviz.cli.common import device_option, emit_json, info, json_option, seed_option


def _split(values: tuple[str, ...]) -> list[str]:
    """``--layers a,b --layers c`` -> ``[a, b, c]``."""
    return [v.strip() for raw in values for v in raw.split(",") if v.strip()]


def _bar(total: int, desc: str):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True)


def build_gallery(models: list[Any], out: str, *, data: str | None, images: list[str], cfg: Any, cache: str | None,
                  title: str, data_root: str | None = None, progress: bool = True) -> tuple[Path, Any]:
    """Report + site for ``models`` (``ModelSource``); returns ``(index.html, Stats)``. Shared with ``demo``."""
    from cnnviz.gallery import build_site
    from cnnviz.report import Report

    refs, dataset = _inputs(images, data, cfg, data_root)
    cache_dir = Path(cache) if cache else Path(out).resolve().parent / ".cnnviz-cache"
    total = len(models) * (7 + len(refs)) + 2
    bar = _bar(total, "gallery") if progress else None

    def tick(desc: str) -> None:
        if bar is not None:
            bar.set_description_str(desc[:40])
            bar.update(1)

    try:
        report = Report(cache_dir, cfg, progress=tick)
        manifest = report.run(models, refs, data=data, dataset=dataset, title=title,
                              manifest_name="".join(c if c.isalnum() else "_" for c in str(Path(out).resolve()))[-80:])
        index = build_site(manifest, out)
    finally:
        if bar is not None:
            bar.close()
    return index, report.stats


def _inputs(images: list[str], data: str | None, cfg: Any, data_root: str | None) -> tuple[list[Any], Any]:
    """Image references (from --images, else a stratified pick of the test split) and the eval dataset."""
    from cnnviz.images import expand_image_paths, load_image
    from cnnviz.report import ImageRef

    dataset = None
    if data:
        from cnnviz.data import open_split

        dataset = open_split(data, "test", data_root=data_root, limit=max(cfg.eval_limit, cfg.examples_limit), seed=cfg.seed)
    refs: list[ImageRef] = []
    if images:
        for p in expand_image_paths(images):
            load_image(p)  # bad files fail now, with one clear line, before any work
            refs.append(ImageRef(p.name, lambda p=p: load_image(p)))
    elif dataset is not None:
        refs = _dataset_refs(dataset, cfg.num_images)
    return refs, dataset


def _dataset_refs(ds: Any, n: int) -> list[Any]:
    """``n`` test images, round-robin over classes, so every class appears (filter by class)."""
    import numpy as np

    from cnnviz.report import ImageRef

    targets = list(ds.targets) if hasattr(ds, "targets") else [ds[i][1] for i in range(len(ds))]  # never decode when labels are known
    names = list(getattr(ds, "class_names", []) or [])
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        by_class.setdefault(int(t), []).append(i)
    picks: list[int] = []
    rank = 0
    while len(picks) < min(n, len(targets)):
        added = False
        for c in sorted(by_class):
            if rank < len(by_class[c]) and len(picks) < n:
                picks.append(by_class[c][rank])
                added = True
        if not added:
            break
        rank += 1

    def loader(i: int):  # noqa: ANN202
        img = ds[i][0]
        a = np.asarray(img.convert("RGB") if hasattr(img, "convert") else img)
        return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a

    out = []
    for i in picks:
        cls = names[targets[i]] if names else str(targets[i])
        out.append(ImageRef(f"test #{i}", lambda i=i: loader(i), cls))
    return out


@click.command()
@click.option("--model", "models", multiple=True, required=True, metavar="SPEC",
              help="A model to show (repeat for several): checkpoint *.pt, timm name, torchvision:NAME or simplecnn.")
@click.option("--name", "names", multiple=True, help="Display names, in --model order (default: run folder or arch).")
@click.option("--weights", type=click.Choice(["pretrained", "random"]), default="pretrained", show_default=True,
              help="For non-checkpoint specs.")
@click.option("--data", default=None, metavar="SPEC", help="Dataset (fashion-mnist, cifar10, a folder...): test images, top patches, comparison.")
@click.option("--data-root", default=None, help="Where datasets are looked for first.")
@click.option("--images", "images", multiple=True, type=click.Path(), help="Image file or folder (repeat). Default: test images from --data.")
@click.option("--num-images", type=click.IntRange(min=0), default=12, show_default=True, help="Test images drawn from --data when no --images.")
@click.option("--layers", "layers", multiple=True, help="Layers for filters / activation maps (comma-separated or repeated). Default: first and a mid-depth conv.")
@click.option("--cam", "cam_methods", default="gradcam", show_default=True, help="CAM methods, comma-separated ('' for none).")
@click.option("--attribute", "attr_methods", default="saliency", show_default=True, help="Attribution methods, comma-separated ('' for none).")
@click.option("--maximize-steps", type=click.IntRange(min=1), default=64, show_default=True, help="Optimization steps per class-maximizing image.")
@click.option("--max-classes", type=click.IntRange(min=1), default=10, show_default=True, help="Classes shown for maximize / top patches.")
@click.option("--eval-limit", type=click.IntRange(min=4), default=500, show_default=True, help="Test images used by the comparison.")
@click.option("--no-compare", is_flag=True, help="Skip CKA / drift / agreement.")
@click.option("--cache", default=None, type=click.Path(file_okay=False), help="Result cache [.cnnviz-cache beside --out].")
@click.option("--title", default="cnnviz gallery", show_default=True)
@click.option("--out", default="gallery", show_default=True, type=click.Path(file_okay=False), help="Site folder (replaced atomically).")
@device_option
@seed_option
@json_option
def gallery(models: tuple[str, ...], names: tuple[str, ...], weights: str, data: str | None, data_root: str | None,
            images: tuple[str, ...], num_images: int, layers: tuple[str, ...], cam_methods: str, attr_methods: str,
            maximize_steps: int, max_classes: int, eval_limit: int, no_compare: bool, cache: str | None, title: str,
            out: str, device: str, seed: int, as_json: bool) -> None:
    """Build a static HTML gallery (opens from file://) of what MODELS learned.

    \b
    Examples:
      cnnviz gallery --model runs/scratch/ckpt.pt --model runs/lpft/ckpt.pt --data fashion-mnist --out site
      cnnviz gallery --model efficientnet_lite0 --images photos/ --out site
    """
    from cnnviz.errors import CnnvizError
    from cnnviz.report import ModelSource, ReportConfig

    if names and len(names) != len(models):
        raise CnnvizError(f"--name was given {len(names)} times for {len(models)} --model; give one per model or none.")
    _check_specs(models)
    if not images and not data:
        info("note: no --images and no --data: the gallery shows the models only (no per-image pages).")
    cfg = ReportConfig(layers=_split(layers), cam_methods=_split((cam_methods,)), attr_methods=_split((attr_methods,)),
                       maximize_steps=maximize_steps, max_classes=max_classes, eval_limit=eval_limit, compare=not no_compare,
                       num_images=num_images, seed=seed, device=device)
    srcs = [ModelSource(m, names[i] if names else None, weights) for i, m in enumerate(models)]
    index, stats = build_gallery(srcs, out, data=data, images=list(images), cfg=cfg, cache=cache, title=title, data_root=data_root)
    for n in stats.notes:
        info(f"note: {n}")
    info(f"{len(stats.computed)} results computed, {stats.hits} from cache, {stats.seconds:.1f} s")
    if as_json:
        emit_json({"index": str(index), "computed": len(stats.computed), "cached": stats.hits, "notes": stats.notes,
                   "seconds": round(stats.seconds, 2), "method_seconds": {k: round(v, 2) for k, v in stats.method_seconds.items()}})
    else:
        click.echo(str(index))


def _check_specs(models: tuple[str, ...]) -> None:
    """Fail before any work when a checkpoint path does not exist (the common typo)."""
    from cnnviz.errors import CheckpointError
    from cnnviz.models import parse_spec

    for spec in models:
        kind, name, _ = parse_spec(spec)
        if kind == "checkpoint" and not Path(name).is_file():
            raise CheckpointError(f"checkpoint not found: '{name}'. Pass a file written by `cnnviz train` (RUN_DIR/ckpt.pt).")


# -- demo ---------------------------------------------------------------------------------------

def demo_runs(quick: bool, data: str) -> list[tuple[str, dict[str, Any]]]:
    """The demo's training runs: ``(name, TrainConfig fields)``."""
    if quick:
        # Sized for ~5 CPU-minutes of training on 2 cores: every run sees the same 1000 images.
        common = {"data": data, "limit": 1000, "eval_limit": 500, "batch_size": 32, "augment": "none"}
        lite = {**common, "model": "efficientnet_lite0", "image_size": 48}
        return [
            ("simplecnn-scratch", {**common, "model": "simplecnn:width=16,depth=2", "mode": "scratch", "epochs": 4}),
            ("lite0-scratch", {**lite, "mode": "scratch", "epochs": 1}),
            ("lite0-lp", {**lite, "mode": "lp", "epochs": 3}),  # LP epochs reuse cached features: cheap
            ("lite0-lpft", {**lite, "mode": "lpft", "epochs": 3, "lp_epochs": 2}),  # trainer default FT lr, BN kept
        ]
    common = {"data": data, "limit": 20000, "eval_limit": 2000, "batch_size": 64, "augment": "basic"}
    lite = {**common, "model": "efficientnet_lite0", "image_size": 64}
    return [
        ("simplecnn-scratch", {**common, "model": "simplecnn", "mode": "scratch", "epochs": 8}),
        ("lite0-scratch", {**lite, "mode": "scratch", "epochs": 5}),
        ("lite0-lp", {**lite, "mode": "lp", "epochs": 5}),
        ("lite0-lpft", {**lite, "mode": "lpft", "epochs": 5, "lp_epochs": 3}),
    ]


def _finished(run_dir: Path, recipe: dict[str, Any]) -> dict[str, Any] | None:
    """The run's metrics if ``run_dir`` holds a finished run of this recipe (so a second demo is fast)."""
    m, ck, stamp = run_dir / "metrics.json", run_dir / "ckpt.pt", run_dir / "demo-recipe.json"
    if not (m.is_file() and ck.is_file() and stamp.is_file()):
        return None
    try:
        if json.loads(stamp.read_text()) != recipe:
            return None
        return json.loads(m.read_text())
    except (OSError, json.JSONDecodeError):
        return None


@click.command()
@click.option("--quick", is_flag=True, help="Small and fast: 1000 training images per run, 48 px for Lite0, one whole-network epoch.")
@click.option("--data", default="fashion-mnist", show_default=True, metavar="SPEC", help="Dataset to train and explain on.")
@click.option("--data-root", default=None, help="Where datasets are looked for first.")
@click.option("--out", default="demo-out", show_default=True, type=click.Path(file_okay=False), help="Runs, cache and site go here.")
@device_option
@seed_option
def demo(quick: bool, data: str, data_root: str | None, out: str, device: str, seed: int) -> None:
    """The main job: train scratch / LP / LP-FT Lite0 and a simplecnn, compare them, publish a gallery.

    Finished runs in OUT are reused, so a second `cnnviz demo` only rebuilds what changed.
    """
    from cnnviz.report import ModelSource, ReportConfig

    train_run = _train_run()
    from cnnviz.train import TrainConfig

    root = Path(out)
    rows = []
    t_all = time.perf_counter()
    for name, fields in demo_runs(quick, data):
        run_dir = root / "runs" / name
        recipe = {**fields, "seed": seed}
        metrics = _finished(run_dir, recipe)
        reused = metrics is not None
        if metrics is None:
            info(f"training {name} ...")
            cfg = TrainConfig(**fields, seed=seed, device=device, out=str(run_dir), data_root=data_root)
            metrics = train_run(cfg, progress=True)
            from cnnviz.atomic import write_text

            write_text(run_dir / "demo-recipe.json", json.dumps(recipe))
        rows.append((name, fields["mode"], metrics.get("test_accuracy"), metrics.get("train_seconds"), reused))
    cfg = ReportConfig(maximize_steps=16 if quick else 96, examples_limit=200 if quick else 500,
                       eval_limit=200 if quick else 1000, num_images=10 if quick else 20, seed=seed, device=device,
                       attr_methods=("saliency",) if quick else ("saliency", "integrated-gradients"))
    srcs = [ModelSource(str(root / "runs" / n / "ckpt.pt"), n) for n, *_ in rows]
    info("building the gallery ...")
    index, stats = build_gallery(srcs, str(root / "site"), data=data, images=[], cfg=cfg, cache=str(root / "cache"),
                                 title=f"cnnviz demo: {data}", data_root=data_root)
    for n in stats.notes:
        info(f"note: {n}")
    click.echo("")
    click.echo(f"{'run':<20} {'mode':<8} {'test acc':>9} {'train time':>11}")
    for name, mode, acc, secs, reused in rows:
        acc_s = f"{100 * acc:.1f}%" if acc is not None else "-"
        secs_s = f"{secs:.0f} s" if secs is not None else "-"
        click.echo(f"{name:<20} {mode:<8} {acc_s:>9} {secs_s:>11}{'  (reused)' if reused else ''}")
    click.echo(f"gallery: {index.resolve()}")
    click.echo(f"total {time.perf_counter() - t_all:.0f} s ({len(stats.computed)} results computed, {stats.hits} from cache)")


def _train_run():  # noqa: ANN202
    """``cnnviz.train.train_run``, or a clear error when the trainer is not installed."""
    from cnnviz.errors import CnnvizError

    try:
        from cnnviz.train import train_run
    except ImportError as e:
        raise CnnvizError(f"`cnnviz demo` needs the trainer (cnnviz.train.train_run), which is not available: {e}") from None
    return train_run
