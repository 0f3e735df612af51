"""Filter drift: where in weight space did fine-tuning move a network?

For two models of the same architecture that start from the same weights (the pretrained model and
its fine-tuned copy; an LP-FT and an FT run of the same pretrained network), each conv / linear layer
gets

* ``rel_change`` = ``||W_b - W_a||_F / ||W_a||_F`` (0 = untouched), and
* ``cosine`` = the mean, over output filters, of the cosine similarity between ``W_a[o]`` and ``W_b[o]``
  (1 = every filter points the same way).

Neyshabur et al. (2020) found that fine-tuning moves higher layers most. Comparing two networks that
did *not* share an initialization (two scratch runs, scratch vs pretrained) is meaningless in weight
space -- units can be permuted freely -- so such pairs are skipped with the reason.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

PRETRAINED_MODES = ("lp", "ft", "lpft")


@dataclass
class LayerDrift:
    """Drift of one weight tensor (a conv or linear layer)."""

    name: str  # module name, e.g. "blocks.3.0.conv_pw"
    group: str  # stage it belongs to, e.g. "blocks.3"
    rel_change: float
    cosine: float
    numel: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "group": self.group, "rel_change": self.rel_change, "cosine": self.cosine, "numel": self.numel}


@dataclass
class DriftResult:
    """Drift between model ``a`` (the reference) and model ``b``; ``status`` ok | skipped."""

    a: str
    b: str
    status: str = "ok"
    reason: str = ""
    layers: list[LayerDrift] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)  # {group, rel_change, cosine}, forward order
    skipped_layers: list[dict[str, str]] = field(default_factory=list)  # {name, reason}
    # BatchNorm running statistics per stage: {group, running_mean, running_var} relative changes.
    # Fine-tuning in train mode re-estimates them, which can move features far more than the weights.
    norm_groups: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "status": self.status, "reason": self.reason,
            "layers": [l.to_dict() for l in self.layers], "groups": self.groups, "skipped_layers": self.skipped_layers,
            "norm_groups": self.norm_groups,
        }


def layer_group(name: str) -> str:
    """The stage a module belongs to: ``blocks.3.0.conv_pw`` -> ``blocks.3``; ``conv_stem`` -> ``conv_stem``."""
    parts = name.split(".")
    if len(parts) >= 2 and parts[1].isdigit():
        return ".".join(parts[:2])
    return parts[0]


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Module name -> weight of every conv / linear layer (tensors with >= 2 dims), forward-definition order."""
    out = {}
    for name, m in model.named_modules():
        w = getattr(m, "weight", None)
        if isinstance(w, torch.Tensor) and w.ndim >= 2 and isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            out[name] = w.detach()
    return out


def weight_drift(model_a: nn.Module, model_b: nn.Module, a: str = "a", b: str = "b") -> DriftResult:
    """Per-layer relative weight change and mean filter cosine from ``model_a`` to ``model_b``.

    Layers present in both with the same shape are compared; the others (a replaced head, an
    adapted stem) are listed in ``skipped_layers`` with the reason.
    """
    wa, wb = _weights(model_a), _weights(model_b)
    res = DriftResult(a, b)
    sums: dict[str, list[float]] = {}
    for name, A in wa.items():
        B = wb.get(name)
        if B is None:
            res.skipped_layers.append({"name": name, "reason": f"not in {b}"})
            continue
        if A.shape != B.shape:
            res.skipped_layers.append({"name": name, "reason": f"shape {tuple(A.shape)} vs {tuple(B.shape)} (replaced head or stem)"})
            continue
        A64 = A.to("cpu", torch.float64).reshape(A.shape[0], -1)
        B64 = B.to("cpu", torch.float64).reshape(B.shape[0], -1)
        diff2 = float((B64 - A64).pow(2).sum())
        norm2 = float(A64.pow(2).sum())
        if not norm2 > 0:  # all-zero reference weights: a relative change is undefined (0/0 or x/0)
            res.skipped_layers.append({"name": name, "reason": f"all weights are zero in {a} (relative change undefined)"})
            continue
        rel = (diff2 / norm2) ** 0.5
        cos = torch.nn.functional.cosine_similarity(A64, B64, dim=1, eps=1e-12)
        g = layer_group(name)
        res.layers.append(LayerDrift(name, g, rel, float(cos.mean()), A.numel()))
        s = sums.setdefault(g, [0.0, 0.0, 0.0, 0.0])
        s[0] += diff2
        s[1] += norm2
        s[2] += float(cos.sum())
        s[3] += A.shape[0]
    for g, (d2, n2, csum, cnt) in sums.items():
        res.groups.append({"group": g, "rel_change": (d2 / n2) ** 0.5 if n2 > 0 else float("nan"), "cosine": csum / cnt})
    # one forward-definition order for weight and BatchNorm groups, so plots can share an x axis
    order = {g: k for k, g in enumerate(dict.fromkeys(layer_group(n) for n, _ in model_a.named_modules() if n))}
    for name in wb:
        if name not in wa:
            res.skipped_layers.append({"name": name, "reason": f"not in {a}"})
    res.norm_groups = _norm_drift(model_a, model_b)
    for d in res.groups + res.norm_groups:
        d["order"] = order.get(d["group"], len(order))
    return res


