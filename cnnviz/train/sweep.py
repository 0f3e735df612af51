"""The learning-rate study: one run per (model, mode, learning rate), then a table and a plot.

Each setting trains into its own folder under the sweep's output; a setting whose ``metrics.json``
already exists with the same recipe is reused, so an interrupted sweep continues where it stopped.
For ``lp`` the swept rate is the probe's (``lp_lr``); for the other modes it is ``lr``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnviz.atomic import dumps_json, write_text
from cnnviz.train.config import RECIPE_FIELDS, TrainConfig

log = logging.getLogger(__name__)


def setting_name(model: str, mode: str, lr: float) -> str:
    """Folder name of one setting, e.g. ``efficientnet_lite0-lpft-lr0.001``, ``simplecnn-width8-scratch-lr0.01``."""
    arch = Path(model).stem if model.endswith((".pt", ".pth", ".ckpt")) else model.removeprefix("timm:")
    arch = arch.replace(":", "-").replace(",", "-").replace("=", "").replace("/", "_")
    return f"{arch}-{mode}-lr{lr:g}"


def sweep_configs(base: TrainConfig, lrs: Sequence[float], modes: Sequence[str] | None = None,
                  models: Sequence[str] | None = None, out: str | Path = "sweep") -> list[TrainConfig]:
    """One ``TrainConfig`` per (model, mode, lr), each with its own ``out`` folder."""
    cfgs = []
    for model in models or [base.model]:
        for mode in modes or [base.mode]:
            for lr in lrs:
                change: dict[str, Any] = {"model": model, "mode": mode, "out": str(Path(out) / setting_name(model, mode, lr)), "resume": False}
                change["lp_lr" if mode == "lp" else "lr"] = float(lr)
                cfgs.append(dataclasses.replace(base, **change).validate())
    return cfgs


def _done(cfg: TrainConfig) -> dict[str, Any] | None:
    p = Path(cfg.out or "") / "metrics.json"
    if not p.is_file():
        return None
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    same = all(m.get("config", {}).get(k) == getattr(cfg, k) for k in RECIPE_FIELDS)
    return m if same else None


def run_sweep(base: TrainConfig, lrs: Sequence[float], modes: Sequence[str] | None = None, models: Sequence[str] | None = None,
              out: str | Path = "sweep", progress: bool = True,
              on_result: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Train every setting (reusing finished ones), write ``summary.json``, ``summary.md``, ``sweep.png``.

    Returns one row per setting: model, mode, lr, test_accuracy, best_val_accuracy, train_seconds,
    run_dir, history.
    """
    from cnnviz.train.loop import train_run

    out = Path(out)
    rows = []
    for cfg in sweep_configs(base, lrs, modes, models, out):
        m = _done(cfg)
        if m is None:
            m = train_run(cfg, progress=progress)
        else:
            log.info("reusing finished run %s", cfg.out)
        if "test_accuracy" not in m:  # a stop_after run: nothing to summarize
            continue
        row = {"model": cfg.model, "mode": cfg.mode, "lr": cfg.lp_lr if cfg.mode == "lp" else cfg.lr,
               "test_accuracy": m["test_accuracy"], "best_val_accuracy": max(h["val_accuracy"] for h in m["history"]),
               "train_seconds": m["train_seconds"], "run_dir": cfg.out, "history": m["history"]}
        rows.append(row)
        if on_result is not None:
            on_result(row)
    write_summary(rows, out)
    return rows


