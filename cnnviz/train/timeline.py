"""``cnnviz train --timeline``: what the network learns, recorded epoch by epoch.

At epoch 0 (before any training) and after every epoch, for a few tracked layers spread over depth
(the ones ``cnnviz compare`` picks: ``cnnviz.compare.layersel.default_layers``):

* **CKA to init / to final**: linear CKA (the unbiased-HSIC minibatch estimator of
  ``cnnviz.compare.cka``, Nguyen et al. 2021) between the layer's representation of a fixed set of
  test images now and at epoch 0, and now and after the last epoch. Only the ``(B, B)`` Gram matrices
  of fixed batches are kept per epoch (never the features), so the to-final curve is finished from
  them once the last epoch is done.
* **drift**: ``||W_e - W_0||_F / ||W_0||_F`` over the conv / linear weights that produce the layer
  from the previous tracked layer (its *segment* in forward order); null for a layer with no weights
  in its segment (a global pool), and where the initial weights are all zero.
* **Grad-CAM** of a fixed few test images per class, for their true class, through the explainer
  registry (``cnnviz.explain.methods.Explainer``), saved as overlays under ``RUN_DIR/timeline/``.

``RUN_DIR/timeline.json``::

    {"epochs": [0, 1, ..., E], "layers": [...], "cka_to_init": {layer: [per epoch]},
     "cka_to_final": {layer: [per epoch]}, "drift": {layer: [per epoch]},
     "complete": bool, "images": [{"index", "class", "label", "src", "cams": [per epoch], "prob": [per epoch]}],
     "figures": {"curves", "cams"}, "cka_images", "drift_norm", "method", "config"}

``cka_to_final`` is null until the last epoch has been recorded (``complete``). Paths are relative
to RUN_DIR. The run's weights are untouched by all this: every forward runs under
``cnnviz.probe.frozen`` (eval mode, no BatchNorm statistics or dropout state changed, no ``.grad``
written) and the torch / numpy / Python RNG streams are saved and restored around each record.

``--resume`` continues the timeline from ``RUN_DIR/timeline/state.pt`` (the Grams and the initial
weights); a run started without ``--timeline`` cannot get one later (its epoch 0 is gone): that is a
``TrainError`` before any training.

**Staged like the checkpoint.** While the trainer keeps an earlier run's ``ckpt.pt`` and writes this run's
checkpoints to ``ckpt.partial.pt`` (``run["staged"]``), the timeline goes to ``RUN_DIR/timeline.partial/``
(``timeline.json`` and ``timeline/`` in the same layout, so the paths inside stay relative to RUN_DIR), and
``--resume`` continues from there. Only when the run has finished (``Timeline.finish``, called by the trainer
after ``ckpt.pt`` is replaced) do its files replace the earlier ``timeline.json`` and the files cnnviz wrote under
``timeline/``; any other file there is left where it is. A run that fails or stops keeps its staging folder
beside ``ckpt.partial.pt`` (the pair ``--resume`` continues), and the earlier timeline stays with the earlier
``ckpt.pt``.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.train.config import TrainError
from cnnviz.train.timeline_files import STAGING, STATE_VERSION, clear_own, check_paths, install, load_state, save_state

log = logging.getLogger(__name__)

IMAGES_PER_CLASS = (1, 32)  # --timeline-images bounds
CKA_IMAGES = (4, 4096)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without consuming any global RNG stream: torch (CPU and every CUDA device), numpy, Python."""
    import torch

    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        np.random.set_state(np_state)
        random.setstate(py_state)


def pick_images(targets: Sequence[int], num_classes: int, per_class: int, n_cka: int, seed: int) -> tuple[list[int], list[int]]:
    """``(cam_indices, cka_indices)`` into a split with ``targets``: ``per_class`` images of each class
    (seeded, in class order) and a stratified ``n_cka`` for CKA. A local generator: no global RNG used."""
    from cnnviz.datasets.base import stratified_indices

    t = np.asarray(targets, dtype=np.int64)
    rng = np.random.default_rng(seed)
    cam: list[int] = []
    for c in range(num_classes):
        idx = np.flatnonzero(t == c)
        cam.extend(int(i) for i in rng.permutation(idx)[:per_class])
    return cam, stratified_indices(list(t), min(n_cka, len(t)), seed)


