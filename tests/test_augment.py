"""Augmentation presets (cnnviz.transforms): the right shapes, seeded, and the caller's RNG left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.transforms import PRESETS, TrainTransform, augment_samples, train_transform
from cnnviz.errors import CnnvizError


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("chans", [1, 3])
def test_presets_shape_and_normalization(preset, chans, rgb_image):
    tf = TrainTransform(preset, (20, 24), chans, (0.5,) * chans, (0.25,) * chans)
    x = tf(Image.fromarray(rgb_image).convert("L"))  # gray in, any channel count out
    assert tuple(x.shape) == (chans, 20, 24) and x.dtype == torch.float32
    assert x.min() >= -2.0 - 1e-6 and x.max() <= 2.0 + 1e-6  # (v - 0.5) / 0.25 for v in [0, 1]


def test_none_preset_equals_eval_transform(tiny_cnn, rgb_image):
    from cnnviz.data import eval_transform

    _, info = tiny_cnn
    img = Image.fromarray(rgb_image)
    a, b = train_transform(info, "none")(img), eval_transform(info)(img)
    assert torch.equal(a, b)  # one transform: the "none" preset is exactly what evaluation sees


def test_augmentation_varies_and_is_seeded(rgb_image):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = augment_samples(rgb_image, "strong", n=5, size=32, seed=7)
    assert torch.equal(torch.get_rng_state(), before)  # forked RNG: the caller's stream is untouched
    b = augment_samples(rgb_image, "strong", n=5, size=32, seed=7)
    c = augment_samples(rgb_image, "strong", n=5, size=32, seed=8)
    assert len(a) == 5 and all(t.shape == (32, 32, 3) and t.dtype == np.uint8 for t in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a[1:], c[1:]))
    assert not np.array_equal(a[1], a[2])


def test_unknown_preset():
    with pytest.raises(CnnvizError, match="--augment"):
        TrainTransform("wild", (8, 8), 3, (0,) * 3, (1,) * 3)
