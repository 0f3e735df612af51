"""``compare_models``: CKA, filter drift, attention agreement and per-class differences in one pass.

The data is read once. For every batch of images each model gets its own transform of the *same*
images (models may differ in input size and channels), runs once, and its layer features go
straight into the streaming CKA accumulator (Gram-sized state only: memory does not grow with the
dataset). When Grad-CAM agreement is on, that single forward is the Grad-CAM forward: the CKA
probe records the features while ``compute_cams`` runs its forward and short backward, so each
model still runs one forward per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.compare.agreement import AgreementAccumulator
from cnnviz.compare.cka import MultiModelCKA, gram
from cnnviz.compare.drift import DriftResult, origin_drift, origin_of, pair_drift
from cnnviz.compare.layersel import default_layers
from cnnviz.compare.perclass import per_class_report
from cnnviz.errors import CnnvizError, DataError, LayerError
from cnnviz.layers import resolve_layer
from cnnviz.probe import LayerProbe

log = logging.getLogger(__name__)

LayersArg = Sequence[str] | Sequence[Sequence[str] | None] | Mapping[Any, Sequence[str]] | None


@dataclass
class Comparison:
    """Everything ``cnnviz compare`` measures. ``to_json()`` is the CLI's ``--json`` document."""

    models: list[dict[str, Any]]
    layers: dict[str, list[str]]
    cka: list[dict[str, Any]]
    filter_drift: dict[str, Any]
    cam_agreement: dict[str, Any]
    per_class: dict[str, Any]
    dataset: Any = field(default=None, repr=False)  # for example images in figures; not serialized
    cam_examples: dict[tuple[str, str], list[tuple[int, float, np.ndarray, np.ndarray]]] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        return [m["name"] for m in self.models]

    def to_json(self) -> dict[str, Any]:
        """The machine-readable result: ``models, layers, cka, filter_drift, cam_agreement, per_class``."""
        return {
            "models": self.models, "layers": self.layers, "cka": self.cka, "filter_drift": self.filter_drift,
            "cam_agreement": self.cam_agreement, "per_class": self.per_class,
        }

    def cka_matrix(self, a: str, b: str) -> np.ndarray:
        """CKA matrix with ``a``'s layers as rows and ``b``'s as columns."""
        for e in self.cka:
            if (e["a"], e["b"]) == (a, b):
                return np.asarray(e["matrix"], dtype=np.float64)
            if (e["a"], e["b"]) == (b, a):
                return np.asarray(e["matrix"], dtype=np.float64).T
        raise KeyError(f"no CKA entry for {a!r} vs {b!r}")

    def write_figures(self, out_dir: str | Path) -> list[Path]:
        """Write every figure as PNG under ``out_dir`` (see ``cnnviz.compare.plots``); returns the paths."""
        from cnnviz.compare.plots import write_all

        return write_all(self, Path(out_dir))


def model_names(infos: Sequence[Any]) -> list[str]:
    """Readable unique names: ``efficientnet_lite0 (lpft)``; duplicates get the run folder / file stem."""
    base = [i.label for i in infos]
    out = []
    for i, (b, info) in enumerate(zip(base, infos)):
        if base.count(b) > 1:
            src = Path(info.source or "")
            tag = src.parent.name if src.suffix in (".pt", ".pth", ".ckpt") and src.parent.name else ""
            b = f"{b} [{tag}]" if tag else b
        out.append(b)
    # still equal (same folder names): number them
    return [f"{n} #{i + 1}" if out.count(n) > 1 else n for i, n in enumerate(out)]


