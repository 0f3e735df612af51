"""Figures for a model comparison: matplotlib from plain arrays and dicts (no torch here).

``write_all(comparison, out_dir)`` writes every figure of a ``Comparison``:

* ``cka-I-J.png`` -- layers x layers CKA heatmap of model I (rows) vs model J (columns), 1-based, also I == J;
* ``cka-grid.png`` -- all those heatmaps in one figure;
* ``drift.png`` -- relative weight change and filter cosine per stage, per comparable pair / vs the origin;
* ``agreement.png`` -- histogram of per-image Grad-CAM IoU per model pair (dashed: chance level);
* ``agreement-I-J.png`` -- the least-agreeing images with both models' Grad-CAMs;
* ``per-class.png`` -- per-class accuracy of each model and the per-class differences;
* ``disagreements-I-J.png`` -- images the two models classify differently;
* ``summary.png`` -- the one figure to read first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.render import new_figure, overlay, save_figure, titled

log = logging.getLogger(__name__)

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _short(name: str, n: int = 28) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


# -- CKA ------------------------------------------------------------------------------------------
def draw_cka(ax: Any, matrix: np.ndarray, layers_a: Sequence[str], layers_b: Sequence[str], name_a: str, name_b: str,
             annotate: bool = True) -> Any:
    """One heatmap on ``ax``: rows = ``name_a``'s layers (early at the bottom), columns = ``name_b``'s."""
    m = np.asarray(matrix, dtype=np.float64)
    im = ax.imshow(m, origin="lower", cmap="magma", vmin=0, vmax=1, aspect="auto")
    ax.set_yticks(range(len(layers_a)), [_short(l, 18) for l in layers_a], fontsize=7)
    ax.set_xticks(range(len(layers_b)), [_short(l, 18) for l in layers_b], fontsize=7, rotation=45, ha="right")
    ax.set_ylabel(_short(name_a), fontsize=8)
    ax.set_xlabel(_short(name_b), fontsize=8)
    if annotate and m.size <= 100:
        for (i, j), v in np.ndenumerate(m):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black")
    return im


def cka_figure(matrix: np.ndarray, layers_a: Sequence[str], layers_b: Sequence[str], name_a: str, name_b: str) -> Any:
    fig = new_figure(1.2 + 0.55 * max(len(layers_b), 3), 1.0 + 0.5 * max(len(layers_a), 3))
    ax = fig.add_subplot(1, 1, 1)
    im = draw_cka(ax, matrix, layers_a, layers_b, name_a, name_b)
    ax.set_title(f"linear CKA: {_short(name_a, 24)} vs {_short(name_b, 24)}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig


def cka_grid_figure(names: Sequence[str], layers: dict[str, list[str]], blocks: dict[tuple[int, int], np.ndarray]) -> Any:
    """Upper triangle (incl. diagonal) of all pairwise heatmaps."""
    k = len(names)
    fig = new_figure(3.3 * k, 3.0 * k)
    im = None
    for (i, j), m in blocks.items():
        ax = fig.add_subplot(k, k, i * k + j + 1)
        im = draw_cka(ax, m, layers[names[i]], layers[names[j]], names[i], names[j], annotate=k <= 2)
    if im is not None:
        fig.colorbar(im, ax=fig.axes, fraction=0.02, pad=0.02)
    fig.suptitle("Linear CKA between layers (rows: first model, columns: second; early layers bottom-left)", fontsize=10)
    return fig


def depth_profile(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CKA at matching relative depth: for each row layer i, column round(i * (nb-1)/(na-1)) -> (depth in [0,1], cka)."""
    m = np.asarray(matrix, dtype=np.float64)
    na, nb = m.shape
    rows = np.arange(na)
    cols = np.round(rows * (nb - 1) / max(na - 1, 1)).astype(int)
    return rows / max(na - 1, 1), m[rows, cols]


