"""Which explanation to trust: deletion/insertion AUC (RISE) and ROAD for any saliency map.

* **Deletion** (Petsiuk et al. 2018, RISE): remove pixels most-salient first (replace them with a
  black image) and track the target class's probability; the area under that curve is low for a
  faithful map. **Insertion**: start from a blurred copy and put the original pixels back
  most-salient first; the area is high for a faithful map.
* **ROAD** (Rong et al. 2022): remove a share of pixels by noisy linear imputation (no
  out-of-distribution black holes), least- vs most-relevant first; pytorch-grad-cam's
  ``ROADCombined`` = (LeRF - MoRF) / 2 of the class probability, higher is better.

All curves are computed in batches of perturbed images (``batch_size`` per forward) so memory
stays flat. ``evaluate_methods`` runs several registered methods (``cnnviz.explain.methods``)
on the same images and returns rows ready for a table; ``rank_methods`` orders them by mean rank
over the three metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.errors import CnnvizError
from cnnviz.probe import frozen, model_device

log = logging.getLogger(__name__)


@dataclass
class Faithfulness:
    """Scores of one map (or one per image, when arrays are ``(B,)``)."""

    deletion_auc: np.ndarray  # (B,) lower is better
    insertion_auc: np.ndarray  # (B,) higher is better
    deletion_curve: np.ndarray  # (B, steps + 1) target probability after removing k/steps of the pixels
    insertion_curve: np.ndarray  # (B, steps + 1)
    road: np.ndarray | None = None  # (B,) higher is better


@dataclass
class MethodScores:
    """One method on a set of images: per-image scores and their means."""

    method: str
    maps: np.ndarray  # (B, H, W) in [0, 1]
    scores: Faithfulness
    targets: list[int]
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        s = self.scores
        return {"method": self.method, "deletion_auc": float(np.mean(s.deletion_auc)), "insertion_auc": float(np.mean(s.insertion_auc)),
                "road": None if s.road is None else float(np.mean(s.road)), "seconds": round(self.seconds, 3)}


def _black(x: torch.Tensor, info: "ModelInfo | None") -> torch.Tensor:  # noqa: F821
    if info is None:
        return torch.zeros_like(x)
    mean = torch.tensor(info.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return ((0 - mean) / std).expand_as(x).contiguous()


def _blur(x: torch.Tensor, ksize: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """RISE's insertion start: a Gaussian blur (kernel 11, sigma 5) of ``x`` ``(B, C, H, W)``."""
    r = torch.arange(ksize, dtype=x.dtype, device=x.device) - ksize // 2
    k1 = torch.exp(-(r**2) / (2 * sigma**2))
    k1 = k1 / k1.sum()
    c = x.shape[1]
    kh = k1.view(1, 1, ksize, 1).repeat(c, 1, 1, 1)
    kw = k1.view(1, 1, 1, ksize).repeat(c, 1, 1, 1)
    y = torch.nn.functional.pad(x, (ksize // 2,) * 4, mode="replicate")
    y = torch.nn.functional.conv2d(y, kh, groups=c)
    return torch.nn.functional.conv2d(y, kw, groups=c)


def deletion_insertion(model: nn.Module, x: torch.Tensor, maps: np.ndarray, targets: Sequence[int], *,
                       info: "ModelInfo | None" = None, steps: int = 24, batch_size: int = 16,  # noqa: F821
                       patch: int | None = None) -> Faithfulness:
    """Deletion and insertion curves/AUCs of ``maps`` ``(B, H, W)`` for inputs ``x`` ``(B, C, H, W)``.

    Pixels are ranked by the map (most salient first); step k of ``steps`` has removed (deletion,
    to a black image) or restored (insertion, from a blur) the top k/steps of them. The score is
    the softmax probability of each image's target class; AUC is the trapezoid mean over [0, 1].

    ``patch`` (default H/14, 16 px at 224): maps are averaged over patch x patch blocks before
    ranking, so every method removes regions. Removing scattered single pixels is adversarial
    noise that kills any prediction, and would crown spiky gradient maps (and random ones).
    ``patch=1`` is pixel-level RISE.
    """
    b, c, h, w = x.shape
    m = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    if tuple(m.shape) != (b, h, w):
        raise CnnvizError(f"maps must be (B, H, W) = {(b, h, w)} to match x; got {tuple(m.shape)}")
    patch = max(1, min(h, w) // 14) if patch is None else max(1, int(patch))
    if patch > min(h, w):
        raise CnnvizError(f"patch {patch} is larger than the input side {min(h, w)} px: use at most {min(h, w)}.")
    if patch > 1:  # block means, broadcast back to pixels; a tiny position term keeps blocks whole on ties
        pooled = torch.nn.functional.avg_pool2d(m[:, None], patch, ceil_mode=True)
        m = torch.nn.functional.interpolate(pooled, scale_factor=patch, mode="nearest")[:, 0, :h, :w]
    dev = model_device(model)
    x = x.detach().to(dev).float()
    black, blurred = _black(x, info), _blur(x)
    n = h * w
    # rank[i, p] = position of pixel p in image i's most-salient-first order (stable on ties)
    order = torch.argsort(-m.flatten(1), dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n).expand(b, n).contiguous())
    rank = rank.view(b, 1, h, w).to(dev)
    cuts = [round(k * n / steps) for k in range(steps + 1)]
    del_curve = np.zeros((b, steps + 1), np.float32)
    ins_curve = np.zeros((b, steps + 1), np.float32)
    with frozen(model), torch.no_grad():
        for i in range(b):
            jobs = [(kind, k) for kind in ("del", "ins") for k in range(steps + 1)]
            for j0 in range(0, len(jobs), batch_size):
                chunk = jobs[j0 : j0 + batch_size]
                batch = []
                for kind, k in chunk:
                    top = rank[i] < cuts[k]  # (1, H, W): the k/steps most salient pixels
                    batch.append(torch.where(top, black[i], x[i]) if kind == "del" else torch.where(top, x[i], blurred[i]))
                p = torch.softmax(model(torch.stack(batch)).float(), 1)[:, int(targets[i])].cpu().numpy()
                for (kind, k), v in zip(chunk, p):
                    (del_curve if kind == "del" else ins_curve)[i, k] = v
    auc = lambda y: (y[:, 1:] + y[:, :-1]).sum(1) / (2 * steps)  # noqa: E731
    return Faithfulness(auc(del_curve), auc(ins_curve), del_curve, ins_curve)


class _CoarseImputer:
    """ROAD's noisy linear imputation solved on a ``scale``-times coarser grid, then upsampled.

    The imputed field is smooth (each missing pixel is the weighted mean of its neighbours), so
    solving it at half resolution changes little and costs several times less than the full
    sparse solve. ``scale=1`` is pytorch-grad-cam's exact ``NoisyLinearImputer``.
    """

    def __init__(self, scale: int = 2, noise: float = 0.01, generator: torch.Generator | None = None) -> None:
        from pytorch_grad_cam.metrics.road import NoisyLinearImputer

        self.exact = NoisyLinearImputer(noise=0.0)
        self.scale, self.noise, self.generator = scale, noise, generator

    def __call__(self, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``img`` ``(C, H, W)``, ``mask`` ``(H, W)`` with 1 = keep, 0 = impute."""
        import torch.nn.functional as F

        keep = mask.float()
        if self.scale > 1:
            s = self.scale
            ci = F.avg_pool2d(img[None], s, ceil_mode=True)[0]
            ck = (F.avg_pool2d(keep[None, None], s, ceil_mode=True)[0, 0] > 0.999).float()  # known only if all known
            fill = F.interpolate(self.exact(ci, ck)[None], size=img.shape[-2:], mode="bilinear", align_corners=False)[0]
        else:
            fill = self.exact(img, keep)
        noise = torch.randn(img.shape, generator=self.generator) * self.noise
        return torch.where(keep[None] > 0.5, img, fill + noise)


def road(model: nn.Module, x: torch.Tensor, maps: np.ndarray, targets: Sequence[int],
         percentiles: Sequence[int] = (20, 40, 60, 80), scale: int = 2, seed: int = 0) -> np.ndarray:
    """ROAD (pytorch-grad-cam's MoRF/LeRF perturbation metric) on the target's softmax probability.

    Returns ``(B,)`` = mean over ``percentiles`` of (LeRF - MoRF) / 2, higher is better, as
    ``ROADCombined``. The imputation is solved ``scale`` times coarser (1 = the library's exact,
    about a second per map and percentile at 224 px on a laptop CPU); its noise is seeded.
    """
    from pytorch_grad_cam.metrics.perturbation_confidence import PerturbationConfidenceMetric, RemoveLeastRelevantFirst, RemoveMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    dev = model_device(model)
    x = x.detach().to(dev).float()
    cams = np.asarray(maps, np.float32)
    tg = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
    imputer = _CoarseImputer(scale=scale, generator=torch.Generator().manual_seed(seed))
    total = np.zeros(x.shape[0], np.float32)
    with frozen(model), torch.no_grad():
        for p in percentiles:
            lerf = PerturbationConfidenceMetric(RemoveLeastRelevantFirst(p, imputer))(x, cams, tg, model)
            morf = PerturbationConfidenceMetric(RemoveMostRelevantFirst(p, imputer))(x, cams, tg, model)
            total += (np.asarray(lerf, np.float32).reshape(-1) - np.asarray(morf, np.float32).reshape(-1)) / 2
    return total / len(percentiles)


def evaluate_methods(model: nn.Module, x: torch.Tensor, methods: Sequence[Any], *, targets: Sequence[int] | None = None,
                     info: "ModelInfo | None" = None, layer: str | None = None, steps: int = 24,  # noqa: F821
                     with_road: bool = True, road_percentiles: Sequence[int] = (20, 40, 60, 80), batch_size: int = 16,
                     patch: int | None = None) -> list[MethodScores]:
    """Explain ``x`` ``(B, C, H, W)`` with each method and score every map; one ``MethodScores`` per method.

    ``methods``: registry names (``cnnviz.explain.methods``), or ready ``Explainer`` objects (reuse
    them across calls: an attribution explainer holds a copy of the model). ``layer`` is used by
    the methods that take one. Every method explains the same ``targets`` (default: top-1).
    """
    import time

    from cnnviz.explain.methods import Explainer

    if targets is None:
        with frozen(model), torch.no_grad():
            targets = model(x.to(model_device(model))).argmax(1).tolist()
    out = []
    for m in methods:
        ex = m if isinstance(m, Explainer) else Explainer(model, m, info=info, layer=layer, size=tuple(x.shape[-2:]))
        t0 = time.perf_counter()
        e = ex(x, target=list(targets))
        secs = time.perf_counter() - t0
        f = deletion_insertion(model, x, e.maps, e.targets, info=info, steps=steps, batch_size=batch_size, patch=patch)
        if with_road:
            f.road = road(model, x, e.maps, e.targets, road_percentiles)
        out.append(MethodScores(ex.method, e.maps, f, list(e.targets), secs))
    return out


def rank_methods(rows: Sequence[dict]) -> list[dict]:
    """Order method summaries by mean rank over deletion (low), insertion (high), ROAD (high).

    Each returned row gains ``rank`` (1 = most faithful) and ``mean_rank``.
    """
    rows = [dict(r) for r in rows]
    keys = [("deletion_auc", False), ("insertion_auc", True)]
    if all(r.get("road") is not None for r in rows):
        keys.append(("road", True))
    for r in rows:
        r["mean_rank"] = 0.0
    for key, high in keys:
        srt = sorted(range(len(rows)), key=lambda i: rows[i][key], reverse=high)
        for pos, i in enumerate(srt):
            rows[i]["mean_rank"] += (pos + 1) / len(keys)
    rows.sort(key=lambda r: (r["mean_rank"], r["deletion_auc"] - r["insertion_auc"]))
    for i, r in enumerate(rows):
        r["rank"] = i + 1
        r["mean_rank"] = round(r["mean_rank"], 3)
    return rows
