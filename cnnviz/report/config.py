"""What a report is asked to do: its knobs, the models and the images (light: no torch)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cnnviz.errors import CnnvizError


# Steps per class image in the gallery and the demo: on 28-32 px checkpoints other models recognized the images
# more often at 96 steps than at 64 and no more at 256 (docs/units.md, "Small-input models").
CLASS_IMAGE_STEPS = 96


@dataclass
class ReportConfig:
    """What the report computes (the knobs of ``cnnviz gallery``)."""

    layers: Sequence[str] = ()  # chosen layers (filters + activation maps); default: a mid-depth conv
    cam_methods: Sequence[str] = ("gradcam",)
    attr_methods: Sequence[str] = ("saliency",)
    max_classes: int = 10  # classes shown for maximize / top patches
    maximize_steps: int = CLASS_IMAGE_STEPS
    maximize_size: int | None = None
    examples_k: int = 6
    examples_limit: int = 300  # dataset images scanned for top patches
    activation_images: int = 2
    top_channels: int = 16
    compare: bool = True
    eval_limit: int = 500
    num_images: int = 12  # images drawn from --data when no --images are given
    image_px: int = 224  # display size of per-image pictures
    erf: bool = True
    strips: bool = True  # per image and model: the CAM at every stage (cnnviz gradcam --layers stages)
    strip_method: str = "gradcam"
    sanity: bool = True  # per model and method: cnnviz sanity's verdict on the gallery's images
    seed: int = 0  # also the sanity verdict's random weights
    device: str = "cpu"

    def validate(self) -> None:
        """``CnnvizError`` for a knob outside what makes sense (the CLI bounds them earlier)."""
        bounds = {"max_classes": (1, 1000), "maximize_steps": (1, 100_000), "examples_k": (1, 64),
                  "examples_limit": (1, 1_000_000), "activation_images": (0, 1000), "top_channels": (1, 1024),
                  "eval_limit": (4, 1_000_000), "num_images": (0, 10_000), "image_px": (16, 2048)}
        for name, (lo, hi) in bounds.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise CnnvizError(f"report setting {name}={v!r} is outside {lo}..{hi}.")
        if self.maximize_size is not None and not 8 <= self.maximize_size <= 2048:
            raise CnnvizError(f"report setting maximize_size={self.maximize_size!r} is outside 8..2048.")
        for layer in self.layers:
            if not str(layer).strip():
                raise CnnvizError("--layers got an empty layer name.")


@dataclass
class ModelSource:
    """A model to report on: a ``--model`` spec, an optional display name, ``pretrained|random``."""

    spec: str
    name: str | None = None
    weights: str = "pretrained"


@dataclass
class ImageRef:
    """One input image, loaded on demand (so many images never sit in memory at once).

    ``load()`` returns ``(H, W, 3) uint8``; ``cls`` is its label when known (the class filter).
    """

    name: str
    load: Callable[[], np.ndarray]
    cls: str | None = None
    _hash: str | None = None

    def digest(self) -> str:
        """A content hash of the decoded pixels (the cache key of everything about this image)."""
        if self._hash is None:
            a = np.ascontiguousarray(self.load())
            self._hash = hashlib.sha256(str(a.shape).encode() + a.tobytes()).hexdigest()[:24]
        return self._hash
