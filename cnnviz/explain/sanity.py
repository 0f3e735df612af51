"""Sanity checks for saliency maps (Adebayo et al., NeurIPS 2018): does a map depend on what the model learned?

**Cascading model-parameter randomization** (``cascading_randomization``): on a private copy of the
model, re-initialize its units from the top (logits) down, one stage/block at a time
(``cnnviz.explain.randomize`` derives the cascade and owns the re-initialization, BatchNorm included),
and after each step compare every method's map with the trained model's map of the same image and
class (``cnnviz.explain.similarity``: Spearman rank correlation of the absolute-value maps, Spearman of
the signed maps where the method is signed, SSIM, optionally HOG). ``independent=True`` is the
paper's independent variant: each step randomizes only its own unit, the rest stays trained.

A method whose maps explain the model must change once the layers that compute the class are random;
one that keeps drawing the same picture (the paper finds Guided Backprop and Guided Grad-CAM do:
they behave like edge detectors) does not pass. ``verdict`` states the rule.

The class explained is fixed for the whole cascade: ``targets`` or else the trained model's top-1 per
image, so every step explains the same logit. The caller's model is never touched (weights, training
flags, ``requires_grad``, hooks): everything runs on a deep copy.

Example::

    model, info = load_model("efficientnet_lite0")
    x = torch.cat([preprocess(load_image(p), info) for p in paths])      # (N, 3, 224, 224)
    res = cascading_randomization(model, x, ["gradcam", "guided-backprop"], info=info)
    res.methods[0].steps[-1].spearman      # (N,) rank correlations once every layer is random
    res.to_json()                          # [{"method": "gradcam", "cascade": [{"layer": ..., ...}]}, ...]
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from cnnviz.errors import CnnvizError, suggestion

log = logging.getLogger(__name__)

#: model-independent reference maps (not explanations): a method that scores like them fails
CONTROLS = ("edges", "random")
DEFAULT_METHODS = ("gradcam", "saliency", "guided-backprop", "guided-gradcam", "integrated-gradients")
#: the verdict rule's constants (documented in docs/sanity.md)
PASS_THRESHOLD = 0.5
NO_VERDICT = "no verdict in the independent test: each step randomizes one block, it shows where the map is sensitive"


class SanityError(CnnvizError):
    """Unusable options for a sanity check (unknown method, empty cascade, ...)."""


def known_methods() -> tuple[str, ...]:
    from cnnviz.explain.attribute import ATTRIBUTION_METHODS
    from cnnviz.explain.cam import METHODS

    return (*METHODS, *ATTRIBUTION_METHODS, *CONTROLS)


def check_methods(methods: Sequence[str]) -> list[str]:
    """Validated, de-duplicated method names (``SanityError`` with close matches otherwise)."""
    known = known_methods()
    out = list(dict.fromkeys(m.strip() for m in methods if m and m.strip()))
    if not out:
        raise SanityError("no methods given: name at least one (e.g. gradcam,saliency,guided-backprop).")
    for m in out:
        if m not in known:
            raise SanityError(f"unknown method {m!r}.{suggestion(m, known)} Choose from: {', '.join(known)}.")
    return out


# -- the one adapter to the explainers ------------------------------------------------------------
def explain_maps(model: nn.Module, x: torch.Tensor, method: str, *, targets: Sequence[int],
                 info: "ModelInfo | None" = None, layer: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:  # noqa: F821
    """THE call into cnnviz's explainers (one place to switch to the method registry).

    Returns ``maps`` ``(B, H, W)`` float32 in [0, 1] -- the absolute-value map cnnviz displays -- and,
    for signed attributions, ``signed`` ``(B, H, W)`` float32 (the raw ``(B, C, H, W)`` attribution
    summed over channels); None for methods whose maps are non-negative by construction (CAMs).
    """
    from cnnviz.explain.attribute import ATTRIBUTION_METHODS, compute_attributions
    from cnnviz.explain.cam import METHODS, compute_cams

    if method in METHODS:
        return compute_cams(model, x, layer=layer, method=method, targets=targets, info=info).maps, None
    if method in ATTRIBUTION_METHODS:
        kw = {"layer": layer} if method == "guided-gradcam" else {}
        r = compute_attributions(model, x, method=method, targets=targets, info=info, **kw)
        return r.maps, r.raw.sum(1).astype(np.float32)
    if method == "edges":
        return edge_maps(x), None
    if method == "random":
        from cnnviz.explain.methods import explain

        return explain(model, x, "random", target=list(targets), info=info).maps, None
    raise SanityError(f"unknown method {method!r}")


def edge_maps(x: torch.Tensor) -> np.ndarray:
    """The paper's edge-detector reference: Sobel gradient magnitude of ``x`` ``(B, C, H, W)`` (channels
    summed), scaled to [0, 1] by its 99.5th percentile like the gradient maps. It ignores the model."""
    import torch.nn.functional as F

    g = x.detach().float().cpu().sum(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    p = F.pad(g, (1, 1, 1, 1), mode="replicate")
    mag = torch.sqrt(F.conv2d(p, kx) ** 2 + F.conv2d(p, kx.transpose(2, 3)) ** 2)[:, 0]
    hi = torch.quantile(mag.flatten(1), 0.995, dim=1).clamp_min(1e-12)
    return (mag / hi[:, None, None]).clamp(0, 1).numpy().astype(np.float32)


# -- results --------------------------------------------------------------------------------------
@dataclass
class Step:
    """The similarity of one method's maps to the trained maps after one cascade step, per image."""

    layer: str  # the unit randomized at this step (cascading: it and every unit above it are random)
    randomized: float  # share of the model's parameters that are random at this step
    spearman: np.ndarray  # (N,) rank correlation of the absolute-value maps
    ssim: np.ndarray  # (N,)
    spearman_signed: np.ndarray | None = None  # (N,) signed maps; None: the method is not signed
    hog: np.ndarray | None = None  # (N,) HOG similarity; None: not computed
    constant: np.ndarray | None = None  # (N,) bool: the map had no ranking (scored 0, see similarity.py)

    def summary(self) -> dict:
        mean = lambda a: None if a is None else float(np.mean(a))  # noqa: E731
        return {"layer": self.layer, "spearman": mean(self.spearman), "ssim": mean(self.ssim),
                "spearman_signed": mean(self.spearman_signed), "hog": mean(self.hog),
                "randomized": round(self.randomized, 6),
                "constant_maps": 0 if self.constant is None else int(np.sum(self.constant))}

    def per_image(self, i: int) -> dict:
        v = lambda a: None if a is None else float(a[i])  # noqa: E731
        return {"layer": self.layer, "spearman": v(self.spearman), "ssim": v(self.ssim),
                "spearman_signed": v(self.spearman_signed), "hog": v(self.hog)}


