"""A natural-image prior read from the model itself: its BatchNorm running statistics.

Every ``BatchNorm2d`` stored the mean and variance of its input over the training data. An image
whose features have those statistics at every such layer looks, to the model, like its training
data; an image that only drives one logit up usually does not (Yin et al. 2020, "Dreaming to Distill",
DeepInversion). ``BatchNormPrior`` reads the input of every BatchNorm of a model in eval mode (through
``cnnviz.probe.InputTap``, the probe room's hooks) and, after each forward pass, holds the distance of the
batch's feature statistics from the stored ones::

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

from cnnviz.probe import InputTap


def batchnorm_layers(model: nn.Module) -> list[nn.BatchNorm2d]:
    """The model's ``BatchNorm2d`` modules (timm's ``BatchNormAct2d`` included) with running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None
            and m.running_var is not None]


class BatchNormPrior:
    """Reads every BatchNorm's input while entered; ``loss()`` is ``(groups,)``, summed over the layers.

    Per layer and group: ``||mean - running_mean||_2 + ||var - running_var||_2`` over channels, the
    mean and variance taken over the group's rows and positions, divided by the channel count's square
    root so wide and narrow layers weigh alike. Cleared by ``reset()`` (``loss()`` does it too).
    """

    def __init__(self, model: nn.Module, groups: int = 1, *, enabled: bool = True) -> None:
        self.layers = batchnorm_layers(model) if enabled else []  # disabled: no hooks, loss() is 0
        self.groups = max(1, int(groups))
        self._terms: list[torch.Tensor] = []
        self._tap = InputTap(self.layers, self._record)

    def __enter__(self) -> BatchNormPrior:
        self._tap.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._tap.__exit__(*exc)
        self._terms = []

    def _record(self, module: nn.Module, x: torch.Tensor) -> None:
        """One BatchNorm's term; ``x`` is its input ``(R, C, H, W)``, R = n_views * groups, view-major."""
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