def summary_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table, best test accuracy first marked in bold."""
    best = max((r["test_accuracy"] for r in rows), default=math.nan)
    lines = ["| model | mode | lr | test accuracy | best val accuracy | train s |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        acc = f"{100 * r['test_accuracy']:.2f}%"
        acc = f"**{acc}**" if r["test_accuracy"] == best else acc
        lines.append(f"| {r['model']} | {r['mode']} | {r['lr']:g} | {acc} | {100 * r['best_val_accuracy']:.2f}% | {r['train_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def write_summary(rows: Sequence[dict[str, Any]], out: str | Path) -> None:
    out = Path(out)
    write_text(out / "summary.json", dumps_json(list(rows), indent=2))
    write_text(out / "summary.md", summary_markdown(rows))
    if rows:
        plot_sweep(rows, out / "sweep.png")


def lr_label(lr: float) -> str:
    """A short tick label: ``3e-4``, ``1e-3``, ``2.5e-5``, ``3e-2``; from 0.1 up plain (``0.1``, ``0.3``, ``1``)."""
    if not math.isfinite(lr) or lr <= 0:
        return f"{lr:g}"
    if lr >= 0.1:
        return f"{lr:.3g}"
    e = math.floor(math.log10(lr))
    m = float(f"{lr / 10 ** e:.3g}")
    if m >= 10:  # 9.999e-4 rounds up to the next power of ten
        m, e = m / 10, e + 1
    return f"{m:g}e{e}"


GAP_PX = 3  # the least room between two tick labels


def _boxes(labels: Sequence[Any], renderer: Any) -> list[Any]:
    return [t.get_window_extent(renderer) for t in labels]


def _overlapping(labels: Sequence[Any], renderer: Any) -> bool:
    """Whether two neighbouring (drawn, visible) tick labels overlap; ``labels`` in axis order."""
    boxes = _boxes([t for t in labels if t.get_visible() and t.get_text()], renderer)
    return any(a.x1 + GAP_PX > b.x0 for a, b in zip(boxes, boxes[1:]))


def _thin(labels: Sequence[Any], renderer: Any) -> None:
    """Hide labels until none overlap: keep each one that clears the last kept, left to right, and the
    last one too (the end of the range), hiding its kept neighbours where they collide."""
    boxes = _boxes(labels, renderer)
    keep: list[int] = []
    for i, b in enumerate(boxes):
        if not keep or boxes[keep[-1]].x1 + GAP_PX <= b.x0:
            keep.append(i)
    last = len(boxes) - 1
    if keep and keep[-1] != last:
        while keep and boxes[keep[-1]].x1 + GAP_PX > boxes[last].x0:
            keep.pop()
        keep.append(last)
    for i, t in enumerate(labels):
        t.set_visible(i in keep)


def _lr_ticks(ax: Any, lrs: Sequence[float]) -> None:
    """A log x axis whose only ticks are the swept rates, labelled short (``3e-4``); the labels turn 45
    degrees when they would touch, and where even that is too crowded some are left out (ticks stay)."""
    from matplotlib.ticker import NullLocator

    lrs = sorted(set(lrs))
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(NullLocator())  # log axes label minor ticks (3x10^-4, 4x10^-4...): the overlap
    ax.set_xticks(lrs, [lr_label(v) for v in lrs])
    if len(lrs) > 1:
        lo, hi = math.log10(lrs[0]), math.log10(lrs[-1])
        pad = 0.06 * (hi - lo)
        ax.set_xlim(10 ** (lo - pad), 10 ** (hi + pad))
    canvas = ax.figure.canvas
    canvas.draw()
    renderer = canvas.get_renderer()
    if not _overlapping(ax.get_xticklabels(), renderer):
        return
    for t in ax.get_xticklabels():
        t.set_rotation(45)
        t.set_rotation_mode("anchor")
        t.set_horizontalalignment("right")
    canvas.draw()
    if _overlapping(ax.get_xticklabels(), renderer):
        _thin(ax.get_xticklabels(), renderer)


def _model_label(model: str) -> str:
    """``timm:resnet18`` -> ``resnet18``; ``simplecnn:width=8`` stays whole (its options are what tells runs apart)."""
    return model.split(":", 1)[1] if model.startswith(("timm:", "torchvision:")) else model


def sweep_figure(rows: Sequence[dict[str, Any]]) -> Any:
    """The ``sweep.png`` figure. Left: test accuracy vs learning rate per (model, mode). Right: validation
    accuracy per epoch, one colour per rate (the same across models and modes), one line style per (model, mode)."""
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    from cnnviz.render import new_figure

    fig = new_figure(11, 4)
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["mode"]), []).append(r)
    lrs = sorted({r["lr"] for r in rows})
    cmap = colormaps["viridis"]
    color = {lr: cmap(0.85 * i / max(len(lrs) - 1, 1)) for i, lr in enumerate(lrs)}  # 0.85: no pale yellow
    styles = ["-", "--", ":", "-."]
    n_lines = 0
    for g, ((model, mode), rs) in enumerate(groups.items()):
        rs = sorted(rs, key=lambda r: r["lr"])
        label = f"{_model_label(model)} {mode}"
        ax.plot([r["lr"] for r in rs], [100 * r["test_accuracy"] for r in rs], "o-", label=label)
        for r in rs:
            ax2.plot([h["epoch"] for h in r["history"]], [100 * h["val_accuracy"] for h in r["history"]], marker=".",
                     linestyle=styles[g % len(styles)], color=color[r["lr"]], label=f"{label} lr {lr_label(r['lr'])}")
            n_lines += 1
    ax.set_xlabel("learning rate")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation accuracy (%)")
    ax2.grid(alpha=0.3)
    if n_lines > 8:  # a long legend would hide the curves: beside the plot
        ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    else:
        ax2.legend(fontsize=7)
    fig.suptitle("learning-rate sweep", fontsize=10)
    _lr_ticks(ax, lrs)  # last: it measures the drawn labels
    return fig


def plot_sweep(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Write ``sweep_figure(rows)`` to ``path``."""
    from cnnviz.render import save_figure

    save_figure(sweep_figure(rows), path)
