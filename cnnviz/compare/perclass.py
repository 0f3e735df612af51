"""Per-class accuracy, its differences between models, and the examples the models disagree on.

Pure numpy: predictions in, small dicts out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def per_class_accuracy(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes,)`` accuracy per true class (NaN for a class with no examples)."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    if labels.shape != preds.shape:
        raise ValueError(f"labels {labels.shape} and predictions {preds.shape} differ in shape")
    total = np.bincount(labels, minlength=num_classes)[:num_classes].astype(np.float64)
    right = np.bincount(labels[labels == preds], minlength=num_classes)[:num_classes].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, right / np.maximum(total, 1), np.nan)


def disagreements(labels: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray, max_examples: int = 16) -> dict[str, Any]:
    """Where two models predict different classes.

    Returns counts (``disagree``, ``a_right_b_wrong``, ``b_right_a_wrong``, ``both_wrong``) and up to
    ``max_examples`` example indices, alternating between "only a right" and "only b right" so both
    sides are shown.
    """
    labels, pa, pb = (np.asarray(v, dtype=np.int64) for v in (labels, preds_a, preds_b))
    diff = pa != pb
    a_only = np.flatnonzero(diff & (pa == labels) & (pb != labels))
    b_only = np.flatnonzero(diff & (pb == labels) & (pa != labels))
    neither = np.flatnonzero(diff & (pa != labels) & (pb != labels))
    picks: list[int] = []
    for pair in zip(a_only, b_only):
        picks.extend(int(i) for i in pair)
    longer = a_only if len(a_only) > len(b_only) else b_only
    picks.extend(int(i) for i in longer[min(len(a_only), len(b_only)):])
    picks.extend(int(i) for i in neither)
    picks = picks[:max_examples]
    return {
        "disagree": int(diff.sum()),
        "a_right_b_wrong": int(len(a_only)),
        "b_right_a_wrong": int(len(b_only)),
        "both_wrong": int(len(neither)),
        "examples": [{"index": i, "label": int(labels[i]), "pred_a": int(pa[i]), "pred_b": int(pb[i])} for i in picks],
    }


def per_class_report(labels: np.ndarray, preds: Sequence[np.ndarray], names: Sequence[str], class_names: Sequence[str],
                     max_examples: int = 16) -> dict[str, Any]:
    """Accuracy per model and class, pairwise deltas (``b - a``, in accuracy points) and disagreements.

    ``preds[m]`` = ``(n,)`` predicted class indices of model ``m`` (named ``names[m]``) for ``labels (n,)``.
    """
    k = len(class_names)
    labels = np.asarray(labels, dtype=np.int64)
    acc = {n: per_class_accuracy(labels, p, k) for n, p in zip(names, preds)}
    overall = {n: float(np.mean(np.asarray(p) == labels)) if len(labels) else float("nan") for n, p in zip(names, preds)}
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            delta = acc[names[j]] - acc[names[i]]
            pairs.append({
                "a": names[i], "b": names[j],
                "delta": _clean(delta),
                "overall_delta": overall[names[j]] - overall[names[i]],
                **disagreements(labels, preds[i], preds[j], max_examples),
            })
    support = np.bincount(labels, minlength=k)[:k].astype(int)
    # one row per class, for tables: {class, support, <model>: accuracy, ...}
    rows = [{"class": c, "support": int(support[i]), **{n: (None if not np.isfinite(acc[n][i]) else round(float(acc[n][i]), 4))
                                                        for n in names}} for i, c in enumerate(class_names)]
    return {
        "rows": rows,
        "class_names": list(class_names),
        "support": np.bincount(labels, minlength=k)[:k].astype(int).tolist(),
        "n": int(len(labels)),
        "overall": overall,
        "accuracy": {n: _clean(a) for n, a in acc.items()},
        "pairs": pairs,
    }


def _clean(a: np.ndarray) -> list[float | None]:
    """numpy -> JSON-safe list (NaN -> None)."""
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=np.float64)]
