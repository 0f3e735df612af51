"""``cnnviz maximize``, ``cnnviz rf``, ``cnnviz examples``: what a unit responds to."""

from __future__ import annotations

from pathlib import Path

import click

from cnnviz.cli.common import (BATCH_SIZE, DRAWS, IMAGE_COUNT, IMAGE_SIDE, STEPS, TOP_K, device_option, emit_json, info,
                               json_option, load, model_option, safe_name, seed_option)


def _bar(total: int, desc: str, unit: str = "step"):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, file=None)


def _progress(bar):  # noqa: ANN001, ANN202
    def cb(done: int, total: int) -> None:
        bar.n = done
        bar.refresh()

    return cb


def _parse_classes(values: tuple[str, ...], minfo) -> list[int]:  # noqa: ANN001
    """Class indices from ``--class`` values: each a name, an index, ``all``, or a comma list ``a,b,c``.

    ImageNet names hold commas ("tabby, tabby cat"), so a value that is a whole class name (or one of
    its synonyms) is that class; anything else with commas is split. Duplicates keep their first place.
    """
    from cnnviz.errors import TargetError

    out: list[int] = []
    for v in values:
        if v.strip().lower() == "all":
            out.extend(range(minfo.num_classes))
            continue
        names = [n.lower() for n in minfo.class_names]
        whole = v.strip().lower()
        if "," not in v or whole in names or any(whole == s.strip() for n in names for s in n.split(",")):
            out.append(minfo.class_index(v))
            continue
        parts = [x.strip() for x in v.split(",")]
        if any(not x for x in parts):
            raise TargetError(f"--class {v!r} has an empty entry; give names or indices separated by commas (e.g. 1,281,948).")
        out.extend(minfo.class_index(x) for x in parts)
    seen: set[int] = set()
    return [c for c in out if not (c in seen or seen.add(c))]


def _parse_steps(text: str | None, steps: int) -> list[int]:
    """``--snapshots 16,64`` -> ``[16, 64]``: step counts in 1..steps-1 (steps itself is the final image)."""
    from cnnviz.errors import CnnvizError

    if not text:
        return []
    try:
        ks = sorted({int(v) for v in text.split(",")})
    except ValueError:
        raise CnnvizError(f"--snapshots {text!r} must be step counts separated by commas (e.g. 16,64).") from None
    if ks[0] < 1 or ks[-1] >= steps:
        raise CnnvizError(f"--snapshots must lie between 1 and {steps - 1} (--steps is {steps}).")
    return ks


def _parse_yx(text: str | None) -> tuple[int, int] | None:
    from cnnviz.errors import CnnvizError

    if text is None:
        return None
    try:
        y, x = (int(v) for v in text.split(","))
    except ValueError:
        raise CnnvizError(f"--neuron {text!r} must be Y,X (two integers, e.g. 3,4).") from None
    return y, x


def _finite_positive(ctx, param, value):  # noqa: ANN001, ANN202
    """click's FloatRange lets ``nan`` and ``inf`` through; an Adam step needs a finite rate."""
    import math

    if value is not None and not (math.isfinite(value) and 0 < value <= 10):
        raise click.BadParameter(f"{value} is not a finite number in (0, 10].")
    return value


def _finite_weight(ctx, param, value):  # noqa: ANN001, ANN202
    """A regularizer weight: finite and >= 0 (FloatRange alone would let ``nan`` through)."""
    import math

    if value is not None and not (math.isfinite(value) and 0 <= value <= 1e6):
        raise click.BadParameter(f"{value} is not a finite number in [0, 1e6].")
    return value


