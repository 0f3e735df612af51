"""The notebook face: ``import cnnviz`` is light, every public name works, and the notebook and the CLI agree."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cnnviz

HEAVY = ("torch", "timm", "captum", "pytorch_grad_cam", "cv2", "matplotlib", "PIL")


def _modules_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return eval(out.split("HEAVY", 1)[1])  # noqa: S307 - our own printed list


def test_import_cnnviz_is_light_until_a_name_is_used():
    assert _modules_after("import cnnviz; dir(cnnviz); cnnviz.__version__; cnnviz.CnnvizError") == []
    # names whose modules need no torch stay light too; explain() brings torch when it is called
    assert _modules_after("import cnnviz; cnnviz.list_methods(); cnnviz.Explanation") == []
    assert _modules_after("import cnnviz; cnnviz.load_model; cnnviz.overlay") in ([], ["cv2"])  # looked up, not called
    assert "torch" in _modules_after("import cnnviz; cnnviz.build_model('simplecnn')")


def test_every_public_name_resolves():
    for name in cnnviz.__all__:
        obj = getattr(cnnviz, name)
        assert obj is not None, name
        if name not in ("__version__",):
            assert callable(obj) or isinstance(obj, type), name
    assert "explain" in dir(cnnviz) and "load_model" in dir(cnnviz)
    with pytest.raises(AttributeError):
        cnnviz.no_such_name  # noqa: B018


def test_explain_is_callable_even_after_its_submodules_are_imported(tiny_cnn, rgb_image):
    import cnnviz.explain.cam  # noqa: F401  (binds cnnviz.explain to the package)
    from cnnviz import explain

    model, info = tiny_cnn
    e = cnnviz.explain(model, rgb_image, "gradcam", info=info)
    assert explain is cnnviz.explain and isinstance(e, cnnviz.Explanation)
    assert e.maps.shape == (1, *rgb_image.shape[:2])
    assert cnnviz.overlay(rgb_image, e.maps[0]).shape == rgb_image.shape
    assert "gradcam" in cnnviz.list_methods() and len(cnnviz.describe_methods()) == len(cnnviz.list_methods())


@pytest.fixture
def ckpt(tmp_path):
    from cnnviz.models import build_model, save_model

    torch.manual_seed(0)
    model, info = build_model("simplecnn", num_classes=4, in_chans=3, arch_kwargs={"width": 4, "depth": 2}, input_size=(32, 32))
    return save_model(tmp_path / "ckpt.pt", model, info)


@pytest.mark.parametrize("method", ["gradcam", "layercam", "saliency"])
def test_explain_gives_the_same_map_as_gradcam_save_raw(ckpt, tmp_path, method):
    from cnnviz.cli.main import cli

    img = np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    path = tmp_path / "odd.png"
    Image.fromarray(img).save(path)
    cmd = "gradcam" if method != "saliency" else "attribute"
    r = CliRunner().invoke(cli, [cmd, str(path), "--model", str(ckpt), "--method", method, "--save-raw",
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    raw = np.load(tmp_path / "o" / f"odd.{method}.npy")
    model, info = cnnviz.load_model(str(ckpt))
    e = cnnviz.explain(model, cnnviz.load_image(path), method, info=info)
    assert raw.shape == e.maps[0].shape == (37, 53)
    np.testing.assert_allclose(e.maps[0], raw, atol=1e-6)


def test_inside_the_network(tiny_cnn, rgb_image):
    model, info = tiny_cnn
    grid = cnnviz.filters(model, "features.0")
    assert grid.dtype == np.uint8 and grid.ndim == 3 and cnnviz.kernels(model, "features.0").kind == "rgb"
    acts = cnnviz.activations(model, rgb_image, "features.2", info=info, top=3)
    assert acts.maps.shape == (3, 32, 32) and acts.picture(rgb_image).dtype == np.uint8
    rows = cnnviz.describe_layers(model, info)
    assert {r.name: r.output_shape for r in rows}["features.0"] == [4, 32, 32]
    rf = cnnviz.receptive_field(model, "features.3", info=info)
    assert rf.rf == (5, 5) and rf.stride == (1, 1)
    erf = cnnviz.effective_receptive_field(model, "features.3", info=info, n=2)
    assert erf.heat.shape == (32, 32) and abs(float(erf.heat.sum()) - 1) < 1e-4
    imgs = cnnviz.maximize(model, info, ["class_1", 2], steps=2)
    assert imgs.shape == (2, 64, 64, 3) and imgs.dtype == np.uint8  # a 32-px model: canvas twice its input
    unit = cnnviz.maximize(model, info, layer="features.3", channel=1, steps=2)
    assert unit.shape == (1, 64, 64, 3)
    pic = cnnviz.show(rgb_image, grid, erf.heat / erf.heat.max(), titles=["photo", "filters", "ERF"], height=64)
    assert pic.size[1] == 64 and pic.mode == "RGB"


def _thirds(n: int = 24, size: int = 16):
    from cnnviz.data import ArrayImages

    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    imgs = rng.integers(0, 60, size=(n, size, size), dtype=np.uint8)
    for i, y in enumerate(labels):
        imgs[i, :, y * size // 3 : (y + 1) * size // 3] += 150
    return ArrayImages(imgs, labels.tolist(), ["a", "b", "c"], name="thirds")


def test_compare_evaluate_and_examples_on_a_tiny_dataset():
    from cnnviz.models import build_model

    ds = _thirds()
    pairs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m, info = build_model("simplecnn", num_classes=3, in_chans=1, arch_kwargs={"width": 4, "depth": 2}, input_size=(16, 16))
        info.class_names, info.mode = ["a", "b", "c"], "scratch"
        pairs.append((m, info))
    comp = cnnviz.compare_models(pairs, ds, names=["one", "two"], eval_limit=24, batch_size=8)
    doc = comp.to_json()
    assert [m["name"] for m in doc["models"]] == ["one", "two"] and doc["cka"]
    ev = cnnviz.evaluate(*pairs[0], ds)
    assert 0 <= ev["accuracy"] <= 1 and ev["num_images"] == 24
    ex = cnnviz.top_examples(*pairs[0], ds, target="b", k=3)
    assert len(ex) == 3 and ex[0].score >= ex[-1].score


def test_train_model_and_gallery(tmp_path):
    run = cnnviz.train_model("fashion-mnist", "simplecnn:width=4,depth=2", "scratch", epochs=1, limit=64, eval_limit=32,
                             out=tmp_path / "run", tensorboard=False)
    model, info = run  # unpacks like load_model
    assert (tmp_path / "run" / "ckpt.pt").exists() and run.metrics["num_test_images"] == 32
    assert info.num_classes == 10 and info.mode == "scratch"
    pil, _ = cnnviz.open_dataset("fashion-mnist", limit=1)[0]
    e = cnnviz.explain(model, pil, "gradcam", info=info)  # a dataset item (a grayscale PIL image) as it comes
    assert e.maps.shape == (1, 28, 28)
    img = tmp_path / "shirt.png"
    pil.save(img)
    index = cnnviz.build_gallery([(str(tmp_path / "run" / "ckpt.pt"), "tiny")], tmp_path / "site", images=[str(img)],
                                 cam_methods=("gradcam",), attr_methods=(), maximize_steps=1, max_classes=1, erf=False,
                                 compare=False, cache=str(tmp_path / "cache"))
    assert index.name == "index.html" and index.exists() and "tiny" in index.read_text()