def segments(order: Sequence[str], layers: Sequence[str], weights: dict[str, Any]) -> dict[str, list[str]]:
    """Tracked layer -> the weight modules of its segment: those that finish in the forward pass after
    the previous tracked layer and no later than it (``order``: module names in completion order)."""
    pos = {n: i for i, n in enumerate(order)}
    bounds = sorted((pos[l], l) for l in layers if l in pos)
    out: dict[str, list[str]] = {l: [] for l in layers}
    for w in weights:
        p = pos.get(w)
        if p is None:
            continue
        owner = next((l for b, l in bounds if p <= b), None)
        if owner is not None:
            out[owner].append(w)
    return out


def _conv_linear_weights(model: Any) -> dict[str, Any]:
    """Module name -> weight tensor of every conv / linear layer (what ``cnnviz compare``'s drift uses)."""
    from torch import nn

    return {n: m.weight for n, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and getattr(m, "weight", None) is not None}


class Timeline:
    """The ``on_epoch`` callback of ``cnnviz.train.train_run`` that writes ``RUN_DIR/timeline.json``.

    Args:
        images_per_class: test images per class whose Grad-CAM is saved every epoch.
        cka_images: test images (stratified, seeded by the run's seed) whose representations CKA compares.
        batch_size: the fixed CKA batches (the minibatch estimator averages HSIC over them).
        layers: tracked layers (default: ``cnnviz compare``'s).
        method: a CAM method of the registry (default ``gradcam``).
    """

    def __init__(self, images_per_class: int = 2, cka_images: int = 256, batch_size: int = 64,
                 layers: Sequence[str] | None = None, method: str = "gradcam") -> None:
        from cnnviz import limits
        from cnnviz.explain.methods import CAM_KINDS, get_method

        self.images_per_class = limits.check_int("--timeline-images", images_per_class, IMAGES_PER_CLASS)
        self.cka_images = limits.check_int("timeline cka_images", cka_images, CKA_IMAGES)
        self.batch_size = limits.check_int("timeline batch_size", batch_size, (4, 4096))
        self.layers = list(layers) if layers else None
        self.method = get_method(method, CAM_KINDS).name
        self.seconds = 0.0  # time spent recording (benchmarks read it)
        self._s: dict[str, Any] | None = None  # the state (see _new_state)
        self._root: Path | None = None  # where timeline.json and timeline/ go: RUN_DIR, or RUN_DIR/STAGING

    # -- the callback ---------------------------------------------------------------------------
    def __call__(self, epoch: int, run: dict[str, Any]) -> None:
        import time

        t0 = time.perf_counter()
        with preserved_rng():
            if self._s is None:
                self._start(epoch, run)
            else:
                self._record(epoch, run)
                self._write(run)
        self.seconds += time.perf_counter() - t0

    def _start(self, epoch: int, run: dict[str, Any]) -> None:
        cfg, run_dir = run["cfg"], Path(run["run_dir"])
        check_paths(run_dir)
        self._root = run_dir / STAGING if run.get("staged") else run_dir
        if epoch == 0:
            self._s = self._new_state(run)
            self._record(0, run)  # kept in memory: RUN_DIR is written once this run has a checkpoint
            return
        state = load_state(self._root)
        if state is None:
            raise TrainError(f"--timeline: the run in '{run['run_dir']}' was started without --timeline; its epoch 0 "
                             "is gone, so it cannot get a timeline now. Resume without --timeline, or start a new run "
                             "(another --out) with it.")
        done = state["epochs"][-1]
        if done != epoch or state["config"] != _config(cfg):
            why = (f"it recorded epochs up to {done} but the checkpoint is at epoch {epoch}" if done != epoch
                   else "it was recorded with other options")
            raise TrainError(f"--timeline: the timeline in '{run['run_dir']}' does not continue this run ({why}). "
                             "Resume without --timeline, or start a new run (another --out).")
        self._s = state
        self._load_images(run)
        if epoch < cfg.epochs:
            log.info("timeline: continuing at epoch %d", epoch)

    # -- state ----------------------------------------------------------------------------------
    def _new_state(self, run: dict[str, Any]) -> dict[str, Any]:
        from cnnviz.compare.layersel import default_layers
        from cnnviz.probe import forward_shapes

        model, info, cfg, ds = run["model"], run["info"], run["cfg"], run["test"]
        layers = self.layers or default_layers(model, info)
        order, _ = forward_shapes(model, tuple(info.input_size))
        missing = [l for l in layers if l not in order]
        if missing:
            from cnnviz.errors import LayerError

            raise LayerError(f"--timeline: {', '.join(missing)} not in the model (or never run in its forward pass).")
        weights = _conv_linear_weights(model)
        seg = segments(order, layers, weights)
        cam_idx, cka_idx = pick_images(ds.targets, info.num_classes, self.images_per_class, self.cka_images, cfg.seed)
        # images that cannot be decoded are dropped here, once, so every epoch sees the same set
        cam_idx = [i for i in cam_idx if ds.array(i) is not None]
        cka_idx = [i for i in cka_idx if ds.array(i) is not None]
        nb = max(1, len(cka_idx) // self.batch_size)
        bs = len(cka_idx) // nb
        if bs < 4:
            raise TrainError(f"--timeline needs at least 4 readable test images for CKA; the test split has {len(cka_idx)}.")
        cka_idx = cka_idx[: nb * bs]
        return {
            "version": STATE_VERSION, "config": _config(cfg), "layers": list(layers), "segments": seg,
            "cam_indices": cam_idx, "cka_indices": cka_idx, "cka_batch": bs, "method": self.method,
            "init_weights": {n: weights[n].detach().to("cpu").float().clone() for l in layers for n in seg[l]},
            "epochs": [], "grams": [], "drift": [], "probs": [], "fresh": True,
        }

    def _load_images(self, run: dict[str, Any]) -> None:
        """The fixed images as the model's input ``(N, C, H, W)`` (CPU; moved per batch)."""
        import torch

        from cnnviz.transforms import eval_transform

        ds, tf = run["test"], eval_transform(run["info"])
        s = self._s
        assert s is not None
        s["_cam_x"] = torch.stack([tf(ds.array(i)) for i in s["cam_indices"]]) if s["cam_indices"] else None
        s["_cka_x"] = torch.stack([tf(ds.array(i)) for i in s["cka_indices"]])

    # -- one record -------------------------------------------------------------------------------
    def _record(self, epoch: int, run: dict[str, Any]) -> None:
        """Grams, drift and CAMs of the model as it is after ``epoch`` epochs (CAM maps held until written)."""
        s = self._s
        assert s is not None
        if "_cka_x" not in s:
            self._load_images(run)
        model = run["model"]
        s["epochs"].append(int(epoch))
        s["grams"].append(self._grams(model, s["_cka_x"], run["device"]))
        cur = _conv_linear_weights(model)
        row = []
        for l in s["layers"]:
            d2 = n2 = 0.0
            for n in s["segments"][l]:
                w0 = s["init_weights"][n].double()
                d2 += float((cur[n].detach().to("cpu").double() - w0).pow(2).sum())
                n2 += float(w0.pow(2).sum())
            row.append((d2 / n2) ** 0.5 if n2 > 0 else None)
        s["drift"].append(row)
        maps, probs = self._cams(model, run) if s["_cam_x"] is not None else (None, [])
        s["probs"].append(probs)
        s.setdefault("_maps", {})[int(epoch)] = maps

    def _grams(self, model: Any, x: Any, device: Any) -> Any:
        """``(L, nb, B, B)`` float64 zero-diagonal Grams of the tracked layers on the fixed CKA batches."""
        import torch

        from cnnviz.compare.cka import gram
        from cnnviz.probe import LayerProbe

        s = self._s
        assert s is not None
        bs, layers = s["cka_batch"], s["layers"]
        out = torch.zeros(len(layers), x.shape[0] // bs, bs, bs, dtype=torch.float64)
        with LayerProbe(model, layers) as probe, torch.no_grad():  # frozen: eval mode, BN/dropout untouched
            for b in range(out.shape[1]):
                probe.run(x[b * bs: (b + 1) * bs].to(device))
                for li, l in enumerate(layers):
                    out[li, b] = gram(probe.activations[l].float())
                probe.clear()
        return out

    def _cams(self, model: Any, run: dict[str, Any]) -> tuple[np.ndarray, list[float]]:
        """Maps ``(N, H, W)`` of the watched images for their true class, and the true class's probability."""
        from cnnviz.explain.methods import Explainer

        s = self._s
        assert s is not None
        ds = run["test"]
        targets = [int(ds.targets[i]) for i in s["cam_indices"]]
        e = Explainer(model, s["method"], info=run["info"])(s["_cam_x"].to(run["device"]), target=targets)
        probs = [float(e.probs[k, t]) for k, t in enumerate(targets)]
        return np.asarray(e.maps, dtype=np.float32), probs

    # -- outputs ----------------------------------------------------------------------------------
    def _write(self, run: dict[str, Any]) -> None:
        """CAM PNGs of the epochs not yet written, ``timeline/state.pt``, the figures, ``timeline.json``, TensorBoard."""
        from cnnviz.atomic import dumps_json, write_text

        s = self._s
        assert s is not None and self._root is not None
        root = self._root
        tdir = root / "timeline"
        if s.pop("fresh", False):
            # this run's first record: what an earlier timeline left here goes (in staging, a stopped or failed
            # rerun's files; without staging, the earlier run's, whose ckpt.pt the trainer replaces as it goes)
            clear_own(tdir)
        for e, maps in sorted(s.pop("_maps", {}).items()):
            self._save_cams(tdir, e, maps, run["info"])
        complete = s["epochs"][-1] == run["cfg"].epochs
        doc = self.document(run, complete)
        save_state(tdir, s)
        # the figures once, at the end (matplotlib costs more than a record); TensorBoard has them live
        doc["figures"] = self._figures(tdir, doc, run) if complete else {}
        write_text(root / "timeline.json", dumps_json(doc, indent=1))
        self._tensorboard(run, doc)

    def finish(self, run: dict[str, Any]) -> None:
        """The run has finished (its ``ckpt.pt`` is in place): a staged timeline replaces the earlier one."""
        run_dir = Path(run["run_dir"])
        if self._root is not None and self._root != run_dir and (self._root / "timeline.json").is_file():
            install(self._root, run_dir)

    def _save_cams(self, tdir: Path, epoch: int, maps: np.ndarray | None, info: Any) -> None:
        if maps is None:
            return
        from cnnviz.render import overlay, save_png
        from cnnviz.transforms import denormalize

        s = self._s
        assert s is not None
        (tdir / "images").mkdir(parents=True, exist_ok=True)
        (tdir / "cams").mkdir(parents=True, exist_ok=True)
        for k, x in enumerate(s["_cam_x"]):
            img = denormalize(x, info.mean, info.std)  # (H, W, 3) uint8: what the model saw
            src = tdir / "images" / f"{k:03d}.png"
            if not src.exists():
                save_png(img, src)
            save_png(overlay(img, maps[k]), tdir / "cams" / f"e{epoch:03d}_{k:03d}.png")

    def document(self, run: dict[str, Any], complete: bool) -> dict[str, Any]:
        """The ``timeline.json`` dict of what is recorded so far."""
        s = self._s
        assert s is not None
        layers, epochs = s["layers"], s["epochs"]
        G = s["grams"]
        to_init = {l: [cka_from_grams(G[e][li], G[0][li]) for e in range(len(epochs))] for li, l in enumerate(layers)}
        to_final = {l: ([cka_from_grams(G[e][li], G[-1][li]) for e in range(len(epochs))] if complete else [None] * len(epochs))
                    for li, l in enumerate(layers)}
        drift = {l: [row[li] for row in s["drift"]] for li, l in enumerate(layers)}
        ds, names = run["test"], list(run["info"].class_names)
        images = []
        for k, i in enumerate(s["cam_indices"]):
            t = int(ds.targets[i])
            images.append({"index": int(i), "class": t, "label": names[t] if 0 <= t < len(names) else str(t),
                           "src": f"timeline/images/{k:03d}.png",
                           "cams": [f"timeline/cams/e{e:03d}_{k:03d}.png" for e in epochs],
                           "prob": [p[k] if k < len(p) else None for p in s["probs"]]})
        return {"epochs": list(epochs), "layers": list(layers), "cka_to_init": to_init, "cka_to_final": to_final,
                "drift": drift, "complete": bool(complete), "images": images, "cka_images": len(s["cka_indices"]),
                "cka_batch": s["cka_batch"], "drift_norm": "relative Frobenius: ||W_e - W_0|| / ||W_0|| over the layer's segment",
                "segments": {l: list(v) for l, v in s["segments"].items()}, "method": s["method"],
                "config": s["config"]}

    def _figures(self, tdir: Path, doc: dict[str, Any], run: dict[str, Any]) -> dict[str, str]:
        from cnnviz.train.timeline_plot import cam_grid, plot_curves

        name = f"{run['info'].arch.split(':')[-1]} {run['cfg'].mode}"
        plot_curves(doc, tdir / "curves.png", name)
        out = {"curves": "timeline/curves.png"}
        if doc["images"]:
            cam_grid(doc, tdir.parent, tdir / "cams.png")
            out["cams"] = "timeline/cams.png"
        return out

    def _tensorboard(self, run: dict[str, Any], doc: dict[str, Any]) -> None:
        """Scalars ``timeline/{cka_to_init,drift,cka_to_final}/LAYER`` and image ``timeline/gradcam`` per epoch."""
        w = run.get("writer")
        s = self._s
        if w is None or s is None:
            return
        last = s.get("tb_last", -1)
        new = [(j, e) for j, e in enumerate(doc["epochs"]) if e > last]
        for l in doc["layers"]:
            for k in ("cka_to_init", "drift"):
                for j, e in new:
                    v = doc[k][l][j]
                    if v is not None and np.isfinite(v):
                        w.add_scalar(f"timeline/{k}/{l}", v, e)
            if doc["complete"]:
                for e, v in zip(doc["epochs"], doc["cka_to_final"][l]):
                    if v is not None and np.isfinite(v):
                        w.add_scalar(f"timeline/cka_to_final/{l}", v, e)
        if doc["images"]:
            from cnnviz.images import load_image
            from cnnviz.render import tile

            root = self._root if self._root is not None else Path(run["run_dir"])
            for j, e in new:
                tiles = [load_image(root / im["cams"][j]) for im in doc["images"]]
                w.add_image("timeline/gradcam", tile(tiles, ncols=min(len(tiles), 10)), e, dataformats="HWC")
        s["tb_last"] = doc["epochs"][-1]
        w.flush()


def cka_from_grams(ga: Any, gb: Any) -> float | None:
    """Minibatch linear CKA from per-batch Grams ``(nb, B, B)`` of the same images: sum of unbiased HSICs,
    normalized (``cnnviz.compare.cka.MinibatchCKA``'s estimator). None where undefined (a constant layer)."""
    from cnnviz.compare.cka import unbiased_hsic

    xy = xx = yy = 0.0
    for a, b in zip(ga, gb):
        xy += unbiased_hsic(a, b)
        xx += unbiased_hsic(a, a)
        yy += unbiased_hsic(b, b)
    den = (max(xx, 0.0) * max(yy, 0.0)) ** 0.5
    v = xy / den if den > 0 else float("nan")
    return float(v) if np.isfinite(v) else None


def _config(cfg: Any) -> dict[str, Any]:
    """The options that define a run (what a resumed timeline must match)."""
    d = cfg.to_dict()
    return {k: d[k] for k in sorted(d) if k not in ("resume", "stop_after", "max_steps", "out", "device", "num_workers")}