def resolve_layers(models: Sequence[tuple[nn.Module, Any]], names: Sequence[str], layers: LayersArg) -> list[list[str]]:
    """Per-model layer lists from the ``layers`` argument of ``compare_models``.

    ``None``: defaults per model. A list of strings: the same names for every model. A list with one
    entry (list or None) per model. A mapping from a model's 1-based position, its name or its
    ``info.source`` to a list; unmapped models get their defaults.
    """
    k = len(models)
    per: list[Sequence[str] | None] = [None] * k
    if layers is None:
        pass
    elif isinstance(layers, Mapping):
        for key, val in layers.items():
            per[model_index(key, models, names)] = list(val)
    elif all(isinstance(v, str) for v in layers):
        per = [list(layers)] * k  # type: ignore[list-item]
    elif len(layers) == k:
        per = [None if v is None else list(v) for v in layers]  # type: ignore[union-attr]
    else:
        raise LayerError(f"layers: give one list for all models or one per model ({k}), got {len(layers)}.")
    out = []
    for (model, info), chosen, name in zip(models, per, names):
        if chosen:
            for layer in chosen:
                try:
                    resolve_layer(model, layer)
                except LayerError as e:
                    raise LayerError(f"{name}: {e}") from None
            out.append(list(dict.fromkeys(chosen)))
        else:
            out.append(default_layers(model, info))
    return out


def model_index(key: Any, models: Sequence[tuple[nn.Module, Any]], names: Sequence[str]) -> int:
    k = len(models)
    s = str(key).strip()
    if s.isdigit() and 1 <= int(s) <= k:
        return int(s) - 1
    for i, ((_, info), n) in enumerate(zip(models, names)):
        if s in (n, info.source, Path(info.source or "").parent.name, info.mode or "\0"):
            return i
    raise LayerError(f"--layers {s!r}=...: no model {s!r}; use a position 1-{k} or one of: {', '.join(names)}.")