def _norm_drift(model_a: nn.Module, model_b: nn.Module) -> list[dict[str, Any]]:
    """Relative change of BatchNorm running mean / variance per stage (layers with matching shapes)."""
    mb = dict(model_b.named_modules())
    acc: dict[str, list[float]] = {}
    for name, m in model_a.named_modules():
        other = mb.get(name)
        if not isinstance(m, nn.modules.batchnorm._BatchNorm) or not isinstance(other, nn.modules.batchnorm._BatchNorm):
            continue
        if m.running_mean is None or other.running_mean is None or m.running_mean.shape != other.running_mean.shape:
            continue
        s = acc.setdefault(layer_group(name), [0.0, 0.0, 0.0, 0.0])
        for k, (x, y) in enumerate([(m.running_mean, other.running_mean), (m.running_var, other.running_var)]):
            x64, y64 = x.detach().cpu().double(), y.detach().cpu().double()
            s[2 * k] += float((y64 - x64).pow(2).sum())
            s[2 * k + 1] += float(x64.pow(2).sum())
    return [{"group": g, "running_mean": (d1 / n1) ** 0.5 if n1 > 0 else None, "running_var": (d2 / n2) ** 0.5 if n2 > 0 else None}
            for g, (d1, n1, d2, n2) in acc.items()]


def origin_of(info: Any) -> str:
    """Where a model's weights started: ``pretrained:ARCH`` or ``scratch``/``random`` (unique per run)."""
    if getattr(info, "mode", None) in PRETRAINED_MODES or getattr(info, "weights", "") == "pretrained":
        return f"pretrained:{info.arch}"
    return "scratch"


def _same_arch(ia: Any, ib: Any) -> bool:
    return ia.arch == ib.arch and dict(ia.arch_kwargs or {}) == dict(ib.arch_kwargs or {}) and ia.in_chans == ib.in_chans


def pair_drift(model_a: nn.Module, info_a: Any, model_b: nn.Module, info_b: Any, a: str, b: str) -> DriftResult:
    """``weight_drift`` when the pair shares architecture and origin, otherwise a skipped result saying why."""
    if not _same_arch(info_a, info_b):
        return DriftResult(a, b, "skipped", f"different architectures ({_arch_text(info_a)} vs {_arch_text(info_b)}): "
                                            "weights cannot be matched; compare their features with CKA instead")
    oa, ob = origin_of(info_a), origin_of(info_b)
    if oa == "scratch" or ob == "scratch" or oa != ob:
        return DriftResult(a, b, "skipped", "the two models did not start from the same weights "
                                            f"({_origin_text(info_a)} vs {_origin_text(info_b)}); weight distances between "
                                            "independent initializations are meaningless (units can be permuted)")
    return weight_drift(model_a, model_b, a, b)


def origin_drift(model: nn.Module, info: Any, label: str) -> DriftResult:
    """Drift of a fine-tuned model from the pretrained weights it started from (the bundled ImageNet ones).

    The pretrained model is rebuilt with its 1000-class head (so the replaced head is reported as
    skipped) and, for non-RGB inputs, the same deterministic stem adaptation the trainer applied.
    """
    from cnnviz.errors import CnnvizError
    from cnnviz.models import build_model

    if origin_of(info) == "scratch":
        return DriftResult(f"pretrained {info.arch}", label, "skipped", f"{label} was trained from scratch: it has no pretrained origin")
    try:
        ref, _ = build_model(info.arch, in_chans=info.in_chans, arch_kwargs=info.arch_kwargs, pretrained=True,
                             input_size=tuple(info.input_size[1:]))
    except CnnvizError as e:
        return DriftResult(f"pretrained {info.arch}", label, "skipped", f"pretrained weights unavailable: {e}")
    return weight_drift(ref, model, f"pretrained {info.arch.split(':', 1)[-1]}", label)


def _arch_text(info: Any) -> str:
    kw = ",".join(f"{k}={v}" for k, v in sorted((info.arch_kwargs or {}).items()))
    return info.arch + (f":{kw}" if kw else "") + (f" {info.in_chans}ch" if info.in_chans != 3 else "")


def _origin_text(info: Any) -> str:
    o = origin_of(info)
    return "from scratch" if o == "scratch" else re.sub(r"^pretrained:", "pretrained ", o)
