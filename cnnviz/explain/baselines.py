"""The registry's baselines: maps that do not look at what the model learned.

* ``random``: a seeded uniform map per input -- the reference any method should beat in
  ``cnnviz faithfulness``.
* ``edges``: the Sobel gradient magnitude of the input (Adebayo et al. 2018's edge detector) --
  the reference a sanity check must catch: it draws a plausible "explanation" of every photo and
  never changes when the weights are randomized.

Both run one forward pass, for the targets and probabilities every ``Explanation`` carries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from cnnviz.explain.inputs import check_targets
from cnnviz.explain.result import Explanation


def _scores(model: nn.Module, x: torch.Tensor, targets: Sequence[int] | None) -> tuple[list[int], np.ndarray]:
    from cnnviz.probe import frozen, model_device

    with frozen(model), torch.no_grad():
        logits = model(x.to(model_device(model))).float()
    t = check_targets(targets, x.shape[0], logits.shape[1])
    t = logits.argmax(1).tolist() if t is None else t
    return list(t), torch.softmax(logits, 1).cpu().numpy()


def random_explanation(model: nn.Module, x: torch.Tensor, targets: Sequence[int] | None, seed: int = 0) -> Explanation:
    """A seeded uniform random ``(B, H, W)`` map per input of ``x`` ``(B, C, H, W)``."""
    t, probs = _scores(model, x, targets)
    b, _, h, w = x.shape
    maps = np.random.default_rng(seed).random((b, h, w), dtype=np.float32)
    return Explanation(maps=maps, targets=t, probs=probs, method="random")


def edge_maps(x: torch.Tensor) -> np.ndarray:
    """Sobel gradient magnitude of ``x`` ``(B, C, H, W)`` (channels summed) -> ``(B, H, W)`` float32,
    scaled to [0, 1] by its 99.5th percentile like the gradient maps. It ignores the model."""
    import torch.nn.functional as F

    g = x.detach().float().cpu().sum(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    p = F.pad(g, (1, 1, 1, 1), mode="replicate")
    mag = torch.sqrt(F.conv2d(p, kx) ** 2 + F.conv2d(p, kx.transpose(2, 3)) ** 2)[:, 0]
    hi = torch.quantile(mag.flatten(1), 0.995, dim=1).clamp_min(1e-12)
    return (mag / hi[:, None, None]).clamp(0, 1).numpy().astype(np.float32)


def edges_explanation(model: nn.Module, x: torch.Tensor, targets: Sequence[int] | None) -> Explanation:
    """``edge_maps(x)`` with the model's targets and probabilities."""
    t, probs = _scores(model, x, targets)
    return Explanation(maps=edge_maps(x), targets=t, probs=probs, method="edges")
