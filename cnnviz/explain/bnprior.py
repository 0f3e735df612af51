"""A natural-image prior read from the model itself: its BatchNorm running statistics.

Every ``BatchNorm2d`` stored the mean and variance of its input over the training data. An image
whose features have those statistics at every such layer looks, to the model, like its training
data; an image that only drives one logit up usually does not (Yin et al. 2020, "Dreaming to Distill",
DeepInversion). ``BatchNormPrior`` hooks every BatchNorm of a model in eval mode and, after each
forward pass, holds the distance of the batch's feature statistics from the stored ones::

    with BatchNormPrior(model, groups=batch) as prior:
        logits = model(x)                 # x: (n_views * batch, C, H, W), view-major rows
        loss = -logits[...].sum() + weight * prior.loss().sum()

``groups`` decides over what the statistics are taken: ``groups=1`` pools every row (as
DeepInversion does over its batch); ``groups=B`` gives each of the ``B`` images its own statistics
over its views and positions, so an image does not depend on which other classes share its call.
"""

from __future__ import annotations

import torch
from torch import nn


def batchnorm_layers(model: nn.Module) -> list[nn.BatchNorm2d]:
    """The model's ``BatchNorm2d`` modules (timm's ``BatchNormAct2d`` included) with running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None
            and m.running_var is not None]


class BatchNormPrior:
    """Forward pre-hooks on every BatchNorm; ``loss()`` is ``(groups,)``, summed over the layers.

    Per layer and group: ``||mean - running_mean||_2 + ||var - running_var||_2`` over channels, the
    mean and variance taken over the group's rows and positions, divided by the channel count's square
    root so wide and narrow layers weigh alike. Cleared by ``reset()`` (``loss()`` does it too).
    """

    def __init__(self, model: nn.Module, groups: int = 1) -> None:
        self.layers = batchnorm_layers(model)
        self.groups = max(1, int(groups))
        self._terms: list[torch.Tensor] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> BatchNormPrior:
        self._handles = [m.register_forward_pre_hook(self._hook) for m in self.layers]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._terms = []

    def _hook(self, module: nn.BatchNorm2d, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0]  # (R, C, H, W), R = n_views * groups, view-major
        r, c = x.shape[0], x.shape[1]
        g = self.groups if r % self.groups == 0 else 1
        xs = x.reshape(r // g, g, c, -1)  # (n views, g groups, C, HW): a view, no copy
        var, mean = torch.var_mean(xs.float(), dim=(0, 3), correction=0)  # (g, C) each, one pass
        rm = module.running_mean.float().unsqueeze(0)
        rv = module.running_var.float().unsqueeze(0)
        self._terms.append(((mean - rm).norm(dim=1) + (var - rv).norm(dim=1)) / c**0.5)

    def reset(self) -> None:
        self._terms = []

    def loss(self) -> torch.Tensor:
        """``(groups,)``: the summed distance of the last forward's statistics; 0 without BatchNorm."""
        if not self._terms:
            return torch.zeros(self.groups)
        out = torch.stack(self._terms).sum(0)
        self._terms = []
        return out
