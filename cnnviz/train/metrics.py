"""Classification metrics from a confusion matrix, and the run's two plots.

The confusion matrix is the one statistic reduced across ranks (a sum), so accuracy, per-class
precision/recall/F1 and support are all derived from it and agree exactly between 1 and N processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(targets: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts; row = true class, column = predicted class."""
    idx = np.asarray(targets, dtype=np.int64) * num_classes + np.asarray(preds, dtype=np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def summarize(confusion: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """``accuracy``, ``macro_f1``, ``per_class`` (name -> precision, recall, f1, support), ``confusion``."""
    c = np.asarray(confusion, dtype=np.int64)
    tp = np.diag(c).astype(np.float64)
    support = c.sum(1)
    predicted = c.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    total = int(c.sum())
    per_class = {
        str(name): {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    }
    present = support > 0
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": per_class,
        "confusion": c.tolist(),
        "num_images": total,
    }


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path: str | os.PathLike[str], title: str = "") -> None:
    """Row-normalized confusion matrix with counts (atomic PNG)."""
    from cnnviz.render import new_figure, save_figure

    c = np.asarray(confusion, dtype=np.float64)
    k = len(class_names)
    rows = c / np.maximum(c.sum(1, keepdims=True), 1)
    size = max(4.5, min(14.0, 0.55 * k + 2.5))
    fig = new_figure(size, size * 0.9)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if c[i, j]:
                    ax.text(j, i, f"{int(c[i, j])}", ha="center", va="center", fontsize=7 if k > 12 else 8,
                            color="white" if rows[i, j] > 0.5 else "#222")
        ax.set_xticks(range(k), [str(n)[:14] for n in class_names], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), [str(n)[:14] for n in class_names], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion (rows normalized)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    save_figure(fig, path)


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> None:
    """Loss and accuracy per epoch (train and validation); LP epochs shaded (atomic PNG)."""
    from cnnviz.render import new_figure, save_figure

    fig = new_figure(10, 3.6)
    epochs = [h["epoch"] for h in history]
    for k, (key, label) in enumerate((("loss", "loss"), ("accuracy", "accuracy"))):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label=f"train {label}")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], "s-", label=f"val {label}")
        for h in history:
            if h.get("phase") == "lp":
                ax.axvspan(h["epoch"] - 0.5, h["epoch"] + 0.5, color="#f3e6c4", alpha=0.6, lw=0)
        ax.set_xlabel("epoch (shaded: linear probe)" if any(h.get("phase") == "lp" for h in history) else "epoch")
        ax.set_ylabel(label)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text per-class table (precision, recall, F1, support) plus the overall accuracy."""
    rows = summary["per_class"]
    w = max([len(n) for n in rows] + [5])
    out = [f"{'class':<{w}}  precision  recall     f1  support"]
    for name, r in rows.items():
        out.append(f"{name:<{w}}  {r['precision']:9.3f}  {r['recall']:6.3f}  {r['f1']:5.3f}  {r['support']:7d}")
    out.append(f"{'accuracy':<{w}}  {summary['accuracy']:.4f} on {summary['num_images']} images (macro F1 {summary['macro_f1']:.3f})")
    return "\n".join(out)


def plot_runs(runs: Sequence[tuple[str, dict[str, Any]]], path: str | os.PathLike[str], title: str = "") -> None:
    """Compare runs: validation accuracy and training loss per epoch, one line per ``(label, metrics.json dict)``."""
    from matplotlib.ticker import MaxNLocator

    from cnnviz.render import new_figure, save_figure

    fig = new_figure(10, 3.6)
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for label, m in runs:
        ep = [h["epoch"] for h in m["history"]]
        ax.plot(ep, [100 * h["val_accuracy"] for h in m["history"]], "o-", label=f"{label}: {100 * m['test_accuracy']:.1f}%")
        ax2.plot(ep, [h["train_loss"] for h in m["history"]], "o-", label=label)
    for a, ylabel in ((ax, "test accuracy (%)"), (ax2, "training loss")):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_xlabel("epoch")
        a.set_ylabel(ylabel)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
