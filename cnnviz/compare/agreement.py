"""Attention agreement: do two models look at the same pixels?

Per image, each model's Grad-CAM map is reduced to its top-``frac`` region (the 20% most-attended
pixels by default); agreement is the IoU of the two regions. Two random regions of 20% have an
expected IoU of about 0.11, identical ones 1.0. Maps of different sizes (models with different input
sizes) are resized to a common grid first. Pure numpy.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def top_region(m: np.ndarray, frac: float = 0.2) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the ``frac`` highest-valued pixels of ``m (H, W)`` (ties broken by order)."""
    if not 0 < frac <= 1:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    flat = np.asarray(m, dtype=np.float32).ravel()
    k = max(1, int(round(frac * flat.size)))
    idx = np.argpartition(-flat, k - 1)[:k]
    mask = np.zeros(flat.size, dtype=bool)
    mask[idx] = True
    return mask.reshape(np.shape(m))


def common_size(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resize two ``(H, W)`` maps to the larger of their sizes (bilinear)."""
    if a.shape == b.shape:
        return a, b
    from cnnviz.images import resize_map

    h, w = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])
    return resize_map(a, (h, w)), resize_map(b, (h, w))


def is_empty(m: np.ndarray, eps: float = 1e-6) -> bool:
    """True for a (near-)constant map: Grad-CAM found no positive evidence, so it has no top region."""
    m = np.asarray(m, np.float32)
    return bool(m.size == 0 or float(m.max()) - float(m.min()) < eps)


def cam_iou(a: np.ndarray, b: np.ndarray, frac: float = 0.2) -> float:
    """IoU of the top-``frac`` regions of two ``(H, W)`` maps (resized to a common size when they differ).

    NaN when either map is empty (constant): there is no region to compare.
    """
    if is_empty(a) or is_empty(b):
        return float("nan")
    a, b = common_size(np.asarray(a, np.float32), np.asarray(b, np.float32))
    ma, mb = top_region(a, frac), top_region(b, frac)
    union = np.logical_or(ma, mb).sum()
    return float(np.logical_and(ma, mb).sum() / union) if union else 1.0


@dataclass
class AgreementAccumulator:
    """Streams per-image IoUs of one model pair; keeps the ``keep`` least-agreeing images' maps.

    Images where either model's map is empty (IoU NaN) are counted in ``empty`` and left out of
    the statistics and examples.
    """

    a: str
    b: str
    frac: float = 0.2
    keep: int = 8
    ious: list[float] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    _worst: list[tuple[float, int, np.ndarray, np.ndarray]] = field(default_factory=list)  # max-heap via -iou

    def update(self, maps_a: np.ndarray, maps_b: np.ndarray, indices: Any) -> None:
        """``maps_a (B, Ha, Wa)``, ``maps_b (B, Hb, Wb)`` in [0, 1]; ``indices (B,)`` dataset indices."""
        for ma, mb, i in zip(maps_a, maps_b, indices):
            v = cam_iou(ma, mb, self.frac)
            self.ious.append(v)
            self.indices.append(int(i))
            if not np.isfinite(v):
                continue
            item = (-v, int(i), np.asarray(ma, np.float32), np.asarray(mb, np.float32))
            if len(self._worst) < self.keep:
                heapq.heappush(self._worst, item)
            elif -v > self._worst[0][0]:
                heapq.heapreplace(self._worst, item)

    def worst(self) -> list[tuple[int, float, np.ndarray, np.ndarray]]:
        """``(dataset index, iou, map_a, map_b)`` of the least-agreeing images, lowest IoU first."""
        return [(i, -neg, ma, mb) for neg, i, ma, mb in sorted(self._worst, key=lambda t: (-t[0], t[1]))]

    def to_dict(self, max_listed: int = 16) -> dict[str, Any]:
        v = np.asarray(self.ious, dtype=np.float64)
        ok = np.isfinite(v)
        order = [k for k in np.argsort(np.where(ok, v, np.inf), kind="stable") if ok[k]][:max_listed]
        return {
            "a": self.a, "b": self.b, "top_fraction": self.frac, "n": int(ok.sum()), "empty": int((~ok).sum()),
            "mean_iou": float(v[ok].mean()) if ok.any() else None,
            "median_iou": float(np.median(v[ok])) if ok.any() else None,
            "random_iou": random_iou(self.frac),
            "low_agreement": int((v[ok] < random_iou(self.frac) * 2).sum()),
            "ious": [round(float(x), 4) if np.isfinite(x) else None for x in v],
            "indices": list(self.indices),
            "disagreeing": [{"index": int(self.indices[k]), "iou": float(v[k])} for k in order],
        }


def random_iou(frac: float) -> float:
    """Expected IoU of two independent random regions covering ``frac`` of the image: f^2 / (2f - f^2)."""
    return frac * frac / (2 * frac - frac * frac)
