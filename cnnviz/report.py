"""Run the explainers over models x images x layers, with a content-addressed cache, and write the
PNGs + manifest (JSON) that ``cnnviz.gallery`` renders.

Every unit of work (one model's filters of one layer, one Grad-CAM of one image, one comparison...)
is stored under ``CACHE/objects/<key>`` where ``key = sha256(model weights hash, input hash, method,
params)``. A rebuild finds every result already there and computes nothing; adding a model computes
only that model's work (and the new comparison). Memory stays bounded: one model is loaded at a
time, images are loaded one at a time, and every result goes to disk as soon as it is computed, so
time is linear in the number of images.

Capabilities that are not installed or not usable for a model (e.g. no dataset for top patches) are
skipped with a logged note that the gallery shows; they never stop the report.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.atomic import atomic_dir, json_default, write_text
from cnnviz.errors import CnnvizError, LayerError

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class ReportConfig:
    """What the report computes (the knobs of ``cnnviz gallery``)."""

    layers: Sequence[str] = ()  # chosen layers (filters + activation maps); default: a mid-depth conv
    cam_methods: Sequence[str] = ("gradcam",)
    attr_methods: Sequence[str] = ("saliency",)
    max_classes: int = 10  # classes shown for maximize / top patches
    maximize_steps: int = 64
    maximize_size: int | None = None
    examples_k: int = 6
    examples_limit: int = 300  # dataset images scanned for top patches
    activation_images: int = 2
    top_channels: int = 16
    compare: bool = True
    eval_limit: int = 500
    num_images: int = 12  # images drawn from --data when no --images are given
    image_px: int = 224  # display size of per-image pictures
    erf: bool = True
    seed: int = 0
    device: str = "cpu"


@dataclass
class ModelSource:
    """A model to report on: a ``--model`` spec, an optional display name, ``pretrained|random``."""

    spec: str
    name: str | None = None
    weights: str = "pretrained"


@dataclass
class ImageRef:
    """One input image, loaded on demand (so many images never sit in memory at once)."""

    name: str
    load: Callable[[], np.ndarray]  # -> (H, W, 3) uint8
    cls: str | None = None
    _hash: str | None = None

    def digest(self) -> str:
        if self._hash is None:
            a = np.ascontiguousarray(self.load())
            self._hash = hashlib.sha256(str(a.shape).encode() + a.tobytes()).hexdigest()[:24]
        return self._hash


@dataclass
class Stats:
    """What a report did: ``computed`` lists ``(model name, method)`` of every cache miss."""

    computed: list[tuple[str, str]] = field(default_factory=list)
    hits: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    method_seconds: dict[str, float] = field(default_factory=dict)  # wall time of computed entries, per method


# -- the content-addressed cache ----------------------------------------------------------------

class Cache:
    """``key -> folder of files + meta.json``; entries are written whole (atomic dir) or not at all."""

    def __init__(self, root: str | os.PathLike[str], stats: Stats) -> None:
        self.root = Path(root)
        self.stats = stats

    @staticmethod
    def key(model_hash: str, input_hash: str, method: str, params: dict[str, Any]) -> str:
        blob = json.dumps([model_hash, input_hash, method, params], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, who: str, model_hash: str, input_hash: str, method: str, params: dict[str, Any],
            compute: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
        """The entry's folder and meta; ``compute(tmp_dir) -> meta`` runs only on a miss."""
        k = self.key(model_hash, input_hash, method, params)
        d = self.root / "objects" / k[:2] / k
        meta_path = d / "meta.json"
        if meta_path.exists():
            self.stats.hits += 1
            return d, json.loads(meta_path.read_text())
        t0 = time.perf_counter()
        with atomic_dir(d) as tmp:
            meta = compute(tmp) or {}
            (tmp / "meta.json").write_text(json.dumps({"key": [model_hash, input_hash, method, params], **meta}, default=str))
        self.stats.computed.append((who, method))
        self.stats.method_seconds[method] = self.stats.method_seconds.get(method, 0.0) + time.perf_counter() - t0
        return d, json.loads(meta_path.read_text())


