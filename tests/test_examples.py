"""Dataset examples: bounded heap, exact receptive-field boxes, CLI for rf/examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest


@pytest.fixture
def tiny_data():
    """40 random 32x32 RGB images, 5 classes, as the data module serves them (PIL, label)."""
    from cnnviz.data import ArrayImages

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(40, 32, 32, 3), dtype=np.uint8)
    return ArrayImages(imgs, [i % 5 for i in range(40)], [f"c{i}" for i in range(5)], name="tiny")


def brute_force_unit_scores(model, info, ds, layer, channel):
    from cnnviz.data import eval_transform
    from cnnviz.probe import LayerProbe

    tf = eval_transform(info)
    x = torch.stack([tf(ds[i][0]) for i in range(len(ds))])
    with LayerProbe(model, [layer], stop_after=True) as p:
        p.run(x)
        a = p.activations[layer][:, channel]
    return a.flatten(1).amax(1), a


def test_unit_examples_match_brute_force_in_any_batch_size(tiny_cnn, tiny_data):
    from cnnviz.explain.examples import top_examples
    from cnnviz.explain.receptive import receptive_field

    model, info = tiny_cnn
    scores, maps = brute_force_unit_scores(model, info, tiny_data, "features.3", 2)
    want = torch.argsort(scores, descending=True)[:5].tolist()
    rf = receptive_field(model, info.input_size, "features.3")
    for bs in (7, 64):
        got = top_examples(model, info, tiny_data, layer="features.3", channel=2, k=5, batch_size=bs)
        assert [e.index for e in got] == want
        for e in got:
            assert e.score == pytest.approx(float(scores[e.index]), rel=1e-5)
            y, x = e.location
            assert float(maps[e.index, y, x]) == pytest.approx(e.score, rel=1e-5)  # the strongest location
            assert e.box == rf.region(y, x, clip_to=(32, 32))
            assert e.patch.shape == (e.box[2] - e.box[0], e.box[3] - e.box[1], 3)
            assert e.image.shape == (32, 32, 3) and e.label == e.index % 5


def test_limit_streams_only_the_head(tiny_cnn, tiny_data):
    from cnnviz.explain.examples import top_examples

    model, info = tiny_cnn
    got = top_examples(model, info, tiny_data, layer="features.3", channel=0, k=50, batch_size=8, limit=12)
    assert len(got) == 12 and max(e.index for e in got) == 11
    assert [e.score for e in got] == sorted((e.score for e in got), reverse=True)


def test_class_examples_rank_by_logit_and_box_in_image(tiny_cnn, tiny_data):
    from cnnviz.data import eval_transform
    from cnnviz.explain.examples import render_examples, top_examples

    model, info = tiny_cnn
    tf = eval_transform(info)
    with torch.no_grad():
        logits = model.eval()(torch.stack([tf(tiny_data[i][0]) for i in range(len(tiny_data))]))
    got = top_examples(model, info, tiny_data, target_class=3, k=4, batch_size=16)
    assert [e.index for e in got] == torch.argsort(logits[:, 3], descending=True)[:4].tolist()
    for e in got:
        y0, x0, y1, x1 = e.box
        assert 0 <= y0 < y1 <= 32 and 0 <= x0 < x1 <= 32 and (y1 - y0) < 32  # a part of the image
    pic = render_examples(got, tiny_data.class_names)
    assert pic.dtype == np.uint8 and pic.ndim == 3
    assert all(not m._forward_hooks for m in model.modules())


def test_examples_reject_bad_targets(tiny_cnn, tiny_data):
    from cnnviz.errors import LayerError, TargetError
    from cnnviz.explain.examples import top_examples

    model, info = tiny_cnn
    with pytest.raises(TargetError):
        top_examples(model, info, tiny_data, layer="features.3", channel=99)
    with pytest.raises(TargetError):
        top_examples(model, info, tiny_data)
    with pytest.raises(LayerError):
        top_examples(model, info, tiny_data, channel=1)


def test_cli_rf_examples_effective(tmp_path):
    import json

    from click.testing import CliRunner
    from PIL import Image

    from cnnviz.cli.main import cli

    for split in ("train", "test"):
        for c in ("ants", "bees"):
            d = tmp_path / "data" / split / c
            d.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(d / f"{i}.png")
    m = ["--model", "simplecnn:width=4,depth=2"]
    r = CliRunner().invoke(cli, ["rf", *m, "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert rows[0] == {"layer": "features.0", "type": "Conv2d", "rf": [3, 3], "stride": [1, 1], "padding": [1, 1]}
    assert rows[-1]["rf"] == "global"
    out = tmp_path / "ex.png"
    r = CliRunner().invoke(cli, ["examples", *m, "--layer", "features.3", "--channel", "1", "--data", str(tmp_path / "data"),
                                 "--top", "4", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert out.exists() and len(json.loads(r.stdout.strip().splitlines()[-1])["examples"]) == 4
    erf = tmp_path / "erf.png"
    r = CliRunner().invoke(cli, ["rf", *m, "--effective", "--layer", "features.3", "--num", "2", "--out", str(erf),
                                 "--data", str(tmp_path / "data")])
    assert r.exit_code == 0, r.output
    assert erf.exists()
    r = CliRunner().invoke(cli, ["rf", *m, "--effective"])
    assert r.exit_code == 2 and "--layer" in r.output
    r = CliRunner().invoke(cli, ["examples", *m, "--class", "nope", "--data", str(tmp_path / "data")])
    assert r.exit_code == 2


def test_class_peak_is_mapped_onto_the_box_layer(tiny_data):
    from cnnviz.explain.examples import top_examples
    from cnnviz.explain.receptive import receptive_field
    from cnnviz.models import build_model

    torch.manual_seed(0)
    model, info = build_model("simplecnn", num_classes=5, arch_kwargs={"width": 4, "depth": 3}, input_size=(32, 32))
    box_rf = receptive_field(model, info.input_size, "features.13")  # rf 16 = half the input; features.20 is 36
    got = top_examples(model, info, tiny_data, target_class=0, k=3)
    for e in got:
        assert 0 <= e.location[0] < 8 and 0 <= e.location[1] < 8  # features.13's 8x8 grid, not features.20's 4x4
        assert e.box == box_rf.region(*e.location, clip_to=(32, 32))


def test_coarse_cam_cell_maps_to_the_middle_of_its_region():
    from cnnviz.explain.examples import cell_to_grid

    # a 2x2 Grad-CAM whose bottom-left cell wins, on a 12x12 box-layer grid: the middle of that
    # quadrant (rows 6-11, cols 0-5), not the corner an upsampled plateau's argmax would give
    assert cell_to_grid((1, 0), (2, 2), (12, 12)) == (9, 3)
    assert cell_to_grid((0, 1), (2, 2), (12, 12)) == (3, 9)
    assert cell_to_grid((3, 3), (4, 4), (8, 8)) == (7, 7)  # same-size cells stay put at the edges
    assert cell_to_grid((2, 5), (8, 8), (8, 8)) == (2, 5)  # identical grids: identity


def test_top_examples_refuses_absurd_values(tiny_cnn, tiny_data):
    from cnnviz.errors import OptionError
    from cnnviz.explain.examples import top_examples

    model, info = tiny_cnn
    for kw, match in [({"k": 0}, "--top"), ({"k": 10**7}, "--top"), ({"batch_size": 0}, "--batch-size"),
                      ({"limit": 0}, "--limit"), ({"limit": -5}, "--limit")]:
        with pytest.raises(OptionError, match=match):
            top_examples(model, info, tiny_data, target_class=0, **kw)
    with pytest.raises(OptionError, match="target_class 5 is out of range.*5 classes"):
        top_examples(model, info, tiny_data, target_class=5)  # was: IndexError on the logits


@pytest.mark.parametrize("args,match", [
    (["rf", "--effective", "--layer", "features.3", "--num", "100000"], "1<=x<=1024"),
    (["examples", "--class", "0", "--top", "0"], "1<=x<=1000"),
    (["examples", "--class", "0", "--batch-size", "100000"], "1<=x<=4096"),
    (["examples", "--class", "0", "--limit", "0"], "--limit"),
    (["examples", "--class", "#10"], "out of range"),
    (["examples", "--layer", "features.3", "--channel", "99"], "channel 99 is out of range"),
    (["rf", "--effective", "--layer", "features.3", "--channel", "99", "--num", "1"], "channel 99 is out of range"),
])
def test_cli_rf_and_examples_bounds(tmp_path, args, match):
    from click.testing import CliRunner
    from PIL import Image

    from cnnviz.cli.main import cli

    for split in ("train", "test"):
        d = tmp_path / "data" / split / "a"
        d.mkdir(parents=True)
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(d / "0.png")
    data = [] if args[0] == "rf" else ["--data", str(tmp_path / "data")]
    r = CliRunner().invoke(cli, [*args, "--model", "simplecnn:width=4,depth=2", *data, "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and match in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "x.png").exists()
