"""compare: filter drift, per-class deltas, CAM agreement, default layers, compare_models and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cnnviz.compare import compare_models
from cnnviz.errors import CnnvizError
from cnnviz.compare.agreement import AgreementAccumulator, cam_iou, random_iou, top_region
from cnnviz.compare.drift import layer_group, pair_drift, weight_drift
from cnnviz.compare.layersel import default_layers
from cnnviz.compare.perclass import disagreements, per_class_accuracy, per_class_report
from cnnviz.models import build_model, save_model

KEYS = {"models", "layers", "cka", "filter_drift", "cam_agreement", "per_class"}


def _tiny(seed: int, width: int = 4, chans: int = 1, size: int = 16, mode: str | None = "scratch"):
    torch.manual_seed(seed)
    m, info = build_model("simplecnn", num_classes=3, in_chans=chans, arch_kwargs={"width": width, "depth": 2}, input_size=(size, size))
    info.mode = mode
    info.class_names = ["a", "b", "c"]
    return m, info


def _dataset(n: int = 24, size: int = 16):
    from cnnviz.data import ArrayImages

    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    imgs = rng.integers(0, 60, size=(n, size, size), dtype=np.uint8)
    for i, y in enumerate(labels):  # class = which third of the image is bright
        imgs[i, :, y * size // 3 : (y + 1) * size // 3] += 150
    return ArrayImages(imgs, labels.tolist(), ["a", "b", "c"], name="thirds")


# -- drift ------------------------------------------------------------------------------------
def test_drift_zero_for_identical_models_and_located_where_changed():
    a, ia = _tiny(0, mode="ft")
    b, ib = _tiny(0, mode="lpft")
    same = weight_drift(a, b)
    assert same.status == "ok" and same.layers
    assert all(l.rel_change == 0 and l.cosine == pytest.approx(1.0) for l in same.layers)
    with torch.no_grad():
        b.features[3].weight.mul_(-1.0)  # flip one conv
        b.classifier[2].weight.add_(0.1 * torch.randn_like(b.classifier[2].weight))
    d = {l.name: l for l in pair_drift(a, ia, b, ib, "a", "b").layers}
    assert d["features.3"].rel_change == pytest.approx(2.0) and d["features.3"].cosine == pytest.approx(-1.0)
    assert 0 < d["classifier.2"].rel_change < 1
    assert d["features.0"].rel_change == 0 and d["features.7"].rel_change == 0


def test_drift_skips_with_reasons():
    a, ia = _tiny(0, width=4)
    b, ib = _tiny(0, width=6)
    r = pair_drift(a, ia, b, ib, "a", "b")
    assert r.status == "skipped" and "different architectures" in r.reason
    c, ic = _tiny(1)  # same arch, both from scratch: independent inits
    r = pair_drift(a, ia, c, ic, "a", "c")
    assert r.status == "skipped" and "same weights" in r.reason
    # a replaced head (different class count) is listed, the rest compared
    torch.manual_seed(0)
    d, _ = build_model("simplecnn", num_classes=5, in_chans=1, arch_kwargs={"width": 4, "depth": 2})
    r = weight_drift(a, d)
    assert [s["name"] for s in r.skipped_layers] == ["classifier.2"]
    assert layer_group("blocks.3.0.conv_pw") == "blocks.3" and layer_group("conv_stem") == "conv_stem"


# -- per class --------------------------------------------------------------------------------
def test_per_class_deltas_on_a_crafted_case():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    a = np.array([0, 0, 0, 0, 0, 0, 2, 1])  # class 0: 4/4, class 1: 0/2, class 2: 1/2
    b = np.array([0, 1, 0, 1, 1, 1, 2, 2])  # class 0: 2/4, class 1: 2/2, class 2: 2/2
    assert per_class_accuracy(labels, a, 4).tolist()[:3] == [1.0, 0.0, 0.5]
    assert np.isnan(per_class_accuracy(labels, a, 4)[3])  # no examples of class 3
    rep = per_class_report(labels, [a, b], ["A", "B"], ["x", "y", "z"])
    (p,) = rep["pairs"]
    assert p["delta"] == pytest.approx([-0.5, 1.0, 0.5])
    assert p["overall_delta"] == pytest.approx(6 / 8 - 5 / 8)
    assert (p["disagree"], p["a_right_b_wrong"], p["b_right_a_wrong"], p["both_wrong"]) == (5, 2, 3, 0)
    shown = {e["index"] for e in p["examples"]}
    assert shown == {1, 3, 4, 5, 7} and rep["support"] == [4, 2, 2]
    assert rep["rows"][1] == {"class": "y", "support": 2, "A": 0.0, "B": 1.0}
    d = disagreements(labels, a, b, max_examples=2)
    assert len(d["examples"]) == 2 and {d["examples"][0]["pred_a"] == labels[d["examples"][0]["index"]],
                                        d["examples"][1]["pred_b"] == labels[d["examples"][1]["index"]]} == {True}


# -- agreement --------------------------------------------------------------------------------
def test_cam_iou_top_regions():
    m = np.zeros((10, 10), np.float32)
    m[:2] = 1.0  # top 20% = the first two rows
    assert top_region(m).sum() == 20 and top_region(m)[:2].all()
    assert cam_iou(m, m) == 1.0
    assert cam_iou(m, m[::-1]) == 0.0
    half = np.zeros((10, 10), np.float32)
    half[1:3] = 1.0
    assert cam_iou(m, half) == pytest.approx(10 / 30)
    assert cam_iou(m, np.kron(m, np.ones((2, 2), np.float32))) > 0.8  # different sizes resized
    rng = np.random.default_rng(0)
    rand = [cam_iou(rng.random((32, 32)), rng.random((32, 32))) for _ in range(50)]
    assert np.mean(rand) == pytest.approx(random_iou(0.2), abs=0.02)
    acc = AgreementAccumulator("a", "b", keep=2)
    acc.update(np.stack([m, m, m]), np.stack([m, m[::-1], half]), [5, 6, 7])
    assert [w[0] for w in acc.worst()] == [6, 7]
    assert acc.to_dict()["disagreeing"][0] == {"index": 6, "iou": 0.0}


# -- layers -----------------------------------------------------------------------------------
def test_default_layers_pick_stage_outputs_and_prelogits(tiny_cnn):
    model, info = tiny_cnn
    names = default_layers(model, info, n=3)
    assert names[-1] == "avgpool"
    mods = dict(model.named_modules())
    assert all(type(mods[n]).__name__ in ("ReLU", "MaxPool2d") for n in names[:-1])
    assert len(names) == 4


# -- compare_models + CLI ---------------------------------------------------------------------
def test_compare_models_three_models_across_input_sizes():
    ds = _dataset()
    a = _tiny(0, mode="ft")
    b = _tiny(0, mode="lpft")
    with torch.no_grad():
        b[0].classifier[2].bias.add_(torch.tensor([3.0, 0.0, -3.0]))  # other predictions, same features and CAMs
    c = _tiny(2, width=6, chans=3, size=20)  # other width, RGB, other input size
    comp = compare_models([a, b, c], ds, eval_limit=20, batch_size=8, layers={3: ["features.5", "avgpool"]}, origin=False)
    doc = json.loads(json.dumps(comp.to_json()))
    assert set(doc) == KEYS
    names = [m["name"] for m in doc["models"]]
    assert len(set(names)) == 3 and doc["layers"][names[2]] == ["features.5", "avgpool"]
    assert len(doc["cka"]) == 6  # 3 pairs + 3 self
    self_a = comp.cka_matrix(names[0], names[0])
    assert np.allclose(np.diag(self_a), 1.0)
    ab = comp.cka_matrix(names[0], names[1])  # same features, only the head bias differs
    assert np.allclose(np.diag(ab), 1.0, atol=1e-6)
    assert comp.cka_matrix(names[0], names[2]).shape == (len(doc["layers"][names[0]]), 2)
    drift = doc["filter_drift"]["pairs"]
    assert [d["status"] for d in drift] == ["ok", "skipped", "skipped"]
    assert drift[0]["layers"] and all(l["rel_change"] == 0 for l in drift[0]["layers"])  # biases are not filters
    ag = doc["cam_agreement"]["pairs"]
    assert len(ag) == 3 and ag[0]["n"] == 20 and ag[0]["mean_iou"] == pytest.approx(1.0)
    assert ag[1]["mean_iou"] < 0.9
    pc = doc["per_class"]
    assert pc["pairs"][0]["disagree"] > 0
    assert pc["n"] == 20 and len(pc["pairs"]) == 3 and sorted(pc["support"]) == [6, 7, 7]


def test_cli_compare_json_and_files(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from cnnviz.cli.main import cli

    ds = _dataset(n=30)
    for split in ("train", "test"):
        for i in range(len(ds)):
            img, y = ds[i]
            d = tmp_path / "data" / split / ds.class_names[y]
            d.mkdir(parents=True, exist_ok=True)
            img.save(d / f"{i}.png")
    for k, (seed, mode) in enumerate([(0, "ft"), (0, "lpft")]):
        m, info = _tiny(seed, mode=mode)
        save_model(tmp_path / f"run{k}" / "ckpt.pt", m, info)
    out = tmp_path / "cmp"
    args = ["compare", "--model", str(tmp_path / "run0" / "ckpt.pt"), "--model", str(tmp_path / "run1" / "ckpt.pt"),
            "--data", str(tmp_path / "data"), "--eval-limit", "12", "--batch-size", "6", "--no-origin",
            "--layers", "features.2,avgpool", "--layers", "run1=features.5", "--out", str(out), "--json"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(doc) == KEYS
    assert list(doc["layers"].values()) == [["features.2", "avgpool"], ["features.5"]]
    assert doc["filter_drift"]["pairs"][0]["status"] == "ok"  # same arch, both fine-tuned from one start
    assert json.loads((out / "compare.json").read_text()) == doc
    written = {p.name for p in out.iterdir()}
    assert {"summary.png", "cka-1-1.png", "cka-1-2.png", "cka-2-2.png", "drift.png", "agreement.png", "agreement-1-2.png",
            "per-class.png"} <= written
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".cmp")]  # no temp folders left
    # bad input: one line, exit 2, nothing written
    bad = CliRunner().invoke(cli, [*args[:-3], "--no-cam", "--layers", "nope.7", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "nope.7" in bad.output and not (tmp_path / "bad").exists()
    one = CliRunner().invoke(cli, ["compare", "--model", "simplecnn", "--data", str(tmp_path / "data")])
    assert one.exit_code == 2 and "at least two" in one.output


def test_empty_cams_are_excluded_from_agreement():
    m = np.zeros((8, 8), np.float32)
    m[:2] = 1.0
    assert np.isnan(cam_iou(m, np.zeros((8, 8), np.float32)))
    acc = AgreementAccumulator("a", "b")
    acc.update(np.stack([m, m]), np.stack([np.zeros_like(m), m]), [0, 1])
    d = acc.to_dict()
    assert (d["n"], d["empty"], d["mean_iou"]) == (1, 1, 1.0) and d["ious"] == [None, 1.0]
    assert [w[0] for w in acc.worst()] == [1]


@pytest.mark.slow
def test_real_lite0_origin_drift_and_cross_architecture_on_fashion_mnist():
    """Bundled ImageNet Lite0 fine-tuned 'by hand' vs its origin, and vs a scratch CNN, on real Fashion-MNIST."""
    from cnnviz.data import open_split

    torch.manual_seed(0)
    tuned, info = build_model("efficientnet_lite0", pretrained=True, num_classes=10, input_size=(64, 64))
    info.mode = "ft"
    info.class_names = open_split("fashion-mnist", "test", limit=10).class_names
    with torch.no_grad():
        tuned.conv_head.weight.mul_(1.1)  # "fine-tuning" moved only the last conv
    scratch = _tiny(0, width=8, chans=1, size=28)
    scratch[1].class_names = info.class_names
    from cnnviz.models import reset_head

    reset_head(scratch[0], 10)
    scratch[1].num_classes = 10
    ds = open_split("fashion-mnist", "test")
    comp = compare_models([scratch, (tuned, info)], ds, eval_limit=16, batch_size=8)
    doc = comp.to_json()
    (origin,) = doc["filter_drift"]["origin"]
    groups = {g["group"]: g["rel_change"] for g in origin["groups"]}
    assert groups["conv_head"] == pytest.approx(0.1, rel=1e-4)
    assert all(v == 0 for g, v in groups.items() if g != "conv_head")
    assert [s["name"] for s in origin["skipped_layers"]] == ["classifier"]  # 1000-way origin head vs 10-way
    assert doc["filter_drift"]["pairs"][0]["status"] == "skipped"
    m = comp.cka_matrix(comp.names[0], comp.names[1])
    assert m.shape == (len(doc["layers"][comp.names[0]]), len(doc["layers"][comp.names[1]]))
    assert np.all(np.isfinite(m)) and m.max() <= 1.0 + 1e-6
    assert doc["cam_agreement"]["layers"][comp.names[1]] == "blocks.4"  # bn2 is 2x2 at 64 px
    assert doc["per_class"]["n"] == 16 and len(doc["per_class"]["pairs"]) == 1


def test_compare_models_uses_given_names():
    ds = _dataset()
    a, b = _tiny(0, mode="ft"), _tiny(1, mode="scratch")
    comp = compare_models([a, b], ds, eval_limit=12, batch_size=6, cam=False, origin=False, names=["my-ft", "my-scratch"])
    doc = comp.to_json()
    assert [m["name"] for m in doc["models"]] == ["my-ft", "my-scratch"]
    assert set(doc["layers"]) == {"my-ft", "my-scratch"}
    with pytest.raises(CnnvizError, match="unique name"):
        compare_models([a, b], ds, eval_limit=12, batch_size=6, cam=False, names=["x", "x"])


def test_dead_model_gives_null_cka_with_a_note_and_strict_json(tmp_path):
    """A model whose features are constant (all weights zero) makes CKA undefined: null + a note in
    compare.json (it was NaN, which is not JSON), printed as 'undefined', figures still drawn."""
    from click.testing import CliRunner

    from cnnviz.cli.main import cli

    ds = _dataset(n=12)
    for split in ("train", "test"):
        for i in range(len(ds)):
            img, y = ds[i]
            d = tmp_path / "data" / split / ds.class_names[y]
            d.mkdir(parents=True, exist_ok=True)
            img.save(d / f"{i}.png")
    live, info = _tiny(0)
    dead, dinfo = _tiny(1)
    with torch.no_grad():
        for p in dead.parameters():
            p.zero_()
    save_model(tmp_path / "live" / "ckpt.pt", live, info)
    save_model(tmp_path / "dead" / "ckpt.pt", dead, dinfo)
    out = tmp_path / "cmp"
    r = CliRunner().invoke(cli, ["compare", "--model", str(tmp_path / "live" / "ckpt.pt"), "--model", str(tmp_path / "dead" / "ckpt.pt"),
                                 "--data", str(tmp_path / "data"), "--eval-limit", "12", "--batch-size", "6", "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = (out / "compare.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    pair = next(e for e in doc["cka"] if e["a"] != e["b"])
    assert all(v is None for row in pair["matrix"] for v in row)
    assert list(pair["undefined_layers"].values()) == [doc["layers"][doc["models"][1]["name"]]]
    assert "undefined" in pair["note"] and "constant" in pair["note"]
    live_self = next(e for e in doc["cka"] if e["a"] == e["b"] == doc["models"][0]["name"])
    assert "undefined_layers" not in live_self and live_self["matrix"][0][0] == pytest.approx(1.0)
    assert "undefined" in r.stdout and (out / "summary.png").stat().st_size > 0


def test_compare_models_refuses_absurd_values():
    from cnnviz.errors import OptionError

    models = [_tiny(0), _tiny(1)]
    ds = _dataset(n=12)
    for kw, match in [({"batch_size": 2}, "at least 4"), ({"batch_size": 10**9}, "4..4096"), ({"eval_limit": 0}, "--eval-limit 0"),
                      ({"cam_fraction": 1.0}, "cam_fraction"), ({"cam_fraction": float("nan")}, "cam_fraction"),
                      ({"seed": -1}, "--seed")]:
        with pytest.raises(OptionError, match=match):
            compare_models(models, ds, **kw)


def test_drift_from_all_zero_weights_is_skipped_not_nan():
    a, _ = _tiny(0)
    b, _ = _tiny(0)
    with torch.no_grad():
        a.features[0].weight.zero_()
    r = weight_drift(a, b)
    assert "features.0" not in {l.name for l in r.layers}
    assert any(s["name"] == "features.0" and "zero" in s["reason"] for s in r.skipped_layers)
    assert all(np.isfinite(l.rel_change) for l in r.layers) and all(np.isfinite(g["rel_change"]) for g in r.groups)