def model_hash(model: Any, info: Any) -> str:
    """sha256 of the weights (every state-dict tensor, in name order) and what interprets them."""
    h = hashlib.sha256()
    h.update(json.dumps([info.arch, info.arch_kwargs, list(info.class_names), list(info.input_size),
                         list(info.mean), list(info.std)], sort_keys=True, default=str).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def dataset_hash(spec: str, ds: Any) -> str:
    """A cheap content digest of a dataset: spec, size, labels and a sample of its images."""
    h = hashlib.sha256(str(spec).encode())
    n = len(ds)
    h.update(str(n).encode())
    targets = getattr(ds, "targets", None)
    if targets is not None:
        h.update(np.asarray(targets, dtype=np.int64).tobytes())
    for i in range(0, n, max(1, n // 16)):
        h.update(np.asarray(ds[i][0]).tobytes())
    return h.hexdigest()[:24]


def _optional(module: str, name: str) -> Callable | None:
    """``module.name`` if that capability is installed, else None (the caller notes the skip)."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _accepts(fn: Callable, **kw: Any) -> dict[str, Any]:
    """The keyword arguments in ``kw`` that ``fn`` takes (peers' signatures grow optional knobs)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kw
    return {k: v for k, v in kw.items() if k in params}


# -- pictures -----------------------------------------------------------------------------------

def display_image(img: np.ndarray, px: int) -> np.ndarray:
    """``(H, W, 3) uint8`` scaled so its longest side is about ``px``: small images crisply (nearest)."""
    from cnnviz.images import resize_image

    h, w = img.shape[:2]
    if max(h, w) * 2 <= px:
        f = px // max(h, w)
        return img.repeat(f, 0).repeat(f, 1)
    if max(h, w) > px:
        s = px / max(h, w)
        return resize_image(img, (max(1, round(h * s)), max(1, round(w * s))))
    return img


def heat_png(heat: np.ndarray, size: tuple[int, int], path: Path, cmap: str = "jet") -> None:
    """A ``(h, w)`` [0, 1] map as an opaque colour PNG at ``size`` (the gallery sets its opacity)."""
    from cnnviz.images import resize_map
    from cnnviz.render import colorize, save_png

    save_png(colorize(np.clip(resize_map(heat, size), 0, 1), cmap), path)


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path, base)


# -- the report ---------------------------------------------------------------------------------

class Report:
    """Computes (or finds in the cache) everything the gallery shows, and writes the manifest."""

    def __init__(self, cache_dir: str | os.PathLike[str], cfg: ReportConfig | None = None, progress: Progress | None = None) -> None:
        self.cfg = cfg or ReportConfig()
        self.stats = Stats()
        self.cache = Cache(cache_dir, self.stats)
        self.root = Path(cache_dir)
        self.progress = progress or (lambda desc: None)

    def note(self, text: str) -> None:
        log.info("report: %s", text)
        if text not in self.stats.notes:
            self.stats.notes.append(text)

    # public entry point ------------------------------------------------------------------------
    def run(self, models: Sequence[ModelSource], images: Sequence[ImageRef], *, data: str | None = None,
            dataset: Any = None, title: str = "cnnviz gallery", manifest_name: str = "manifest") -> Path:
        """Compute everything for ``models`` x ``images`` (+ the dataset's test split) -> manifest path."""
        t0 = time.perf_counter()
        from cnnviz.device import resolve_device
        from cnnviz.models import load_model

        if not models:
            raise CnnvizError("the gallery needs at least one --model.")
        dev = resolve_device(self.cfg.device)
        data_hash = dataset_hash(data or "", dataset) if dataset is not None else None
        man_dir = self.root / "manifests"
        man_dir.mkdir(parents=True, exist_ok=True)
        entries, results, hashes, labels = [], {i: [] for i in range(len(images))}, [], []
        self._check_layers_somewhere(models)
        self._seen_layers: set[str] = set()
        self._attributors: dict[tuple[str, str], Any] = {}
        self._all_layers: list[str] = []
        for mi, src in enumerate(models):
            self.progress(f"loading {src.name or src.spec}")
            model, info = load_model(src.spec, weights=src.weights, device=dev)
            name = src.name or _default_name(src, info, mi)
            labels.append(name)
            mh = model_hash(model, info)
            hashes.append(mh)
            entry = self._model_entry(f"m{mi}", name, src, model, info, mh, images, dataset, data_hash, man_dir)
            for ii, im in enumerate(images):
                self.progress(f"{name}: {im.name}")
                results[ii].extend(self._image_results(f"m{mi}", name, model, info, mh, im, man_dir))
            entries.append(entry)
            self._attributors.clear()
            del model  # one model in memory at a time
        imgs = []
        for ii, im in enumerate(images):
            d, meta = self.cache.get("-", "-", im.digest(), "display", {"px": self.cfg.image_px},
                                     lambda tmp, im=im: _save_display(im, self.cfg.image_px, tmp))
            imgs.append({"id": f"img{ii}-{im.digest()[:8]}", "name": im.name, "class": im.cls,
                         "src": _rel(d / "image.png", man_dir), "results": results[ii]})
        missing = [w for w in self.cfg.layers if w not in self._seen_layers]
        if missing:
            from cnnviz.errors import suggestion

            raise LayerError(f"--layers {missing[0]!r} is in none of the models.{suggestion(missing[0], self._all_layers)} "
                             "See `cnnviz layers --model SPEC`.")
        comparison = self._comparison(models, labels, hashes, entries, dataset, data_hash, man_dir, dev)
        self.stats.seconds = time.perf_counter() - t0
        manifest = {"version": 1, "title": title, "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "models": entries, "images": imgs, "comparison": comparison, "notes": list(self.stats.notes)}
        path = man_dir / f"{manifest_name}.json"
        write_text(path, json.dumps(manifest, indent=1, default=str))
        log.info("report: %d computed, %d from cache, %.1f s", len(self.stats.computed), self.stats.hits, self.stats.seconds)
        return path

    def _check_layers_somewhere(self, models: Sequence[ModelSource]) -> None:
        """Chosen layers are checked per model later; here only that the list is not empty strings."""
        for layer in self.cfg.layers:
            if not layer.strip():
                raise LayerError("--layers got an empty layer name.")

    # per model ---------------------------------------------------------------------------------
    def _model_entry(self, mid: str, name: str, src: ModelSource, model: Any, info: Any, mh: str,
                     images: Sequence[ImageRef], dataset: Any, data_hash: str | None, man_dir: Path) -> dict[str, Any]:
        metrics = _load_metrics(src.spec, info)
        entry: dict[str, Any] = {
            "id": mid, "name": name, "arch": info.arch, "mode": info.mode or metrics.get("config", {}).get("mode"),
            "weights": info.weights, "accuracy": metrics.get("test_accuracy", metrics.get("accuracy")),
            "train_seconds": metrics.get("train_seconds"), "num_classes": info.num_classes,
            "input_size": list(info.input_size), "params": int(sum(p.numel() for p in model.parameters())),
            "per_class": [dict(v, name=k) for k, v in (metrics.get("per_class") or {}).items()],
        }
        d, meta = self.cache.get(name, mh, "-", "figures", {"metrics": _digest(metrics)},
                                 lambda tmp: _metric_figures(metrics, info, name, tmp))
        entry["curves"] = _rel(d / "curves.png", man_dir) if meta.get("curves") else None
        entry["confusion"] = _rel(d / "confusion.png", man_dir) if meta.get("confusion") else None
        sections: list[dict[str, Any]] = []
        first, chosen = _pick_layers(model, info, self.cfg.layers, name)
        from cnnviz.layers import layer_names

        names = layer_names(model)
        self._all_layers.extend(n for n in names if n not in self._all_layers)
        self._seen_layers.update(w for w in self.cfg.layers if w in names)
        steps: list[tuple[str, Callable[[], list[dict[str, Any]]]]] = [
            ("filters", lambda: self._filters(name, model, mh, [first] + [c for c in chosen if c != first], man_dir)),
            ("activations", lambda: self._activations(name, model, info, mh, images, chosen, man_dir)),
            ("maximize", lambda: self._maximize(name, model, info, mh, man_dir)),
            ("receptive", lambda: self._receptive(name, model, info, mh, chosen, man_dir)),
            ("examples", lambda: self._examples(name, model, info, mh, dataset, data_hash, man_dir)),
        ]
        for what, fn in steps:
            self.progress(f"{name}: {what}")
            try:
                sections.extend(fn())
            except CnnvizError:
                raise
            except Exception as e:  # an explainer bug must not cost the whole gallery
                log.warning("report: %s for %s failed: %s", what, name, e, exc_info=log.isEnabledFor(logging.DEBUG))
                self.note(f"{what} failed for {name}: {type(e).__name__}: {e}")
        entry["sections"] = sections
        return entry

    def _filters(self, who: str, model: Any, mh: str, layers: list[str], man_dir: Path) -> list[dict[str, Any]]:
        from cnnviz.explain import filters as F

        out = []
        for layer in layers:
            def compute(tmp: Path, layer: str = layer) -> dict[str, Any]:
                from cnnviz.render import save_png

                k = F.layer_kernels(model, layer)
                save_png(F.filter_grid(k, max_filters=64, tile_px=40), tmp / "filters.png")
                o, i, kh, kw = k.weights.shape
                return {"caption": f"{k.layer}: {min(o, 64)} of {o} filters, {kh}x{kw}, {k.kind}"}

            try:
                d, meta = self.cache.get(who, mh, "-", "filters", {"layer": layer, "max": 64}, compute)
            except LayerError as e:
                self.note(f"filters of {layer} skipped for {who}: {e}")
                continue
            out.append({"id": f"filters-{layer}", "title": f"Filters: {layer}", "wide": True, "pixelated": True,
                        "items": [{"src": _rel(d / "filters.png", man_dir), "caption": meta["caption"]}]})
        return out

    def _activations(self, who: str, model: Any, info: Any, mh: str, images: Sequence[ImageRef], layers: list[str], man_dir: Path) -> list[dict[str, Any]]:
        from cnnviz.explain import activations as A

        if not images:
            self.note("activation maps skipped: no images (give --images or --data)")
            return []
        out = []
        for layer in layers:
            items = []
            for im in images[: self.cfg.activation_images]:
                def compute(tmp: Path, im: ImageRef = im, layer: str = layer) -> dict[str, Any]:
                    from cnnviz.images import preprocess
                    from cnnviz.render import save_png

                    img = im.load()
                    acts = A.activation_maps(model, preprocess(img, info).to(_dev(model)), layer, top=self.cfg.top_channels)
                    save_png(A.render_activations(display_image(img, 160), acts, tile_px=64), tmp / "acts.png")
                    return {"caption": f"{im.name}: top {len(acts.channels)} of {acts.shape[0]} channels"}

                d, meta = self.cache.get(who, mh, im.digest(), "activations", {"layer": layer, "top": self.cfg.top_channels}, compute)
                items.append({"src": _rel(d / "acts.png", man_dir), "caption": meta["caption"], "class": im.cls})
            out.append({"id": f"acts-{layer}", "title": f"Activation maps: {layer}", "wide": True, "items": items})
        return out

    def _maximize(self, who: str, model: Any, info: Any, mh: str, man_dir: Path) -> list[dict[str, Any]]:
        fn = _optional("cnnviz.explain.maximize", "maximize_classes")
        if fn is None:
            self.note("class-maximizing images skipped: cnnviz.explain.maximize is not available")
            return []
        classes = list(range(min(info.num_classes, self.cfg.max_classes)))
        params = {"classes": classes, "steps": self.cfg.maximize_steps, "size": self.cfg.maximize_size, "seed": self.cfg.seed}

        def compute(tmp: Path) -> dict[str, Any]:
            from cnnviz.render import save_png

            imgs = fn(model, info, classes, **_accepts(fn, steps=self.cfg.maximize_steps, size=self.cfg.maximize_size, seed=self.cfg.seed))
            for c, img in zip(classes, imgs):
                save_png(display_image(np.asarray(img), 128), tmp / f"class{c}.png")
            return {"classes": classes}

        d, meta = self.cache.get(who, mh, "-", "maximize", params, compute)
        items = [{"src": _rel(d / f"class{c}.png", man_dir), "caption": info.class_names[c], "class": info.class_names[c]}
                 for c in meta["classes"]]
        return [{"id": "maximize", "title": "Class-maximizing images", "pixelated": True,
                 "note": f"Inputs optimized to maximize each class logit ({self.cfg.maximize_steps} steps).", "items": items}]

    def _receptive(self, who: str, model: Any, info: Any, mh: str, chosen: list[str], man_dir: Path) -> list[dict[str, Any]]:
        fn = _optional("cnnviz.explain.receptive", "receptive_fields")
        if fn is None:
            self.note("receptive fields skipped: cnnviz.explain.receptive is not available")
            return []

        def compute(tmp: Path) -> dict[str, Any]:
            rows = []
            for r in fn(model, info.input_size):
                if "Conv" in r.type or "Pool" in r.type or r.layer in chosen:
                    d = r.to_dict()
                    rows.append([d["layer"], d["type"], _fmt_pair(d["rf"]), _fmt_pair(d["stride"]), _fmt_pair(d["padding"])])
            return {"rows": rows[:60]}

        # the analytic field depends on the architecture and input size, not on the weights: models
        # that share an architecture (scratch / LP / LP-FT) share this entry
        arch_key = "arch:" + _digest([info.arch, info.arch_kwargs, list(info.input_size), info.num_classes])
        d, meta = self.cache.get(who, arch_key, "-", "receptive", {"input_size": list(info.input_size)}, compute)
        out = [{"id": "receptive", "title": "Receptive fields",
                "note": "Theoretical receptive field (pixels), stride and effective padding of each conv/pool layer.",
                "table": {"columns": ["layer", "type", "receptive field", "stride", "padding"], "rows": meta["rows"]}}]
        erf = _optional("cnnviz.explain.erf", "effective_receptive_field") or _optional("cnnviz.explain.receptive", "effective_receptive_field")
        if erf is None or not self.cfg.erf or not chosen:
            return out
        layer = chosen[-1]

        def compute_erf(tmp: Path) -> dict[str, Any]:
            r = erf(model, info, layer, **_accepts(erf, seed=self.cfg.seed))
            heat_png(_norm(np.asarray(r.heat)), (192, 192), tmp / "erf.png", cmap="magma")
            return {"caption": f"{layer}: 50% of gradient mass within r={_fmt(r.r50)} px, 90% within r={_fmt(r.r90)} px"}

        d, meta = self.cache.get(who, mh, "-", "erf", {"layer": layer}, compute_erf)
        out.append({"id": "erf", "title": "Effective receptive field", "note": "Gradient of the centre unit w.r.t. the input (Luo et al. 2016).",
                    "items": [{"src": _rel(d / "erf.png", man_dir), "caption": meta["caption"]}]})
        return out

    def _examples(self, who: str, model: Any, info: Any, mh: str, dataset: Any, data_hash: str | None, man_dir: Path) -> list[dict[str, Any]]:
        fn = _optional("cnnviz.explain.examples", "top_examples")
        if fn is None:
            self.note("top dataset patches skipped: cnnviz.explain.examples is not available")
            return []
        if dataset is None:
            self.note("top dataset patches skipped: no --data")
            return []
        names = list(getattr(dataset, "class_names", []) or [])
        if names != list(info.class_names):
            self.note(f"top dataset patches skipped for {who}: its classes are not the dataset's")
            return []
        targets = [int(t) for t in getattr(dataset, "targets", [])] or [int(dataset[i][1]) for i in range(len(dataset))]
        n_classes = min(info.num_classes, self.cfg.max_classes)
        per_class = max(self.cfg.examples_k, self.cfg.examples_limit // max(1, info.num_classes))
        items = []
        for c in range(n_classes):
            # Scan only images labelled c (at most per_class of them): the patches that most excite
            # class c among its own images, at 1/num_classes of the cost of scanning everything.
            idx = [i for i, t in enumerate(targets) if t == c][:per_class]

            def compute(tmp: Path, c: int = c, idx: list[int] = idx) -> dict[str, Any]:
                from cnnviz.images import resize_image
                from cnnviz.render import save_png, tile

                if not idx:
                    return {"n": 0, "scores": []}
                ex = fn(model, info, _Subset(dataset, idx), target_class=c, k=self.cfg.examples_k,
                        **_accepts(fn, seed=self.cfg.seed))
                tiles = [resize_image(_rgb(e.patch), (64, 64)) for e in ex]
                if tiles:
                    save_png(tile(tiles, ncols=len(tiles), pad=2), tmp / "patches.png")
                return {"n": len(tiles), "scores": [float(e.score) for e in ex], "indices": [idx[e.index] for e in ex]}

            d, meta = self.cache.get(who, mh, data_hash or "-", "examples",
                                     {"class": c, "k": self.cfg.examples_k, "per_class": per_class}, compute)
            if meta["n"]:
                items.append({"src": _rel(d / "patches.png", man_dir), "caption": f"{info.class_names[c]}", "class": info.class_names[c]})
        return [{"id": "examples", "title": "Top dataset patches per class", "wide": True,
                 "note": "For each class, the patches of its test images (the receptive field of the strongest "
                         "Grad-CAM unit) that most excite the class logit, best first.", "items": items}]

    # per image -----------------------------------------------------------------------------------
    def _image_results(self, mid: str, who: str, model: Any, info: Any, mh: str, im: ImageRef, man_dir: Path) -> list[dict[str, Any]]:
        cam = _optional("cnnviz.explain.cam", "compute_cams") if self.cfg.cam_methods else None
        att = _optional("cnnviz.explain.attribute", "compute_attributions") if self.cfg.attr_methods else None
        if self.cfg.cam_methods and cam is None:
            self.note("Grad-CAM skipped: cnnviz.explain.cam is not available")
        if self.cfg.attr_methods and att is None:
            self.note("attributions skipped: cnnviz.explain.attribute is not available")
        jobs = [(m, cam) for m in self.cfg.cam_methods if cam] + [(m, att) for m in self.cfg.attr_methods if att]
        attributor = _optional("cnnviz.explain.attribute", "Attributor")
        out = []
        for method, fn in jobs:
            def compute(tmp: Path, method: str = method, fn: Callable = fn) -> dict[str, Any]:
                from cnnviz.images import preprocess

                img = im.load()
                shown = display_image(img, self.cfg.image_px)
                x = preprocess(img, info).to(_dev(model))
                if fn is att and attributor is not None:
                    # one Attributor (a private working copy of the model) per model and method, not per image
                    key = (mid, method)
                    if key not in self._attributors:  # cleared after each model (run())
                        self._attributors[key] = attributor(model, method, info=info)
                    res = self._attributors[key](x)
                else:
                    res = fn(model, x, method=method, info=info)
                heat_png(res.maps[0], shown.shape[:2], tmp / "heat.png")
                probs = np.asarray(res.probs[0], dtype=np.float64)
                top = int(probs.argmax())
                return {"pred": info.class_names[top], "prob": float(probs[top]), "target": info.class_names[int(res.targets[0])]}

            try:
                d, meta = self.cache.get(who, mh, im.digest(), method, {"px": self.cfg.image_px}, compute)
            except CnnvizError:
                raise
            except Exception as e:  # noqa: BLE001 - one failing method must not cost the gallery
                self.note(f"{method} failed for {who}: {type(e).__name__}: {e}")
                continue
            out.append({"model": mid, "method": method, "heat": _rel(d / "heat.png", man_dir),
                        "pred": meta["pred"], "prob": meta["prob"], "target": meta["target"]})
        return out

    # comparison ----------------------------------------------------------------------------------
    def _comparison(self, models: Sequence[ModelSource], labels: list[str], hashes: list[str], entries: list[dict[str, Any]],
                    dataset: Any, data_hash: str | None, man_dir: Path, dev: Any) -> dict[str, Any] | None:
        headline = _accuracy_headline(entries)
        sections: list[dict[str, Any]] = []
        acc_rows = [[e["name"], e.get("mode") or "–", e["accuracy"] if e["accuracy"] is not None else "–",
                     round(e["train_seconds"], 1) if e.get("train_seconds") is not None else "–"] for e in entries]
        sections.append({"id": "accuracy", "title": "Accuracy and training time",
                         "table": {"columns": ["model", "mode", "test accuracy", "train seconds"], "rows": acc_rows}})
        if len(models) < 2:
            return {"headline": headline, "sections": sections} if headline else None
        fn = _optional("cnnviz.compare", "compare_models")
        if not self.cfg.compare:
            return {"headline": headline, "sections": sections}
        if fn is None:
            self.note("model comparison skipped: cnnviz.compare is not available")
            return {"headline": headline, "sections": sections}
        if dataset is None:
            self.note("model comparison (CKA, drift, agreement) skipped: no --data")
            return {"headline": headline, "sections": sections}
        self.progress("comparing models")

        def compute(tmp: Path) -> dict[str, Any]:
            from cnnviz.models import load_model

            loaded = []
            for src, label in zip(models, labels):
                m, inf = load_model(src.spec, weights=src.weights, device=dev)
                loaded.append((m, inf))
            comp = fn(loaded, dataset, **_accepts(fn, eval_limit=self.cfg.eval_limit, device=dev, seed=self.cfg.seed, names=labels))
            figs = []
            try:
                figs = [p.name for p in comp.write_figures(tmp / "fig")]
            except (ImportError, AttributeError) as e:
                log.info("comparison figures unavailable: %s", e)
            write_text(tmp / "comparison.json", json.dumps(comp.to_json(), default=json_default))
            return {"figures": figs}

        d, meta = self.cache.get("+".join(labels), "+".join(hashes), data_hash or "-", "compare",
                                 {"eval_limit": self.cfg.eval_limit, "labels": labels, "named": 1}, compute)
        data = json.loads((d / "comparison.json").read_text())
        headline += _comparison_headline(data)
        for f in meta.get("figures", []):
            sections.append({"id": f"fig-{Path(f).stem}", "title": _figure_title(f), "wide": True, "hero": "grid" in f,
                             "items": [{"src": _rel(d / "fig" / f, man_dir), "caption": Path(f).stem}]})
        sections.extend(_comparison_tables(data))
        return {"headline": headline, "sections": sections}


class _Subset:
    """``dataset[indices]`` keeping ``class_names`` (what the explainers read)."""

    def __init__(self, ds: Any, indices: list[int]) -> None:
        self.ds, self.indices = ds, indices
        self.class_names = list(getattr(ds, "class_names", []) or [])
        self.targets = [int(getattr(ds, "targets")[i]) for i in indices] if hasattr(ds, "targets") else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.ds[self.indices[i]]


# -- helpers ------------------------------------------------------------------------------------

def _dev(model: Any) -> Any:
    return next((p.device for p in model.parameters()), "cpu")


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fmt(v: Any) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def _fmt_pair(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return str(_fmt(v[0])) if len(set(v)) == 1 else "x".join(_fmt(x) for x in v)
    return str(v)


def _norm(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _rgb(a: Any) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8) if a.max() <= 1.0 else a.astype(np.uint8)
    return a[..., :3]


def _save_display(im: ImageRef, px: int, tmp: Path) -> dict[str, Any]:
    from cnnviz.render import save_png

    save_png(display_image(_rgb(im.load()), px), tmp / "image.png")
    return {}


def _default_name(src: ModelSource, info: Any, i: int) -> str:
    p = Path(src.spec)
    if p.suffix == ".pt":
        base = p.parent.name if p.stem in ("ckpt", "model", "best", "last") else p.stem
        return base or f"model{i}"
    return info.label if hasattr(info, "label") else src.spec


def _load_metrics(spec: str, info: Any) -> dict[str, Any]:
    """``metrics.json`` beside a checkpoint (the trainer's run folder), else the checkpoint's own."""
    p = Path(spec)
    if p.suffix == ".pt" and (p.parent / "metrics.json").is_file():
        try:
            return json.loads((p.parent / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("unreadable %s: %s", p.parent / "metrics.json", e)
    return dict(info.metrics or {})


def _metric_figures(metrics: dict[str, Any], info: Any, name: str, tmp: Path) -> dict[str, Any]:
    """Training curves and confusion matrix from the metrics (nothing when there are none)."""
    plot = _optional("cnnviz.train.metrics", "plot_curves")
    conf = _optional("cnnviz.train.metrics", "plot_confusion")
    out = {"curves": False, "confusion": False}
    if plot and metrics.get("history"):
        plot(metrics["history"], tmp / "curves.png", title=name)
        out["curves"] = True
    if conf and metrics.get("confusion"):
        names = list(metrics.get("per_class") or {}) or list(info.class_names)
        conf(np.asarray(metrics["confusion"]), names, tmp / "confusion.png", title=f"{name}: confusion")
        out["confusion"] = True
    return out


def _pick_layers(model: Any, info: Any, wanted: Sequence[str], who: str) -> tuple[str, list[str]]:
    """The first conv layer and the chosen layers present in this model (default: a mid-depth conv)."""
    from torch import nn

    from cnnviz.layers import layer_names

    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise LayerError(f"{who} has no Conv2d layer to show.")
    names = set(layer_names(model))
    chosen = [w for w in wanted if w in names]
    if wanted and not chosen:
        log.info("none of --layers %s is in %s; using its default layer", ", ".join(wanted), who)
    if not chosen:
        spatial = [n for n in convs if max(model.get_submodule(n).kernel_size) > 1] or convs
        chosen = [spatial[len(spatial) // 2]]
    return convs[0], chosen


def _accuracy_headline(entries: list[dict[str, Any]]) -> list[str]:
    scored = [e for e in entries if e.get("accuracy") is not None]
    if not scored:
        return []
    best = max(scored, key=lambda e: e["accuracy"])
    out = [f"Best test accuracy: {best['name']} at {100 * best['accuracy']:.1f}%."]
    worst = min(scored, key=lambda e: e["accuracy"])
    if worst is not best:
        out.append(f"{best['name']} beats {worst['name']} by {100 * (best['accuracy'] - worst['accuracy']):.1f} points.")
    timed = [e for e in scored if e.get("train_seconds")]
    if len(timed) > 1:
        fast = min(timed, key=lambda e: e["train_seconds"])
        out.append(f"Fastest to train: {fast['name']} ({fast['train_seconds']:.0f} s).")
    return out


def _comparison_headline(data: dict[str, Any]) -> list[str]:
    out = []
    arch = {m.get("name"): m.get("arch") for m in data.get("models") or []}
    for e in data.get("cka") or []:
        # layer-by-layer CKA along the diagonal means something only between two copies of one architecture
        if e.get("a") != e.get("b") and e.get("matrix") and arch.get(e.get("a")) == arch.get(e.get("b")):
            m = np.asarray(e["matrix"], dtype=np.float64)
            if m.shape[0] == m.shape[1] and m.size:
                out.append(f"CKA {e['a']} vs {e['b']}: mean diagonal {float(np.nanmean(np.diag(m))):.2f} (1 = same features).")
    return out[:4]


def _comparison_tables(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Small tables from the comparison JSON (the figures carry the detail)."""
    out = []
    pc = data.get("per_class") or {}
    rows = pc.get("rows") if isinstance(pc, dict) else None
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        cols = list(rows[0])
        out.append({"id": "per-class", "title": "Per-class accuracy", "table": {"columns": cols, "rows": [[r.get(c) for c in cols] for r in rows]}})
    return out


def _figure_title(name: str) -> str:
    stem = Path(name).stem.lower()
    for key, title in (("cka", "CKA heatmaps"), ("drift", "Filter drift"), ("agree", "Attention agreement"),
                       ("class", "Per-class deltas"), ("cam", "Grad-CAM agreement examples")):
        if key in stem:
            return f"{title} ({Path(name).stem})"
    return Path(name).stem
