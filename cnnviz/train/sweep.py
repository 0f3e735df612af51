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


def plot_sweep(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Left: test accuracy vs learning rate per (model, mode). Right: validation accuracy per epoch."""
    from cnnviz.render import new_figure, save_figure

    fig = new_figure(11, 4)
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["mode"]), []).append(r)
    for (model, mode), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["lr"])
        label = f"{model.split(':')[-1]} {mode}"
        ax.plot([r["lr"] for r in rs], [100 * r["test_accuracy"] for r in rs], "o-", label=label)
        for r in rs:
            ax2.plot([h["epoch"] for h in r["history"]], [100 * h["val_accuracy"] for h in r["history"]], ".-",
                     label=f"{label} lr {r['lr']:g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    from matplotlib.ticker import MaxNLocator

    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation accuracy (%)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7)
    fig.suptitle("learning-rate sweep", fontsize=10)
    save_figure(fig, path)