@dataclass
class MethodSanity:
    """One method through the whole cascade."""

    method: str
    signed: bool
    steps: list[Step]
    maps: np.ndarray | None = None  # (S + 1, N, H, W) float16: the trained map, then one per step

    @property
    def verdict(self) -> dict:
        return verdict(self.steps, signed=self.signed)


@dataclass
class SanityResult:
    """Every method's cascade on the same N images."""

    methods: list[MethodSanity]
    cascade: list[str]  # unit names, top first
    mode: str  # "cascading" | "independent" | "labels"
    seed: int
    targets: list[int]
    layer: str | None  # the CAM layer (Grad-CAM, guided Grad-CAM)
    extra: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.targets)

    def to_json(self, per_image: bool = False, names: Sequence[str] | None = None) -> list[dict]:
        """``[{"method", "signed", "verdict", "cascade": [{"layer", "spearman", "ssim", ...}]}]``: means over
        the images; with ``per_image`` each method also gets ``"per_image": [{"image", "target", "cascade"}]``."""
        out = []
        for m in self.methods:
            # the rule reads a cascade (or the label test); the independent test only maps per-block sensitivity
            v = m.verdict if self.mode != "independent" else {**verdict([]), "note": NO_VERDICT}
            row: dict = {"method": m.method, "signed": m.signed, "images": self.n_images,
                         "verdict": v, "cascade": [s.summary() for s in m.steps]}
            if per_image:
                row["per_image"] = [{"image": names[i] if names else i, "target": int(self.targets[i]),
                                     "cascade": [s.per_image(i) for s in m.steps]} for i in range(self.n_images)]
            out.append(row)
        return out


