"""The CLI conventions and the foundation commands: layers, filters, activations."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli.main import cli
from cnnviz.models import build_model, save_model


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def one_line_error(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_help_is_instant_and_imports_no_torch():
    code = "import sys; from cnnviz.cli.main import cli\ntry:\n cli(['--help'])\nexcept SystemExit: pass\nheavy=[m for m in ('torch','timm','captum','pytorch_grad_cam','matplotlib','cv2') if m in sys.modules]\nprint('HEAVY', heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out and "gradcam" in out and "filters" in out


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "cnnviz", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "Commands" in out.stdout


@pytest.fixture
def simple_ckpt(tmp_path):
    model, info = build_model("simplecnn", num_classes=4, in_chans=1, arch_kwargs={"width": 8, "depth": 2}, input_size=(28, 28))
    info.class_names = ["shirt", "shoe", "bag", "<b>coat</b>"]
    return str(save_model(tmp_path / "ckpt.pt", model, info))


def test_filters_on_a_simplecnn_checkpoint(simple_ckpt, tmp_path):
    out = tmp_path / "f.png"
    r = run("filters", "--model", simple_ckpt, "--layer", "features.3", "--out", str(out))
    assert r.exit_code == 0, r.output
    im = Image.open(out)
    assert im.size[0] > 200 and im.size[1] > 200
    r = run("filters", "--model", simple_ckpt, "--layer", "features.0", "--out", str(tmp_path / "f0.png"), "--normalize", "shared", "--max", "4")
    assert r.exit_code == 0 and (tmp_path / "f0.png").exists()


def test_filters_default_name_in_cwd(simple_ckpt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("filters", "--model", simple_ckpt, "--layer", "features.3").exit_code == 0
    assert (tmp_path / "filters-features.3.png").exists()


def test_filters_bad_layers(simple_ckpt, tmp_path):
    out = tmp_path / "f.png"
    err = one_line_error(run("filters", "--model", simple_ckpt, "--layer", "features.33", "--out", str(out)))
    assert "features.3" in err  # close names listed
    err = one_line_error(run("filters", "--model", simple_ckpt, "--layer", "features.2", "--out", str(out)))
    assert "ReLU" in err and "no convolution kernels" in err
    err = one_line_error(run("filters", "--model", simple_ckpt, "--layer", "features.3", "--in-channel", "99", "--out", str(out)))
    assert not out.exists()


def test_filters_depthwise_and_vit_patch_embed(tmp_path):
    r = run("filters", "--layer", "blocks.1.0.conv_dw", "--out", str(tmp_path / "dw.png"))
    assert r.exit_code == 0, r.output
    r = run("filters", "--model", "vit_tiny_patch16_224", "--weights", "random", "--layer", "patch_embed", "--out", str(tmp_path / "vit.png"), "--max", "16")
    assert r.exit_code == 0, r.output


def test_layers_json_and_text(simple_ckpt):
    r = run("layers", "--model", simple_ckpt, "--json")
    data = json.loads(r.stdout)
    rows = {row["name"]: row for row in data["layers"]}
    assert rows["features.3"]["type"] == "Conv2d" and rows["features.3"]["output_shape"] == [8, 28, 28]
    assert rows["features.3"]["params"] == 8 * 8 * 9
    assert rows["classifier.2"]["output_shape"] == [4]
    text = run("layers").stdout
    assert "conv_head" in text and "1280x7x7" in text


def test_activations_on_default_model(photos, tmp_path):
    out = tmp_path / "a.png"
    r = run("activations", str(photos["chelsea"]), "--layer", "blocks.2", "--top", "8", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert Image.open(out).size[0] > 400


def test_activations_bad_inputs(photos, simple_ckpt, tmp_path):
    out = tmp_path / "a.png"
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    assert "bad.jpg" in one_line_error(run("activations", str(bad), "--model", simple_ckpt, "--layer", "features.3", "--out", str(out)))
    assert "conv" in one_line_error(run("activations", str(photos["coffee"]), "--model", simple_ckpt, "--layer", "classifier.2", "--out", str(out)))
    assert "features" in one_line_error(run("activations", str(photos["coffee"]), "--model", simple_ckpt, "--layer", "feature", "--out", str(out)))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 10)
    assert "junk.pt" in one_line_error(run("activations", str(photos["coffee"]), "--model", str(junk), "--layer", "features.3", "--out", str(out)))
    assert not out.exists()
    import torch

    if not torch.cuda.is_available():
        err = one_line_error(run("activations", str(photos["coffee"]), "--model", simple_ckpt, "--layer", "features.3", "--device", "cuda", "--out", str(out)))
        assert "CUDA is not available" in err
    assert not out.exists()
