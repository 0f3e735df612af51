"""``cnnviz gradcam``, ``cnnviz attribute``, ``cnnviz faithfulness``: explain predictions on images.

Every method comes from one registry (``cnnviz.explain.methods``) and runs through one
``Explainer``; this module parses options, names the outputs and writes them (``cnnviz.render``).

Exit codes: 0 all images explained; 2 bad usage or bad input with nothing written (a single
unreadable image, an unknown layer/class/method, an option out of range, no readable image at
all); 3 some of several inputs were unreadable -- each is named on stderr and skipped, the
others are written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cnnviz.cli.common import BATCH_SIZE, IMAGE_SIDE, STEPS, device_option, emit_json, info, json_option, load, model_option
from cnnviz.explain.methods import CAM_KINDS, method_names

PARTIAL_EXIT = 3  # some inputs skipped (named on stderr); the rest were written
# --save-raw writes the map at the file's own resolution up to this many pixels (256 MB of float32);
# larger files (a 13000x13000 scan) get it at the decoded resolution, said on stderr and in the JSON row.
RAW_MAX_PIXELS = 64_000_000


def _gather(images: tuple[str, ...]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files/folders; a lone bad input raises (exit 2), bad ones among many are returned."""
    from cnnviz.errors import ImageError
    from cnnviz.images import expand_image_paths, load_image

    paths: list[Path] = []
    bad: list[tuple[Path, str]] = []
    for a in images:
        try:
            paths.extend(expand_image_paths([a]))
        except ImageError as e:
            bad.append((Path(a), str(e)))
    if len(paths) + len(bad) == 1:
        if bad:
            raise ImageError(bad[0][1])
        load_image(paths[0])  # a single unreadable file: exit 2 before anything is written
    if not paths:
        raise ImageError("no readable images: " + "; ".join(m for _, m in bad[:3]))
    return paths, bad


def output_stems(paths: list[Path]) -> tuple[list[str], list[str]]:
    """One output stem per input (by position) and a note for each input that was renamed.

    Inputs keep their file stem when it is unique (compared case-insensitively, as macOS and
    Windows file systems do). A repeated stem -- ``a/x.png`` and ``b/x.png``, or one file named
    twice -- keeps it for its first input; the others get ``x-2``, ``x-3``... skipping any name
    another input already has (``c/x-2.png``), so no two inputs ever share an output.
    """
    natural = [p.stem for p in paths]
    taken = {s.casefold() for s in natural}
    first: set[str] = set()
    stems, notes = [], []
    for p, s in zip(paths, natural):
        key = s.casefold()
        if key not in first:
            first.add(key)
            stems.append(s)
            continue
        k = 2
        while f"{s}-{k}".casefold() in taken:
            k += 1
        new = f"{s}-{k}"
        taken.add(new.casefold())
        stems.append(new)
        notes.append(f"note: {p} shares the name {s!r} with an earlier input; its outputs are named {new!r}.")
    return stems, notes


def _top5(probs, names: list[str]) -> list[list]:
    import numpy as np

    idx = np.argsort(-probs)[:5]
    return [[int(i), names[i], round(float(probs[i]), 6)] for i in idx]


def _finish(bad: list[tuple[Path, str]], total: int, done: int) -> None:
    from cnnviz.errors import ImageError

    if not bad:
        return
    if done == 0:
        raise ImageError("no readable images: " + "; ".join(m for _, m in bad[:3]))
    info(f"error: skipped {len(bad)} of {total} inputs (unreadable, named above); the other {done} were written.")
    sys.exit(PARTIAL_EXIT)


