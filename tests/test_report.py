"""cnnviz.report: the content-addressed cache (rebuilds compute nothing, a new model computes only its
own work), checks before any work, loud failures (only inapplicable work is a note), strict JSON, and
a manifest the gallery renders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "cat", "dog", "T-shirt/top"]


def _ckpt(path: Path, seed: int, mode: str) -> str:
    import torch

    from cnnviz.models import build_model, save_model

    torch.manual_seed(seed)
    model, info = build_model("simplecnn", num_classes=5, in_chans=3, arch_kwargs={"width": 4, "depth": 2}, input_size=(32, 32))
    info.class_names = list(CLASSES)
    info.mode = mode
    info.metrics = {"test_accuracy": 0.5 + 0.1 * seed, "train_seconds": 2.0 + seed}
    save_model(path, model, info)
    return str(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    a = _ckpt(root / "a.pt", 0, "scratch")
    b = _ckpt(root / "b.pt", 1, "lpft")
    rng = np.random.default_rng(0)
    imgs = []
    for i in range(3):
        p = root / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(p)
        imgs.append(p)
    return root, a, b, imgs


def _run(cache: Path, models: list[str], imgs: list[Path], **cfg_kw):
    from cnnviz.images import load_image
    from cnnviz.report import ImageRef, ModelSource, Report, ReportConfig

    cfg = ReportConfig(maximize_steps=2, max_classes=2, top_channels=4, activation_images=1, erf=False, **cfg_kw)
    refs = [ImageRef(p.name, lambda p=p: load_image(p), CLASSES[i % 2]) for i, p in enumerate(imgs)]
    rep = Report(cache, cfg)
    manifest = rep.run([ModelSource(m, Path(m).stem) for m in models], refs, title="t")
    return rep.stats, json.loads(manifest.read_text()), manifest


@pytest.fixture
def count_cams(monkeypatch):
    """Counts real Grad-CAM calls (the explainer itself, not our bookkeeping)."""
    import cnnviz.explain.cam as cam

    calls = []
    real = cam.compute_cams

    def counting(model, x, **kw):
        calls.append(x.shape[0])
        return real(model, x, **kw)

    monkeypatch.setattr(cam, "compute_cams", counting)
    return calls


def test_rebuild_computes_nothing_and_a_new_model_only_its_work(setup, tmp_path, count_cams):
    root, a, b, imgs = setup
    cache = tmp_path / "cache"
    s1, m1, _ = _run(cache, [a], imgs)
    assert s1.computed and s1.hits == 0
    assert len(count_cams) == len(imgs)  # one Grad-CAM per image, batch of 1 (memory bounded)
    assert all(n == 1 for n in count_cams)

    count_cams.clear()
    s2, m2, _ = _run(cache, [a], imgs)
    assert s2.computed == []
    assert count_cams == []
    assert s2.hits == len(s1.computed)
    m1.pop("generated"), m2.pop("generated")
    assert m1 == m2

    s3, m3, _ = _run(cache, [a, b], imgs)
    assert s3.computed, "model b is new work"
    assert {who for who, _ in s3.computed} == {"b"}  # nothing of a's is recomputed
    assert len(count_cams) == len(imgs)  # b's Grad-CAMs only
    # the same images and the same architecture: displays and the analytic receptive field are shared
    assert sorted(set(m for _, m in s3.computed)) == sorted(set(m for _, m in s1.computed) - {"display", "receptive"})
    assert [r["model"] for r in m3["images"][0]["results"]] == ["m0", "m0", "m1", "m1"]


def test_changed_weights_are_recomputed(setup, tmp_path):
    import torch

    from cnnviz.models import load_model, save_model

    root, a, _, imgs = setup
    cache = tmp_path / "cache"
    _run(cache, [a], imgs[:1])
    model, info = load_model(a)
    with torch.no_grad():
        model.features[0].weight.add_(0.1)
    a2 = tmp_path / "a.pt"  # same file name -> same display name; only the weights differ
    save_model(a2, model, info)
    s, _, _ = _run(cache, [str(a2)], imgs[:1])
    methods = {m for _, m in s.computed}
    assert {"filters", "gradcam", "saliency"} <= methods
    assert "display" not in methods  # the image itself did not change


def test_inapplicable_work_is_a_note(setup, tmp_path):
    root, a, b, imgs = setup
    s, m, _ = _run(tmp_path / "cache", [a, b], imgs[:1])
    assert "no top dataset patches: no --data." in s.notes
    assert any(n.startswith("no model comparison") for n in s.notes)
    assert m["notes"] == s.notes
    assert not any(sec["id"] == "examples" for sec in m["models"][0]["sections"])


def test_failing_explainer_is_an_error_and_leaves_no_cache_entry(setup, tmp_path, monkeypatch):
    import cnnviz.explain.activations as acts

    root, a, _, imgs = setup
    cache = tmp_path / "cache"
    real = acts.activation_maps
    monkeypatch.setattr(acts, "activation_maps", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom") as err:
        _run(cache, [a], imgs[:1])
    assert any("activations of model 'a'" in n for n in err.value.__notes__)
    entries = [d for d in (cache / "objects").glob("*/*")]
    assert entries and all((d / "meta.json").is_file() for d in entries), "only complete entries"
    assert not [p for p in (cache / "objects").rglob(".*") if p.is_dir()], "no temporary folder left"
    monkeypatch.setattr(acts, "activation_maps", real)
    s, _, _ = _run(cache, [a], imgs[:1])
    assert ("a", "activations") in s.computed and ("a", "filters") not in s.computed  # the rest came from the cache


def test_a_missing_module_of_cnnviz_is_an_error_not_a_skip(setup, tmp_path, monkeypatch):
    import sys

    root, a, _, imgs = setup
    monkeypatch.setitem(sys.modules, "cnnviz.explain.maximize", None)  # import raises ImportError
    with pytest.raises(ImportError):
        _run(tmp_path / "cache", [a], imgs[:1])


def test_the_seed_reaches_the_explainers(setup, tmp_path, monkeypatch):
    import cnnviz.explain.erf as erf
    import cnnviz.explain.maximize as mx

    root, a, _, imgs = setup
    seen = {}

    def spy(key, real):
        def call(*args, **kw):
            seen[key] = kw.get("seed")
            return real(*args, **kw)
        return call

    monkeypatch.setattr(mx, "maximize_classes", spy("maximize", mx.maximize_classes))
    monkeypatch.setattr(erf, "effective_receptive_field", spy("erf", erf.effective_receptive_field))
    from cnnviz.images import load_image
    from cnnviz.report import ImageRef, ModelSource, Report, ReportConfig

    def report(seed):
        cfg = ReportConfig(maximize_steps=2, max_classes=2, top_channels=4, activation_images=1, seed=seed)
        rep = Report(tmp_path / "cache", cfg)
        rep.run([ModelSource(a)], [ImageRef("x", lambda: load_image(imgs[0]))])
        return {m for _, m in rep.stats.computed}

    report(7)
    assert seen == {"maximize": 7, "erf": 7}
    assert {"maximize", "erf"} <= report(8), "another seed is another result, never the cached one"
    assert seen == {"maximize": 8, "erf": 8}


def test_nan_metrics_become_null_with_a_note(tmp_path):
    from cnnviz.models import load_model, save_model

    p = _ckpt(tmp_path / "nan.pt", 0, "scratch")

    model, info = load_model(p)
    info.metrics = {"test_accuracy": float("nan"), "train_seconds": float("inf")}
    save_model(p, model, info)
    s, m, path = _run(tmp_path / "cache", [p], [])
    assert m["models"][0]["accuracy"] is None and m["models"][0]["train_seconds"] is None
    assert any("not a number" in n for n in s.notes)

    def refuse(name):
        raise AssertionError(f"{name} in the manifest")

    json.loads(path.read_text(), parse_constant=refuse)


def test_manifest_renders_to_a_site(setup, tmp_path):
    from cnnviz.gallery import build_site

    root, a, b, imgs = setup
    s, m, path = _run(tmp_path / "cache", [a, b], imgs[:2], layers=["features.3"])
    sec_ids = [sec["id"] for sec in m["models"][0]["sections"]]
    assert "filters-features.0" in sec_ids and "filters-features.3" in sec_ids and "acts-features.3" in sec_ids
    assert m["models"][1]["accuracy"] == pytest.approx(0.6) and m["models"][1]["mode"] == "lpft"
    index = build_site(path, tmp_path / "site")
    html = (index.parent / "image-{}.html".format(m["images"][0]["id"])).read_text()
    assert html.count('class="tile cam"') == 4  # 2 models x (gradcam, saliency)
    assert "<script>alert" not in html


def test_display_image_is_crisp_and_bounded():
    from cnnviz.render import display_image

    small = np.arange(28 * 28 * 3, dtype=np.uint8).reshape(28, 28, 3)
    up = display_image(small, 224)
    assert up.shape == (224, 224, 3) and np.array_equal(up[::8, ::8], small)  # nearest: pixels kept exactly
    big = np.zeros((1000, 500, 3), np.uint8)
    assert max(display_image(big, 224).shape[:2]) == 224


def test_cache_key_depends_on_every_part():
    from cnnviz.cache import Cache

    base = Cache.key("m", "i", "gradcam", {"px": 224})
    assert base == Cache.key("m", "i", "gradcam", {"px": 224})
    assert len({base, Cache.key("m2", "i", "gradcam", {"px": 224}), Cache.key("m", "i2", "gradcam", {"px": 224}),
                Cache.key("m", "i", "saliency", {"px": 224}), Cache.key("m", "i", "gradcam", {"px": 225})}) == 5


def test_unknown_layer_is_a_clear_error(setup, tmp_path):
    from cnnviz.errors import LayerError

    root, a, _, imgs = setup
    with pytest.raises(LayerError, match="features.33.*none of the models.*features.3"):
        _run(tmp_path / "cache", [a], imgs[:1], layers=["features.33"])
    assert not (tmp_path / "cache").exists(), "refused before any work"


def test_unknown_methods_are_refused_before_any_work(setup, tmp_path):
    from cnnviz.errors import CnnvizError

    root, a, _, imgs = setup
    with pytest.raises(CnnvizError, match="--cam 'gradcamm' is not a method. Did you mean: gradcam"):
        _run(tmp_path / "cache", [a], imgs[:1], cam_methods=["gradcamm"])
    with pytest.raises(CnnvizError, match="--cam 'saliency': .*pass it to --attribute"):
        _run(tmp_path / "cache", [a], imgs[:1], cam_methods=["saliency"])
    with pytest.raises(CnnvizError, match="--attribute 'salincy'"):
        _run(tmp_path / "cache", [a], imgs[:1], attr_methods=["salincy"])
    assert not (tmp_path / "cache").exists()


def test_models_with_one_default_name_get_distinct_names(setup, tmp_path):
    root, a, _, imgs = setup
    other = tmp_path / "elsewhere"
    other.mkdir()
    import shutil

    shutil.copy(a, other / "a.pt")  # same file name -> same default display name
    from cnnviz.report import ModelSource, Report, ReportConfig

    cfg = ReportConfig(maximize_steps=2, max_classes=2, erf=False)
    manifest = Report(tmp_path / "cache", cfg).run([ModelSource(a), ModelSource(str(other / "a.pt"))], [])
    assert [e["name"] for e in json.loads(manifest.read_text())["models"]] == ["a", "a #2"]


def test_one_name_for_two_models_is_refused(setup, tmp_path):
    from cnnviz.errors import CnnvizError
    from cnnviz.report import ModelSource, Report

    root, a, b, _ = setup
    with pytest.raises(CnnvizError, match="--name 'x' is given to two models"):
        Report(tmp_path / "cache").run([ModelSource(a, "x"), ModelSource(b, "x")], [])
    assert not (tmp_path / "cache").exists()
