"""``cnnviz sanity``: Adebayo et al.'s sanity checks -- do the maps change when the model's weights
(or its training labels) are randomized?

Writes into ``--out``: ``<stem>.sanity.png`` per image (rows = methods, columns = the trained map and the
map after each cascade step), ``sanity-curves.png`` (mean similarity per step), ``sanity.md`` (the
verdicts and the method x step table) and ``sanity.json`` (everything, per-image values included).
Prints the per-method means as JSON with ``--json``, else the table.

Exit codes: 0 done; 2 bad usage or bad input, nothing written; 3 some of several images were
unreadable (named on stderr, skipped; the rest were checked and written).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cnnviz.cli.common import (BATCH_SIZE, IMAGE_SIDE, device_option, emit_json, info, json_option, load, model_option,
                               seed_option)

METHODS_HELP = ("Comma-separated CAM and/or attribution methods (see `cnnviz gradcam --help`, `cnnviz attribute --help`), "
                "plus the model-independent references `edges` (a Sobel edge detector) and `random`.")


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@model_option
@click.option("--methods", default="gradcam,saliency,guided-backprop,guided-gradcam", show_default=True, help=METHODS_HELP)
@click.option("--cascade", default=None, metavar="LAYERS",
              help="Layers to randomize, top first, comma-separated; `a+b` randomizes two modules in one step "
                   "[derived from the model: classifier, conv_head+bn2, blocks.6 ... conv_stem+bn1 for EfficientNet-Lite].")
@click.option("--independent", is_flag=True, help="Randomize one unit at a time, the others trained (the paper's independent test).")
@click.option("--layer", default=None, help="Grad-CAM / guided Grad-CAM layer [last spatial layer].")
@click.option("--target", default=None, metavar="CLASS", help="Class to explain at every step [each image's top-1 under the trained model].")
@click.option("--hog", is_flag=True, help="Also compute the HOG similarity (slower).")
@click.option("--image-size", type=IMAGE_SIDE, default=None, help="Square size the model sees [its input size]; with --labels, the training size.")
@click.option("--batch-size", type=BATCH_SIZE, default=4, show_default=True, help="Images per batch (memory grows with it).")
@click.option("--no-figures", is_flag=True, help="Skip the per-image figures (tables, curves and JSON are still written).")
@click.option("--labels", is_flag=True, help="Data randomization instead: train --model on --data twice, real vs permuted labels, compare the maps.")
@click.option("--data", default=None, metavar="SPEC", help="--labels: the dataset to train on (fashion-mnist, cifar10, a folder...).")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="--labels: folder with local dataset files.")
@click.option("--train-mode", type=click.Choice(["scratch", "lp", "ft", "lpft"]), default="scratch", show_default=True, help="--labels: training mode.")
@click.option("--epochs", type=click.IntRange(1, 1000), default=2, show_default=True, help="--labels: epochs per run.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="--labels: train on N images.")
@click.option("--eval-limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="--labels: test images for each run's accuracy (the random-label run's should be at chance).")
@click.option("--out", default="sanity", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@json_option
@device_option
@seed_option
def sanity(images, model_spec, weights, methods, cascade, independent, layer, target, hog, image_size, batch_size, no_figures,
           labels, data, data_root, train_mode, epochs, limit, eval_limit, out, as_json, device, seed) -> None:
    """Model-parameter randomization test on IMAGE... (files or folders).

    Re-initializes the model's layers from the logits down, one block at a time (on a private copy),
    and scores how similar each method's map stays to the trained model's map: Spearman rank
    correlation (absolute and, for signed methods, signed values) and SSIM. A method passes when its
    maps have lost their ranking once the top half of the cascade is random (see docs/sanity.md).

    \b
    Examples:
      cnnviz sanity photo.jpg cat.png --methods gradcam,saliency,guided-backprop
      cnnviz sanity photos/ --cascade classifier,conv_head+bn2,blocks.6 --json
      cnnviz sanity test-images/ --labels --data cifar10 --model simplecnn --epochs 5
    """
    from cnnviz.cli.cam import _finish, _gather
    from cnnviz.errors import CnnvizError
    from cnnviz.explain.sanity import check_methods

    wanted = check_methods(methods.split(","))
    if labels and (cascade or independent):
        raise CnnvizError("--labels compares two trained models: it takes no --cascade or --independent.")
    if labels and not data:
        raise CnnvizError("--labels needs --data SPEC: the dataset both models are trained on.")
    if not labels and (data or data_root or limit):
        raise CnnvizError("--data, --data-root and --limit belong to --labels (the data-randomization test).")
    paths, bad = _gather(images)
    n_pre = len(bad)
    for _, msg in bad:
        info(f"skipped: {msg}")
    out_dir = Path(out)
    if labels:
        models, minfo = _label_models(model_spec, data, data_root, train_mode, epochs, limit, eval_limit, image_size, seed, device, out_dir)
        size = None
    else:
        model, minfo, _ = load(model_spec, weights, device)
        models = (model,)
        size = (image_size, image_size) if image_size else None
    done, merged, stems = _run(paths, bad, models, minfo, wanted, cascade, independent, layer, target, hog, size, batch_size,
                               not no_figures, seed, out_dir)
    if done:
        _write(merged, minfo, stems, out_dir, as_json)
    _finish(bad, len(paths) + n_pre, done)


def _label_models(model_spec, data, data_root, train_mode, epochs, limit, eval_limit, image_size, seed, device, out_dir):
    """Train the real-label and the random-label model; returns ``((real, random), info)``."""
    from cnnviz.explain.sanity_data import require_random_labels, train_label_pair
    from cnnviz.models import load_model
    from cnnviz.train import TrainConfig

    require_random_labels()  # before any training: exit 2 with the reason
    cfg = TrainConfig(data=data, model=model_spec, mode=train_mode, epochs=epochs, limit=limit, eval_limit=eval_limit, image_size=image_size,
                      seed=seed, device=device, data_root=data_root).validate()
    runs = train_label_pair(cfg, out_dir / "runs", progress=sys.stderr.isatty())
    real, minfo = load_model(runs["real"]["ckpt"], device=_device(device))
    rand, _ = load_model(runs["random"]["ckpt"], device=_device(device))
    minfo.config["sanity_runs"] = {k: {"ckpt": v["ckpt"], "test_accuracy": v.get("test_accuracy"),
                                       "train_accuracy": (v.get("history") or [{}])[-1].get("train_accuracy")} for k, v in runs.items()}
    return (real, rand), minfo


def _device(device: str):  # noqa: ANN202
    from cnnviz.device import resolve_device

    return resolve_device(device)


def _run(paths, bad, models, minfo, wanted, cascade, independent, layer, target, hog, size, batch_size, figures, seed, out_dir):
    """Stream the images in batches through the test; per-image figures as they come. Returns
    ``(images done, merged SanityResult or None, stems of the done images)``."""
    import torch
    from tqdm import tqdm

    from cnnviz.explain.sanity import cascading_randomization, merge, resolve_cascade
    from cnnviz.explain.sanity_data import label_randomization
    from cnnviz.cli.cam import output_stems
    from cnnviz.explain.stream import image_batches
    from cnnviz.layers import resolve_layer

    model = models[0]
    if layer:
        resolve_layer(model, layer)
    tgt = [minfo.class_index(target)] if target is not None else None
    labels = len(models) == 2
    if labels:
        units, n_steps = None, 1
    else:
        probe_x = torch.zeros(1, *minfo.input_size[:1], *(size or minfo.input_size[1:]))
        units = resolve_cascade(model, probe_x, cascade)  # bad --cascade: exit 2 before any work
        n_steps = len(units) + 1
    stem_of = dict(zip(paths, output_stems(paths)[0]))
    results, stems = [], []
    bar = tqdm(total=len(paths) * n_steps * len(wanted), desc="sanity", unit="map", file=sys.stderr, disable=None, leave=False)
    for batch in image_batches(paths, minfo, batch_size, size):
        for _, msg in batch.bad:
            info(f"skipped: {msg}")
        bad.extend(batch.bad)
        bar.update(len(batch.bad) * n_steps * len(wanted))
        if batch.x is None:
            continue
        kw = dict(info=minfo, targets=tgt, layer=layer, hog=hog, batch_size=batch_size, keep_maps=figures, progress=bar.update)
        if labels:
            res = label_randomization(models[0], models[1], batch.x, wanted, **kw)
        else:
            res = cascading_randomization(model, batch.x, wanted, cascade=units, independent=independent, seed=seed, **kw)
        if figures:
            _figures(res, batch, stem_of, minfo, out_dir)
        for m in res.methods:
            m.maps = None  # figures are written: keep memory flat
        results.append(res)
        stems += [stem_of[p] for p in batch.paths]
    bar.close()
    return len(stems), (merge(results) if results else None), stems


def _figures(res, batch, stem_of, minfo, out_dir) -> None:
    from cnnviz.explain.sanity import _cam_like
    from cnnviz.explain.sanity_plot import cascade_figure

    cams = [m for m in _cam_like() if m != "guided-gradcam"]
    head = "random labels" if res.mode == "labels" else f"{res.mode} randomization"
    for i, (p, img) in enumerate(zip(batch.paths, batch.images)):
        maps = {m.method: m.maps[:, i].astype("float32") for m in res.methods}
        scores = {m.method: [float(s.spearman_signed[i] if m.signed else s.spearman[i]) for s in m.steps] for m in res.methods}
        t = res.targets[i]
        title = (f"{p.name}: {minfo.class_names[t]} | {minfo.label}, {head} (seed {res.seed}); "
                 "numbers: Spearman with the first map (signed maps for signed methods)")
        cascade_figure(img, maps, res.cascade, out_dir / f"{stem_of[p]}.sanity.png", title=title, cam_methods=cams, scores=scores,
                       first="real labels" if res.mode == "labels" else "trained")


def _write(merged, minfo, stems, out_dir, as_json) -> None:
    from cnnviz.atomic import dumps_json, write_text
    from cnnviz.explain.sanity import NO_VERDICT, PASS_THRESHOLD, rule_text
    from cnnviz.explain.sanity_plot import curves_figure, markdown_table

    rows = merged.to_json()
    doc = {"model": minfo.label, "mode": merged.mode, "seed": merged.seed, "images": merged.n_images, "layer": merged.layer,
           "cascade": merged.cascade, "threshold": PASS_THRESHOLD,
           "rule": NO_VERDICT if merged.mode == "independent" else rule_text(rows[0]["verdict"]["step_index"], len(merged.cascade)),
           "runs": minfo.config.get("sanity_runs"), "methods": merged.to_json(per_image=True, names=stems)}
    write_text(out_dir / "sanity.json", dumps_json(doc, indent=1))
    head = f"# Sanity check ({merged.mode}): {minfo.label}, {merged.n_images} image(s)\n\nRule: {doc['rule']}.\n\n"
    table = markdown_table(rows, merged.cascade)
    write_text(out_dir / "sanity.md", head + table + "\n")
    curves_figure(rows, merged.cascade, out_dir / "sanity-curves.png", threshold=PASS_THRESHOLD,
                  title=f"{minfo.label}: {merged.mode} randomization, {merged.n_images} images")
    if as_json:
        emit_json(rows)
    else:
        click.echo(table)
        info(f"wrote {merged.n_images} figure(s), sanity-curves.png, sanity.md and sanity.json to {out_dir}/")
