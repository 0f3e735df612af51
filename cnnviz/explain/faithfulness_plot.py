"""Pictures and tables for ``cnnviz faithfulness``: maps with their scores, and the curves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def markdown_table(rows: Sequence[dict]) -> str:
    """Ranked method rows (``rank_methods`` output) as a Markdown table."""
    head = "| rank | method | deletion AUC (lower better) | insertion AUC (higher better) | ROAD (higher better) | seconds |\n|---:|---|---:|---:|---:|---:|"
    lines = [head]
    for r in rows:
        road = "-" if r.get("road") is None else f"{r['road']:.3f}"
        lines.append(f"| {r['rank']} | {r['method']} | {r['deletion_auc']:.3f} | {r['insertion_auc']:.3f} | {road} | {r['seconds']:.2f} |")
    return "\n".join(lines)


def faithfulness_figure(img: np.ndarray, results: Sequence, class_name: str) -> Any:
    """One image: the photo and each method's overlay (titled with its scores), then the
    deletion and insertion curves of all methods, as a matplotlib figure (save it with
    ``cnnviz.render.save_figure``). ``results``: ``MethodScores`` for one image."""
    from cnnviz.render import new_figure, overlay

    n = len(results)
    cols = n + 1
    top = 2.1 * img.shape[0] / img.shape[1] + 0.5  # the photo row keeps the image's aspect (+ titles)
    fig = new_figure(2.1 * cols, top + 2.3)
    gs = fig.add_gridspec(2, max(cols, 2), height_ratios=[top, 2.3], hspace=0.3, wspace=0.08)
    ax = fig.add_subplot(gs[0, 0])
    ax.imshow(img)
    ax.set_title(f"{class_name[:28]}", fontsize=8)
    ax.set_axis_off()
    for k, r in enumerate(results):
        ax = fig.add_subplot(gs[0, k + 1])
        ax.imshow(overlay(img, r.maps[0]))
        s = r.scores
        road = "" if s.road is None else f"\nROAD {float(s.road[0]):.3f}"
        ax.set_title(f"{r.method}\ndel {float(s.deletion_auc[0]):.3f} ins {float(s.insertion_auc[0]):.3f}{road}", fontsize=7)
        ax.set_axis_off()
    half = max(1, cols // 2)
    for j, (kind, title) in enumerate((("deletion_curve", "deletion (lower = faithful)"), ("insertion_curve", "insertion (higher = faithful)"))):
        ax = fig.add_subplot(gs[1, j * half : (j + 1) * half if j == 0 else max(cols, 2)])
        for r in results:
            y = getattr(r.scores, kind)[0]
            ax.plot(np.linspace(0, 1, len(y)), y, label=r.method, lw=1.2)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("fraction of pixels", fontsize=7)
        ax.set_ylabel("class probability", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_ylim(0, 1.02)
        if j == 1:
            ax.legend(fontsize=6, loc="lower right")
    return fig
