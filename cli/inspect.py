"""``cnnviz layers``, ``cnnviz filters``, ``cnnviz activations``: look inside a network."""

from __future__ import annotations

import click

from cnnviz.cli.common import device_option, emit_json, info, json_option, load, model_option, safe_name


@click.command()
@model_option
@json_option
@click.option("--filter", "pattern", default=None, help="Only layers whose name contains this text.")
def layers(model_spec: str, weights: str, as_json: bool, pattern: str | None) -> None:
    """List every layer: dotted name (what --layer takes), type, output shape, parameters."""
    from cnnviz.probe import describe_layers

    model, minfo, _ = load(model_spec, weights, "cpu")
    rows = describe_layers(model, minfo.input_size)
    if pattern:
        rows = [r for r in rows if pattern in r.name]
    if as_json:
        emit_json({"model": minfo.arch, "input_size": list(minfo.input_size), "layers": [r.to_dict() for r in rows]})
        return
    w = max([len(r.name) for r in rows] + [5])
    click.echo(f"{minfo.arch}  input {tuple(minfo.input_size)}  {minfo.num_classes} classes")
    click.echo(f"{'layer':<{w}}  {'type':<22} {'output':<18} {'params':>10}")
    for r in rows:
        shape = "x".join(map(str, r.output_shape)) if r.output_shape else "-"
        click.echo(f"{r.name:<{w}}  {r.type:<22} {shape:<18} {r.params:>10,}")


@click.command()
@model_option
@click.option("--layer", required=True, help="A Conv2d layer (or a module holding one, e.g. patch_embed).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None, help="PNG path [filters-LAYER.png].")
@click.option("--max", "max_filters", type=click.IntRange(min=1), default=64, show_default=True, help="At most this many filters.")
@click.option("--normalize", type=click.Choice(["per-filter", "shared"]), default="per-filter", show_default=True,
              help="Scale each kernel to its own range, or all to one range (compare magnitudes).")
@click.option("--in-channel", type=int, default=None, help="Show this input channel of each kernel instead of the mean over inputs.")
def filters(model_spec: str, weights: str, layer: str, out: str | None, max_filters: int, normalize: str, in_channel: int | None) -> None:
    """Draw LAYER's kernels as a grid: first layer in colour, deeper layers per output channel."""
    from cnnviz.explain.filters import filter_grid, layer_kernels
    from cnnviz.render import titled

    model, minfo, _ = load(model_spec, weights, "cpu")
    k = layer_kernels(model, layer)
    grid = filter_grid(k, max_filters=max_filters, in_channel=in_channel, normalize=normalize)
    o, i, kh, kw = k.weights.shape
    how = {"rgb": "RGB", "gray": "grayscale", "depthwise": "depthwise"}.get(k.kind, f"mean over {i} inputs" if in_channel is None else f"input channel {in_channel}")
    if k.kind == "rgb" and in_channel is not None:
        how = f"input channel {in_channel}"
    path = out or f"filters-{safe_name(layer)}.png"
    titled(grid, f"{minfo.label} - {k.layer}", path,
           subtitle=f"{min(o, max_filters)} of {o} filters, {kh}x{kw}, {how}, {normalize} scale")
    info(f"wrote {path}")


@click.command()
@click.argument("image", type=click.Path(dir_okay=False))
@model_option
@click.option("--layer", required=True, help="Layer whose feature maps to show (see `cnnviz layers`).")
@click.option("--top", "top", type=click.IntRange(min=1), default=16, show_default=True, help="Channels with the highest mean activation.")
@click.option("--shared-scale", is_flag=True, help="One colour scale for all maps (compare strengths) instead of one per map.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None, help="PNG path [activations-STEM-LAYER.png].")
@device_option
def activations(image: str, model_spec: str, weights: str, layer: str, top: int, shared_scale: bool, out: str | None, device: str) -> None:
    """Show IMAGE beside its top feature maps at LAYER."""
    from pathlib import Path

    from cnnviz.explain.activations import activation_maps, render_activations
    from cnnviz.images import load_image, preprocess
    from cnnviz.layers import resolve_layer
    from cnnviz.render import titled

    img = load_image(image)
    model, minfo, dev = load(model_spec, weights, device)
    resolve_layer(model, layer)
    acts = activation_maps(model, preprocess(img, minfo).to(dev), layer, top=top)
    pic = render_activations(img, acts, shared_scale=shared_scale)
    path = out or f"activations-{safe_name(Path(image).stem)}-{safe_name(layer)}.png"
    c, h, w = acts.shape
    titled(pic, f"{minfo.label} - {layer}", path,
           subtitle=f"top {len(acts.channels)} of {c} channels by mean activation, maps {h}x{w}, {'shared' if shared_scale else 'per-map'} scale")
    info(f"wrote {path}")
