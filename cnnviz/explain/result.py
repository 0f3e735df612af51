"""The one result type of every explainer (and ``CamStrip``, one map per layer), and the one error for
method names and options.

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


@dataclass
class CamStrip:
    """One CAM per layer for a batch of B inputs: ``cnnviz.cam_strip``'s result.

    Attributes:
        maps: ``(B, L, H, W)`` float32 in [0, 1]: input ``b``'s map at layer ``layers[l]``; at the
            input tensor's size, or at the images' size when images of one size were given.
        layers: the L layers in forward order (shallow to deep).
        targets, probs, method, target_names, image_sizes: as in ``Explanation`` (one forward for all
            layers, so one prediction).
        grids: ``(h, w)`` of each layer's map before upsampling (its spatial resolution).
    """

    maps: np.ndarray
    layers: list[str]
    targets: list[int]
    probs: np.ndarray
    method: str
    target_names: list[str] | None = None
    image_sizes: list[tuple[int, int]] | None = field(default=None)
    grids: list[tuple[int, int]] | None = None

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def scores(self) -> np.ndarray:
        """``(B,)`` the probability of each explained class."""
        return self.probs[np.arange(len(self.targets)), self.targets].astype(np.float32)

    def __getitem__(self, layer: str) -> Explanation:
        """The maps of one layer as an ``Explanation`` (``strip["blocks.3"].maps`` is ``(B, H, W)``)."""
        if layer not in self.layers:
            raise KeyError(f"{layer!r} is not in this strip; its layers are {', '.join(self.layers)}")
        k = self.layers.index(layer)
        return Explanation(maps=self.maps[:, k], targets=list(self.targets), probs=self.probs, method=self.method,
                           layer=layer, target_names=self.target_names, image_sizes=self.image_sizes)

    def picture(self, i: int, image: np.ndarray | None = None, alpha: float = 0.5, label_layers: bool = True) -> np.ndarray:
        """Input ``i``'s strip as one ``(H, L * W + gaps, 3) uint8`` picture: each layer's map over
        ``image`` (``(H, W, 3) uint8``; without it, the colour maps alone), labelled with the layer."""
        from cnnviz.render import colorize, label, overlay

        tiles = []
        for k, name in enumerate(self.layers):
            m = self.maps[i, k]
            if image is not None:
                from cnnviz.explain.inputs import map_at

                pic = overlay(image, map_at(m, image.shape[:2]), alpha=alpha)
            else:
                pic = colorize(m)
            grid = f" {self.grids[k][0]}x{self.grids[k][1]}" if self.grids else ""
            tiles.append(label(pic, name + grid) if label_layers else pic)
        gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
        row = [tiles[0]]
        for t in tiles[1:]:
            row += [gap, t]
        return np.concatenate(row, axis=1)

    def __repr__(self) -> str:
        names = self.target_names or [str(t) for t in self.targets]
        shown = ", ".join(names[:4]) + ("..." if len(names) > 4 else "")
        return f"CamStrip({self.method!r}, layers {self.layers}, maps {tuple(self.maps.shape)}, targets [{shown}])"
