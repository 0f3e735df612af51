"""``cnnviz train``, ``cnnviz evaluate``, ``cnnviz sweep``, ``cnnviz augment``: thin wrappers over cnnviz.train."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cnnviz.cli.common import BATCH_SIZE, IMAGE_SIDE, NUM_WORKERS, device_option, emit_json, info, json_option, seed_option

MODES = ("scratch", "lp", "ft", "lpft")
AUGMENTS = ("none", "basic", "strong")
DATA_HELP = "fashion-mnist, mnist, cifar10, cifar100, or an image folder (ImageFolder layout)."


def _data_options(f: Callable) -> Callable:
    f = click.option("--data-root", type=click.Path(file_okay=False), default=None,
                     help="Folder with local dataset files (looked in first; downloads go here when online).")(f)
    f = click.option("--eval-limit", type=click.IntRange(min=1), default=None, help="Evaluate on a stratified subset of N test images.")(f)
    return click.option("--data", "data", default="fashion-mnist", show_default=True, metavar="SPEC", help=DATA_HELP)(f)


def _train_options(f: Callable) -> Callable:
    """The options ``train`` and ``sweep`` share (names mirror TrainConfig's fields)."""
    opts = [
        click.option("--epochs", type=click.IntRange(min=1), default=2, show_default=True),
        click.option("--lp-epochs", type=click.IntRange(min=1), default=None, help="lpft: linear-probe epochs first [epochs/2]."),
        click.option("--image-size", type=IMAGE_SIDE, default=None,
                     help="Train/eval at SxS [the data's size for simplecnn; at least 128 for ImageNet models, at most 224]."),
        click.option("--batch-size", type=BATCH_SIZE, default=64, show_default=True, help="Global batch size."),
        click.option("--lp-lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate of linear-probe epochs [1e-2 adamw, 0.1 sgd]."),
        click.option("--backbone-lr-scale", type=click.FloatRange(min=0), default=1.0, show_default=True,
                     help="ft/lpft: the backbone's LR is lr x this (the head keeps lr)."),
        click.option("--bn", type=click.Choice(["auto", "frozen", "train"]), default="auto", show_default=True,
                     help="BatchNorm statistics in whole-network epochs: auto = frozen when starting from pretrained weights."),
        click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), default="adamw", show_default=True),
        click.option("--weight-decay", type=click.FloatRange(min=0), default=0.01, show_default=True),
        click.option("--scheduler", type=click.Choice(["cosine", "onecycle", "none"]), default="cosine", show_default=True,
                     help="Per-step schedule within each phase."),
        click.option("--augment", type=click.Choice(AUGMENTS), default="none", show_default=True,
                     help="Training augmentation preset (see `cnnviz augment`)."),
        click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True),
        click.option("--limit", type=click.IntRange(min=1), default=None, help="Train on a stratified, seeded subset of N images."),
        click.option("--weights", type=click.Choice(["pretrained", "random"]), default=None,
                     help="Start weights [random for scratch, pretrained otherwise]."),
        click.option("--unfreeze", type=click.IntRange(min=0), default=None, metavar="N",
                     help="ft/lpft: fine-tune only the last N stages (and the head); earlier stages stay frozen, BatchNorm statistics too."),
        click.option("--probe-layer", default=None, metavar="LAYER",
                     help="Cut the network after LAYER (a stage or block, e.g. blocks.4) and train a new linear head on its pooled features."),
        click.option("--random-labels", is_flag=True,
                     help="Permute the training labels with --seed (test labels stay real): the data-randomization sanity check."),
        click.option("--num-workers", type=NUM_WORKERS, default=0, show_default=True, help="DataLoader worker processes."),
        click.option("--grad-checkpointing", is_flag=True,
                     help="timm models: recompute activations in the backward pass (~1/3 more compute, a fraction of the memory)."),
        click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (worth it on GPUs for long runs)."),
        click.option("--no-amp", is_flag=True, help="CUDA: train in float32 instead of bf16/fp16 autocast."),
        click.option("--no-cache", is_flag=True, help="LP: run the frozen backbone every epoch instead of caching its features."),
        click.option("--no-progress", is_flag=True, help="No progress bars (logs and the summary stay)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _config(**kw: Any):  # noqa: ANN202
    from cnnviz.train import TrainConfig

    return TrainConfig(
        data=kw["data"], model=kw["model_spec"], weights=kw["weights"], mode=kw.get("mode", "lpft"), epochs=kw["epochs"],
        lp_epochs=kw["lp_epochs"], image_size=kw["image_size"], batch_size=kw["batch_size"], lr=kw.get("lr"),
        lp_lr=kw["lp_lr"], backbone_lr_scale=kw["backbone_lr_scale"], bn=kw["bn"], optimizer=kw["optimizer"],
        weight_decay=kw["weight_decay"], scheduler=kw["scheduler"], augment=kw["augment"],
        label_smoothing=kw["label_smoothing"], limit=kw["limit"], eval_limit=kw["eval_limit"], seed=kw["seed"],
        device=kw["device"], out=kw.get("out"), resume=kw.get("resume", False), data_root=kw["data_root"],
        compile=kw["compile_"], amp=not kw["no_amp"], num_workers=kw["num_workers"], cache_features=not kw["no_cache"],
        unfreeze=kw["unfreeze"], probe_layer=kw["probe_layer"], random_labels=kw["random_labels"],
        grad_checkpointing=kw["grad_checkpointing"],
    )


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


@click.command()
@_data_options
@click.option("--model", "model_spec", default="efficientnet_lite0", show_default=True, metavar="SPEC",
              help="Architecture (efficientnet_lite0, timm:NAME, torchvision:NAME, simplecnn:width=16,depth=2) or a checkpoint to start from.")
@click.option("--mode", type=click.Choice(MODES), default="lpft", show_default=True,
              help="scratch: random init; lp: frozen backbone, new head; ft: train everything; lpft: LP then FT.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate of whole-network epochs [adamw: 1e-3 scratch, 1e-4 fine-tuning; sgd: 0.05 / 0.005].")
@_train_options
@seed_option
@device_option
@click.option("--out", type=click.Path(file_okay=False), default=None, help="RUN_DIR [runs/DATA-MODEL-MODE].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint (same options).")
@click.option("--timeline", is_flag=True, help="Record CKA to the initial/final model, weight drift and Grad-CAM at epoch 0 and after every epoch (RUN_DIR/timeline.json, timeline/).")
@click.option("--timeline-images", type=click.IntRange(1, 32), default=2, show_default=True, metavar="N", help="--timeline: test images per class whose Grad-CAM is saved every epoch.")
@json_option
def train(as_json: bool, no_progress: bool, timeline: bool, timeline_images: int, **kw: Any) -> None:
    """Train a classifier: from scratch, linear probe, fine-tune or LP-then-FT.

    \b
    Writes RUN_DIR/ckpt.pt, metrics.json, confusion.png, curves.png (and tb/ for TensorBoard).
    Multi-process: torchrun --nproc_per_node 2 -m cnnviz train ...
    \b
    Example:
      cnnviz train --data fashion-mnist --limit 5000 --image-size 64 --mode lpft --epochs 2 --out runs/lpft
    """
    from cnnviz.train import default_run_dir, train_run

    cfg = _config(**kw)
    run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    cfg.out = str(run_dir)
    from cnnviz.train.timeline import Timeline

    m = train_run(cfg, progress=not no_progress, on_epoch=Timeline(images_per_class=timeline_images) if timeline else None)
    if not _is_main():
        return
    if as_json:
        emit_json(m)
    h = m["history"]
    info(f"done: {m['model'].split(':')[-1]} {cfg.mode} on {cfg.data}: test accuracy {100 * m['test_accuracy']:.2f}% "
         f"on {m['num_test_images']} images (macro F1 {m['macro_f1']:.3f}) after {len(h)} epochs, {m['train_seconds']:.1f} s"
         f"{'' if m['world_size'] == 1 else ' on %d processes' % m['world_size']}")
    if m.get("skipped_images"):
        info(f"skipped {m['skipped_images']} unreadable images")
    info(f"wrote {run_dir}/: ckpt.pt metrics.json confusion.png curves.png{' tb/' if (run_dir / 'tb').is_dir() else ''}"
         f"{' timeline.json timeline/' if timeline else ''}")


@click.command()
@click.option("--model", "model_spec", required=True, metavar="CKPT", help="A checkpoint from `cnnviz train` (or any model spec whose classes match the data).")
@_data_options
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--batch-size", type=BATCH_SIZE, default=128, show_default=True)
@click.option("--num-workers", type=NUM_WORKERS, default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--confusion", "confusion_png", type=click.Path(dir_okay=False), default=None, help="Also save the confusion matrix as this PNG.")
@seed_option
@device_option
@json_option
def evaluate(model_spec: str, data: str, data_root: str | None, eval_limit: int | None, split: str, batch_size: int,
             num_workers: int, confusion_png: str | None, seed: int, device: str, as_json: bool) -> None:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of a model on a dataset."""
    import sys

    from cnnviz.cli.common import load
    from cnnviz.data import open_split
    from cnnviz.train import evaluate_model
    from cnnviz.train.metrics import format_table, plot_confusion

    model, minfo, dev = load(model_spec, "pretrained", device)
    ds = open_split(data, split, data_root=data_root, limit=eval_limit, seed=seed)
    res = evaluate_model(model, minfo, ds, batch_size=batch_size, device=dev, progress=sys.stderr.isatty(), num_workers=num_workers)
    res.update(model=minfo.arch, mode=minfo.mode, data=data, split=split)
    if confusion_png:
        plot_confusion(res["confusion"], minfo.class_names, confusion_png, f"{minfo.label} on {data} ({split}): {res['accuracy']:.3f}")
        info(f"wrote {confusion_png}")
    if as_json:
        emit_json(res)
        return
    click.echo(f"{minfo.label} on {data} ({split}, {res['num_images']} images)")
    click.echo(format_table(res))
    names = [n[:6] for n in minfo.class_names]
    if len(names) <= 20:
        click.echo("\nconfusion (rows: true, columns: predicted)")
        click.echo(" " * 8 + " ".join(f"{n:>6}" for n in names))
        for n, row in zip(names, res["confusion"]):
            click.echo(f"{n:>7} " + " ".join(f"{v:6d}" for v in row))


def _floats(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[float]:
    out = []
    for v in value:
        for part in filter(None, str(v).split(",")):
            try:
                f = float(part)
            except ValueError:
                raise click.BadParameter(f"{part!r} is not a number") from None
            if f <= 0:
                raise click.BadParameter(f"learning rates must be positive, got {part}")
            out.append(f)
    if not out:
        raise click.BadParameter(f"no learning rate in {', '.join(map(repr, value))}: give one or more, e.g. --lr 1e-4,1e-3")
    return out


@click.command()
@_data_options
@click.option("--model", "models", multiple=True, default=["efficientnet_lite0"], show_default=True, metavar="SPEC",
              help="Architecture; repeat to compare models.")
@click.option("--mode", "modes", type=click.Choice(MODES), multiple=True, default=["lpft"], show_default=True, help="Repeat to compare modes.")
@click.option("--lr", "lrs", multiple=True, callback=_floats, default=["1e-4,1e-3,5e-3"], show_default=True,
              help="Learning rates: repeat or comma-separated (for lp, the probe's rate).")
@_train_options
@seed_option
@device_option
@click.option("--out", type=click.Path(file_okay=False), default="sweep", show_default=True, help="Folder for the runs and the summary.")
@json_option
def sweep(models: tuple[str, ...], modes: tuple[str, ...], lrs: list[float], out: str, as_json: bool, no_progress: bool, **kw: Any) -> None:
    """Learning-rate study: train every (model, mode, lr), then a table and a plot.

    \b
    Writes OUT/<model>-<mode>-lr<LR>/ (one run each; finished ones are reused), OUT/summary.md,
    OUT/summary.json and OUT/sweep.png.
    """
    from cnnviz.train import run_sweep

    base = _config(model_spec=models[0], mode=modes[0], out=None, **kw)

    def show(row: dict[str, Any]) -> None:
        info(f"{row['model']} {row['mode']} lr {row['lr']:g}: test accuracy {100 * row['test_accuracy']:.2f}% ({row['train_seconds']:.1f} s)")

    rows = run_sweep(base, lrs, list(modes), list(models), out=out, progress=not no_progress, on_result=show)
    if not _is_main():
        return
    if as_json:
        emit_json([{k: v for k, v in r.items() if k != "history"} for r in rows])
    else:
        from cnnviz.train.sweep import summary_markdown

        click.echo(summary_markdown(rows), nl=False)
    written = [f for f in ("summary.md", "summary.json", "sweep.png") if (Path(out) / f).is_file()]
    info(f"wrote {out}/: {' '.join(written)}" if rows else f"no finished setting to summarize; wrote {out}/: {' '.join(written)}")


@click.command()
@click.argument("image")
@click.option("--preset", type=click.Choice(AUGMENTS), default="basic", show_default=True)
@click.option("--n", "n", type=click.IntRange(min=1, max=64), default=16, show_default=True, help="Tiles (the first is the unaugmented image).")
@click.option("--size", type=IMAGE_SIDE, default=None, help="Tile size [the image's short side, at most 224].")
@seed_option
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="PNG path [augment-PRESET.png].")
def augment(image: str, preset: str, n: int, size: int | None, seed: int, out: str | None) -> None:
    """Preview an augmentation preset: a grid of augmented versions of IMAGE.

    IMAGE is a file, or the name of a bundled sample photo (chelsea, coffee, astronaut, rocket).
    """
    from cnnviz.transforms import PRESET_HELP, augment_samples
    from cnnviz.images import SAMPLE_IMAGES, load_image, sample_image
    from cnnviz.render import tile, titled

    img = sample_image(image) if image in SAMPLE_IMAGES and not Path(image).exists() else load_image(image)
    tiles = augment_samples(img, preset, n=n, size=size, seed=seed)
    path = out or f"augment-{preset}.png"
    titled(tile(tiles, pad=3), f"augment preset '{preset}'", path, subtitle=f"{PRESET_HELP[preset]}; first tile: original")
    info(f"wrote {path}")
