"""gradcam / attribute / faithfulness tried the way a careless user or an attacker would (issue 11).

Each case failed before: outputs overwrote each other, raw maps of very long images came back at
the decoded (capped) size, non-spatial layers and absurd sizes were accepted and failed deep
inside (or allocated tens of GB), and --target could bypass the model's class lookup.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli.main import cli

TINY = ["--model", "simplecnn:width=4,depth=2", "--weights", "random", "--image-size", "32"]


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _img(path: Path, h: int = 24, w: int = 30, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _one_line_error(r) -> str:
    assert r.exit_code == 2, (r.exit_code, r.output)
    err = r.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in r.output, err
    return err


def test_same_stem_in_different_folders_never_overwrites(tmp_path):
    a, b, c = _img(tmp_path / "dir/a/x.png", seed=1), _img(tmp_path / "dir/b/x.png", seed=2), _img(tmp_path / "dir/c/x-2.png", seed=3)
    out = tmp_path / "o"
    r = run("gradcam", a, b, c, *TINY, "--out", out, "--json", "--save-raw")
    assert r.exit_code == 0, r.output
    rows = _rows(r.stdout)
    assert len(rows) == 3 and len({row["png"] for row in rows}) == 3 and len({row["npy"] for row in rows}) == 3
    assert sorted(p.name for p in out.glob("*.png")) == ["x-2.gradcam.png", "x-3.gradcam.png", "x.gradcam.png"]
    assert {row["image"]: Path(row["png"]).name for row in rows}[str(c)] == "x-2.gradcam.png"  # its own name kept
    assert "shares the name 'x'" in r.stderr and str(b) in r.stderr  # the rename is said, not silent
    # each file holds its own image's overlay: the three inputs differ, so do the three PNGs
    pics = [np.asarray(Image.open(row["png"])) for row in rows]
    assert not np.array_equal(pics[0], pics[1]) and not np.array_equal(pics[1], pics[2])


def test_the_same_image_twice_gets_two_outputs_and_case_only_differences_do_not_collide(tmp_path):
    a = _img(tmp_path / "a/x.png")
    up = _img(tmp_path / "b/X.png", seed=5)
    out = tmp_path / "o"
    r = run("gradcam", a, a, up, *TINY, "--out", out, "--json")
    assert r.exit_code == 0, r.output
    names = [Path(row["png"]).name for row in _rows(r.stdout)]
    assert names == ["x.gradcam.png", "x-2.gradcam.png", "X-3.gradcam.png"]  # also safe on case-insensitive disks
    assert len({n.lower() for n in names}) == 3 and len(list(out.glob("*.png"))) == 3
    # faithfulness names its figures the same way
    r = run("faithfulness", a, a, *TINY, "--methods", "gradcam,random", "--steps", "2", "--no-road", "--out", tmp_path / "f")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "f").glob("*.png")) == ["x-2.faithfulness.png", "x.faithfulness.png"]


def test_save_raw_of_a_very_long_image_is_at_the_file_resolution(tmp_path):
    long = _img(tmp_path / "long.png", h=10, w=10000)
    out = tmp_path / "o"
    r = run("gradcam", long, *TINY, "--out", out, "--save-raw", "--json")
    assert r.exit_code == 0, r.output
    raw = np.load(out / "long.gradcam.npy")
    assert raw.shape == (10, 10000) and raw.dtype == np.float32  # load_image decodes it at (4, 4096)
    assert _rows(r.stdout)[0]["raw_shape"] == [10, 10000]
    assert 0 <= raw.min() and raw.max() <= 1


@pytest.mark.parametrize("cmd,method", [("attribute", "guided-gradcam"), ("gradcam", "gradcam"), ("gradcam", "eigencam")])
@pytest.mark.parametrize("layer", ["classifier", "classifier.2", "avgpool"])
def test_non_spatial_layers_are_refused_in_one_line(tmp_path, cmd, method, layer):
    out = tmp_path / "o"
    r = run(cmd, _img(tmp_path / "x.png"), *TINY, "--method", method, "--layer", layer, "--out", out)
    err = _one_line_error(r)
    assert layer in err and ("not a spatial map" in err or "1x1" in err)
    assert not out.exists()


@pytest.mark.parametrize("args", [
    ["attribute", "--method", "occlusion", "--window", "100000"],  # was a ~40 GB allocation
    ["attribute", "--method", "occlusion", "--window", "33"],  # larger than the 32 px input
    ["faithfulness", "--methods", "gradcam", "--patch", "100000"],
    ["faithfulness", "--methods", "gradcam", "--patch", "33"],
    ["gradcam", "--image-size", "100000"],
    ["attribute", "--image-size", "100000"],
    ["faithfulness", "--image-size", "100000"],
    ["gradcam", "--batch-size", "0"],
    ["attribute", "--method", "integrated-gradients", "--steps", "1"],
    ["attribute", "--method", "smoothgrad", "--samples", "1000000"],
    ["faithfulness", "--methods", ",", "--steps", "3"],
])
def test_absurd_sizes_are_refused_before_any_work(tmp_path, args):
    out = tmp_path / "o"
    cmd, rest = args[0], args[1:]
    tiny = [a for a in TINY]
    if "--image-size" in rest:
        tiny = tiny[:-2]
    r = run(cmd, _img(tmp_path / "x.png"), *tiny, *rest, "--out", out)
    assert r.exit_code == 2, (args, r.output)
    assert "Traceback" not in r.output and not out.exists()


def test_target_goes_through_the_models_class_lookup(tmp_path, monkeypatch):
    """`--target` is resolved by ModelInfo.class_index (where exact-vs-case-insensitive matching lives)."""
    from cnnviz.models import ModelInfo, build_model, save_model

    model, info = build_model("simplecnn", num_classes=3, in_chans=3, arch_kwargs={"width": 4, "depth": 2}, input_size=(32, 32))
    info.class_names = ["Cat", "cat", "dog"]
    ckpt = save_model(tmp_path / "ckpt.pt", model, info)
    seen = []
    real = ModelInfo.class_index

    def spy(self, target):
        seen.append(target)
        return real(self, target)

    monkeypatch.setattr(ModelInfo, "class_index", spy)
    for cmd in ("gradcam", "attribute", "faithfulness"):
        extra = ["--methods", "gradcam", "--steps", "2", "--no-road"] if cmd == "faithfulness" else ["--method", "saliency"] if cmd == "attribute" else []
        r = run(cmd, _img(tmp_path / "x.png"), "--model", ckpt, "--target", "dog", *extra, "--out", tmp_path / cmd, "--json")
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout.splitlines()[0])
        target = doc["target"] if "target" in doc else doc["per_image"][0]["target"]
        assert target == 2
    assert seen.count("dog") == 3
    assert real(info, "cat") in (0, 1)  # which of Cat/cat wins is models.py's rule (the hardening engineer's fix)


def test_repeated_faithfulness_methods_count_once(tmp_path):
    r = run("faithfulness", _img(tmp_path / "x.png"), *TINY, "--methods", "gradcam,random,gradcam", "--steps", "2", "--no-road",
            "--out", tmp_path / "f", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert sorted(row["method"] for row in doc["ranking"]) == ["gradcam", "random"]


def test_library_refuses_windows_and_patches_that_do_not_fit():
    import torch

    from cnnviz.errors import CnnvizError
    from cnnviz.explain.attribute import compute_attributions
    from cnnviz.explain.faithfulness import deletion_insertion
    from cnnviz.models import build_model

    model, info = build_model("simplecnn", num_classes=3, in_chans=3, arch_kwargs={"width": 4, "depth": 2}, input_size=(16, 16))
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(CnnvizError, match="do not fit"):
        compute_attributions(model, x, method="occlusion", info=info, window=100000)
    with pytest.raises(CnnvizError, match="larger than the input side"):
        deletion_insertion(model, x, np.zeros((1, 16, 16), np.float32), [0], patch=17)


def test_a_size_the_model_cannot_take_is_one_line_before_work(tmp_path):
    """A ViT built for 32 px given --image-size 64 failed with timm's AssertionError traceback (exit 1)."""
    import timm
    import torch

    from cnnviz.errors import CnnvizError
    from cnnviz.explain.methods import Explainer
    from cnnviz.models import ModelInfo

    torch.manual_seed(0)
    vit = timm.create_model("deit_tiny_patch16_224", pretrained=False, num_classes=3, img_size=32, patch_size=8, depth=1,
                            embed_dim=16, num_heads=2).eval()
    info = ModelInfo("timm:deit_tiny", 3, ["a", "b", "c"], (3, 32, 32), (0.5,) * 3, (0.5,) * 3)
    for method in ("gradcam", "saliency", "random"):
        with pytest.raises(CnnvizError, match="does not run on a 64x64 input") as e:
            Explainer(vit, method, info=info, size=(64, 64))
        assert "\n" not in str(e.value)
    assert Explainer(vit, "gradcam", info=info, size=(32, 32)).layer == "blocks.0.norm1"