class _MultiTransform:
    """PIL -> one tensor per model (each model's own size, channels and normalization). Picklable."""

    def __init__(self, transforms: Sequence[Callable[[Any], torch.Tensor]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> tuple[torch.Tensor, ...]:
        return tuple(t(img) for t in self.transforms)


def compare_models(
    models: Sequence[tuple[nn.Module, Any]],
    dataset: Any,
    *,
    layers: LayersArg = None,
    eval_limit: int | None = 500,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    cam: bool = True,
    cam_fraction: float = 0.2,
    origin: bool = True,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    names: Sequence[str] | None = None,
) -> Comparison:
    """Compare ``models`` (``(model, ModelInfo)`` pairs, >= 2) on ``dataset`` (items ``(PIL image, label)``).

    One pass over at most ``eval_limit`` images (a stratified subset when the dataset is larger):
    layers x layers minibatch CKA for every model pair and each model with itself; predictions for
    per-class accuracy; with ``cam``, per-image IoU of the top-``cam_fraction`` Grad-CAM regions (the
    true class is explained for models trained on the dataset's classes, otherwise the top-1).
    Filter drift is computed from the weights for same-architecture, same-origin pairs, and with
    ``origin`` against each fine-tuned model's pretrained weights. ``progress(done, total)`` is called
    after each batch. ``names`` labels the models in JSON and figures (default: ``arch (mode)``, made
    unique). Models are left as found (eval mode inside; hooks removed).
    """
    from cnnviz.data import eval_transform, limit_dataset, make_loader

    from cnnviz import limits

    if len(models) < 2:
        raise CnnvizError("compare needs at least two models (--model A --model B).")
    batch_size = limits.check_int("--batch-size", batch_size, (4, limits.BATCH_SIZE[1]),
                                  hint="Minibatch CKA needs at least 4 images per batch.")
    if eval_limit is not None:
        eval_limit = limits.check_int("--eval-limit", eval_limit, (4, limits.IMAGE_COUNT[1]))
    cam_fraction = limits.check_float("cam_fraction", cam_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    seed = limits.check_int("--seed", seed, limits.SEED)
    dev = torch.device(device)
    infos = [info for _, info in models]
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(models) or len(set(names)) != len(names):
            raise CnnvizError(f"compare needs one unique name per model, got {names!r} for {len(models)} models.")
    else:
        names = model_names(infos)
    layer_lists = resolve_layers(models, names, layers)
    class_names = list(getattr(dataset, "class_names", []) or [])
    if eval_limit is not None and len(dataset) > eval_limit:
        if hasattr(dataset, "targets"):
            dataset = limit_dataset(dataset, eval_limit, seed)  # stratified: every class represented
        else:
            dataset = torch.utils.data.Subset(dataset, range(eval_limit))
    n_total = len(dataset)
    if n_total < 4:
        raise DataError(f"compare needs at least 4 evaluation images, the dataset has {n_total}.")
    on_task = [info.num_classes == len(class_names) and bool(class_names) for info in infos]

    cka = MultiModelCKA([len(l) for l in layer_lists])
    preds: list[list[np.ndarray]] = [[] for _ in models]
    labels: list[np.ndarray] = []
    pairs = [(i, j) for i in range(len(models)) for j in range(i + 1, len(models))]
    agree = {(i, j): AgreementAccumulator(names[i], names[j], cam_fraction) for i, j in pairs} if cam else {}
    cam_layers: list[str] = []
    if cam:
        from cnnviz.explain.cam import compute_cams

        cam_layers = [agreement_layer(m, info) for m, info in models]

    for m, _ in models:
        p = next(m.parameters(), None)
        if p is not None and p.device.type != dev.type:
            raise CnnvizError(f"models must be on {dev} (got one on {p.device}); load them with device={str(dev)!r}.")

    loader = make_loader(dataset, _MultiTransform([eval_transform(i) for i in infos]), batch_size=batch_size, pin_memory=False)
    done = 0
    for xs, y in loader:
        idx = np.arange(done, done + len(y))
        grams, maps = [], []
        for k, ((model, info), x) in enumerate(zip(models, xs)):
            x = x.to(dev, non_blocking=True)
            with LayerProbe(model, layer_lists[k]) as probe:
                if cam:
                    # The CAM forward also fills this probe (grad-free copies): one forward per model.
                    targets = y.tolist() if on_task[k] else None
                    cb = compute_cams(model, x, layer=cam_layers[k], targets=targets, info=info)
                    pred = cb.probs.argmax(1)
                    maps.append(cb.maps)
                else:
                    logits = probe.run(x)
                    pred = logits.argmax(1).cpu().numpy()
                missing = [n for n in layer_lists[k] if n not in probe.activations]
                if missing:
                    raise LayerError(f"{names[k]}: layer(s) {', '.join(missing)} did not run in the forward pass.")
                # Grams now, so this model's activations are freed before the next model runs
                grams.extend(gram(probe.activations[n]) for n in layer_lists[k])
                probe.clear()
            preds[k].append(np.asarray(pred, dtype=np.int64))
        cka.update_grams(grams)
        for (i, j), acc in agree.items():
            acc.update(maps[i], maps[j], idx)
        labels.append(y.numpy().astype(np.int64))
        done += len(y)
        if progress is not None:
            progress(done, n_total)

    y_all = np.concatenate(labels)
    p_all = [np.concatenate(p) for p in preds]
    return Comparison(
        models=[_model_entry(n, info, p, y_all, ok) for n, info, p, ok in zip(names, infos, p_all, on_task)],
        layers=dict(zip(names, layer_lists)),
        cka=_cka_entries(cka, names, layer_lists),
        filter_drift=_drift(models, names, origin),
        cam_agreement=_agreement_json(agree, names, cam_layers, on_task, cam_fraction) if cam else
        {"status": "skipped", "reason": "Grad-CAM agreement was turned off (--no-cam)", "pairs": []},
        per_class=_per_class(y_all, p_all, names, class_names, on_task),
        dataset=dataset,
        cam_examples={(a.a, a.b): a.worst() for a in agree.values()},
    )


def agreement_layer(model: nn.Module, info: Any, min_side: int = 4) -> str:
    """The Grad-CAM layer for attention agreement: ``default_cam_layer`` unless its map is coarser than
    ``min_side`` x ``min_side`` (Lite0 at 64 px ends at 2x2, where a top-20% region is one blurred corner);
    then the deepest stage output that still has ``min_side`` positions per side.
    """
    from cnnviz.compare.layersel import forward_shapes, stage_layers
    from cnnviz.explain.cam import default_cam_layer

    layer = default_cam_layer(model, info)
    order, shapes = forward_shapes(model, tuple(info.input_size))
    s = shapes.get(layer)
    if s is None or len(s) != 4 or min(s[2:]) >= min_side:
        return layer
    finer = [n for n in stage_layers(model, order, shapes) if min(shapes[n][2:]) >= min_side]
    return finer[-1] if finer else layer


def _model_entry(name: str, info: Any, pred: np.ndarray, y: np.ndarray, on_task: bool) -> dict[str, Any]:
    return {
        "name": name, "arch": info.arch, "mode": info.mode, "weights": info.weights, "source": info.source,
        "origin": origin_of(info), "input_size": list(info.input_size), "num_classes": info.num_classes,
        "accuracy": float(np.mean(pred == y)) if on_task else None,
    }


CKA_UNDEFINED_NOTE = ("null = undefined: the layer's features are constant over every batch of images (a dead layer "
                      "or model), so CKA is 0/0 there")


def _cka_entries(cka: MultiModelCKA, names: Sequence[str], layer_lists: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """One entry per model pair and per model with itself. A layer whose CKA is undefined (constant
    features) has NaN in the matrix (null in JSON), is listed under ``undefined_layers`` and explained
    in ``note``."""
    dead = [[layer_lists[m][k] for k in cka.undefined(m)] for m in range(len(names))]
    out = []
    for i in range(len(names)):
        for j in range(i, len(names)):
            m = cka.block(i, j)
            e: dict[str, Any] = {"a": names[i], "b": names[j], "matrix": np.round(m, 5).tolist(), "batches": cka.batches}
            und = {names[k]: dead[k] for k in dict.fromkeys((i, j)) if dead[k]}
            if und:
                e["undefined_layers"] = und
                e["note"] = CKA_UNDEFINED_NOTE
            out.append(e)
    return out


def _drift(models: Sequence[tuple[nn.Module, Any]], names: Sequence[str], origin: bool) -> dict[str, Any]:
    pairs: list[DriftResult] = []
    for i in range(len(models)):
        for j in range(i + 1, len(models)):
            (ma, ia), (mb, ib) = models[i], models[j]
            pairs.append(pair_drift(ma, ia, mb, ib, names[i], names[j]))
    origins: list[DriftResult] = []
    if origin:
        for (m, info), n in zip(models, names):
            if origin_of(info) == "scratch":
                continue
            if info.mode is None and info.weights == "pretrained":
                continue  # it *is* the pretrained origin
            origins.append(origin_drift(m, info, n))
    return {"pairs": [d.to_dict() for d in pairs], "origin": [d.to_dict() for d in origins]}


def _agreement_json(agree: dict, names: Sequence[str], cam_layers: Sequence[str], on_task: Sequence[bool], frac: float) -> dict[str, Any]:
    return {
        "status": "ok", "method": "gradcam", "top_fraction": frac,
        "layers": dict(zip(names, cam_layers)),
        "targets": {n: ("true label" if ok else "top-1 prediction") for n, ok in zip(names, on_task)},
        "pairs": [a.to_dict() for a in agree.values()],
    }


def _per_class(y: np.ndarray, preds: Sequence[np.ndarray], names: Sequence[str], class_names: Sequence[str], on_task: Sequence[bool]) -> dict[str, Any]:
    keep = [k for k, ok in enumerate(on_task) if ok]
    skipped = [names[k] for k, ok in enumerate(on_task) if not ok]
    if not class_names:
        return {"status": "skipped", "reason": "the dataset has no class names", "pairs": []}
    rep = per_class_report(y, [preds[k] for k in keep], [names[k] for k in keep], class_names)
    rep["status"] = "ok" if len(keep) >= 1 else "skipped"
    rep["not_on_task"] = skipped  # models whose classes are not the dataset's (e.g. ImageNet Lite0)
    return rep
