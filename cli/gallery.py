"""``cnnviz gallery`` (models x images -> static HTML site) and ``cnnviz demo`` (train, compare, publish).

Both are thin: parse -> ``cnnviz.report.job`` / ``cnnviz.report.demo`` -> print. Exit codes: 0 built;
2 bad usage or input, nothing built; 3 some ``--images`` were unreadable (each named on stderr) and
the gallery was built from the others.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from cnnviz.cli.common import STEPS, device_option, emit_json, info, json_option, seed_option
from cnnviz.report.config import CLASS_IMAGE_STEPS

PARTIAL_EXIT = 3


def _split(values: tuple[str, ...]) -> list[str]:
    """``--layers a,b --layers c`` -> ``[a, b, c]``."""
    return [v.strip() for raw in values for v in raw.split(",") if v.strip()]


class _Bar:
    """A tqdm bar fed by the library's ``progress(desc, done, total)``."""

    def __init__(self, desc: str) -> None:
        self.desc, self.bar = desc, None

    def __call__(self, desc: str, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="step", leave=False, dynamic_ncols=True)
        self.bar.set_description_str(desc[:40])
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_notes(stats: Any) -> None:
    for n in stats.notes:
        info(f"note: {n}")


@click.command()
@click.option("--model", "models", multiple=True, required=True, metavar="SPEC",
              help="A model to show (repeat for several): checkpoint *.pt, timm name, torchvision:NAME or simplecnn.")
@click.option("--name", "names", multiple=True, help="Display names, in --model order (default: run folder or arch).")
@click.option("--weights", type=click.Choice(["pretrained", "random"]), default="pretrained", show_default=True,
              help="For non-checkpoint specs.")
@click.option("--data", default=None, metavar="SPEC", help="Dataset (fashion-mnist, cifar10, a folder...): test images, top patches, comparison.")
@click.option("--data-root", default=None, help="Where datasets are looked for first.")
@click.option("--images", "images", multiple=True, type=click.Path(), help="Image file or folder (repeat). Default: test images from --data.")
@click.option("--num-images", type=click.IntRange(0, 500), default=12, show_default=True, help="Test images drawn from --data when no --images.")
@click.option("--layers", "layers", multiple=True, help="Layers for filters / activation maps (comma-separated or repeated). Default: first and a mid-depth conv.")
@click.option("--cam", "cam_methods", default="gradcam", show_default=True, help="CAM methods, comma-separated ('' for none).")
@click.option("--attribute", "attr_methods", default="saliency", show_default=True, help="Attribution methods, comma-separated ('' for none).")
@click.option("--maximize-steps", type=STEPS, default=CLASS_IMAGE_STEPS, show_default=True, help="Optimization steps per class-maximizing image.")
@click.option("--max-classes", type=click.IntRange(1, 1000), default=10, show_default=True, help="Classes shown for maximize / top patches.")
@click.option("--eval-limit", type=click.IntRange(4, 1_000_000), default=500, show_default=True, help="Test images used by the comparison.")
@click.option("--no-compare", is_flag=True, help="Skip CKA / drift / agreement.")
@click.option("--no-strips", is_flag=True, help="Skip the per-image Grad-CAM at every stage.")
@click.option("--no-sanity", is_flag=True, help="Skip the sanity verdict beside each method (cnnviz sanity's rule).")
@click.option("--cache", default=None, type=click.Path(file_okay=False), help="Result cache [.cnnviz-cache beside --out].")
@click.option("--title", default="cnnviz gallery", show_default=True)
@click.option("--out", default="gallery", show_default=True, type=click.Path(file_okay=False),
              help="Site folder: new, empty or an earlier gallery (replaced once the new one is complete; your own files in it are kept).")