def verdict(steps: Sequence[Step], signed: bool = False, threshold: float = PASS_THRESHOLD,
            n_boot: int = 2000, seed: int = 0) -> dict:
    """The pass rule (docs/sanity.md): once the top half of the cascade is random (step ``ceil(S/2)``),
    the maps must share less than ``threshold`` of their ranking with the trained maps.

    The measure is the Spearman rank correlation of the *signed* maps where the method is signed (a
    signed attribution claims which pixels raise and which lower the class score; the magnitude of any
    network's gradient is large at image edges, random network or not, so absolute-value maps keep an
    input-driven similarity that says nothing about the learned weights), else of the maps themselves.
    ``passes`` is True when the 95% bootstrap interval over the images lies below ``threshold``, False
    when it lies at or above it, None (unclear) when it straddles it.
    """
    if not steps:
        return {"passes": None, "step": None, "step_index": None, "measure": None, "mean": None, "ci95": None, "threshold": threshold}
    k = max(1, math.ceil(len(steps) / 2)) - 1
    s = steps[k]
    use_signed = signed and s.spearman_signed is not None
    vals = np.asarray(s.spearman_signed if use_signed else s.spearman, np.float64)
    mean = float(vals.mean())
    if vals.size > 1:
        rng = np.random.default_rng(seed)
        boots = vals[rng.integers(0, vals.size, size=(n_boot, vals.size))].mean(1)
        lo, hi = (float(v) for v in np.quantile(boots, [0.025, 0.975]))
    else:
        lo = hi = mean
    passes = True if hi < threshold else False if lo >= threshold else None
    measure = "spearman_signed" if use_signed else "spearman"
    return {"passes": passes, "step": s.layer, "step_index": k + 1, "measure": measure, "mean": mean, "ci95": [lo, hi],
            "threshold": threshold}


def rule_text(k: int, n_steps: int, threshold: float = PASS_THRESHOLD) -> str:
    """The verdict rule in words (printed beside every table)."""
    return (f"a method passes if its maps' Spearman rank correlation with the trained maps (signed maps where the method "
            f"is signed) is below {threshold:g}, the whole 95% bootstrap interval over the images, once the top {k} of the "
            f"{n_steps} cascade steps are random; fails if the interval lies at or above {threshold:g}; unclear otherwise")


def merge(results: Sequence[SanityResult]) -> SanityResult:
    """Results of the same cascade on several batches of images -> one result over all the images."""
    if not results:
        raise SanityError("nothing to merge")
    first = results[0]
    cat = lambda arrs: None if arrs[0] is None else np.concatenate(arrs)  # noqa: E731
    methods = []
    for j, m in enumerate(first.methods):
        parts = [r.methods[j] for r in results]
        steps = [Step(s.layer, s.randomized, *(cat([p.steps[i].__dict__[k] for p in parts])
                                               for k in ("spearman", "ssim", "spearman_signed", "hog", "constant")))
                 for i, s in enumerate(m.steps)]
        maps = None if any(p.maps is None for p in parts) else np.concatenate([p.maps for p in parts], axis=1)
        methods.append(MethodSanity(m.method, m.signed, steps, maps))
    return SanityResult(methods, first.cascade, first.mode, first.seed, [t for r in results for t in r.targets], first.layer, dict(first.extra))


