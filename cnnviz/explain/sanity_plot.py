"""Pictures and tables of a sanity check: the paper's cascade figure, the similarity curves, a Markdown table.

``cascade_figure``: rows = methods, columns = the trained model's map, then the map after each cascade
step (Adebayo et al.'s Figure 2). CAMs are drawn as overlays on the photo, pixel attributions as
grey-scale absolute-value maps (the paper's look). ``curves_figure``: mean rank correlation and SSIM
per step (their Figure 4). No torch here: results come in as arrays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _tile(img: np.ndarray, m: np.ndarray, overlay: bool) -> np.ndarray:
    from cnnviz.images import resize_map
    from cnnviz.render import colorize
    from cnnviz.render import overlay as fast_overlay  # the one overlay (cv2/LUT) lives in render

    m = np.clip(np.asarray(m, np.float32), 0, 1)
    if overlay:
        return fast_overlay(img, resize_map(m, img.shape[:2]))
    g = (colorize(resize_map(m, img.shape[:2]), "gray"))
    return g


def cascade_figure(image: np.ndarray, maps: dict[str, np.ndarray], cascade: Sequence[str], path: str | os.PathLike[str],
                   *, title: str = "", cam_methods: Sequence[str] = (), scores: dict[str, Sequence[float]] | None = None,
                   tile: int = 112, first: str = "trained") -> Path:
    """One image's cascade: ``maps[method]`` is ``(S + 1, H, W)`` (trained first); ``image`` ``(H, W, 3) uint8``.

    ``scores[method]``, when given, are the S rank correlations printed under each randomized map.
    """
    import cv2

    from cnnviz.render import new_figure, save_figure

    small = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA)
    methods = list(maps)
    cols = len(cascade) + 2
    fig = new_figure(0.95 * cols, 1.05 * len(methods) + 0.9)
    heads = ["input", first, *cascade]
    for r, meth in enumerate(methods):
        for c in range(cols):
            ax = fig.add_subplot(len(methods), cols, r * cols + c + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            for sp in ax.spines.values():
                sp.set_visible(False)
            if c == 0:
                ax.imshow(small)
                ax.set_ylabel(meth, fontsize=7, rotation=0, ha="right", va="center")
            else:
                ax.imshow(_tile(small, maps[meth][c - 1], meth in cam_methods), interpolation="bilinear")
                if scores is not None and c >= 2 and meth in scores:
                    ax.set_xlabel(f"{scores[meth][c - 2]:.2f}", fontsize=6, labelpad=1)
            if r == 0:
                ax.set_title(heads[c], fontsize=6, rotation=35, ha="left", va="bottom")
    if title:
        fig.suptitle(title, fontsize=8, y=1.0, va="bottom")
    fig.subplots_adjust(wspace=0.04, hspace=0.25)
    return save_figure(fig, path, dpi=120)


def curves_figure(rows: Sequence[dict], cascade: Sequence[str], path: str | os.PathLike[str], *, title: str = "",
                  threshold: float | None = None) -> Path:
    """Mean similarity to the trained maps per cascade step, one line per method (``rows`` = ``to_json()``).

    Left: the verdict's rank correlation (signed where the method is signed; dashed: absolute values),
    right: SSIM. The step the verdict reads and the threshold are dotted red lines.
    """
    from cnnviz.render import new_figure, save_figure

    fig = new_figure(11, 4.2)
    xs = np.arange(len(cascade) + 1)
    labels = ["trained", *cascade]
    axes = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)]
    for row in rows:
        st = row["cascade"]
        key = row["verdict"].get("measure") or "spearman"
        rho = [1.0] + [s[key] for s in st]
        line = axes[0].plot(xs, rho, marker="o", ms=3, label=f"{row['method']} ({key.replace('spearman', 'rank').replace('_', ' ')})")[0]
        if key != "spearman":
            axes[0].plot(xs, [1.0] + [s["spearman"] for s in st], ls="--", lw=0.8, color=line.get_color())
        axes[1].plot(xs, [1.0] + [s["ssim"] for s in st], marker="o", ms=3, color=line.get_color(), label=row["method"])
    for ax, name in zip(axes, ("Spearman rank correlation with the trained map", "SSIM with the trained map")):
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.axhline(0, color="#999", lw=0.6)
        ax.grid(alpha=0.3)
    if rows and rows[0]["verdict"].get("step_index"):  # none in the independent test
        k = rows[0]["verdict"]["step_index"]
        for ax in axes:
            ax.axvline(k, color="#c33", lw=0.8, ls=":")
    if threshold is not None:
        axes[0].axhline(threshold, color="#c33", lw=0.8, ls=":")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 5) or 1, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return save_figure(fig, path, dpi=110)


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def markdown_table(rows: Sequence[dict], cascade: Sequence[str]) -> str:
    """Two Markdown tables from ``to_json()`` rows: the verdicts, then method x step mean Spearman / SSIM."""
    out = ["| method | verdict | measure | at step | mean | 95% CI |", "|---|---|---|---|---|---|"]
    for r in rows:
        v = r["verdict"]
        word = "no verdict" if v.get("note") else {True: "**passes**", False: "fails", None: "unclear"}[v["passes"]]
        ci = "—" if v.get("ci95") is None else f"{v['ci95'][0]:.2f} – {v['ci95'][1]:.2f}"
        out.append(f"| {r['method']} | {word} | {v.get('measure') or '—'} | {v.get('step') or '—'} | {_fmt(v.get('mean'))} | {ci} |")
    out += ["", "Mean over the images, Spearman (abs) / Spearman (signed) / SSIM, after randomizing down to each step:", ""]
    out.append("| method | " + " | ".join(cascade) + " |")
    out.append("|---|" + "---|" * len(cascade))
    for r in rows:
        cells = []
        for s in r["cascade"]:
            signed = "" if s.get("spearman_signed") is None else f" / {s['spearman_signed']:.2f}"
            cells.append(f"{_fmt(s['spearman'])}{signed} / {_fmt(s['ssim'])}")
        out.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(out)
