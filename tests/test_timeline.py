"""``cnnviz train --timeline``: the record's identities, that it leaves training alone, resume, CLI, TensorBoard."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz.train import TrainConfig, TrainError, train_run
from cnnviz.train.timeline import Timeline, cka_from_grams, preserved_rng, segments

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_data = pytest.mark.skipif(not FMNIST.is_file(), reason="dataset-fashion-mnist not installed")
# dropout 0.5: a timeline that consumed the torch RNG would change the dropout masks, hence the weights
TINY = "simplecnn:width=4,depth=2,dropout=0.5"


def tiny_cfg(out: Path, **kw) -> TrainConfig:
    base = dict(data="fashion-mnist", model=TINY, mode="scratch", epochs=2, limit=120, eval_limit=60, batch_size=24,
                device="cpu", out=str(out), tensorboard=False, lr=3e-3, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _strict(path: Path) -> dict:
    def no_constant(name: str):
        raise AssertionError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=no_constant)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from cnnviz.checkpoint import load_checkpoint

    return load_checkpoint(run_dir / "ckpt.pt")["state_dict"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny scratch run (same seed) without and with --timeline (and TensorBoard on the latter)."""
    root = tmp_path_factory.mktemp("tl")
    train_run(tiny_cfg(root / "plain"), progress=False)
    tl = Timeline(images_per_class=1, cka_images=48, batch_size=24)
    train_run(tiny_cfg(root / "timeline", tensorboard=True), progress=False, on_epoch=tl)
    return root


# -- unit ------------------------------------------------------------------------------------------
def test_cka_from_grams_is_the_unbiased_linear_cka():
    from cnnviz.compare.cka import gram, linear_cka

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 7, generator=g), torch.randn(40, 5, generator=g)
    y = torch.cat([y, x[:, :3]], 1)  # partly shared: CKA well inside (0, 1)
    want = linear_cka(x, y, debiased=True)
    got = cka_from_grams(gram(x)[None], gram(y)[None])
    assert 0.05 < want < 0.95 and got == pytest.approx(want, rel=1e-6)  # float32 Grams
    assert cka_from_grams(gram(x)[None], gram(x)[None]) == pytest.approx(1.0, abs=1e-12)
    assert cka_from_grams(gram(torch.ones(40, 3))[None], gram(x)[None]) is None  # a dead layer: undefined, not 0


def test_segments_give_each_weight_to_the_first_tracked_layer_after_it():
    order = ["c1", "bn1", "relu1", "c2", "relu2", "pool", "gap", "fc"]
    seg = segments(order, ["relu1", "pool", "gap"], {"c1": 0, "c2": 0, "fc": 0})
    assert seg == {"relu1": ["c1"], "pool": ["c2"], "gap": []}  # fc is after the last tracked layer


def test_preserved_rng_restores_every_stream():
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    want = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    with preserved_rng():
        torch.rand(100), np.random.rand(100), random.random()
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1]) and want[2] == got[2]


# -- a run -----------------------------------------------------------------------------------------
@needs_data
def test_timeline_json_identities(runs):
    d = _strict(runs / "timeline" / "timeline.json")
    assert d["epochs"] == [0, 1, 2] and d["complete"] is True
    assert set(d) >= {"epochs", "layers", "cka_to_init", "cka_to_final", "drift", "images"}
    layers = d["layers"]
    assert len(layers) >= 3 and layers[-1] == "avgpool"  # compare's stage outputs + the pre-logits features
    for l in layers:
        assert len(d["cka_to_init"][l]) == len(d["cka_to_final"][l]) == len(d["drift"][l]) == 3
        assert d["cka_to_init"][l][0] == pytest.approx(1.0, abs=1e-9)
        assert d["cka_to_final"][l][-1] == pytest.approx(1.0, abs=1e-9)
        assert d["cka_to_init"][l][-1] == pytest.approx(d["cka_to_final"][l][0], abs=1e-9)  # symmetric
    with_weights = [l for l in layers if d["segments"][l]]
    assert with_weights and all(d["drift"][l][0] == 0.0 for l in with_weights)
    assert all(d["drift"][l] == [None] * 3 for l in layers if not d["segments"][l])
    # training moved something: the deepest representation and every weighted segment
    assert d["cka_to_init"][layers[-1]][-1] < 0.999
    assert all(d["drift"][l][-1] > 1e-3 for l in with_weights)
    # one watched image per class, a CAM per epoch, all on disk
    assert [im["class"] for im in d["images"]] == list(range(10))
    for im in d["images"]:
        assert len(im["cams"]) == 3 and len(im["prob"]) == 3
        for p in [im["src"], *im["cams"]]:
            assert (runs / "timeline" / p).is_file(), p
    assert (runs / "timeline" / d["figures"]["curves"]).is_file() and (runs / "timeline" / d["figures"]["cams"]).is_file()