# -- drift ----------------------------------------------------------------------------------------
def drift_figure(results: Sequence[dict[str, Any]]) -> Any:
    """One row per drift result with status ok.

    Left: relative weight change per stage (bars) and mean filter cosine (line). Right: relative change
    of the BatchNorm running variance per stage -- fine-tuning in train mode re-estimates these
    statistics, which can change the features far more than the weights do.
    """
    ok = [r for r in results if r["status"] == "ok" and r["groups"]]
    fig = new_figure(11.0, 2.5 * len(ok) + 0.5)
    for k, r in enumerate(ok):
        g = sorted(r["groups"], key=lambda d: d.get("order", 0))
        ax = fig.add_subplot(len(ok), 2, 2 * k + 1)
        x = np.arange(len(g))
        ax.bar(x, [d["rel_change"] for d in g], color="#d62728", alpha=0.8, label="||ΔW|| / ||W||")
        ax.set_ylabel("rel. weight change", fontsize=8)
        ax.set_ylim(0, max(0.01, 1.15 * max(d["rel_change"] for d in g)))
        ax.set_xticks(x, [d["group"] for d in g], rotation=45, ha="right", fontsize=7)
        ax2 = ax.twinx()
        ax2.plot(x, [d["cosine"] for d in g], "o-", color="#1f77b4", ms=3, label="mean filter cosine")
        ax2.set_ylim(min(0.0, min(d["cosine"] for d in g)), 1.05)
        ax2.tick_params(labelsize=7)
        ax.set_title(f"{_short(r['a'], 32)} → {_short(r['b'], 32)}", fontsize=8.5)
        if k == 0:
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = ax2.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
        bn = sorted([d for d in r.get("norm_groups", []) if d.get("running_var") is not None], key=lambda d: d.get("order", 0))
        axb = fig.add_subplot(len(ok), 2, 2 * k + 2)
        if bn:
            xb = np.arange(len(bn))
            axb.bar(xb, [d["running_var"] for d in bn], color="#7f7f7f")
            axb.set_xticks(xb, [d["group"] for d in bn], rotation=45, ha="right", fontsize=7)
            axb.set_yscale("symlog", linthresh=0.01)
            axb.set_ylim(0, max(0.02, 1.3 * max(d["running_var"] for d in bn)))
            axb.set_ylabel("rel. change", fontsize=8)
            axb.set_title("BatchNorm running variance", fontsize=8.5)
        else:
            axb.axis("off")
    fig.suptitle("Where fine-tuning moved the network (per stage, forward order)", fontsize=10)
    fig.tight_layout()
    return fig


