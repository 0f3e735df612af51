"""`cnnviz sanity`: the similarity measures, the cascade derived from the module tree, re-initialization
(BatchNorm included), the caller's model left alone, a trained model's Grad-CAM really changing, the
verdict rule, strict JSON and the CLI's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from cnnviz.atomic import dumps_json
from cnnviz.cli.main import cli
from cnnviz.explain import similarity
from cnnviz.explain.randomize import FreshWeights, Unit, discover_units, parse_cascade, reinitialize
from cnnviz.explain.sanity import Step, cascading_randomization, explain_maps, verdict

TINY = ["--model", "simplecnn:width=4,depth=2", "--weights", "random", "--image-size", "32"]


# -- similarity -------------------------------------------------------------------------------------
def test_spearman_matches_scipy_with_ties():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (12, 9)).astype(np.float32)  # many ties
    b = a + rng.normal(0, 2, a.shape)
    assert similarity.spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-12)
    assert similarity.spearman(a, a) == pytest.approx(1.0)
    assert similarity.spearman(a, -a) == pytest.approx(-1.0)


def test_constant_maps_score_zero_not_nan():
    z = np.zeros((8, 8), np.float32)
    m = np.random.default_rng(1).random((8, 8)).astype(np.float32)
    assert similarity.spearman(z, m) == 0.0 and similarity.spearman(m, z) == 0.0
    assert similarity.spearman(z, z) == 1.0
    assert similarity.hog_similarity(z, m) == 0.0
    c = similarity.compare_maps(np.stack([m, m]), np.stack([m, z]), with_hog=True)
    assert c["constant"].tolist() == [False, True]
    assert np.all(np.isfinite(c["spearman"])) and np.all(np.isfinite(c["ssim"])) and np.all(np.isfinite(c["hog"]))


def test_ssim_and_hog_of_identical_and_different_maps():
    rng = np.random.default_rng(2)
    m = rng.random((32, 32))
    assert similarity.ssim(m, m) == pytest.approx(1.0)
    assert similarity.hog_similarity(m, m) == pytest.approx(1.0)
    other = rng.random((32, 32))
    assert similarity.ssim(m, other) < 0.3 and similarity.hog_similarity(m, other) < 0.9


# -- the cascade from the module tree ------------------------------------------------------------
def test_cascade_of_efficientnet_lite_is_stage_by_stage():
    from cnnviz.models import build_model

    model, _ = build_model("efficientnet_lite0", pretrained=False)
    units = discover_units(model, torch.zeros(1, 3, 64, 64))[::-1]
    assert [u.name for u in units] == ["classifier", "conv_head+bn2", *[f"blocks.{i}" for i in range(6, -1, -1)], "conv_stem+bn1"]


def test_cascade_of_resnet_and_simplecnn():
    from cnnviz.models import build_model

    resnet, _ = build_model("torchvision:resnet18", num_classes=3)
    names = [u.name for u in discover_units(resnet, torch.zeros(1, 3, 32, 32))[::-1]]
    assert names[0] == "fc" and names[-1] == "conv1+bn1" and names[1:3] == ["layer4.1", "layer4.0"] and len(names) == 10
    cnn, _ = build_model("simplecnn", num_classes=3, arch_kwargs={"width": 4, "depth": 2}, input_size=(16, 16))
    names = [u.name for u in discover_units(cnn, torch.zeros(1, 3, 16, 16))[::-1]]
    assert names == ["classifier", "features.10+features.11", "features.7+features.8", "features.3+features.4", "features.0+features.1"]


def test_forward_order_beats_registration_order():
    class Backwards(nn.Module):  # registered head first, runs it last
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(4, 2)
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            return self.head(self.bn(self.conv(x)).mean((2, 3)))

    units = discover_units(Backwards(), torch.zeros(1, 3, 8, 8))
    assert [u.name for u in units] == ["conv+bn", "head"]


def test_parse_cascade_names_and_errors(tiny_cnn):
    from cnnviz.errors import LayerError

    model, _ = tiny_cnn
    assert [u.modules for u in parse_cascade(model, "classifier, features.10+features.11")] == [("classifier",), ("features.10", "features.11")]
    with pytest.raises(LayerError):
        parse_cascade(model, "classifer")
    with pytest.raises(LayerError):
        parse_cascade(model, " , ")


# -- re-initialization ------------------------------------------------------------------------------
def _perturbed_cnn():
    """A simplecnn whose every parameter and BN statistic differs from a fresh one."""
    from cnnviz.models import build_model

    torch.manual_seed(0)
    model, info = build_model("simplecnn", num_classes=4, arch_kwargs={"width": 4, "depth": 2}, input_size=(16, 16))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3 + 0.1)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(0.5, 1.0)
                m.running_var.uniform_(2.0, 3.0)
    return model.eval(), info


def test_reinitialize_one_unit_resets_bn_stats_and_only_that_unit():
    model, info = _perturbed_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_state = torch.random.get_rng_state()
    unit = Unit("features.3+features.4", ("features.3", "features.4"))
    fresh = FreshWeights(model, info, seed=5)
    assert fresh.source == "architecture"
    reinitialize(model, unit, fresh)
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # the global RNG is left as found
    after = model.state_dict()
    for k in before:
        changed = not torch.equal(before[k], after[k])
        inside = k.startswith(("features.3.", "features.4."))
        assert changed == (inside and not k.endswith("num_batches_tracked")), k
    bn = model.features[4]
    assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    again, _ = _perturbed_cnn()
    reinitialize(again, unit, FreshWeights(again, info, seed=5))
    assert torch.equal(again.features[3].weight, model.features[3].weight)  # seeded: same random weights
    other, _ = _perturbed_cnn()
    reinitialize(other, unit, FreshWeights(other, info, seed=6))
    assert not torch.equal(other.features[3].weight, model.features[3].weight)


def test_fully_randomized_model_is_the_untrained_architecture():
    """Every unit re-initialized = exactly the model cnnviz builds untrained with that seed."""
    from cnnviz.models import build_model

    model, info = _perturbed_cnn()
    fresh = FreshWeights(model, info, seed=3)
    for u in discover_units(model, torch.zeros(1, 3, 16, 16)):
        reinitialize(model, u, fresh)
    torch.manual_seed(3)
    untrained, _ = build_model("simplecnn", num_classes=4, arch_kwargs={"width": 4, "depth": 2}, input_size=(16, 16))
    ref = untrained.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())


def test_parameters_without_reset_are_redrawn():
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)
            self.gamma = nn.Parameter(torch.full((2,), 3.0))  # a layer scale: no reset_parameters()

        def forward(self, x):
            return self.conv(x) * self.gamma[:, None, None]

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = Scaled()
            self.pos = nn.Parameter(torch.ones(1, 3, 4, 4))  # owned by the root, joins the bottom unit
            self.head = nn.Linear(2, 2)

        def forward(self, x):
            return self.head(self.block(x + self.pos).mean((2, 3)))

    net = Net()
    units = discover_units(net, torch.zeros(1, 3, 4, 4))
    assert units[0].root_params == ("pos",)
    fresh = FreshWeights(net)  # no ModelInfo: the generic per-layer initializer
    assert fresh.source == "generic"
    for u in units:
        reinitialize(net, u, fresh)
    assert not torch.equal(net.block.gamma, torch.full((2,), 3.0)) and not torch.equal(net.pos, torch.ones(1, 3, 4, 4))


# -- the test on models -----------------------------------------------------------------------------
def _snapshot(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()}, [p.requires_grad for p in model.parameters()],
            {n: m.training for n, m in model.named_modules()})


def test_callers_model_is_untouched(one_thread):
    from cnnviz.explain.cam import hook_count

    model, info = _perturbed_cnn()
    model.train()
    model.features[0].weight.requires_grad_(False)
    state, flags, training = _snapshot(model)
    x = torch.randn(2, 3, 16, 16)
    res = cascading_randomization(model, x, ["gradcam", "saliency", "guided-backprop"], info=info, independent=False)
    assert res.methods[0].steps[-1].randomized == pytest.approx(1.0)
    s2, f2, t2 = _snapshot(model)
    assert all(torch.equal(state[k], s2[k]) for k in state)
    assert flags == f2 and training == t2 and hook_count(model) == 0
    assert all(p.grad is None for p in model.parameters())


def test_order_is_top_down_and_ends_all_random(one_thread):
    model, info = _perturbed_cnn()
    x = torch.randn(2, 3, 16, 16)
    res = cascading_randomization(model, x, ["saliency"], info=info, keep_maps=True)
    assert res.cascade[0] == "classifier" and res.cascade[-1] == "features.0+features.1"
    shares = [s.randomized for s in res.methods[0].steps]
    assert shares == sorted(shares) and shares[0] < 0.05 and shares[-1] == pytest.approx(1.0)
    assert res.methods[0].maps.shape == (len(res.cascade) + 1, 2, 16, 16)
    ind = cascading_randomization(model, x, ["saliency"], info=info, independent=True, keep_maps=False)
    own = [s.randomized for s in ind.methods[0].steps]
    assert sum(own) == pytest.approx(1.0) and own[0] == pytest.approx(shares[0]) and ind.mode == "independent"
    assert ind.to_json()[0]["verdict"]["passes"] is None and res.to_json()[0]["verdict"]["passes"] is not None


def test_explainers_are_deterministic_spearman_one(one_thread):
    model, info = _perturbed_cnn()
    x = torch.randn(3, 3, 16, 16)
    for method in ("gradcam", "saliency", "guided-backprop"):
        a, sa = explain_maps(model, x, method, targets=[0, 1, 2], info=info, layer="features")
        b, sb = explain_maps(model, x, method, targets=[0, 1, 2], info=info, layer="features")
        c = similarity.compare_maps(a, b, ref_signed=sa, signed=sb)
        assert np.allclose(c["spearman"], 1.0) and np.allclose(c["ssim"], 1.0)
        assert (c["spearman_signed"] is None) == (method == "gradcam")


@pytest.fixture(scope="module")
def trained_cnn():
    """A simplecnn trained (a few seconds) to say in which quadrant a bright square is: its Grad-CAM
    finds the square, so randomizing the weights must move the map."""
    from cnnviz.models import build_model

    def batch(n, g):
        x = torch.randn(n, 3, 32, 32, generator=g) * 0.3
        y = torch.randint(0, 4, (n,), generator=g)
        for i in range(n):
            r, c = divmod(int(y[i]), 2)
            oy, ox = r * 16 + int(torch.randint(0, 8, (1,), generator=g)), c * 16 + int(torch.randint(0, 8, (1,), generator=g))
            x[i, :, oy : oy + 8, ox : ox + 8] += 2.0
        return x, y

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model, info = build_model("simplecnn", num_classes=4, arch_kwargs={"width": 8, "depth": 2}, input_size=(32, 32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(200):
            x, y = batch(32, g)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(n)
    model.eval()
    x, y = batch(64, g)
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    return model, info, x[:8], acc


def test_randomization_changes_a_trained_models_gradcam(trained_cnn, one_thread):
    """The paper's result in miniature: Grad-CAM's map moves once the top is random, Guided Backprop's
    stays (its signed rank correlation is still high at the verdict's step), the edge detector never moves."""
    model, info, x, acc = trained_cnn
    assert acc >= 0.75  # the model really learned the task
    res = cascading_randomization(model, x, ["gradcam", "guided-backprop", "edges"], info=info, keep_maps=False)
    gc, gbp, edges = res.methods
    rho = [float(np.mean(s.spearman)) for s in gc.steps]
    assert rho[-1] < 0.5 and min(rho) < 0.3  # a random network: a different map
    assert gc.verdict["passes"] is True and gc.verdict["step"] == "features.7+features.8"
    assert gbp.verdict["passes"] is False and gbp.verdict["measure"] == "spearman_signed"
    assert all(np.allclose(s.spearman, 1.0) for s in edges.steps) and edges.verdict["passes"] is False


def test_json_is_strict_with_constant_maps(one_thread):
    model, info = _perturbed_cnn()
    with torch.no_grad():
        model.classifier[-1].weight.zero_()  # the trained model's gradients are zero: constant maps
    res = cascading_randomization(model, torch.randn(2, 3, 16, 16), ["saliency", "gradcam"], info=info, hog=True, keep_maps=False)
    doc = res.to_json(per_image=True, names=["a", "b"])
    text = dumps_json(doc)
    back = json.loads(text)
    assert "NaN" not in text and "Infinity" not in text
    for row in back:
        for s in row["cascade"]:
            assert isinstance(s["spearman"], float) and isinstance(s["ssim"], float) and isinstance(s["hog"], float)
    sal = back[0]["cascade"][0]
    assert sal["spearman"] == 0.0 and back[0]["per_image"][1]["image"] == "b"


def test_verdict_rule():
    def steps(vals):
        return [Step(f"s{i}", 0.1 * i, np.asarray(v, float), np.zeros(len(v))) for i, v in enumerate(vals)]

    low = [[0.1, 0.2, 0.15]] * 4
    high = [[0.9, 0.95, 0.85]] * 4
    assert verdict(steps(low))["passes"] is True and verdict(steps(high))["passes"] is False
    mixed = verdict(steps([[0.1, 0.9, 0.2, 0.8, 0.4, 0.6]] * 4))
    assert mixed["passes"] is None and mixed["step"] == "s1"  # ceil(4/2) = step 2 of 4
    signed = [Step("a", 1.0, np.array([0.9, 0.9]), np.zeros(2), spearman_signed=np.array([0.0, 0.1]))]
    assert verdict(signed, signed=True)["passes"] is True and verdict(signed, signed=False)["passes"] is False


# -- the command ------------------------------------------------------------------------------------
def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(d / name)
    return d


def test_cli_json_figures_and_table(folder, tmp_path, one_thread):
    out = tmp_path / "out"
    r = run("sanity", str(folder), *TINY, "--methods", "gradcam,saliency", "--out", str(out), "--json", "--batch-size", "1")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout.strip().splitlines()[-1])
    assert [row["method"] for row in rows] == ["gradcam", "saliency"]
    for row in rows:
        assert [s["layer"] for s in row["cascade"]][0] == "classifier" and len(row["cascade"]) == 5
        assert all(isinstance(s["spearman"], float) and isinstance(s["ssim"], float) for s in row["cascade"])
    doc = json.loads((out / "sanity.json").read_text())
    assert doc["images"] == 2 and len(doc["methods"][0]["per_image"]) == 2 and "passes" in doc["rule"]
    assert {p.name for p in out.iterdir()} == {"a.sanity.png", "b.sanity.png", "sanity-curves.png", "sanity.md", "sanity.json"}
    assert "| gradcam |" in (out / "sanity.md").read_text()


def test_cli_bad_inputs_exit_2_and_write_nothing(folder, tmp_path):
    out = tmp_path / "out"
    for args in (["--methods", "gradcam,nope"], ["--cascade", "classifer"], ["--labels"], ["--data", "cifar10"],
                 ["--layer", "nope"], ["--target", "no-such-class"]):
        r = run("sanity", str(folder), *TINY, *args, "--out", str(out))
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert run("sanity", str(bad), *TINY, "--out", str(out)).exit_code == 2
    assert not out.exists()


def test_cli_some_unreadable_exit_3(folder, tmp_path, one_thread):
    (folder / "bad.png").write_text("not an image")
    out = tmp_path / "out"
    r = run("sanity", str(folder), *TINY, "--methods", "saliency", "--cascade", "classifier,features", "--no-figures", "--out", str(out))
    assert r.exit_code == 3, r.output
    assert "bad.png" in r.stderr
    doc = json.loads((out / "sanity.json").read_text())
    assert doc["images"] == 2 and doc["cascade"] == ["classifier", "features"]