@needs_data
def test_timeline_does_not_change_the_trained_weights(runs):
    a, b = _weights(runs / "plain"), _weights(runs / "timeline")
    assert a.keys() == b.keys()
    for k in a:  # weights and BatchNorm running statistics alike
        assert torch.equal(a[k], b[k]), k
    ma, mb = (json.loads((runs / r / "metrics.json").read_text()) for r in ("plain", "timeline"))
    assert [h["train_loss"] for h in ma["history"]] == [h["train_loss"] for h in mb["history"]]


@needs_data
def test_the_weights_check_would_catch_a_hook_that_touches_the_rng(runs, tmp_path):
    """The negative control of the test above: a hook that draws from the torch RNG changes the result."""

    def careless(epoch, run):
        torch.rand(1)

    train_run(tiny_cfg(tmp_path / "careless"), progress=False, on_epoch=careless)
    a, b = _weights(runs / "plain"), _weights(tmp_path / "careless")
    assert any(not torch.equal(a[k], b[k]) for k in a)


@needs_data
def test_timeline_goes_to_tensorboard(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    d = _strict(runs / "timeline" / "timeline.json")
    ev = EventAccumulator(str(runs / "timeline" / "tb"), size_guidance={"images": 0, "scalars": 0})
    ev.Reload()
    l0 = d["layers"][0]
    init = ev.Scalars(f"timeline/cka_to_init/{l0}")
    assert [s.step for s in init] == [0, 1, 2]
    assert [s.value for s in init] == pytest.approx(d["cka_to_init"][l0], abs=1e-6)
    assert [s.step for s in ev.Scalars(f"timeline/cka_to_final/{l0}")] == [0, 1, 2]
    assert [i.step for i in ev.Images("timeline/gradcam")] == [0, 1, 2]


@needs_data
def test_resumed_run_continues_the_timeline(runs, tmp_path):
    out = tmp_path / "r"
    tl = lambda: Timeline(images_per_class=1, cka_images=48, batch_size=24)  # noqa: E731
    first = train_run(tiny_cfg(out, stop_after=1), progress=False, on_epoch=tl())
    assert first["stopped_after"] == 1
    part = _strict(out / "timeline.json")
    assert part["epochs"] == [0, 1] and part["complete"] is False
    assert all(v is None for vals in part["cka_to_final"].values() for v in vals)  # not known before the end
    train_run(tiny_cfg(out, resume=True), progress=False, on_epoch=tl())
    d, whole = _strict(out / "timeline.json"), _strict(runs / "timeline" / "timeline.json")
    assert d["epochs"] == [0, 1, 2] and d["complete"] is True
    for k in ("cka_to_init", "cka_to_final", "drift"):  # the same numbers as the uninterrupted run
        for l in d["layers"]:
            assert d[k][l] == pytest.approx(whole[k][l], abs=1e-6), (k, l)
    assert all((out / p).is_file() for im in d["images"] for p in im["cams"])


@needs_data
def test_resume_with_timeline_of_a_run_without_one_says_so(runs, tmp_path):
    out = tmp_path / "no-tl"
    train_run(tiny_cfg(out, stop_after=1), progress=False)
    before = _weights(out)
    with pytest.raises(TrainError, match="started without --timeline"):
        train_run(tiny_cfg(out, resume=True), progress=False, on_epoch=Timeline(images_per_class=1, cka_images=48))
    after = _weights(out)
    assert all(torch.equal(before[k], after[k]) for k in before)  # refused before any training
    assert not (out / "timeline.json").exists()


@needs_data
def test_cli_train_timeline(tmp_path):
    from click.testing import CliRunner

    from cnnviz.cli.main import cli

    out = tmp_path / "cli"
    args = ["train", "--data", "fashion-mnist", "--model", TINY, "--mode", "scratch", "--epochs", "1", "--limit", "60",
            "--eval-limit", "40", "--batch-size", "20", "--device", "cpu", "--no-progress", "--out", str(out)]
    r = CliRunner().invoke(cli, [*args, "--timeline", "--timeline-images", "1"])
    assert r.exit_code == 0, r.output
    d = _strict(out / "timeline.json")
    assert d["epochs"] == [0, 1] and len(d["images"]) == 10
    r = CliRunner().invoke(cli, [*args, "--timeline", "--timeline-images", "0"])
    assert r.exit_code == 2 and "timeline-images" in r.output


def test_timeline_refuses_absurd_settings():
    from cnnviz.errors import CnnvizError

    with pytest.raises(CnnvizError):
        Timeline(images_per_class=1000)
    with pytest.raises(CnnvizError):
        Timeline(cka_images=2)
    with pytest.raises(CnnvizError, match="unknown method|not one of"):
        Timeline(method="saliency")


@needs_data
def test_train_model_api_takes_timeline(tmp_path):
    import cnnviz

    t = cnnviz.train_model("fashion-mnist", "simplecnn:width=4,depth=2", "scratch", epochs=1, out=tmp_path / "api",
                           timeline=Timeline(images_per_class=1, cka_images=40, batch_size=20), limit=40, eval_limit=40,
                           batch_size=20, device="cpu", tensorboard=False)
    d = _strict(t.run_dir / "timeline.json")
    assert d["epochs"] == [0, 1] and d["complete"] and t.info.num_classes == 10