# -- agreement ------------------------------------------------------------------------------------
def agreement_figure(pairs: Sequence[dict[str, Any]]) -> Any:
    fig = new_figure(6.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    bins = np.linspace(0, 1, 21)
    for k, p in enumerate(pairs):
        ax.hist([v for v in p["ious"] if v is not None], bins=bins, histtype="step", lw=1.8, color=_COLORS[k % len(_COLORS)],
                label=f"{_short(p['a'], 22)} vs {_short(p['b'], 22)} (mean {_fmt(p['mean_iou'])})")
    if pairs:
        ax.axvline(pairs[0]["random_iou"], ls="--", color="gray", lw=1, label="chance")
    ax.set_xlabel(f"IoU of the top-{int(round(100 * (pairs[0]['top_fraction'] if pairs else 0.2)))}% Grad-CAM regions")
    ax.set_ylabel("images")
    ax.set_title("Do the models look at the same pixels?", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def agreement_examples_image(images: Sequence[np.ndarray], maps_a: Sequence[np.ndarray], maps_b: Sequence[np.ndarray],
                             ious: Sequence[float], captions: Sequence[str], tile_px: int = 112) -> np.ndarray:
    """Rows of ``image | A's Grad-CAM | B's Grad-CAM`` as one ``uint8`` picture (numpy + cv2: fast)."""
    from cnnviz.images import resize_image
    from cnnviz.render import label, tile

    tiles = []
    for img, ma, mb, v, cap in zip(images, maps_a, maps_b, ious, captions):
        base = resize_image(img, (tile_px, tile_px))
        tiles += [label(base, cap, 0.4), label(overlay(base, ma), "A", 0.4), label(overlay(base, mb), f"B  IoU {v:.2f}", 0.4)]
    return tile(tiles, ncols=3)


def image_grid(images: Sequence[np.ndarray], captions: Sequence[str], ncols: int = 4, tile_px: int = 128) -> np.ndarray:
    """Captioned thumbnails in a grid -> one ``uint8`` picture."""
    from cnnviz.images import resize_image
    from cnnviz.render import label, tile

    return tile([label(resize_image(im, (tile_px, tile_px)), c, 0.35) for im, c in zip(images, captions)], ncols=ncols)


# -- per class ------------------------------------------------------------------------------------
def per_class_figure(per_class: dict[str, Any]) -> Any:
    names = list(per_class["accuracy"])
    cls = per_class["class_names"]
    pairs = per_class["pairs"]
    rows = 1 + len(pairs)
    fig = new_figure(max(6.0, 0.55 * len(cls) * max(1, len(names)) ** 0.5 + 2), 2.6 * rows)
    ax = fig.add_subplot(rows, 1, 1)
    x = np.arange(len(cls))
    w = 0.8 / max(1, len(names))
    for k, n in enumerate(names):
        acc = np.array([np.nan if v is None else v for v in per_class["accuracy"][n]])
        ax.bar(x + (k - (len(names) - 1) / 2) * w, acc, w, color=_COLORS[k % len(_COLORS)],
               label=f"{_short(n)} ({per_class['overall'][n]:.1%})")
    ax.set_xticks(x, cls, rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0, 1.3)  # headroom for the legend
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7, ncol=min(3, len(names)))
    ax.set_title(f"Per-class accuracy on {per_class['n']} images", fontsize=9)
    for r, p in enumerate(pairs):
        ax = fig.add_subplot(rows, 1, r + 2)
        d = np.array([np.nan if v is None else v for v in p["delta"]])
        ax.bar(x, d, color=np.where(d >= 0, "#2ca02c", "#d62728"))
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(x, cls, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("Δ accuracy", fontsize=8)
        ax.set_title(f"{_short(p['b'])} minus {_short(p['a'])}: {p['overall_delta']:+.1%} overall, "
                     f"{p['disagree']} images disagree", fontsize=8)
    fig.tight_layout()
    return fig


# -- summary --------------------------------------------------------------------------------------
def takeaways(comp: Any, tag: dict[str, str] | None = None) -> list[str]:
    """A few plain sentences computed from the results (the summary figure's text panel).

    ``tag`` maps model names to short tags (``[1]``) to use in the sentences.
    """
    out = []
    names = comp.names
    tag = tag or {}

    def T(n: str) -> str:
        return tag.get(n) or ("pretrained" if n.startswith("pretrained ") else _short(n, 22))

    cross = [e for e in comp.cka if e["a"] != e["b"]]
    dead = {n: ls for e in comp.cka if e["a"] == e["b"] for n, ls in (e.get("undefined_layers") or {}).items() if ls}
    for n, ls in dead.items():
        out.append(f"CKA is undefined for {T(n)} at {len(ls)} layer(s) ({', '.join(ls[:3])}): constant features")
    if cross:
        def profile_mean(e: dict) -> float:
            v = depth_profile(np.asarray(e["matrix"], dtype=np.float64))[1]
            return float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")

        scored = [(v, e) for v, e in ((profile_mean(e), e) for e in cross) if np.isfinite(v)]
        if scored:
            hi, lo = max(scored, key=lambda t: t[0]), min(scored, key=lambda t: t[0])
            out.append(f"Most similar features: {T(hi[1]['a'])} & {T(hi[1]['b'])} (CKA {hi[0]:.2f} along depth)")
            if len(scored) > 1:
                out.append(f"Least similar: {T(lo[1]['a'])} & {T(lo[1]['b'])} (CKA {lo[0]:.2f})")
        last = [(v, e) for v, e in ((float(np.asarray(e["matrix"], dtype=np.float64)[-1, -1]), e) for e in cross) if np.isfinite(v)]
        if last:
            v, e = min(last, key=lambda t: t[0])
            out.append(f"Pre-logits CKA is lowest for {T(e['a'])} & {T(e['b'])}: {v:.2f}")
    drifts = [r for r in comp.filter_drift["origin"] + comp.filter_drift["pairs"] if r["status"] == "ok" and r["groups"]]
    for r in drifts[:3]:
        g = max(r["groups"], key=lambda d: d["rel_change"])
        if g["rel_change"] == 0:
            out.append(f"{T(r['b'])} has exactly the backbone weights of {T(r['a'])} (only the head differs)")
            continue
        out.append(f"{T(r['b'])} moved most at {g['group']} ({g['rel_change']:.1%} of ||W|| vs {T(r['a'])})")
        bn = [d for d in r.get("norm_groups", []) if d.get("running_var") is not None]
        if bn:
            b = max(bn, key=lambda d: d["running_var"])
            if b["running_var"] > 3 * g["rel_change"]:
                out.append(f"...but its BatchNorm statistics moved more: running variance at {b['group']} "
                           f"changed by {b['running_var']:.0%}")
    ag = [p for p in comp.cam_agreement.get("pairs") or [] if p["mean_iou"] is not None]
    if ag:
        p = min(ag, key=lambda p: p["mean_iou"])
        out.append(f"Grad-CAM IoU lowest for {T(p['a'])} & {T(p['b'])}: {p['mean_iou']:.2f} (chance {p['random_iou']:.2f})")
    pc = comp.per_class
    if pc.get("status") == "ok" and pc.get("pairs"):
        best = None
        for p in pc["pairs"]:
            for c, d in zip(pc["class_names"], p["delta"]):
                if d is not None and (best is None or abs(d) > abs(best[0])):
                    best = (d, c, p)
        if best:
            d, c, p = best
            winner, loser = (p["b"], p["a"]) if d > 0 else (p["a"], p["b"])
            out.append(f"Largest class gap: '{c}', {T(winner)} beats {T(loser)} by {abs(d):.0%}")
    if not out:
        out.append(f"{len(names)} models compared")
    return out


def summary_figure(comp: Any) -> Any:
    """Six panels: accuracy, CKA along depth, weight drift, Grad-CAM agreement, per-class accuracy, takeaways."""
    import textwrap

    names = comp.names
    color = {n: _COLORS[k % len(_COLORS)] for k, n in enumerate(names)}
    tag = {n: f"[{k + 1}]" for k, n in enumerate(names)}  # pairs are labelled "[1] vs [2]"; the title says who is who
    fig = new_figure(15.0, 8.0)
    # (1) accuracy
    ax = fig.add_subplot(2, 3, 1)
    acc = [(m["name"], m["accuracy"]) for m in comp.models if m["accuracy"] is not None]
    if acc:
        ax.barh(range(len(acc)), [a for _, a in acc], color=[color[n] for n, _ in acc])
        ax.set_yticks(range(len(acc)), [f"{tag[n]} {_short(n, 24)}" for n, _ in acc], fontsize=8)
        for k, (_, a) in enumerate(acc):
            ax.text(a, k, f" {a:.1%}", va="center", fontsize=8)
        ax.set_xlim(0, 1.15)
        ax.invert_yaxis()
    ax.set_title(f"Accuracy ({comp.per_class.get('n', '?')} images)", fontsize=10)
    # (2) CKA along depth
    ax = fig.add_subplot(2, 3, 2)
    for k, e in enumerate([e for e in comp.cka if e["a"] != e["b"]]):
        d, v = depth_profile(np.asarray(e["matrix"], dtype=np.float64))  # NaN (undefined) points are gaps
        ax.plot(d, v, "o-", color=_COLORS[k % len(_COLORS)], label=f"{tag[e['a']]} vs {tag[e['b']]}")
        if not np.isfinite(v).any():
            ax.text(0.5, 0.5 - 0.08 * k, f"{tag[e['a']]} vs {tag[e['b']]}: undefined (constant features)",
                    ha="center", fontsize=8, transform=ax.transAxes)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("relative depth (input → pre-logits)")
    ax.set_ylabel("linear CKA")
    ax.set_title("Feature similarity along depth", fontsize=10)
    ax.legend(fontsize=6.5)
    # (3) drift
    ax = fig.add_subplot(2, 3, 3)
    drifts = [r for r in comp.filter_drift["origin"] + comp.filter_drift["pairs"] if r["status"] == "ok" and r["groups"]]
    if drifts:
        shown = drifts[:4]
        groups = list(dict.fromkeys(d["group"] for r in shown for d in r["groups"]))  # union, forward order
        where = {g: k for k, g in enumerate(groups)}
        for k, r in enumerate(shown):
            g = r["groups"]
            ax.plot([where[d["group"]] for d in g], [d["rel_change"] for d in g], "o-", color=_COLORS[k % len(_COLORS)],
                    label=f"{tag.get(r['a'], 'pretrained')} → {tag.get(r['b'], r['b'])}")
        ax.set_xticks(range(len(groups)), groups, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("||ΔW|| / ||W||  (conv / linear weights)")
        ax.legend(fontsize=6.5)
    else:
        reasons = sorted({r["reason"].split(";")[0].split(":")[0] for r in comp.filter_drift["pairs"]})
        text = "No pair shares architecture and starting weights, so weight drift is not defined:\n\n" + "\n".join(
            textwrap.fill("- " + r, 48) for r in reasons[:3])
        ax.text(0.0, 0.9, text, ha="left", va="top", fontsize=7.5, transform=ax.transAxes)
        ax.axis("off")
    ax.set_title("Where fine-tuning moved the weights", fontsize=10)
    # (4) Grad-CAM agreement
    ax = fig.add_subplot(2, 3, 4)
    ag = comp.cam_agreement.get("pairs") or []
    if ag:
        ax.barh(range(len(ag)), [p["mean_iou"] or 0.0 for p in ag], color="#9467bd")
        ax.set_yticks(range(len(ag)), [f"{tag[p['a']]} vs {tag[p['b']]}" for p in ag], fontsize=7)
        ax.axvline(ag[0]["random_iou"], ls="--", color="gray", label="chance")
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.legend(fontsize=7)
        ax.set_xlabel(f"mean IoU of top-{int(round(100 * ag[0]['top_fraction']))}% Grad-CAM regions")
    else:
        ax.axis("off")
    ax.set_title("Do they look at the same pixels?", fontsize=10)
    # (5) per-class accuracy table
    ax = fig.add_subplot(2, 3, 5)
    pc = comp.per_class
    if pc.get("status") == "ok" and pc.get("accuracy"):
        rows = list(pc["accuracy"])
        m = np.array([[np.nan if v is None else v for v in pc["accuracy"][n]] for n in rows])
        ax.imshow(m, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        ax.set_yticks(range(len(rows)), [tag[n] for n in rows], fontsize=8)
        ax.set_xticks(range(len(pc["class_names"])), [_short(c, 10) for c in pc["class_names"]], rotation=45, ha="right", fontsize=7)
        if m.size <= 120:
            for (i, j), v in np.ndenumerate(m):
                if np.isfinite(v):
                    ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=6.5)
    else:
        ax.axis("off")
    ax.set_title("Per-class accuracy (%)", fontsize=10)
    # (6) takeaways
    ax = fig.add_subplot(2, 3, 6)
    ax.axis("off")
    ax.text(0.0, 1.0, "\n".join(textwrap.fill("• " + t, 60) for t in takeaways(comp, tag)), va="top", ha="left", fontsize=8.5,
            linespacing=1.5, transform=ax.transAxes)
    ax.set_title("In short", fontsize=10)
    fig.suptitle("Model comparison:   " + "   ".join(f"{tag[n]} {_short(n, 40)}" for n in names), fontsize=11)
    fig.tight_layout()
    return fig


# -- writing --------------------------------------------------------------------------------------
def _rgb(img: Any) -> np.ndarray:
    """PIL image (or array) -> ``(H, W, 3) uint8``."""
    a = np.asarray(img.convert("RGB")) if hasattr(img, "convert") else np.asarray(img, dtype=np.uint8)
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a


def write_all(comp: Any, out: Path, max_examples: int = 6) -> list[Path]:
    """Write every figure of ``comp`` (a ``Comparison``) under ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    names = comp.names
    pos = {n: k + 1 for k, n in enumerate(names)}
    paths: list[Path] = []
    blocks = {}
    for e in comp.cka:
        i, j = pos[e["a"]], pos[e["b"]]
        m = np.asarray(e["matrix"], dtype=np.float64)
        blocks[(i - 1, j - 1)] = m
        fig = cka_figure(m, comp.layers[e["a"]], comp.layers[e["b"]], e["a"], e["b"])
        paths.append(save_figure(fig, out / f"cka-{i}-{j}.png"))
    paths.append(save_figure(cka_grid_figure(names, comp.layers, blocks), out / "cka-grid.png", dpi=90))
    drift = comp.filter_drift["origin"] + comp.filter_drift["pairs"]
    if any(r["status"] == "ok" and r["groups"] for r in drift):
        paths.append(save_figure(drift_figure(drift), out / "drift.png"))
    ag = comp.cam_agreement.get("pairs") or []
    if ag:
        paths.append(save_figure(agreement_figure(ag), out / "agreement.png"))
        cn = comp.per_class.get("class_names") or []
        cn = comp.per_class.get("class_names") or []
        for (a, b), worst in comp.cam_examples.items():
            if not worst or comp.dataset is None:
                continue
            worst = worst[:max_examples]
            imgs, caps = [], []
            for idx, _, _, _ in worst:
                img, y = comp.dataset[idx]
                imgs.append(_rgb(img))
                caps.append(f"#{idx} {cn[y] if 0 <= y < len(cn) else y}")
            pic = agreement_examples_image(imgs, [w[2] for w in worst], [w[3] for w in worst], [w[1] for w in worst], caps)
            paths.append(titled(pic, "Least Grad-CAM agreement", out / f"agreement-{pos[a]}-{pos[b]}.png",
                                subtitle=f"A: {_short(a, 40)}   B: {_short(b, 40)}"))
    pc = comp.per_class
    if pc.get("status") == "ok" and pc.get("accuracy"):
        paths.append(save_figure(per_class_figure(pc), out / "per-class.png"))
        cn = pc["class_names"]
        for p in pc["pairs"]:
            ex = p["examples"][: 2 * max_examples]
            if not ex or comp.dataset is None:
                continue
            imgs = [_rgb(comp.dataset[e["index"]][0]) for e in ex]
            caps = [f"{_short(cn[e['label']], 9)}: A {_short(cn[e['pred_a']], 9)} B {_short(cn[e['pred_b']], 9)}" for e in ex]
            paths.append(titled(image_grid(imgs, caps, tile_px=160), "Images the models classify differently (true: A's / B's prediction)",
                                out / f"disagreements-{pos[p['a']]}-{pos[p['b']]}.png", subtitle=f"A: {_short(p['a'], 40)}   B: {_short(p['b'], 40)}"))
    paths.append(save_figure(summary_figure(comp), out / "summary.png", dpi=90))
    return paths