class _OneLineErrors(click.Command):
    """Bad option values (out of bounds, not a number) end as one ``error:`` line, exit 2, like
    cnnviz's own checks, instead of click's three-line usage block."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from cnnviz.errors import CnnvizError

        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            raise CnnvizError(f"{e.format_message()} (see `cnnviz {ctx.info_name} --help`)") from None


@click.command(cls=_OneLineErrors)
@model_option
@click.option("--class", "classes", multiple=True, metavar="C",
              help="Class index or name, a comma list (1,281,948) or 'all'; repeatable. All classes run as one batch.")
@click.option("--layer", default=None, help="Layer of the unit (with --channel).")
@click.option("--channel", type=click.IntRange(min=0), default=None, help="Channel of --layer to maximize (mean over positions).")
@click.option("--neuron", default=None, metavar="Y,X", help="Only the unit at this position of the channel.")
@click.option("--steps", type=STEPS, default=128, show_default=True, help="Optimization steps.")
@click.option("--size", type=IMAGE_SIDE, default=None, help="Canvas side in pixels [the model's input size; twice it under 64 px].")
@click.option("--lr", type=float, callback=_finite_positive, default=None, help="Adam learning rate [0.1].")
@click.option("--param", type=click.Choice(["fft", "maco", "pixel", "pyramid"]), default="fft", show_default=True,
              help="Decorrelated Fourier + colour; Fourier with a fixed natural-image magnitude (MACO); raw pixels; "
                   "or pixel grids at 1, 1/2, 1/4... of the canvas, summed (multi-resolution).")
@click.option("--transforms", type=click.Choice(["crops", "lucent", "none"]), default="crops", show_default=True,
              help="Random zoomed crops + mirror + noise each step; lucent's pad/jitter/scale/rotate; or none.")
@click.option("--views", "n_views", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Random views of each image per step (objective averaged; cost grows with it).")
@click.option("--view-size", type=IMAGE_SIDE, default=None,
              help="Side of the views the model sees [its input size]; smaller is cheaper (cost ~ side^2).")
@click.option("--bn-prior", type=float, callback=_finite_weight, default=None,
              help="Weight of the BatchNorm prior: keep each image's features at the statistics the model stored "
                   "for its training data; 0: off [1 for models under 64 px, else 0].")
@click.option("--objective", "class_mode", type=click.Choice(["logit", "logprob"]), default="logit", show_default=True,
              help="For classes: the raw logit, or its log-softmax (also pushes other classes down; saturates early).")
@click.option("--diversity", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Images per objective, pushed apart by a diversity term.")
@click.option("--diversity-weight", type=click.FloatRange(0, 1e6), default=1e-2, show_default=True, help="Strength of the diversity term.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="PNG path [maximize-TARGET.png].")
@click.option("--each", "each_dir", type=click.Path(file_okay=False), default=None,
              help="Also write every image alone, at canvas size, as DIR/NNN-NAME.png (for judging or reuse).")
@click.option("--snapshots", default=None, metavar="K,K",
              help="With --each: also the images after these step counts, in DIR/stepK/ (one run, several budgets).")
@click.option("--json", "as_json", is_flag=True, help="Also print the final objective values as JSON.")
@seed_option
@device_option
def maximize(model_spec: str, weights: str, classes: tuple[str, ...], layer: str | None, channel: int | None,
             neuron: str | None, steps: int, size: int | None, lr: float | None, param: str, transforms: str, n_views: int,
             view_size: int | None, bn_prior: float | None, class_mode: str, diversity: int, diversity_weight: float, out: str | None,
             each_dir: str | None, snapshots: str | None, as_json: bool, seed: int, device: str) -> None:
    """Synthesize the image that most excites a class (--class) or a unit (--layer --channel)."""
    from cnnviz.errors import CnnvizError
    from cnnviz.explain import objectives as O
    from cnnviz.explain.maximize import DEFAULT_LR, check_unit, default_bn_prior, default_diversity_layer, maximize as run
    from cnnviz.render import label, save_png, tile, titled

    yx = _parse_yx(neuron)
    if snapshots and not each_dir:
        raise CnnvizError("--snapshots needs --each DIR (where the snapshot images go).")
    shots = _parse_steps(snapshots, steps)
    if bool(classes) == (channel is not None):
        raise CnnvizError("give either --class C (repeatable) or --layer L --channel K.")
    if channel is not None and layer is None:
        raise CnnvizError("--channel needs --layer (see `cnnviz layers`).")
    if yx is not None and channel is None:
        raise CnnvizError("--neuron needs --layer and --channel.")
    model, minfo, _ = load(model_spec, weights, device)
    if classes:
        targets = _parse_classes(classes, minfo)
    else:
        check_unit(model, minfo, layer, channel, yx)
        targets = [channel]
    n = diversity
    if len(targets) * n > BATCH_SIZE.max:
        raise CnnvizError(f"{len(targets)} targets x {n} images is more than {BATCH_SIZE.max} images in one batch.")
    names = [minfo.class_names[t] for t in targets] if classes else [f"{layer}:{channel}" + (f"@{yx[0]},{yx[1]}" if yx else "")]
    obj = None
    for i, t in enumerate(targets):
        for j in range(n):
            b = i * n + j
            term = O.class_logit(t, batch=b, mode=class_mode) if classes else (
                O.neuron(layer, t, *yx, batch=b) if yx else O.channel(layer, t, batch=b))
            obj = term if obj is None else obj + term
    if n > 1:
        dlayer = layer or default_diversity_layer(model, minfo)
        for i in range(len(targets)):
            obj = obj + O.diversity(dlayer, diversity_weight, group=range(i * n, (i + 1) * n))
    lr = DEFAULT_LR if lr is None else lr
    prior = default_bn_prior(minfo) if bn_prior is None else bn_prior
    with _bar(steps, "maximize") as bar:
        res = run(model, minfo, obj, batch=len(targets) * n, steps=steps, size=size, lr=lr, param=param,
                  transforms=transforms, n_views=n_views, view_size=view_size, seed=seed, snapshots=shots, bn_prior=prior,
                  progress=_progress(bar))
    up = max(1, 160 // res.images.shape[1])  # small-input models: show pixels (nearest), not a thumbnail
    big = [im.repeat(up, 0).repeat(up, 1) for im in res.images]
    tiles = [label(im, names[k // n][:40], scale=max(0.3, im.shape[1] / 700)) for k, im in enumerate(big)]
    grid = tile(tiles, ncols=n if n > 1 else None)
    slug = safe_name("-".join(str(t) for t in targets[:8]) + ("-etc" if len(targets) > 8 else "") if classes else f"{layer}-{channel}")
    path = out or f"maximize-{slug}.png"
    what = ", ".join(names[:4]) + ("..." if len(names) > 4 else "")
    titled(grid, f"{minfo.label} - {what}", path,
           subtitle=f"{steps} steps, {param}, {transforms} x{n_views}, lr {lr:g}"
                    + (f", BN prior {prior:g}" if prior else "") + f", seed {seed}, {res.seconds:.1f}s")
    singles: list[str] = []
    if each_dir:
        Path(each_dir).mkdir(parents=True, exist_ok=True)
        for k, im in enumerate(res.images):  # each file written atomically; other files in DIR are left alone
            single = Path(each_dir) / f"{k:03d}-{safe_name(names[k // n])[:40]}.png"
            save_png(im, single)
            singles.append(str(single))
        for k_step in shots:
            sub = Path(each_dir) / f"step{k_step}"
            sub.mkdir(exist_ok=True)
            for k, im in enumerate(res.snapshots[k_step]):
                save_png(im, sub / f"{k:03d}-{safe_name(names[k // n])[:40]}.png")
    if as_json:
        emit_json({"out": path, "targets": names, "classes": targets if classes else None, "values": res.values,
                   "seconds": res.seconds, "steps": steps, "each": singles or None})
    info(f"wrote {path}")


@click.command()
@model_option
@click.option("--layer", default=None, help="Only this layer (required with --effective).")
@json_option
@click.option("--effective", is_flag=True, help="Effective receptive field (gradient mass) instead of the analytic one.")
@click.option("--ignore-gates", is_flag=True, help="Read squeeze-excitation gates as channel rescaling (local fields for SE nets).")
@click.option("--images", multiple=True, type=click.Path(), help="Images (or folders) for --effective [noise].")
@click.option("--data", "data_spec", default=None, help="Dataset for --effective (fashion-mnist, cifar10, folder...).")
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--data-root", default=None, help="Where datasets live [$CNNVIZ_DATA, ~/.cache/cnnviz/data, /usr/share/datasets].")
@click.option("--num", "num", type=DRAWS, default=8, show_default=True, help="Images (or noise draws) to average.")
@click.option("--channel", type=click.IntRange(min=0), default=None, help="One channel of the centre unit [all].")
@click.option("--compare/--no-compare", default=True, show_default=True,
              help="Show the same architecture with random weights beside the trained one.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="PNG for --effective [erf-LAYER.png].")
@seed_option
@device_option
def rf(model_spec: str, weights: str, layer: str | None, as_json: bool, effective: bool, ignore_gates: bool, images: tuple[str, ...],
       data_spec: str | None, split: str, data_root: str | None, num: int, channel: int | None, compare: bool, out: str | None, seed: int,
       device: str) -> None:
    """Receptive fields: size, stride and effective padding of every layer (or --effective)."""
    from cnnviz.errors import CnnvizError
    from cnnviz.explain.receptive import receptive_fields

    model, minfo, dev = load(model_spec, weights, device)
    if not effective:
        fields = receptive_fields(model, minfo.input_size, [layer] if layer else None, ignore_gates=ignore_gates)
        if as_json:
            emit_json([f.to_dict() for f in fields])
            return
        w = max([len(f.layer) for f in fields] + [5])
        click.echo(f"{minfo.arch}  input {tuple(minfo.input_size)}  (rf / stride / padding in input pixels, h x w)")
        click.echo(f"{'layer':<{w}}  {'type':<22} {'rf':<12} {'stride':<9} {'padding':<11} output")
        for f in fields:
            d = f.to_dict()
            r = "global" if f.is_global else "x".join(map(str, d["rf"]))
            shape = "x".join(map(str, f.output_shape or ()))
            click.echo(f"{f.layer:<{w}}  {f.type:<22} {r:<12} {'x'.join(map(str, d['stride'])):<9} "
                       f"{'x'.join(map(str, d['padding'])):<11} {shape}")
        return
    if not layer:
        raise CnnvizError("--effective needs --layer (a layer with a spatial output; see `cnnviz rf`).")
    if images and data_spec:
        raise CnnvizError("give --images or --data, not both.")
    _effective(model, minfo, dev, model_spec, layer, images, data_spec, split, data_root, num, channel, compare, out, seed, as_json)


def _effective(model, minfo, dev, model_spec, layer, images, data_spec, split, data_root, num, channel, compare, out, seed, as_json):  # noqa: ANN001, ANN202
    import torch

    from cnnviz.explain.erf import effective_receptive_field, render_erfs
    from cnnviz.layers import resolve_layer
    from cnnviz.render import titled

    resolve_layer(model, layer)
    x = None
    source = f"{num} noise images"
    if images:
        from cnnviz.images import expand_image_paths, load_image, preprocess

        paths = expand_image_paths(images)[:num]
        x = torch.cat([preprocess(load_image(p), minfo) for p in paths])
        source = f"{len(paths)} images"
    elif data_spec:
        from cnnviz.data import eval_transform, open_split

        ds = open_split(data_spec, split, data_root=data_root, limit=None)
        tf = eval_transform(minfo)
        x = torch.stack([tf(ds[i][0]) for i in range(min(num, len(ds)))])
        source = f"{len(x)} {data_spec} images"
    runs = [(minfo.mode or minfo.weights, model)]
    if compare and minfo.weights != "random":
        torch.manual_seed(seed)
        runs.append(("random init", _random_twin(model_spec, minfo, dev)))
    results = []
    for title, m in runs:
        e = effective_receptive_field(m, minfo, layer, x, n=num, channel=channel, seed=seed)
        results.append((title, e))
    if as_json:
        emit_json([{"model": t, **e.to_dict()} for t, e in results])
    path = out or f"erf-{safe_name(layer)}.png"
    a = results[0][1].analytic
    titled(render_erfs(results), f"{minfo.arch.split(':', 1)[-1]} - effective receptive field of {layer}", path,
           subtitle=f"{source}; analytic rf {a.to_dict()['rf']} (white box); circles hold 50% / 90% of |gradient|")
    info(f"wrote {path}")


def _random_twin(model_spec: str, minfo, dev):  # noqa: ANN001, ANN202
    """The same architecture with fresh random weights (checkpoints: rebuilt from their arch)."""
    from cnnviz.models import build_model, load_model, parse_spec

    if parse_spec(model_spec)[0] == "checkpoint":
        m, _ = build_model(minfo.arch, num_classes=minfo.num_classes, in_chans=minfo.in_chans,
                           arch_kwargs=minfo.arch_kwargs, input_size=tuple(minfo.input_size[1:]))
        return m.to(dev)
    return load_model(model_spec, weights="random", device=dev)[0]


@click.command()
@model_option
@click.option("--class", "target", default=None, metavar="C", help="Class index or name (score: its logit).")
@click.option("--layer", default=None, help="Layer of the unit (with --channel), or where the class's patch is located.")
@click.option("--channel", type=click.IntRange(min=0), default=None, help="Channel of --layer (score: its maximum).")
@click.option("--data", "data_spec", required=True, help="fashion-mnist, mnist, cifar10, cifar100 or a folder.")
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--data-root", default=None, help="Where datasets live [$CNNVIZ_DATA, ~/.cache/cnnviz/data, /usr/share/datasets].")
@click.option("--limit", type=IMAGE_COUNT, default=None, help="Look at the first N images only.")
@click.option("--top", type=TOP_K, default=9, show_default=True, help="How many images to keep.")
@click.option("--batch-size", type=BATCH_SIZE, default=64, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="PNG path [examples-TARGET.png].")
@json_option
@device_option
def examples(model_spec: str, weights: str, target: str | None, layer: str | None, channel: int | None, data_spec: str,
             split: str, data_root: str | None, limit: int | None, top: int, batch_size: int, out: str | None, as_json: bool,
             device: str) -> None:
    """The dataset images that most excite a class or unit, with the receptive field of the peak."""
    from cnnviz.data import open_split
    from cnnviz.errors import CnnvizError
    from cnnviz.explain.examples import render_examples, top_examples
    from cnnviz.layers import resolve_layer
    from cnnviz.render import titled

    if (target is None) == (channel is None):
        raise CnnvizError("give either --class C or --layer L --channel K.")
    if channel is not None and layer is None:
        raise CnnvizError("--channel needs --layer (see `cnnviz layers`).")
    model, minfo, _ = load(model_spec, weights, device)
    if layer:
        resolve_layer(model, layer)
    cls = minfo.class_index(target) if target is not None else None
    ds = open_split(data_spec, split, data_root=data_root)
    n = min(limit or len(ds), len(ds))
    with _bar(n, "examples", "img") as bar:
        found = top_examples(model, minfo, ds, target_class=cls, layer=layer, channel=channel, k=top,
                             batch_size=batch_size, limit=limit, progress=_progress(bar))
    names = list(getattr(ds, "class_names", []) or [])
    what = minfo.class_names[cls] if cls is not None else f"{layer}:{channel}"
    path = out or f"examples-{safe_name(str(target) if cls is not None else f'{layer}-{channel}')}.png"
    titled(render_examples(found, names), f"{minfo.label} - top {len(found)} for {what}", path,
           subtitle=f"{n} {data_spec} {split} images; red box = receptive field of the strongest location")
    if as_json:
        emit_json({"out": path, "target": what, "examples": [e.to_dict() for e in found]})
    info(f"wrote {path}")