def _run_images(paths: list[Path], pre_bad: list[tuple[Path, str]], explainer: Any, minfo: Any, out: str,
                save_raw: bool, as_json: bool, batch_size: int, size: tuple[int, int] | None, target: int | None,
                extra: dict) -> None:
    """The folder job: load (prefetched) -> explain a batch -> overlay + save (writer thread) -> JSON."""
    import concurrent.futures as cf

    from tqdm import tqdm

    from cnnviz.cli.common import safe_name
    from cnnviz.explain.methods import map_at
    from cnnviz.explain.stream import image_batches
    from cnnviz.render import label, overlay, save_npy, save_png

    method = explainer.method
    for p, msg in pre_bad:
        info(f"skipped: {msg}")
    out_dir = Path(out)
    stems, notes = output_stems(paths)
    for n in notes:
        info(n)
    bad = list(pre_bad)
    total, done = len(paths) + len(pre_bad), 0
    tag = safe_name(method)

    def write(batch, e) -> list[dict]:
        rows = []
        for img, p, i, hw, m, t, pr in zip(batch.images, batch.paths, batch.indices, batch.sizes, e.maps, e.targets, e.probs):
            name = minfo.class_names[t]
            stem = stems[i]
            pic = label(overlay(img, map_at(m, img.shape[:2])), f"{name} {float(pr[t]):.1%} | {method}")
            png = save_png(pic, out_dir / f"{stem}.{tag}.png", compression=1)  # fast: a folder job writes many
            row = {"image": str(p), "target": int(t), "target_name": name, "score": round(float(pr[t]), 6),
                   "top5": _top5(pr, minfo.class_names), "method": method, **extra, "png": str(png)}
            if save_raw:
                raw_hw = hw if hw[0] * hw[1] <= RAW_MAX_PIXELS else img.shape[:2]
                if tuple(raw_hw) != tuple(hw):
                    info(f"note: {p} is {hw[1]}x{hw[0]} px; its raw map is saved at the decoded {raw_hw[1]}x{raw_hw[0]}.")
                row["npy"] = str(save_npy(map_at(m, raw_hw), out_dir / f"{stem}.{tag}.npy"))
                row["raw_shape"] = [int(raw_hw[0]), int(raw_hw[1])]
            rows.append(row)
        return rows

    bar = tqdm(total=len(paths), desc=method, unit="img", file=sys.stderr, disable=None, leave=False)
    pending: cf.Future | None = None
    with cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnnviz-write") as writer:
        def drain() -> None:
            nonlocal pending, done
            if pending is not None:
                rows = pending.result()
                pending = None
                done += len(rows)
                if as_json:
                    for r in rows:
                        emit_json(r)
        for batch in image_batches(paths, minfo, batch_size, size):
            for p, msg in batch.bad:
                info(f"skipped: {msg}")
            bad.extend(batch.bad)
            if batch.x is not None:
                e = explainer(batch.x, target=target)
                drain()  # at most one batch being written while the next is explained: flat memory
                pending = writer.submit(write, batch, e)
            bar.update(len(batch.paths) + len(batch.bad))
        drain()
    bar.close()
    if not as_json and done:
        info(f"wrote {done} overlays to {out_dir}/")
    _finish(bad, total, done)


def _prepare(images: tuple[str, ...], model_spec: str, weights: str, device: str, target: str | None):
    """What gradcam / attribute / faithfulness share: inputs gathered (bad ones listed), the model loaded,
    --target resolved through the model's class list. Returns ``(paths, bad, model, info, target index or None)``."""
    paths, bad = _gather(images)
    model, minfo, _ = load(model_spec, weights, device)
    tgt = minfo.class_index(target) if target is not None else None
    return paths, bad, model, minfo, tgt


def _side(image_size: int | None, minfo: Any) -> tuple[int, int]:
    return (image_size, image_size) if image_size else tuple(minfo.input_size[1:])  # type: ignore[return-value]


