"""Training augmentation presets: ``none``, ``basic`` (crop/zoom + flip), ``strong`` (+ affine, colour, erasing).

They live in ``cnnviz.transforms`` (the one image -> tensor path); these names stay importable here.
A preset augments the uint8 image at its own size, then the evaluation resize + normalization
finishes it, so training and evaluation inputs differ only by the augmentation.
"""

from cnnviz.transforms import PRESET_HELP, PRESETS, TrainTransform, augment_samples, train_transform

__all__ = ["PRESETS", "PRESET_HELP", "TrainTransform", "augment_samples", "train_transform"]
