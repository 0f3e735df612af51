"""The built-in small CNN: torchvision-style ``features`` / ``avgpool`` / ``classifier`` children.

``features`` repeats, per stage, ``Conv-BN-ReLU, Conv-BN-ReLU, MaxPool``, so ``features.0`` and
``features.3`` are the first two convolutions. Width doubles each stage. Small enough to train on a
CPU in minutes on 28-64 px images; a fair "from scratch" baseline.
"""

from __future__ import annotations

import torch
from torch import nn


class SimpleCNN(nn.Module):
    """``(B, in_chans, H, W) -> (B, num_classes)`` logits; any H, W >= 2**depth."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32, depth: int = 3, dropout: float = 0.2) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError("simplecnn needs depth >= 1 and width >= 1")
        layers: list[nn.Module] = []
        c_in = in_chans
        for stage in range(depth):
            c_out = width * (2**stage)
            for _ in range(2):
                # Non-inplace ReLU: a probe on a conv sees the conv's own output, not a rectified one.
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
                c_in = c_out
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes))
        self.num_features = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))
