"""Grad-CAM at every depth: `cnnviz.cam_strip`, `cnnviz gradcam --layers`, and the fused LayerCAM.

The strip's layers are in forward order, a multi-layer call equals the single-layer calls, all layers
cost one forward pass, LayerCAM fusion matches torchcam's, and the CLI writes one strip per image with
one row per --model (bad layers refused before anything is written).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli.main import cli
from cnnviz.errors import LayerError
from cnnviz.explain.cam import compute_cam_strip, compute_cams, strip_layers
from cnnviz.explain.methods import Explainer, cam_strip, explain
from cnnviz.explain.result import MethodError


def test_stages_are_compares_stage_outputs_in_forward_order(tiny_cnn):
    from cnnviz.compare.layersel import default_layers, stage_outputs

    model, info = tiny_cnn
    stages = strip_layers(model, "stages", info.input_size)
    assert stages == stage_outputs(model, info.input_size) == default_layers(model, info)[:-1]  # minus the pooled vector
    order = [n for n, _ in model.named_modules()]
    assert [order.index(n) for n in stages] == sorted(order.index(n) for n in stages)
    # names given deep-first (and twice) come back once each, shallow to deep
    assert strip_layers(model, "features.7, features.0,features.3,features.0", info.input_size) == ["features.0", "features.3", "features.7"]


def test_non_spatial_or_unknown_layers_are_refused(tiny_cnn):
    model, info = tiny_cnn
    with pytest.raises(LayerError, match="not a spatial map"):
        strip_layers(model, ["features.0", "classifier"], info.input_size)
    with pytest.raises(LayerError, match="features.3"):
        strip_layers(model, "featurez.3", info.input_size)
    with pytest.raises(MethodError, match="cam_strip"):
        Explainer(model, "gradcam", info=info, layer=["features.0", "features.3"])


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam", "hirescam"])
def test_multi_layer_call_equals_single_layer_calls(tiny_cnn, method, one_thread):
    model, info = tiny_cnn
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    layers = strip_layers(model, "stages", info.input_size)
    s = compute_cam_strip(model, x, layers, method=method, targets=[0, 3, 4])
    assert s.maps.shape == (3, len(layers), 32, 32) and s.layers == layers and s.targets == [0, 3, 4]
    for k, layer in enumerate(layers):
        one = compute_cams(model, x, layer=layer, method=method, targets=[0, 3, 4])
        np.testing.assert_allclose(s.maps[:, k], one.maps, atol=1e-6)
        np.testing.assert_allclose(s.probs, one.probs, atol=1e-6)
    from cnnviz.probe import trace_shapes

    shapes = trace_shapes(model, (3, 32, 32), layers).shapes
    assert [tuple(g) for g in s.grids] == [tuple(shapes[n][2:]) for n in layers]  # each layer's own resolution
    assert s.grids[0][0] > s.grids[-1][0]  # shallow layers are finer


def test_all_layers_cost_one_forward(tiny_cnn, one_thread):
    model, info = tiny_cnn
    calls = []
    h = model.register_forward_pre_hook(lambda m, a: calls.append(1))  # registered outside: frozen() keeps it
    try:
        layers = strip_layers(model, "stages", info.input_size)
        calls.clear()
        compute_cam_strip(model, torch.randn(2, 3, 32, 32), layers)
        assert len(calls) == 1, "one forward pass for every layer of the batch"
    finally:
        h.remove()
    from cnnviz.probe import hook_count

    assert hook_count(model) == 0


def test_library_cam_strip_equals_per_layer_calls(tiny_cnn, one_thread):
    model, info = tiny_cnn
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    layers = ["features.3", "features.7"]
    s = compute_cam_strip(model, x, layers, method="eigencam")
    for k, layer in enumerate(layers):
        np.testing.assert_allclose(s.maps[:, k], compute_cams(model, x, layer=layer, method="eigencam", targets=s.targets).maps, atol=1e-6)


def test_cam_strip_api_on_images(tiny_cnn, rgb_image):
    import cnnviz

    model, info = tiny_cnn
    s = cnnviz.cam_strip(model, [rgb_image, rgb_image[:, ::-1].copy()], info=info, target=2)
    assert s.maps.shape == (2, len(s.layers), 48, 64) and s.targets == [2, 2] and s.target_names == [info.class_names[2]] * 2
    assert 0.0 <= s.maps.min() and s.maps.max() <= 1.0
    layer = s.layers[1]
    e = explain(model, [rgb_image, rgb_image[:, ::-1].copy()], "gradcam", info=info, layer=layer, target=2)
    np.testing.assert_allclose(s[layer].maps, e.maps, atol=1e-5)
    pic = s.picture(0, rgb_image)
    assert pic.dtype == np.uint8 and pic.shape[0] == 48 and pic.shape[1] == len(s.layers) * 64 + (len(s.layers) - 1) * 4
    with pytest.raises(KeyError, match="not in this strip"):
        s["classifier"]
    with pytest.raises(MethodError, match="fuses"):
        cam_strip(model, rgb_image, info=info, method="layercam-fused")


def test_layercam_fused_matches_torchcam(tiny_cnn, one_thread):
    pytest.importorskip("torchcam")
    from torchcam.methods import LayerCAM

    model, info = tiny_cnn
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    e = explain(model, x, "layercam-fused", info=info)
    layers = e.layer.split(",")
    assert layers == strip_layers(model, "stages", info.input_size)
    with LayerCAM(model, target_layer=layers, input_shape=(3, 32, 32)) as ex:
        fused = ex.fuse_cams(ex(class_idx=e.targets, scores=model(x)))
    theirs = torch.nn.functional.interpolate(fused[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0].detach().numpy()
    for i in range(3):
        assert np.corrcoef(theirs[i].ravel(), e.maps[i].ravel())[0, 1] > 0.999
    # a fused map is not any one layer's map
    one = explain(model, x, "layercam", info=info, layer=layers[-1], target=e.targets)
    assert not np.allclose(one.maps, e.maps, atol=1e-3)
    with pytest.raises(MethodError, match="gamma"):
        explain(model, x, "layercam-fused", gamma=0)


# -- the command ------------------------------------------------------------------------------------
def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def ckpts(tmp_path: Path):
    """Two tiny simplecnn checkpoints (a "scratch" and a "transferred" one), fixed weights."""
    from cnnviz.models import build_model, save_model

    out = []
    for seed, name in ((0, "scratch"), (1, "lpft")):
        torch.manual_seed(seed)
        model, info = build_model("simplecnn", num_classes=4, arch_kwargs={"width": 4, "depth": 2}, input_size=(32, 32))
        p = tmp_path / name / "ckpt.pt"
        p.parent.mkdir()
        save_model(p, model, info)
        out.append(str(p))
    return out


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name, hw in (("a.png", (40, 60)), ("b.png", (50, 30))):
        Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(d / name)
    return d


def test_cli_strip_per_image_one_row_per_model(ckpts, folder, tmp_path, one_thread):
    out = tmp_path / "out"
    r = run("gradcam", str(folder), "--model", ckpts[0], "--model", ckpts[1], "--layers", "stages", "--out", str(out),
            "--json", "--save-raw")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert [Path(row["image"]).name for row in rows] == ["a.png", "b.png"]
    for row in rows:
        assert [m["model"] for m in row["models"]] == ["scratch", "lpft"]
        for k, m in enumerate(row["models"]):
            assert m["layers"] == ["features.2", "features.5", "features.6", "features.12", "features.13"]
            arr = np.load(m["npy"])
            h, w = Image.open(row["image"]).size[::-1]
            assert arr.shape == (5, h, w) and m["raw_shape"] == [5, h, w] and 0 <= arr.min() and arr.max() <= 1
        with Image.open(row["png"]) as im:
            assert im.size[1] > 2 * 40  # two rows
    assert sorted(p.name for p in out.glob("*.png")) == ["a.gradcam-layers.png", "b.gradcam-layers.png"]
    # the library gives the same maps as the files
    from cnnviz.images import load_image
    from cnnviz.models import load_model

    model, info = load_model(ckpts[1])
    s = cam_strip(model, load_image(folder / "b.png"), info=info)
    np.testing.assert_allclose(np.load(rows[1]["models"][1]["npy"]), s.maps[0], atol=1e-5)


def test_cli_strip_bad_usage_exit_2_nothing_written(ckpts, folder, tmp_path):
    out = tmp_path / "out"
    for args in (["--layers", "features.0,classifier"], ["--layers", "featurez"], ["--model", ckpts[1]],
                 ["--layers", "stages", "--layer", "features.0"], ["--layers", "stages", "--weights", "random", "--weights", "random",
                                                                    "--weights", "random"]):
        r = run("gradcam", str(folder), "--model", ckpts[0], *args, "--out", str(out))
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()


def test_cli_strip_unreadable_input_among_several_is_named_and_exit_3(ckpts, folder, tmp_path, one_thread):
    (folder / "c.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    r = run("gradcam", str(folder), "--model", ckpts[0], "--model", ckpts[1], "--layers", "stages", "--out", str(out))
    assert r.exit_code == 3, r.output
    assert "skipped" in r.stderr and "c.png" in r.stderr and "skipped 1 of 3 inputs" in r.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in out.glob("*.png")) == ["a.gradcam-layers.png", "b.gradcam-layers.png"]


def test_cli_fused_method_takes_layers(ckpts, folder, tmp_path, one_thread):
    out = tmp_path / "f"
    r = run("gradcam", str(folder / "a.png"), "--model", ckpts[0], "--method", "layercam-fused", "--layers", "features.3,features.0",
            "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["layer"] == "features.0,features.3" and (out / "a.layercam-fused.png").exists()