@device_option
@seed_option
@json_option
def gallery(models: tuple[str, ...], names: tuple[str, ...], weights: str, data: str | None, data_root: str | None,
            images: tuple[str, ...], num_images: int, layers: tuple[str, ...], cam_methods: str, attr_methods: str,
            maximize_steps: int, max_classes: int, eval_limit: int, no_compare: bool, no_strips: bool, no_sanity: bool,
            cache: str | None, title: str, out: str, device: str, seed: int, as_json: bool) -> None:
    """Build a static HTML gallery (opens from file://) of what MODELS learned.

    \b
    Examples:
      cnnviz gallery --model runs/scratch/ckpt.pt --model runs/lpft/ckpt.pt --data fashion-mnist --out site
      cnnviz gallery --model efficientnet_lite0 --images photos/ --out site
    """
    from cnnviz.errors import CnnvizError
    from cnnviz.report import ModelSource, ReportConfig
    from cnnviz.report.job import GalleryJob

    if names and len(names) != len(models):
        raise CnnvizError(f"--name was given {len(names)} times for {len(models)} --model; give one per model or none.")
    cfg = ReportConfig(layers=_split(layers), cam_methods=_split((cam_methods,)), attr_methods=_split((attr_methods,)),
                       maximize_steps=maximize_steps, max_classes=max_classes, eval_limit=eval_limit, compare=not no_compare,
                       strips=not no_strips, sanity=not no_sanity, num_images=num_images, seed=seed, device=device)
    srcs = [ModelSource(m, names[i] if names else None, weights) for i, m in enumerate(models)]
    job = GalleryJob.prepare(srcs, out, images=list(images), data=data, data_root=data_root, cfg=cfg, cache=cache, title=title)
    if not images and not data:
        info("note: no --images and no --data: the gallery shows the models only (no per-image pages).")
    for _, why in job.skipped:
        info(f"skipped: {why}")
    bar = _Bar("gallery")
    try:
        result = job.run(progress=bar)
    finally:
        bar.close()
    stats = result.stats
    _print_notes(stats)
    info(f"{len(stats.computed)} results computed, {stats.hits} from cache, {stats.seconds:.1f} s")
    if as_json:
        emit_json({"index": str(result.index), "computed": len(stats.computed), "cached": stats.hits, "notes": stats.notes,
                   "skipped": [p for p, _ in result.skipped], "seconds": round(stats.seconds, 2),
                   "method_seconds": {k: round(v, 2) for k, v in stats.method_seconds.items()}})
    else:
        click.echo(str(result.index))
    if result.skipped:
        info(f"error: skipped {len(result.skipped)} of {result.total_images} images (unreadable, named above); "
             "the gallery shows the others.")
        sys.exit(PARTIAL_EXIT)


@click.command()
@click.option("--quick", is_flag=True, help="Small and fast: 2000 CIFAR-10 (1000 Fashion-MNIST) training images per run, "
              "Lite0 at 96 px (48 px), a few epochs. Without it: 5000 images, Lite0 at 128 px (64 px), "
              "3 epochs each, plain fine-tuning added.")
@click.option("--data", default="auto", show_default=True, metavar="SPEC",
              help="Dataset to train and explain on; auto = CIFAR-10 when a copy is reachable (local or download), "
                   "else Fashion-MNIST.")
@click.option("--data-root", default=None, help="Where datasets are looked for first.")
@click.option("--out", default="demo-out", show_default=True, type=click.Path(file_okay=False), help="Runs, cache and site go here.")
@device_option
@seed_option
def demo(quick: bool, data: str, data_root: str | None, out: str, device: str, seed: int) -> None:
    """The main job: train scratch / LP / (FT) / LP-FT Lite0 and a simplecnn, compare them, publish a gallery.

    Finished runs in OUT are reused, so a second `cnnviz demo` only rebuilds what changed.
    """
    from cnnviz.report.demo import run_demo

    bar = _Bar("gallery")
    try:
        res = run_demo(quick=quick, data=data, out=out, data_root=data_root, device=device, seed=seed, say=info, progress=bar)
    finally:
        bar.close()
    stats = res.gallery.stats
    _print_notes(stats)
    click.echo("")
    click.echo(f"{'run':<20} {'mode':<8} {'test acc':>9} {'train time':>11}")
    for r in res.rows:
        acc_s = f"{100 * r.accuracy:.1f}%" if r.accuracy is not None else "-"
        secs_s = f"{r.train_seconds:.0f} s" if r.train_seconds is not None else "-"
        click.echo(f"{r.name:<20} {r.mode:<8} {acc_s:>9} {secs_s:>11}{'  (reused)' if r.reused else ''}")
    click.echo(f"data: {res.data}")
    click.echo(f"gallery: {res.gallery.index.resolve()}")
    click.echo(f"total {res.seconds:.0f} s ({len(stats.computed)} results computed, {stats.hits} from cache)")
