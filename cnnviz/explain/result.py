"""The one result type of every explainer, and the one error for method names and options.

Torch-free (numpy only), so the registry, the CLI's help and the gallery can use it without
importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cnnviz.errors import CnnvizError


class MethodError(CnnvizError):
    """An unknown explanation method, one used where it does not belong, or an option it does not take."""


@dataclass
class Explanation:
    """What every method returns for a batch of B inputs.

    Attributes:
        maps: ``(B, H, W)`` float32 in [0, 1], one map per input: at the input tensor's ``H, W``,
            or at the images' own size when images were given (see ``image_sizes``).
        targets: the class explained for each input.
        probs: ``(B, num_classes)`` float32 softmax of the model's logits.
        method: the registry name (``"gradcam"``, ``"integrated-gradients"``, ...).
        layer: the layer a CAM (or guided Grad-CAM) used; None for pixel attributions.
        raw: ``(B, C, h, w)`` float32 signed attributions at the model's input size, for the
            methods that have them (captum's); None for CAMs and the random baseline.
        target_names: class names of ``targets`` when the model's ``ModelInfo`` was known.
        image_sizes: ``(H, W)`` of each input image when images (not a tensor) were explained.
            When they all share one size, ``maps`` is at that size; otherwise ``maps`` stays at
            the model's input size and ``map_at_image(i)`` gives image ``i``'s map at its size.
    """

    maps: np.ndarray
    targets: list[int]
    probs: np.ndarray
    method: str
    layer: str | None = None
    raw: np.ndarray | None = None
    target_names: list[str] | None = None
    image_sizes: list[tuple[int, int]] | None = field(default=None)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def scores(self) -> np.ndarray:
        """``(B,)`` the probability of each explained class."""
        return self.probs[np.arange(len(self.targets)), self.targets].astype(np.float32)

    def map_at_image(self, i: int) -> np.ndarray:
        """Map ``i`` at its image's ``(H, W)`` (bilinear, clipped to [0, 1]); as is for tensor inputs."""
        m = self.maps[i]
        if self.image_sizes is None or tuple(m.shape) == tuple(self.image_sizes[i]):
            return m
        from cnnviz.explain.methods import map_at

        return map_at(m, self.image_sizes[i])

    def __repr__(self) -> str:
        names = self.target_names or [str(t) for t in self.targets]
        shown = ", ".join(names[:4]) + ("..." if len(names) > 4 else "")
        layer = f", layer={self.layer!r}" if self.layer else ""
        raw = f", raw {tuple(self.raw.shape)}" if self.raw is not None else ""
        return f"Explanation({self.method!r}{layer}, maps {tuple(self.maps.shape)}{raw}, targets [{shown}])"
