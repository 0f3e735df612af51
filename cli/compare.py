"""``cnnviz compare``: how do two or more networks differ? CKA, filter drift, Grad-CAM agreement, per-class."""

from __future__ import annotations

import click

from cnnviz.cli.common import BATCH_SIZE, IMAGE_COUNT, device_option, dumps_json, emit_json, info, json_option, seed_option

LAYERS_HELP = ("Layers to compare (dotted names, comma-separated). 'NAMES' applies to every model; "
               "'KEY=NAMES' to one model, KEY = its position (1, 2, ...), its --model spec or run folder name. "
               "Repeatable, e.g. --layers 1=features.2,avgpool --layers 2=blocks.3,global_pool. "
               "Default: 5 evenly spaced stage outputs + the pre-logits features of each model.")


def parse_layers(values: tuple[str, ...], n_models: int, keys: list[list[str]]) -> list[list[str] | None] | None:
    """``--layers`` values -> one list (or None = defaults) per model.

    ``keys[m]`` = the strings that name model ``m`` (besides its 1-based position).
    """
    from cnnviz.errors import LayerError

    if not values:
        return None
    per: list[list[str] | None] = [None] * n_models
    keyed: dict[int, list[str]] = {}
    for v in values:
        key, eq, names = v.rpartition("=")
        layer_list = [s.strip() for s in names.split(",") if s.strip()]
        if not layer_list:
            raise LayerError(f"--layers {v!r} names no layer.")
        if not eq:
            per = [list(layer_list) for _ in range(n_models)]
            continue
        key = key.strip()
        idx = None
        if key.isdigit() and 1 <= int(key) <= n_models:
            idx = int(key) - 1
        else:
            hits = [m for m, ks in enumerate(keys) if key in ks]
            if len(hits) == 1:
                idx = hits[0]
            elif len(hits) > 1:
                raise LayerError(f"--layers {key}=...: {key!r} names {len(hits)} models; use a position 1-{n_models}.")
        if idx is None:
            raise LayerError(f"--layers {key}=...: no model {key!r}; use a position 1-{n_models} or a --model spec.")
        keyed[idx] = layer_list
    for idx, layer_list in keyed.items():
        per[idx] = layer_list
    return per


@click.command()
@click.option("--model", "models", multiple=True, required=True, metavar="SPEC",
              help="A model to compare (checkpoint path, timm/torchvision name, simplecnn). Give two or more.")
@click.option("--weights", type=click.Choice(["pretrained", "random"]), default="pretrained", show_default=True,
              help="For --model names that are not checkpoints.")
