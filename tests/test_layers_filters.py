"""Layer listing and kernel pictures at the library level."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.errors import LayerError
from cnnviz.explain.activations import activation_maps
from cnnviz.explain.filters import filter_grid, filter_tiles, layer_kernels
from cnnviz.probe import describe_layers, spatial_layers


def test_describe_and_spatial_layers(tiny_cnn):
    model, info = tiny_cnn
    rows = {r.name: r for r in describe_layers(model, info.input_size)}
    assert rows["features.0"].output_shape == [4, 32, 32]
    assert rows["features.6"].output_shape == [4, 16, 16]  # first max-pool
    assert rows["classifier.2"].output_shape == [5]
    assert rows["features.0"].params == 3 * 4 * 9
    sl = spatial_layers(model, info.input_size)
    assert sl[0] == "features.0" and "avgpool" not in sl and "classifier.2" not in sl


def test_rgb_kernels_shown_in_colour(tiny_cnn):
    model, _ = tiny_cnn
    k = layer_kernels(model, "features.0")
    assert k.kind == "rgb" and k.weights.shape == (4, 3, 3, 3)
    tiles = filter_tiles(k)
    assert len(tiles) == 4 and tiles[0].shape == (3, 3, 3)
    # per-filter scaling: each kernel's largest |w| reaches an end of the range
    for t in tiles:
        assert t.min() == 0 or t.max() == 255


def test_deeper_kernels_mean_or_channel_and_shared_scale(tiny_cnn):
    model, _ = tiny_cnn
    with torch.no_grad():
        model.features[3].weight.zero_()
        model.features[3].weight[0, 1] = 1.0  # filter 0 only looks at input channel 1
        model.features[3].weight[1, 1] = 0.1
    k = layer_kernels(model, "features.3")
    assert k.kind == "multi"
    ch0 = filter_tiles(k, in_channel=0)
    assert all((t == ch0[0]).all() for t in ch0)  # all zero -> the same neutral colour
    shared = filter_tiles(k, normalize="shared")
    per = filter_tiles(k, normalize="per-filter")
    assert not np.array_equal(shared[1], shared[0])  # weaker filter is paler on a shared scale
    assert np.array_equal(per[1], per[0])  # same pattern, own range
    with pytest.raises(LayerError, match="in-channel"):
        filter_tiles(k, in_channel=9)
    assert filter_grid(k, max_filters=2).ndim == 3


def test_depthwise_and_non_conv():
    net = nn.Sequential(nn.Conv2d(6, 6, 5, groups=6), nn.ReLU())
    assert layer_kernels(net, "0").kind == "depthwise"
    with pytest.raises(LayerError, match="no convolution kernels"):
        layer_kernels(net, "1")


def test_activation_ranking(tiny_cnn):
    model, _ = tiny_cnn
    acts = activation_maps(model, torch.randn(1, 3, 32, 32), "features.2", top=3)
    assert acts.maps.shape == (3, 32, 32) and acts.shape == (4, 32, 32)
    assert acts.means == sorted(acts.means, reverse=True)
    assert np.allclose(acts.maps.mean(axis=(1, 2)), acts.means, atol=1e-5)