# -- the test -------------------------------------------------------------------------------------
def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with frozen parameters: what the cascade randomizes."""
    work = copy.deepcopy(model).eval()
    for p in work.parameters():
        p.requires_grad_(False)
        p.grad = None
    return work


def _explain_all(model, x, method, targets, info, layer, batch_size) -> tuple[np.ndarray, np.ndarray | None]:
    maps, signed = [], []
    for i in range(0, x.shape[0], batch_size):
        m, s = explain_maps(model, x[i : i + batch_size], method, targets=targets[i : i + batch_size], info=info, layer=layer)
        maps.append(m)
        signed.append(s)
    return np.concatenate(maps), (None if signed[0] is None else np.concatenate(signed))


def top1(model: nn.Module, x: torch.Tensor, batch_size: int = 16) -> list[int]:
    """Each image's top-1 class under ``model`` (eval mode, no grad; the model's flags are restored)."""
    from cnnviz.probe import frozen, model_device

    dev = model_device(model)
    out: list[int] = []
    with frozen(model), torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            out += model(x[i : i + batch_size].to(dev)).argmax(1).tolist()
    return out


def cascading_randomization(
    model: nn.Module,
    x: torch.Tensor,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    info: "ModelInfo | None" = None,  # noqa: F821
    targets: Sequence[int] | None = None,
    layer: str | None = None,
    cascade: str | Sequence[str] | None = None,
    independent: bool = False,
    seed: int = 0,
    hog: bool = False,
    batch_size: int = 8,
    keep_maps: bool = True,
    progress: Callable[[int], None] | None = None,
) -> SanityResult:
    """Adebayo et al.'s model-parameter randomization test on ``x`` ``(N, C, H, W)``.

    ``cascade``: unit names top first (``"classifier,conv_head+bn2,blocks.6"``) or ``resolve_cascade``'s
    units; None derives it from the module tree (``randomize.discover_units``), ending with every unit random. ``targets``: one
    class per image (or one for all); None: the trained model's top-1. ``layer``: the CAM layer [last
    spatial layer]. ``keep_maps`` keeps every map as float16 ``(S + 1, N, H, W)`` per method for figures.
    ``progress(k)`` is called after each method finishes a step with ``k = N`` images, ``(S + 1) * len(methods)``
    calls in all.
    """
    from cnnviz.explain.cam import _check_targets, default_cam_layer
    from cnnviz.explain.randomize import FreshWeights, reinitialize, unit_parameters
    from cnnviz.explain.similarity import compare_maps

    methods = check_methods(methods)
    if x.dim() != 4 or x.shape[0] == 0:
        raise SanityError(f"x must be a non-empty (N, C, H, W) batch, got shape {tuple(x.shape)}")
    work = private_copy(model)
    dev = next((p.device for p in work.parameters()), torch.device("cpu"))
    x = x.detach().to(dev).float()
    units = resolve_cascade(work, x, cascade)
    needs_layer = any(m in _cam_like() for m in methods)
    layer = (layer or default_cam_layer(work, info)) if needs_layer else layer
    logits_n = None
    if targets is None:
        targets = top1(work, x)
    else:
        with torch.no_grad():
            logits_n = work(x[:1]).shape[1]
        targets = _check_targets(targets, x.shape[0], logits_n)
    targets = [int(t) for t in targets]
    total = sum(p.numel() for p in work.parameters()) or 1
    trained = {k: v.detach().clone() for k, v in work.state_dict().items()} if independent else None
    fresh = FreshWeights(work, info, seed)

    ref: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    kept: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for m in methods:
        ref[m] = _explain_all(work, x, m, targets, info, layer, batch_size)
        if keep_maps:
            kept[m].append(ref[m][0].astype(np.float16))
        if progress:
            progress(x.shape[0])
    steps: dict[str, list[Step]] = {m: [] for m in methods}
    random_ids: set[int] = set()
    for unit in units:
        if trained is not None:
            work.load_state_dict(trained)
            random_ids = set()
        reinitialize(work, unit, fresh)
        random_ids |= {id(p) for p in unit_parameters(work, unit)}
        share = sum(p.numel() for p in work.parameters() if id(p) in random_ids) / total
        for m in methods:
            maps, signed = _explain_all(work, x, m, targets, info, layer, batch_size)
            c = compare_maps(ref[m][0], maps, ref_signed=ref[m][1], signed=signed, with_hog=hog)
            steps[m].append(Step(unit.name, share, c["spearman"], c["ssim"], c["spearman_signed"], c["hog"], c["constant"]))
            if keep_maps:
                kept[m].append(maps.astype(np.float16))
            if progress:
                progress(x.shape[0])
    out = [MethodSanity(m, ref[m][1] is not None, steps[m], np.stack(kept[m]) if keep_maps else None) for m in methods]
    return SanityResult(out, [u.name for u in units], "independent" if independent else "cascading", seed, targets, layer,
                        {"init": fresh.source})


def resolve_cascade(model: nn.Module, x: torch.Tensor | None, cascade: "str | Sequence[str] | Sequence[Unit] | None" = None) -> list:  # noqa: F821
    """The cascade as ``randomize.Unit`` s, top first: ``cascade`` parsed (names, ``+`` joins modules),
    or derived from the module tree (``x`` orders the units by a forward pass). ``SanityError`` if empty."""
    from cnnviz.explain.randomize import Unit, discover_units, parse_cascade

    if cascade is not None and len(cascade) and all(isinstance(u, Unit) for u in cascade):
        units = list(cascade)
    elif cascade is not None:
        units = parse_cascade(model, cascade)  # type: ignore[arg-type]
    else:
        units = discover_units(model, x)[::-1]
    if not units:
        raise SanityError(f"{type(model).__name__} has no layer with parameters to randomize.")
    return units


def _cam_like() -> tuple[str, ...]:
    from cnnviz.explain.cam import METHODS

    return (*METHODS, "guided-gradcam")
