"""``train_run``: one training run from a ``TrainConfig`` to a RUN_DIR.

RUN_DIR holds ``ckpt.pt`` (model + info + ``train_state`` for ``--resume``, rewritten atomically after
every epoch), ``metrics.json``, ``confusion.png``, ``curves.png`` and TensorBoard events under
``tb/`` when tensorboard is installed. Under torchrun every rank trains on its shard, statistics are
summed across ranks, and only rank 0 writes.

Memory is bounded by a batch, not by the split (``cnnviz.train.batches``): images stay uint8 at their
own size and each batch is resized on the training device by the model's transform. Linear-probe
epochs without augmentation train the head on backbone features computed once (``cache_features``).
On CUDA: AMP (bf16, else fp16 with a GradScaler), channels_last, pinned memory, non-blocking copies,
optional ``torch.compile``.

Nothing of an earlier run in RUN_DIR is removed or replaced before this run has a result: a bad
option or dataset fails before anything is written (TensorBoard's ``tb/`` is created after the
first good epoch), and while an earlier run's ``ckpt.pt`` is there, this run's epoch checkpoints go
to ``ckpt.partial.pt`` (what ``--resume`` continues from); ``ckpt.pt`` and ``metrics.json`` are
replaced (atomically) only when the run has finished, then the partial file is removed. A diverging
loss (NaN/inf in training or evaluation) is a failed run: ``TrainError``, with the last good
checkpoint kept.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.atomic import dumps_json, write_text
from cnnviz.checkpoint import mean_image_size
from cnnviz.data import LabeledImages, SubsetImages, open_split, permuted_labels
from cnnviz.device import resolve_device
from cnnviz.models import ModelInfo, save_model
from cnnviz.train import distributed as D
from cnnviz.train.batches import Source
from cnnviz.train.config import RECIPE_FIELDS, TrainConfig, TrainError
from cnnviz.train.metrics import plot_confusion, plot_curves, summarize
from cnnviz.train.modes import backbone_features, build_for_mode, freeze_backbone, make_optimizer, make_scheduler, param_groups, set_train_mode, unfreeze
from cnnviz.transforms import eval_transform, train_transform

log = logging.getLogger(__name__)


def make_criterion(cfg: TrainConfig):  # noqa: ANN201 - a loss callable (logits, y) -> scalar
    return nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)


def _bar(it, desc: str, enabled: bool, total: int | None = None):
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, total=total, disable=not enabled, leave=False, file=sys.stderr, dynamic_ncols=True)


# --------------------------------------------------------------------------------------------
# device helpers
# --------------------------------------------------------------------------------------------
@dataclass
class _Accel:
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    scaler: Any

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def finish(self, transform: Any, x: torch.Tensor) -> torch.Tensor:
        """A batch from a ``Source`` -> the model's input on the device: uint8 images are moved (4x fewer
        bytes than float) and resized + normalized there; already finished batches are only moved."""
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = transform.batch(x)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def _accel(cfg: TrainConfig, device: torch.device) -> _Accel:
    cuda = device.type == "cuda"
    dtype = None
    if cuda and cfg.amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16) if cuda else None
    return _Accel(device, dtype, cuda, scaler)


# --------------------------------------------------------------------------------------------
# one epoch, one evaluation
# --------------------------------------------------------------------------------------------
class _Diverged(Exception):
    pass


def _train_epoch(fwd, batches, n_batches: int, opt, sched, crit, acc: _Accel, ctx: D.DistContext,
                 desc: str, progress: bool, per_batch_features: bool, model: nn.Module, epoch: int) -> tuple[float, float]:
    """One pass over ``batches``; returns (mean loss, accuracy) summed over all ranks.

    ``per_batch_features``: LP without a feature cache - each batch goes through the frozen
    backbone first and ``fwd`` (the head) sees ``(B, D)`` features.
    """
    dev = acc.device
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    seen = 0
    bar = _bar(batches, desc, progress and ctx.is_main, total=n_batches)
    for step, (x, y, _) in enumerate(bar):
        if per_batch_features:
            with acc.autocast():
                x = backbone_features(model, x).float()
        with acc.autocast():
            logits = fwd(x)
            loss = crit(logits.float(), y)
        if not torch.isfinite(loss.detach()):
            raise _Diverged(f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}")
        opt.zero_grad(set_to_none=True)
        if acc.scaler is not None and acc.scaler.is_enabled():
            acc.scaler.scale(loss).backward()
            acc.scaler.step(opt)
            acc.scaler.update()
        else:
            loss.backward()
            opt.step()
        if sched is not None:
            sched.step()
        b = y.shape[0]
        loss_sum += loss.detach().double() * b
        correct += (logits.detach().argmax(1) == y).sum()
        seen += b
        if step % 10 == 0 and ctx.is_main and progress:
            bar.set_postfix(loss=f"{loss_sum.item() / max(seen, 1):.3f}", acc=f"{correct.item() / max(seen, 1):.3f}")
    stats = torch.stack([loss_sum, correct.double(), torch.tensor(float(seen), device=dev, dtype=torch.float64)])
    stats = D.all_reduce_sum(stats, ctx)
    n = max(stats[2].item(), 1.0)
    return stats[0].item() / n, stats[1].item() / n


@torch.inference_mode()
def _evaluate(fwd, src: Source, indices: list[int], num_classes: int, acc: _Accel, ctx: D.DistContext,
              progress: bool, desc: str = "eval", features: bool = True) -> tuple[np.ndarray, float]:
    """Confusion matrix ``(K, K)`` and mean loss over ``indices`` (this rank's shard), summed over ranks."""
    conf = torch.zeros(num_classes * num_classes, dtype=torch.long, device=acc.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
    n_b = src.n_batches(len(indices), False)
    for x, y, _ in _bar(src.batches(indices, False, acc, features=features), desc, progress and ctx.is_main, total=n_b):
        with acc.autocast():
            logits = fwd(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        conf += torch.bincount(y * num_classes + logits.argmax(1), minlength=num_classes * num_classes)
    D.all_reduce_sum(conf, ctx)
    D.all_reduce_sum(loss_sum, ctx)
    c = conf.view(num_classes, num_classes).cpu().numpy()
    return c, loss_sum.item() / max(int(c.sum()), 1)


def evaluate_model(model: nn.Module, info: ModelInfo, ds: LabeledImages, batch_size: int = 128,
                   device: str | torch.device = "cpu", progress: bool = False, num_workers: int = 0) -> dict[str, Any]:
    """Accuracy, per-class metrics and confusion of ``model`` on ``ds`` (images resized whole to its input size).

    Returns ``summarize()``'s dict (``accuracy``, ``macro_f1``, ``per_class``, ``confusion``,
    ``num_images``) plus ``loss``. The model is left in the mode it came in.
    """
    from cnnviz.errors import DataError

    if ds.num_classes != info.num_classes:
        raise DataError(f"the model has {info.num_classes} classes but the data has {ds.num_classes} "
                        f"({', '.join(ds.class_names[:5])}...): evaluate a model trained on this dataset.")
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    acc = _Accel(dev, None, False, None)
    src = Source(ds, eval_transform(info), batch_size, num_workers)
    src.hold(dev)
    was_training = model.training
    model.eval()
    try:
        conf, loss = _evaluate(model, src, list(range(len(ds))), info.num_classes, acc, D.DistContext(device=dev), progress)
    finally:
        model.train(was_training)
    out = summarize(conf, info.class_names)
    out["loss"] = loss
    out["skipped_images"] = ds.header_skipped + len(src.bad)
    return out


# --------------------------------------------------------------------------------------------
# checkpoints and resume
# --------------------------------------------------------------------------------------------
def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], ctx: D.DistContext, seed: int, epoch: int) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if ctx.rank:  # only rank 0's stream was saved; other ranks get their own, reproducibly
        torch.manual_seed(seed + 1000 * ctx.rank + epoch)


PARTIAL_CKPT = "ckpt.partial.pt"  # this run's epoch checkpoints while an earlier run's ckpt.pt is kept


def _load_resume(run_dir: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    from cnnviz.checkpoint import load_checkpoint

    path = run_dir / PARTIAL_CKPT if (run_dir / PARTIAL_CKPT).is_file() else run_dir / "ckpt.pt"
    if not path.is_file():
        log.warning("--resume: no checkpoint in %s yet; starting a fresh run", run_dir)
        return None
    data = load_checkpoint(path)
    ts = data.get("train_state")
    if not isinstance(ts, dict):
        raise TrainError(f"'{path}' has no training state to resume (it was not written by `cnnviz train`).")
    saved = ts.get("recipe", {})
    diff = [f"{k}={saved.get(k)!r} (now {getattr(cfg, k)!r})" for k in RECIPE_FIELDS if k in saved and saved[k] != getattr(cfg, k)]
    if diff:
        raise TrainError(f"--resume: the run in '{run_dir}' was started with {'; '.join(diff[:4])}. "
                         "Pass the same options, or use another --out for a new run.")
    return data


def _check_same_data(saved: dict[str, Any], run_dir: Path, classes: list[str], n_train: int) -> None:
    """--resume on data that changed since the run started (a class folder added, files removed...)."""
    was = [str(c) for c in saved.get("class_names") or []]
    if was and was != classes:
        added, gone = [c for c in classes if c not in was], [c for c in was if c not in classes]
        what = "; ".join(x for x in (f"added {', '.join(added[:5])}" if added else "",
                                     f"removed {', '.join(gone[:5])}" if gone else "") if x) or "the order changed"
        raise TrainError(f"--resume: the data's classes changed since the run in '{run_dir}' started ({what}); "
                         "the checkpoint cannot continue on them. Use another --out for a new run.")
    n_was = (saved.get("train_state") or {}).get("num_train_images")
    if isinstance(n_was, int) and n_was != n_train:
        raise TrainError(f"--resume: the training split had {n_was} images when the run in '{run_dir}' started and has "
                         f"{n_train} now. Use another --out for a new run.")


def _save(run_dir: Path, model: nn.Module, info: ModelInfo, train_state: dict[str, Any], staged: bool = False) -> None:
    """Write the checkpoint atomically: ``ckpt.partial.pt`` while ``staged`` (an earlier run's ``ckpt.pt`` is kept)."""
    save_model(run_dir / (PARTIAL_CKPT if staged else "ckpt.pt"), model, info, train_state=train_state)


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
def default_run_dir(cfg: TrainConfig) -> Path:
    from cnnviz.data import canonical_name

    arch = cfg.model.split(":")[-1].replace("/", "_").removesuffix(".pt")
    data = Path(canonical_name(cfg.data)).name or "data"
    return Path("runs") / f"{data}-{Path(arch).name}-{cfg.mode}"


def train_run(cfg: TrainConfig, progress: bool = True, on_epoch: Any = None) -> dict[str, Any]:
    """Train per ``cfg``, write RUN_DIR (``cfg.out``), return the ``metrics.json`` dict.

    ``on_epoch(epoch, run)`` (e.g. ``cnnviz.train.timeline.Timeline``), on rank 0 only: called once
    before the first epoch this process trains (``epoch`` = epochs already done: 0, or where a resume
    starts) and after every epoch's checkpoint; ``run`` is a dict (model, info, cfg, run_dir, test,
    device, writer, staged: whether this run's checkpoints go to ``ckpt.partial.pt``). It must leave the model,
    its train/eval flags and the RNG streams as it found them. Its ``finish(run)``, if it has one, is called once
    the run has finished and ``ckpt.pt`` is in place.

    Raises ``TrainError``/``DataError``/... (``CnnvizError``) for bad input, a diverged loss (the
    last good checkpoint stays in place) or a resume that does not match the run on disk.
    """
    cfg.validate()
    run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainError(f"--out '{run_dir}' is a file; RUN_DIR must be a folder (new or from an earlier `cnnviz train`).")
    torch.manual_seed(cfg.seed)
    ctx = D.setup(resolve_device(cfg.device))
    try:
        return _run(cfg, ctx, run_dir, progress, on_epoch)
    finally:
        D.cleanup(ctx)


@dataclass
class Data:
    """What a run reads: the splits and their sources (``eval`` is this rank's shard of the test split)."""

    train: LabeledImages
    test: LabeledImages
    tr: Source
    ev: Source


def open_data(cfg: TrainConfig, info: ModelInfo, ctx: D.DistContext, train_ds: LabeledImages, eval_ds: LabeledImages) -> Data:
    """The run's sources: in-memory datasets held as uint8 (no augmentation), others decoded per batch."""
    etf = eval_transform(info)
    ttf = etf if cfg.augment == "none" else train_transform(info, cfg.augment)
    # --batch-size is the global batch: each of N processes takes batch/N, so N processes follow
    # the same optimization path (steps, LR schedule) as one.
    if cfg.batch_size < ctx.world_size:
        raise TrainError(f"--batch-size {cfg.batch_size} is smaller than the {ctx.world_size} processes; it is the global batch.")
    shard = SubsetImages(eval_ds, D.shard(len(eval_ds), ctx)) if ctx.distributed else eval_ds
    # evaluation batches are as large as training ones: --batch-size bounds the memory of both
    tr = Source(train_ds, ttf, cfg.batch_size // ctx.world_size, cfg.num_workers)
    ev = Source(shard, etf, cfg.batch_size // ctx.world_size, cfg.num_workers)
    if cfg.preload:
        if cfg.augment == "none":  # augmentation runs per sample in the loader
            tr.hold(ctx.device)
        ev.hold(ctx.device)
    return Data(train_ds, eval_ds, tr, ev)


def _open_splits(cfg: TrainConfig) -> tuple[LabeledImages, LabeledImages]:
    train_ds = open_split(cfg.data, "train", data_root=cfg.data_root, limit=cfg.limit, seed=cfg.seed)
    eval_ds = open_split(cfg.data, "test", data_root=cfg.data_root, limit=cfg.eval_limit, seed=cfg.seed)
    if train_ds.class_names != eval_ds.class_names:
        raise TrainError(f"train and test splits of {cfg.data!r} have different classes.")
    if cfg.random_labels:
        train_ds = permuted_labels(train_ds, cfg.seed)
    return train_ds, eval_ds


def _run(cfg: TrainConfig, ctx: D.DistContext, run_dir: Path, progress: bool, on_epoch: Any = None) -> dict[str, Any]:
    dev = ctx.device
    saved = _load_resume(run_dir, cfg) if cfg.resume else None
    train_ds, eval_ds = _open_splits(cfg)
    if saved is not None:
        _check_same_data(saved, run_dir, train_ds.class_names, len(train_ds))
    model, info = build_for_mode(cfg, train_ds.class_names, train_ds.channels, train_ds.image_size)
    info.config = {k: v for k, v in cfg.to_dict().items() if k not in ("resume", "stop_after", "max_steps")}
    # class images start from the data's mean image (its mean colour for older readers): one pass over 512 images
    info.mean_image = train_ds.mean_image(info.in_chans, mean_image_size(info.input_size))
    info.pixel_mean = tuple(float(v) for v in info.mean_image.mean(axis=(1, 2)))
    if saved is not None:
        try:
            model.load_state_dict(saved["state_dict"])
        except RuntimeError as e:
            raise TrainError(f"--resume: the checkpoint in '{run_dir}' does not fit this model ({str(e).splitlines()[0][:160]}). "
                             "Use another --out for a new run.") from None
    acc = _accel(cfg, dev)
    model.to(dev)
    if acc.channels_last:
        model.to(memory_format=torch.channels_last)
    data = open_data(cfg, info, ctx, train_ds, eval_ds)
    tr, ev = data.tr, data.ev
    K = info.num_classes
    eval_idx = list(range(len(ev.ds)))

    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed)
    per_rank = len(sampler)
    drop_last = per_rank >= tr.batch_size
    steps = tr.n_batches(per_rank, drop_last)
    if cfg.max_steps is not None:
        steps = min(steps, cfg.max_steps)
    crit = make_criterion(cfg)

    history: list[dict[str, Any]] = []
    start_epoch, prior_seconds = 0, 0.0
    ts = saved["train_state"] if saved is not None else None
    if ts is not None:
        history, start_epoch, prior_seconds = list(ts["history"]), int(ts["epoch"]), float(ts.get("train_seconds", 0.0))
        _set_rng_state(ts["rng"], ctx, cfg.seed, start_epoch)
        if ctx.is_main:
            log.info("resuming %s at epoch %d of %d", run_dir, start_epoch + 1, cfg.epochs)
    elif ctx.rank:
        torch.manual_seed(cfg.seed + 1000 * ctx.rank)

    writer = None  # created after the first good epoch: a run that fails at once leaves RUN_DIR as it was
    t0 = time.perf_counter()
    phase, opt, sched, fwd, eval_fwd, trained = None, None, None, None, None, None
    last_ts: dict[str, Any] | None = ts
    last_eval: tuple[np.ndarray, float] | None = None
    recipe = {k: getattr(cfg, k) for k in RECIPE_FIELDS}
    wrote_ckpt = saved is not None  # whether this run has a checkpoint on disk
    # an earlier run's ckpt.pt (and metrics.json) stay until this run has finished
    staged = (run_dir / PARTIAL_CKPT).is_file() if saved is not None else (run_dir / "ckpt.pt").is_file()
    hook = dict(model=model, info=info, cfg=cfg, run_dir=run_dir, test=eval_ds, device=dev, writer=writer, staged=staged)
    if on_epoch is not None and ctx.is_main:
        on_epoch(start_epoch, hook)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            e0 = time.perf_counter()
            if cfg.phase(epoch) != phase:
                phase = cfg.phase(epoch)
                opt, sched, fwd, eval_fwd, trained = _enter_phase(phase, cfg, model, tr, ev, acc, ctx, steps, progress)
                if ts is not None and ts.get("phase") == phase and epoch == start_epoch and ts.get("optimizer"):
                    opt.load_state_dict(ts["optimizer"])
                    if sched is not None and ts.get("scheduler"):
                        sched.load_state_dict(ts["scheduler"])
                    if acc.scaler is not None and ts.get("scaler"):
                        acc.scaler.load_state_dict(ts["scaler"])
            sampler.set_epoch(epoch)
            order = list(sampler)[: steps * tr.batch_size] if cfg.max_steps is not None else list(sampler)
            if phase == "lp":
                model.eval()
            else:
                set_train_mode(model, cfg.freeze_bn)
            lr = max(g["lr"] for g in opt.param_groups)
            desc = f"epoch {epoch + 1}/{cfg.epochs} {'LP' if phase == 'lp' else cfg.mode}"
            t_train = time.perf_counter()
            try:
                tl, ta = _train_epoch(fwd, tr.batches(order, drop_last, acc), steps, opt, sched, crit, acc, ctx, desc,
                                      progress, phase == "lp" and tr.feats is None, model, epoch)
                t_train = time.perf_counter() - t_train
                model.eval()
                last_eval = _evaluate(eval_fwd, ev, eval_idx, K, acc, ctx, progress, "eval")
                if not math.isfinite(last_eval[1]):
                    raise _Diverged(f"the evaluation loss became {last_eval[1]} after epoch {epoch + 1}")
            except _Diverged as e:
                raise TrainError(f"training diverged: {e} (lr {lr:g}); {_kept(run_dir, wrote_ckpt, history, start_epoch, staged)}. "
                                 "Lower --lr or use --optimizer adamw.") from None
            va = float(np.trace(last_eval[0]) / max(last_eval[0].sum(), 1))
            history.append({"epoch": epoch + 1, "phase": phase, "train_loss": tl, "train_accuracy": ta,
                            "val_loss": last_eval[1], "val_accuracy": va, "lr": lr, "seconds": time.perf_counter() - e0,
                            "train_pass_seconds": t_train})
            if ctx.is_main:
                log.info("epoch %d: train loss %.4f acc %.4f, val loss %.4f acc %.4f", epoch + 1, tl, ta, last_eval[1], va)
                writer = writer if writer is not None else _tb_writer(run_dir, cfg)
                if writer is not None:
                    for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
                        writer.add_scalar(k.replace("_", "/", 1), history[-1][k], epoch + 1)
                    writer.flush()
                info.metrics = {"val_accuracy": va, "epoch": epoch + 1}
                last_ts = {
                    "epoch": epoch + 1, "phase": phase, "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "scaler": acc.scaler.state_dict() if acc.scaler is not None and acc.scaler.is_enabled() else None,
                    "rng": _rng_state(), "history": history, "recipe": recipe, "num_train_images": len(train_ds),
                    "train_seconds": prior_seconds + time.perf_counter() - t0,
                }
                _save(run_dir, model, info, last_ts, staged)
                wrote_ckpt = True
                if on_epoch is not None:
                    hook["writer"] = writer  # TensorBoard starts after the first good epoch (epoch 0 is sent then)
                    on_epoch(epoch + 1, hook)
            D.barrier(ctx)
            if cfg.stop_after is not None and epoch + 1 >= cfg.stop_after and epoch + 1 < cfg.epochs:
                return {"stopped_after": epoch + 1, "history": history}
        train_seconds = prior_seconds + time.perf_counter() - t0
        if last_eval is None:  # resumed a finished run: evaluate what is there
            model.eval()
            last_eval = _evaluate(model, ev, eval_idx, K, acc, ctx, progress, "eval", features=False)
        skipped = train_ds.header_skipped + eval_ds.header_skipped + len(tr.bad) + len(ev.bad)
        extra = {"trainable": trained, "skipped": skipped, "held_data_bytes": tr.held_bytes + ev.held_bytes, "staged": staged}
        metrics = _finish(cfg, ctx, run_dir, model, info, last_eval, history, train_seconds, train_ds, eval_ds, writer, last_ts, extra)
        if on_epoch is not None and ctx.is_main and hasattr(on_epoch, "finish"):
            on_epoch.finish(hook)  # e.g. a staged timeline replaces the earlier one, now that ckpt.pt is this run's
        return metrics
    finally:
        if writer is not None:
            writer.close()


def _kept(run_dir: Path, wrote_ckpt: bool, history: list[dict[str, Any]], start_epoch: int, staged: bool = False) -> str:
    where = run_dir / (PARTIAL_CKPT if staged else "ckpt.pt")
    earlier = " (the earlier run's ckpt.pt and metrics.json are untouched)" if staged else ""
    if wrote_ckpt and history:
        return f"the last good checkpoint (epoch {history[-1]['epoch']}) is kept in '{where}'{earlier}"
    if wrote_ckpt:
        return f"the last good checkpoint (epoch {start_epoch}) is kept in '{where}'{earlier}"
    return f"no checkpoint of this run was written ('{run_dir}' is as it was)"


def _enter_phase(phase: str, cfg: TrainConfig, model: nn.Module, tr: Source, ev: Source, acc: _Accel,
                 ctx: D.DistContext, steps: int, progress: bool):
    """Optimizer, scheduler, forward functions and trained-stage summary for a phase (``lp`` or ``train``)."""
    n_epochs = cfg.lp_epoch_count if phase == "lp" else cfg.epochs - cfg.lp_epoch_count
    if phase == "lp":
        head = freeze_backbone(model)
        if cfg.cache_features and cfg.augment == "none":
            _cache_features(model, tr, ev, acc, ctx, progress)
        groups = [{"params": [p for p in head.parameters()], "lr": cfg.learning_rate("lp"), "weight_decay": cfg.weight_decay}]
        fwd = D.wrap_ddp(head, ctx)  # on features: cached, or computed per batch in _train_epoch
        eval_fwd = head if ev.feats is not None else model
        stages = ["head"]
    else:
        tr.feats = ev.feats = None  # the backbone changes from here on
        stages = unfreeze(model, cfg.freeze_bn, cfg.unfreeze)
        if cfg.grad_checkpointing:
            if hasattr(model, "set_grad_checkpointing"):
                model.set_grad_checkpointing(True)
            else:
                log.warning("--grad-checkpointing: %s does not support it (timm models do); ignored", type(model).__name__)
        scale = cfg.backbone_lr_scale if cfg.pretrained else 1.0
        groups = param_groups(model, cfg.learning_rate("train"), scale, cfg.weight_decay)
        fwd = D.wrap_ddp(model, ctx)
        if cfg.compile and acc.device.type == "cuda":
            fwd = torch.compile(fwd)
        elif cfg.compile:
            log.warning("--compile is used on CUDA only; ignored on %s", acc.device)
        eval_fwd = model
    opt = make_optimizer(cfg, groups)
    sched = make_scheduler(cfg, opt, steps * n_epochs)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    trained = {"phase": phase, "unfreeze": cfg.unfreeze, "stages": stages, "trainable_params": int(n_train),
               "total_params": int(sum(p.numel() for p in model.parameters()))}
    return opt, sched, fwd, eval_fwd, trained


@torch.inference_mode()
def _cache_features(model: nn.Module, tr: Source, ev: Source, acc: _Accel, ctx: D.DistContext, progress: bool) -> None:
    """Backbone features of every training image and of this rank's eval shard, once (LP): ``(N, D)``
    on the device, rows in dataset order (an undecodable image's row stays zero and is never read)."""
    for src, name in ((tr, "train"), (ev, "eval")):
        n = len(src.ds)
        feats: torch.Tensor | None = None
        for x, _, idx in _bar(src.batches(list(range(n)), False, acc), f"features {name}", progress and ctx.is_main,
                              total=src.n_batches(n, False)):
            with acc.autocast():
                f = backbone_features(model, x).float()
            if feats is None:
                feats = torch.zeros(n, f.shape[1], device=f.device)
            feats[idx.to(f.device)] = f
        src.feats = feats


def _tb_writer(run_dir: Path, cfg: TrainConfig):  # noqa: ANN202
    if not cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed
        return None
    return SummaryWriter(log_dir=str(run_dir / "tb"))


def _finish(cfg, ctx, run_dir, model, info, last_eval, history, train_seconds, train_ds, eval_ds, writer, ts, extra) -> dict[str, Any]:
    conf, loss = last_eval
    summary = summarize(conf, info.class_names)
    metrics = {
        "test_accuracy": summary["accuracy"], "test_loss": loss, "macro_f1": summary["macro_f1"],
        "per_class": summary["per_class"], "confusion": summary["confusion"], "class_names": list(info.class_names),
        "num_train_images": len(train_ds), "num_test_images": summary["num_images"],
        "skipped_images": extra["skipped"], "train_seconds": round(train_seconds, 3), "history": history,
        "config": info.config, "world_size": ctx.world_size, "device": str(ctx.device), "model": info.arch, "mode": cfg.mode,
        "input_size": list(info.input_size), "trainable": extra["trainable"], "random_labels": cfg.random_labels,
        "probe_layer": cfg.probe_layer, "data_source": getattr(train_ds, "source", ""),
        "held_data_bytes": extra["held_data_bytes"],
    }
    if not ctx.is_main:
        return metrics
    info.metrics = {k: metrics[k] for k in ("test_accuracy", "macro_f1", "per_class", "train_seconds", "num_test_images",
                                            "world_size", "trainable", "random_labels")}
    info.metrics["history"] = history
    if ts is not None:
        ts = {**ts, "train_seconds": train_seconds}
    text = dumps_json(metrics, indent=2)  # before anything is written
    _save(run_dir, model, info, ts, extra.get("staged", False))
    name = f"{info.arch.split(':')[-1]} {cfg.mode} on {Path(str(cfg.data)).name}"
    plot_confusion(conf, info.class_names, run_dir / "confusion.png", f"{name}: accuracy {summary['accuracy']:.3f}")
    plot_curves(history, run_dir / "curves.png", name)
    if writer is not None:
        writer.add_scalar("test/accuracy", summary["accuracy"], len(history))
    write_text(run_dir / "metrics.json", text)
    if extra.get("staged"):  # the earlier run's ckpt.pt goes last, once this run's metrics are written
        os.replace(run_dir / PARTIAL_CKPT, run_dir / "ckpt.pt")
    return metrics
