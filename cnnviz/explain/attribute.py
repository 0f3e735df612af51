"""Pixel attributions through captum: saliency, integrated gradients, SmoothGrad, occlusion,
guided backprop, guided Grad-CAM, DeepLift -- batched, on a private copy of the model.

Why a copy: captum's guided backprop and DeepLift register hooks on activation modules and need
them out-of-place and of a type they know. timm's EfficientNet-Lite uses ``ReLU6(inplace=True)``,
which captum silently treats as a plain gradient. The working copy (made once per ``Attributor``)
is in eval mode with frozen parameters, every ``inplace`` flag off, and each ``ReLU6`` rewritten as
``relu(x) - relu(x - 6)`` -- the same function, built from two ``nn.ReLU`` that captum's rules
handle exactly. The caller's model is never touched; each captum call runs inside
``cnnviz.probe.frozen`` on the copy, so a hook captum leaves behind (on an error) is removed.

Memory: integrated gradients runs its ``n_steps`` in chunks of ``internal_batch_size``, SmoothGrad
its samples in chunks, occlusion ``perturbations_per_eval`` windows at a time, so a laptop never
holds more than a small batch of activations.

Example::

    att = compute_attributions(model, x, method="integrated-gradients", info=info)
    att.maps      # (B, H, W) float32 in [0, 1]
    att.raw       # (B, C, H, W) float32 signed attributions
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from cnnviz.explain.methods import get_method, method_names
from cnnviz.explain.result import Explanation, MethodError

log = logging.getLogger(__name__)

ATTRIBUTION_METHODS = tuple(method_names(["attribution"]))
# how the signed (B, C, H, W) attribution becomes one (B, H, W) map
_REDUCE = {"saliency": "absmax", "smoothgrad": "absmax", "guided-backprop": "absmax", "guided-gradcam": "absmax",
           "integrated-gradients": "positive", "deeplift": "positive", "occlusion": "positive"}


#: an unknown attribution method or unusable option (the one method error class)
AttributionError = MethodError
#: the result of an ``Attributor`` call: the one result type (``maps``, ``raw``, ``targets``, ``probs``, ...)
AttributionBatch = Explanation


class _ReLU6Split(nn.Module):
    """``min(max(x, 0), 6)`` written as ``relu(x) - relu(x - 6)``: two ReLUs that captum's
    guided-backprop and DeepLift rules know (ReLU6 itself falls back to a plain gradient there)."""

    def __init__(self) -> None:
        super().__init__()
        self.low = nn.ReLU()
        self.high = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Each ReLU gets its own input node: DeepLift rewrites the gradient at its module's input
        # tensor, and a tensor shared by both branches would have both branches' gradients rewritten.
        return self.low(x.clone()) - self.high(x - 6.0)


def working_copy(model: nn.Module) -> nn.Module:
    """An eval-mode, frozen deep copy of ``model`` with in-place activations off and ReLU6 split.

    ``model`` itself is not modified.
    """
    m = copy.deepcopy(model).eval()
    for p in m.parameters():
        p.requires_grad_(False)
        p.grad = None
    for parent in list(m.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU6) or (isinstance(child, nn.Hardtanh) and child.min_val == 0 and child.max_val == 6):
                setattr(parent, name, _ReLU6Split())
    for mod in m.modules():
        if hasattr(mod, "inplace") and isinstance(mod.inplace, bool):
            mod.inplace = False
    return m


def reduce_attribution(raw: torch.Tensor, how: str, clip_percentile: float = 99.5) -> np.ndarray:
    """``(B, C, H, W)`` signed attributions -> ``(B, H, W)`` float32 in [0, 1].

    ``absmax``: max |a| over channels (saliency style); ``positive``: channel sum, positive part
    (evidence for the class). Scaled per image by its ``clip_percentile`` (gradient maps are spiky).
    """
    a = raw.detach().float()
    m = a.abs().amax(1) if how == "absmax" else a.sum(1).clamp_min(0)
    flat = m.flatten(1)
    hi = torch.quantile(flat, clip_percentile / 100.0, dim=1) if flat.shape[1] <= 16_000_000 else flat.max(1).values
    hi = torch.where(hi > 0, hi, flat.max(1).values.clamp_min(1e-12))
    return (m / hi[:, None, None]).clamp(0, 1).cpu().numpy().astype(np.float32, copy=False)


class Attributor:
    """Holds the working copy and captum object for one method; call it on batches.

    Args:
        model: the caller's network (never modified).
        method: one of ``ATTRIBUTION_METHODS``.
        info: ``ModelInfo`` (for the black-image baseline and the default Grad-CAM layer).
        layer: guided Grad-CAM's layer (default: ``default_cam_layer``).
        n_steps: integrated-gradients steps. internal_batch_size: IG/SmoothGrad chunk size.
        nt_samples / stdev: SmoothGrad samples and noise std as a fraction of the input range.
        window / stride: occlusion window and stride in pixels (default H/8 and half of it).
        perturbations_per_eval: occlusion windows per forward. seed: SmoothGrad noise.
    """

    def __init__(self, model: nn.Module, method: str, *, info: "ModelInfo | None" = None,  # noqa: F821
                 layer: str | None = None, n_steps: int = 32, internal_batch_size: int = 16,
                 nt_samples: int = 16, stdev: float = 0.15, window: int | None = None, stride: int | None = None,
                 perturbations_per_eval: int = 16, seed: int = 0) -> None:
        get_method(method, ["attribution"])
        self.method = method
        self.info = info
        self.model = working_copy(model)
        self.n_steps, self.internal_batch_size = n_steps, internal_batch_size
        self.nt_samples, self.stdev, self.seed = nt_samples, stdev, seed
        self.window, self.stride, self.ppe = window, stride, perturbations_per_eval
        self.layer: str | None = None
        self._layout: str | None = None
        if method == "guided-gradcam":
            from cnnviz.explain.cam import default_cam_layer, is_vit
            from cnnviz.probe import check_spatial_layer

            self.layer = layer or default_cam_layer(model, info)
            # one line for --layer classifier (captum would fail deep inside, or draw nonsense)
            size = tuple(info.input_size) if info is not None else (3, 224, 224)
            self._layout = check_spatial_layer(self.model, self.layer, size, tokens_ok=is_vit(model))

    def _baseline(self, x: torch.Tensor) -> torch.Tensor:
        """A black image in the model's normalized space (zeros when mean/std are unknown)."""
        if self.info is None:
            return torch.zeros_like(x)
        mean = torch.tensor(self.info.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.info.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return ((0 - mean) / std).expand_as(x).contiguous()

    def __call__(self, x: torch.Tensor, targets: Sequence[int] | None = None) -> Explanation:
        """Attributions of ``x`` ``(B, C, H, W)`` for ``targets`` (None: top-1 per image)."""
        from cnnviz.explain.cam import _check_targets
        from cnnviz.probe import frozen, model_device

        x = x.detach().to(model_device(self.model)).float()
        with torch.no_grad():
            logits = self.model(x).float()
        t = _check_targets(targets, x.shape[0], logits.shape[1])
        t = logits.argmax(1).tolist() if t is None else t
        with frozen(self.model), warnings.catch_warnings():  # frozen: no captum hook outlives the call
            warnings.simplefilter("ignore")  # captum warns on every call that it sets hooks
            raw = self._attribute(x, t)
        maps = reduce_attribution(raw, _REDUCE[self.method])
        probs = torch.softmax(logits, 1).cpu().numpy()
        return Explanation(maps=maps, targets=list(t), probs=probs, method=self.method, layer=self.layer,
                           raw=raw.detach().float().cpu().numpy())

    def _attribute(self, x: torch.Tensor, t: list[int]) -> torch.Tensor:
        import captum.attr as ca

        m, method = self.model, self.method
        if method == "saliency":
            return ca.Saliency(m).attribute(x, target=t, abs=False)
        if method == "integrated-gradients":
            return ca.IntegratedGradients(m).attribute(x, baselines=self._baseline(x), target=t, n_steps=self.n_steps,
                                                       internal_batch_size=self.internal_batch_size)
        if method == "smoothgrad":
            span = float(x.max() - x.min())
            gen_state = torch.random.get_rng_state()
            try:  # NoiseTunnel draws from the global RNG: seed it, then put it back as found
                torch.manual_seed(self.seed)
                return ca.NoiseTunnel(ca.Saliency(m)).attribute(
                    x, nt_type="smoothgrad", nt_samples=self.nt_samples, stdevs=self.stdev * span,
                    nt_samples_batch_size=max(1, self.internal_batch_size // max(1, x.shape[0])), target=t, abs=False)
            finally:
                torch.random.set_rng_state(gen_state)
        if method == "occlusion":
            h, w = x.shape[-2:]
            win = self.window or max(2, min(h, w) // 8)
            stride = self.stride or max(1, win // 2)
            if win > min(h, w) or stride > min(h, w):  # captum would allocate (windows x input) first: refuse
                raise MethodError(f"occlusion window {win} / stride {stride} px do not fit the {h}x{w} input.")
            return ca.Occlusion(m).attribute(x, sliding_window_shapes=(x.shape[1], win, win), strides=(x.shape[1], stride, stride),
                                             baselines=self._baseline(x), target=t, perturbations_per_eval=self.ppe)
        if method == "guided-backprop":
            return ca.GuidedBackprop(m).attribute(x, target=t)
        if method == "guided-gradcam":
            from cnnviz.explain.cam import compute_cams, is_vit
            from cnnviz.layers import resolve_layer

            if is_vit(m) or self._layout != "NCHW":  # captum's LayerGradCam reads (B, C, H, W) only: tokens and
                # channels-last maps (Swin) get guided backprop x cnnviz's Grad-CAM, which reshapes them
                cam = compute_cams(m, x, layer=self.layer, method="gradcam", targets=t)
                guided = ca.GuidedBackprop(m).attribute(x, target=t)
                return guided * torch.from_numpy(cam.maps).to(guided)[:, None]
            return ca.GuidedGradCam(m, resolve_layer(m, self.layer)).attribute(x, target=t, interpolate_mode="bilinear")
        if method == "deeplift":
            return ca.DeepLift(m).attribute(x, baselines=self._baseline(x), target=t)
        raise MethodError(f"unknown attribution method {method!r}")


def compute_attributions(model: nn.Module, x: torch.Tensor, *, method: str = "saliency",
                         targets: Sequence[int] | None = None, info: "ModelInfo | None" = None,  # noqa: F821
                         **options: object) -> Explanation:
    """One-shot ``Attributor(model, method, info=info, **options)(x, targets)``; see ``Attributor``."""
    return Attributor(model, method, info=info, **options)(x, targets)  # type: ignore[arg-type]