@click.option("--data", "data_spec", required=True, metavar="SPEC", help="fashion-mnist, mnist, cifar10, cifar100 or a folder.")
@click.option("--data-root", default=None, type=click.Path(file_okay=False), help="Where datasets live (default: the usual places).")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True, help="Which split to evaluate on.")
@click.option("--eval-limit", type=click.IntRange(4, IMAGE_COUNT.max), default=500, show_default=True, help="At most this many images (stratified).")
@click.option("--batch-size", type=click.IntRange(4, BATCH_SIZE.max), default=64, show_default=True, help="Images per batch (minibatch CKA).")
@click.option("--layers", "layers", multiple=True, metavar="[KEY=]NAMES", help=LAYERS_HELP)
@click.option("--cam/--no-cam", default=True, show_default=True, help="Grad-CAM attention agreement (costs a short backward per batch).")
@click.option("--origin/--no-origin", default=True, show_default=True, help="Filter drift of fine-tuned models from their pretrained weights.")
@click.option("--out", "out", type=click.Path(file_okay=False), default="compare", show_default=True, help="Output folder.")
@json_option
@device_option
@seed_option
def compare(models: tuple[str, ...], weights: str, data_spec: str, data_root: str | None, split: str, eval_limit: int,
            batch_size: int, layers: tuple[str, ...], cam: bool, origin: bool, out: str, as_json: bool, device: str, seed: int) -> None:
    """Compare models: layer-by-layer CKA, filter drift, Grad-CAM agreement, per-class accuracy.

    \b
    Writes OUT/compare.json and figures: summary.png (read this first), cka-I-J.png (each pair and
    each model with itself; I, J = --model positions), cka-grid.png, drift.png, agreement.png,
    agreement-I-J.png, per-class.png, disagreements-I-J.png.

    \b
    Example:
      cnnviz compare --model runs/scratch/ckpt.pt --model runs/lp/ckpt.pt --model runs/lpft/ckpt.pt \\
                     --data fashion-mnist --eval-limit 500
    """
    from pathlib import Path

    from tqdm import tqdm

    from cnnviz.atomic import atomic_dir, check_output_dir, write_text
    from cnnviz.compare import compare_models
    from cnnviz.data import open_split
    from cnnviz.device import resolve_device
    from cnnviz.errors import CnnvizError
    from cnnviz.models import load_model

    if len(models) < 2:
        raise CnnvizError("compare needs at least two models: --model A --model B [--model C ...].")
    check_output_dir(out, "compare")  # refused before the work, not after it
    dev = resolve_device(device)
    loaded = []
    for spec in models:
        loaded.append(load_model(spec, weights=weights, device=dev))
    keys = [[spec, i.source, Path(i.source or "").parent.name, i.mode or "", i.label] for spec, (_, i) in zip(models, loaded)]
    per_model = parse_layers(layers, len(models), [[k for k in ks if k] for ks in keys])
    ds = open_split(data_spec, split, data_root=data_root)

    bar = tqdm(total=min(len(ds), eval_limit), desc="compare", unit="img", disable=None, file=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        comp = compare_models(loaded, ds, layers=per_model, eval_limit=eval_limit, batch_size=batch_size, device=dev,
                              cam=cam, origin=origin, seed=seed, progress=progress)
    finally:
        bar.close()
    doc = comp.to_json()

    target = Path(out)
    # cnnviz.atomic's ownership rule: a folder cnnviz did not write is refused; an earlier compare's is
    # replaced once this one is complete, keeping the user's own files in it
    with atomic_dir(target, kind="compare") as tmp:
        paths = comp.write_figures(tmp)
        write_text(tmp / "compare.json", dumps_json(doc, indent=1))  # strict: undefined CKA is null
    paths = [target / p.name for p in paths]
    if as_json:
        emit_json(doc)
    else:
        _print_summary(doc)
    info(f"wrote {target / 'compare.json'} and {len(paths)} figures (start with {target / 'summary.png'})")


def _print_summary(doc: dict) -> None:
    """A short human-readable table on stdout."""
    import numpy as np

    click.echo("models:")
    for k, m in enumerate(doc["models"], 1):
        acc = f"{m['accuracy']:.1%}" if m["accuracy"] is not None else "n/a (other classes)"
        click.echo(f"  [{k}] {m['name']:<40} accuracy {acc}   layers: {', '.join(doc['layers'][m['name']])}")
    pos = {m["name"]: k for k, m in enumerate(doc["models"], 1)}
    click.echo("linear CKA (first layer / last layer / mean of matching depth):")
    for e in doc["cka"]:
        if e["a"] == e["b"]:
            continue
        m = np.asarray(e["matrix"], dtype=float)
        na, nb = m.shape
        diag = np.array([m[i, round(i * (nb - 1) / max(na - 1, 1))] for i in range(na)])
        mean = float(np.mean(diag[np.isfinite(diag)])) if np.isfinite(diag).any() else float("nan")
        cells = " / ".join(f"{v:.3f}" if np.isfinite(v) else "undefined" for v in (m[0, 0], m[-1, -1], mean))
        click.echo(f"  [{pos[e['a']]}] vs [{pos[e['b']]}]  {cells}")
    for e in doc["cka"]:
        for name, dead in (e.get("undefined_layers") or {}).items() if e["a"] == e["b"] else ():
            click.echo(f"  [{pos[name]}] CKA undefined at {', '.join(dead)}: its features are constant over the images (a dead layer)")
    click.echo("filter drift (relative weight change per stage):")
    for r in doc["filter_drift"]["origin"] + doc["filter_drift"]["pairs"]:
        if r["status"] != "ok":
            click.echo(f"  {r['a']} -> {r['b']}: skipped ({r['reason']})")
            continue
        groups = " ".join(f"{g['group']}={g['rel_change']:.2f}" for g in r["groups"])
        click.echo(f"  {r['a']} -> {r['b']}: {groups}")
    ca = doc["cam_agreement"]
    if ca.get("pairs"):
        layers = ", ".join(f"[{pos[n]}] {layer}" for n, layer in ca["layers"].items())
        click.echo(f"Grad-CAM agreement (IoU of top-{ca['top_fraction']:.0%} regions; chance {ca['pairs'][0]['random_iou']:.2f}; layers {layers}):")
        for p in ca["pairs"]:
            if p["mean_iou"] is None:
                click.echo(f"  [{pos[p['a']]}] vs [{pos[p['b']]}]  no image where both maps are non-empty")
                continue
            click.echo(f"  [{pos[p['a']]}] vs [{pos[p['b']]}]  mean {p['mean_iou']:.3f}  median {p['median_iou']:.3f}"
                       f"  ({p['n']} images; {p['empty']} skipped: an empty Grad-CAM)")
    pc = doc["per_class"]
    if pc.get("status") == "ok":
        for p in pc["pairs"]:
            click.echo(f"[{pos[p['b']]}] - [{pos[p['a']]}]: {p['overall_delta']:+.1%} overall; {p['disagree']} images disagree "
                       f"({p['a_right_b_wrong']} only [{pos[p['a']]}] right, {p['b_right_a_wrong']} only [{pos[p['b']]}] right)")