def _common_options(f):
    f = click.option("--image-size", type=IMAGE_SIDE, default=None,
                     help="Resize images to this square size for the model [the model's own input size].")(f)
    f = click.option("--batch-size", type=BATCH_SIZE, default=16, show_default=True, help="Images per forward pass.")(f)
    f = json_option(f)
    f = click.option("--save-raw", is_flag=True, help="Also write <stem>.<method>.npy: float32 (H, W) in [0, 1] at the image file's resolution.")(f)
    f = click.option("--target", default=None, metavar="CLASS", help="Class index or name to explain [each image's top-1].")(f)
    return f


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@model_option
@click.option("--layer", default=None, help="Target layer (see `cnnviz layers`) [last spatial layer; ViT: last block's norm1].")
@click.option("--method", default="gradcam", show_default=True, metavar="METHOD", help=", ".join(method_names(CAM_KINDS)) + ".")
@_common_options
@click.option("--out", default="gradcam", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@device_option
def gradcam(images, model_spec, weights, layer, method, target, save_raw, as_json, batch_size, image_size, out, device) -> None:
    """Grad-CAM (or a relative) over IMAGE... (files or folders): <out>/<stem>.<method>.png per image.

    Each overlay names the explained class and its probability. Exit code 3 when some inputs
    were unreadable (named on stderr, skipped); 2 for bad usage or a single bad input.
    """
    from cnnviz.explain.methods import Explainer, get_method

    get_method(method, CAM_KINDS)  # before any work
    paths, pre_bad, model, minfo, tgt = _prepare(images, model_spec, weights, device, target)
    size = _side(image_size, minfo)
    explainer = Explainer(model, method, info=minfo, layer=layer, size=size)
    _run_images(paths, pre_bad, explainer, minfo, out, save_raw, as_json, batch_size, size, tgt, {"layer": explainer.layer})


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@model_option
@click.option("--method", default="integrated-gradients", show_default=True, metavar="METHOD",
              help=", ".join(method_names(["attribution"])) + ".")
@click.option("--layer", default=None, help="guided-gradcam's layer [last spatial layer].")
@click.option("--steps", type=click.IntRange(2, STEPS.max), default=32, show_default=True, help="Integrated-gradients steps.")
@click.option("--samples", type=STEPS, default=16, show_default=True, help="SmoothGrad noisy samples.")
@click.option("--internal-batch-size", type=BATCH_SIZE, default=16, show_default=True,
              help="IG steps / SmoothGrad samples / occlusion windows per forward pass (lower it if memory is short).")
@click.option("--window", type=IMAGE_SIDE, default=None, help="Occlusion window in pixels, at most the input side [input size / 8].")
@_common_options
@click.option("--out", default="attribute", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@device_option
@click.option("--seed", type=int, default=0, show_default=True, help="SmoothGrad noise seed.")
def attribute(images, model_spec, weights, method, layer, steps, samples, internal_batch_size, window, target, save_raw,
              as_json, batch_size, image_size, out, device, seed) -> None:
    """Pixel attributions (captum) over IMAGE...: <out>/<stem>.<method>.png per image.

    Same outputs and exit codes as `cnnviz gradcam`. The model is copied once (ReLU6 made
    DeepLift/guided-backprop friendly, in-place ops off); your checkpoint is never changed.
    """
    from cnnviz.explain.methods import Explainer, get_method

    spec = get_method(method, ["attribution"])
    paths, pre_bad, model, minfo, tgt = _prepare(images, model_spec, weights, device, target)
    size = _side(image_size, minfo)
    flags = {"n_steps": steps, "nt_samples": samples, "internal_batch_size": internal_batch_size, "window": window,
             "perturbations_per_eval": internal_batch_size, "seed": seed}
    options = {k: v for k, v in flags.items() if k in spec.options}  # each method gets the flags it takes
    explainer = Explainer(model, method, info=minfo, layer=layer, size=size, **options)
    extra = {"layer": explainer.layer} if explainer.layer else {}
    _run_images(paths, pre_bad, explainer, minfo, out, save_raw, as_json, batch_size, size, tgt, extra)


DEFAULT_FAITH = "gradcam,gradcam++,layercam,eigencam,saliency,random"


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@model_option
@click.option("--methods", default=DEFAULT_FAITH, show_default=True,
              help="Comma-separated CAM and/or attribution methods to compare; `random` is the baseline to beat.")
@click.option("--layer", default=None, help="CAM layer [last spatial layer].")
@click.option("--target", default=None, metavar="CLASS", help="Class to explain [each image's top-1].")
@click.option("--steps", type=click.IntRange(2, STEPS.max), default=24, show_default=True, help="Deletion/insertion curve steps.")
@click.option("--patch", type=click.IntRange(1, IMAGE_SIDE.max), default=None,
              help="Deletion/insertion block size in pixels, at most the input side [input size / 14; 1 = per pixel].")
@click.option("--no-road", is_flag=True, help="Skip ROAD (its imputation is the slow part).")
@click.option("--image-size", type=IMAGE_SIDE, default=None, help="Square size the model sees [its input size].")
@click.option("--out", default="faithfulness", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@json_option
@device_option
def faithfulness(images, model_spec, weights, methods, layer, target, steps, patch, no_road, image_size, out, as_json, device) -> None:
    """Rank explanation methods on IMAGE... by deletion AUC (low), insertion AUC (high) and ROAD (high).

    Writes <out>/<stem>.faithfulness.png per image (maps and curves), <out>/faithfulness.md and
    <out>/faithfulness.json (the table), and prints the ranking (JSON with --json).
    """
    import numpy as np
    from tqdm import tqdm

    from cnnviz.atomic import dumps_json, write_text
    from cnnviz.errors import CnnvizError
    from cnnviz.explain.faithfulness import evaluate_methods, rank_methods
    from cnnviz.explain.faithfulness_plot import faithfulness_figure, markdown_table
    from cnnviz.explain.methods import Explainer, get_method
    from cnnviz.explain.stream import image_batches
    from cnnviz.render import save_figure

    wanted = list(dict.fromkeys(m.strip() for m in methods.split(",") if m.strip()))  # a repeated name counts once
    if not wanted:
        raise CnnvizError("--methods is empty: give one or more of " + ", ".join(method_names()) + ".")
    for m in wanted:
        get_method(m)
    paths, bad, model, minfo, tgt = _prepare(images, model_spec, weights, device, target)
    size = _side(image_size, minfo)
    if patch is not None and patch > min(size):
        raise CnnvizError(f"--patch {patch} is larger than the input side {min(size)} px: use at most {min(size)}.")
    explainers = [Explainer(model, m, info=minfo, layer=layer if get_method(m).layer else None, size=size) for m in wanted]
    cam_layer = next((e.layer for e in explainers if e.layer), layer)
    n_pre = len(bad)
    for _, msg in bad:
        info(f"skipped: {msg}")
    stems, notes = output_stems(paths)
    for n in notes:
        info(n)
    per_method: dict[str, list[dict]] = {m: [] for m in wanted}
    per_image = []
    out_dir = Path(out)
    for batch in tqdm(image_batches(paths, minfo, 1, size), total=len(paths), desc="faithfulness", file=sys.stderr, disable=None, leave=False):
        for _, msg in batch.bad:
            info(f"skipped: {msg}")
        bad.extend(batch.bad)
        if batch.x is None:
            continue
        res = evaluate_methods(model, batch.x, explainers, targets=None if tgt is None else [tgt], info=minfo,
                               steps=steps, with_road=not no_road, patch=patch)
        t = res[0].targets[0]
        rows = [r.summary() for r in res]
        for r in rows:
            per_method[r["method"]].append(r)
        p = batch.paths[0]
        save_figure(faithfulness_figure(batch.images[0], res, minfo.class_names[t]),
                    out_dir / f"{stems[batch.indices[0]]}.faithfulness.png", dpi=90)
        per_image.append({"image": str(p), "target": int(t), "target_name": minfo.class_names[t], "methods": rank_methods(rows)})
    done = len(per_image)
    if done:
        mean = lambda rs, k: None if any(r[k] is None for r in rs) else float(np.mean([r[k] for r in rs]))  # noqa: E731
        summary = rank_methods([{"method": m, "deletion_auc": mean(rs, "deletion_auc"), "insertion_auc": mean(rs, "insertion_auc"),
                                 "road": mean(rs, "road"), "seconds": round(float(np.mean([r["seconds"] for r in rs])), 3)}
                                for m, rs in per_method.items()])
        doc = {"model": minfo.label, "layer": cam_layer, "images": done, "ranking": summary, "per_image": per_image}
        write_text(out_dir / "faithfulness.json", dumps_json(doc, indent=1))
        table = markdown_table(summary)
        write_text(out_dir / "faithfulness.md", f"# Faithfulness: {minfo.label}, {done} image(s), layer {cam_layer}\n\n{table}\n")
        if as_json:
            emit_json(doc)
        else:
            click.echo(table)
            info(f"wrote {done} figure(s), faithfulness.md and faithfulness.json to {out_dir}/")
    _finish(bad, len(paths) + n_pre, done)
