"""Activation maximization on tiny models: shapes, seeds, objectives that compose and really climb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz.errors import CnnvizError, TargetError
from cnnviz.explain import objectives as O
from cnnviz.explain.fvparam import ImageParam
from cnnviz.explain.fvtransforms import Views, crop_views, lucent_views
from cnnviz.explain.maximize import maximize, maximize_classes

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest


def color_net():
    """Logit c = mean of colour channel c (R, G, B): the image that maximizes class c must be that colour."""
    from torch import nn

    from cnnviz.models import ModelInfo

    conv = nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    return model, ModelInfo("color", 3, ["red", "green", "blue"], (3, 32, 32), (0.5,) * 3, (0.5,) * 3)


def test_classes_one_batch_each_image_specific():
    model, info = color_net()
    imgs = maximize_classes(model, info, [2, 0, 1], steps=30, seed=0)
    assert imgs.shape == (3, 64, 64, 3) and imgs.dtype == np.uint8
    dominant = imgs.reshape(3, -1, 3).mean(1).argmax(1).tolist()
    assert dominant == [2, 0, 1]  # blue, red, green: the batch terms did not mix


def test_classes_seeded_progress_and_no_hooks_left(tiny_cnn):
    model, info = tiny_cnn
    classes = [0, 2, 4]
    calls = []
    imgs = maximize_classes(model, info, classes, steps=6, seed=3, progress=lambda s, n: calls.append((s, n)))
    assert imgs.shape == (3, 64, 64, 3)
    assert calls[-1] == (6, 6) and len(calls) == 6
    again = maximize_classes(model, info, classes, steps=6, seed=3)
    other = maximize_classes(model, info, classes, steps=6, seed=4)
    assert np.array_equal(imgs, again) and not np.array_equal(imgs, other)
    assert all(not m._forward_hooks for m in model.modules())


def test_channel_objective_climbs_and_model_is_restored():
    model, info = color_net()
    model.train()
    short = maximize(model, info, O.channel("1", 1), steps=1, seed=0)
    long = maximize(model, info, O.channel("1", 1), steps=40, seed=0)
    assert long.values[0] > short.values[0] + 0.3  # green mean, in normalized units (max 1)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_objectives_compose():
    acts = {"l": torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)}
    ctx = O.Ctx(logits=torch.tensor([[1.0, 5.0], [3.0, 0.0]]), acts=acts, batch=2)
    a, b = O.channel("l", 0), O.channel("l", 2, batch=1)
    assert torch.allclose((a + 2 * b)(ctx), a(ctx) + torch.tensor([0.0, 2 * acts["l"][1, 2].mean()]))
    assert torch.allclose((a - b)(ctx), a(ctx) - b(ctx))
    assert torch.allclose(O.neuron("l", 1, 0, 1)(ctx), acts["l"][:, 1, 0, 1])
    assert torch.allclose(O.class_logit(1)(ctx), torch.tensor([5.0, 0.0]))
    lp = O.class_logit(1, mode="logprob")(ctx)
    assert torch.allclose(lp, torch.log_softmax(ctx.logits, 1)[:, 1])
    assert (a + b + O.class_logit(0)).needs_logits and (a + b).layers == {"l"}


def test_diversity_pushes_images_apart(tiny_cnn):
    model, info = tiny_cnn

    def gram_similarity(imgs: np.ndarray) -> float:
        from cnnviz.images import preprocess
        from cnnviz.probe import LayerProbe

        with LayerProbe(model, ["features.3"]) as p:
            p.run(torch.cat([preprocess(im, info) for im in imgs]))
            f = p.activations["features.3"].flatten(2)
        g = torch.nn.functional.normalize((f @ f.transpose(1, 2)).flatten(1), dim=1)
        return float((g @ g.T)[~torch.eye(len(g), dtype=bool)].mean())

    base = O.channel("features.3", 0)
    plain = maximize(model, info, base, batch=3, steps=20, seed=1)
    diverse = maximize(model, info, base + O.diversity("features.3", 50.0), batch=3, steps=20, seed=1)
    assert gram_similarity(diverse.images) < gram_similarity(plain.images)


def test_pixel_param_no_transforms_and_grayscale_small_input():
    from cnnviz.models import build_model

    torch.manual_seed(0)
    model, info = build_model("simplecnn", num_classes=4, in_chans=1, arch_kwargs={"width": 4, "depth": 2}, input_size=(28, 28))
    res = maximize(model, info, O.class_logit(3), steps=10, param="pixel", transforms="none", seed=0)
    assert res.images.shape == (1, 56, 56, 3)  # a 28-px model gets a canvas twice its input (default_canvas)
    assert np.array_equal(res.images[..., 0], res.images[..., 2])  # one channel, shown as grey
    big = maximize(model, info, O.class_logit(3), steps=2, size=56, seed=0)  # larger canvas, views resized to 28
    assert big.images.shape == (1, 56, 56, 3)
    with pytest.raises(CnnvizError):
        maximize(model, info, O.class_logit(3), param="dct")


def test_small_models_get_a_larger_canvas_and_start_from_the_data_colour():
    """Under 64 px the canvas is twice the input; a checkpoint's recorded pixel mean is the starting colour."""
    from dataclasses import replace

    from cnnviz.explain.maximize import default_canvas
    from cnnviz.models import build_model

    model, info = build_model("simplecnn", num_classes=4, in_chans=1, arch_kwargs={"width": 4, "depth": 2}, input_size=(28, 28))
    assert default_canvas(info) == 56 and default_canvas(replace(info, input_size=(3, 96, 96))) == 96
    grey = maximize(model, info, O.class_logit(3), steps=1, lr=1e-6, seed=0).images
    dark = maximize(model, replace(info, pixel_mean=(0.1,)), O.class_logit(3), steps=1, lr=1e-6, seed=0).images
    assert abs(float(grey.mean()) - 127.5) < 3 and abs(float(dark.mean()) - 25.5) < 3
    override = maximize(model, replace(info, pixel_mean=(0.1,)), O.class_logit(3), steps=1, lr=1e-6, seed=0, base=(0.9,))
    assert abs(float(override.images.mean()) - 229.5) < 3
    # a recorded mean image wins over the colour: the canvas starts as that image, resized to the canvas
    half = np.zeros((1, 28, 28), np.float32)
    half[:, :, 14:] = 0.8
    start = maximize(model, replace(info, pixel_mean=(0.1,), mean_image=half), O.class_logit(3), steps=1, lr=1e-6, seed=0).images
    assert start.shape == (1, 56, 56, 3)
    assert float(start[0, :, :24].mean()) < 10 and abs(float(start[0, :, 32:].mean()) - 204) < 4


def test_fft_param_spectrum_and_views_are_reproducible():
    g = torch.Generator().manual_seed(0)
    p = ImageParam(2, 3, 32, 32, generator=g)
    img = p()
    assert img.shape == (2, 3, 32, 32) and 0 < float(img.detach().min()) and float(img.detach().max()) < 1
    for fn in (lucent_views, crop_views):
        v1 = fn(img, (28, 28), torch.Generator().manual_seed(5))
        v2 = fn(img, (28, 28), torch.Generator().manual_seed(5))
        assert v1.shape == (2, 3, 28, 28) and torch.equal(v1, v2)
        # the two images of the batch get different random views
        same = fn(img[:1].expand(2, -1, -1, -1), (28, 28), torch.Generator().manual_seed(5))
        assert not torch.allclose(same[0], same[1])


def test_views_are_view_major_and_stay_on_the_canvas():
    # image 0 all black, image 1 all white: every view of image i must keep image i's colour
    img = torch.stack([torch.zeros(3, 40, 40), torch.ones(3, 40, 40)])
    v = Views(kind="crops", n=3, scale=(0.6, 1.0), flip=True)(img, (20, 20), torch.Generator().manual_seed(0))
    assert v.shape == (6, 3, 20, 20)
    rows = v.mean(dim=(1, 2, 3)).tolist()
    assert all(r < 0.02 for r in rows[0::2]) and all(r > 0.98 for r in rows[1::2])  # crops inside: no grey border
    noisy = Views(kind="none", n=2, noise=0.05)(img, (20, 20), torch.Generator().manual_seed(0))
    assert noisy.shape == (4, 3, 20, 20) and 0.03 < float((noisy[::2] - 0).std()) < 0.07
    # a half-width crop really zooms: a left/right split image is seen as one side or the middle
    half = torch.zeros(1, 1, 40, 40)
    half[..., 20:] = 1.0
    z = crop_views(half, (10, 10), torch.Generator().manual_seed(1), n=8, scale=(0.5, 0.5), shift=0.0)
    assert torch.allclose(z[:, :, :, :5].mean(), torch.tensor(0.0), atol=0.05)
    assert torch.allclose(z[:, :, :, 5:].mean(), torch.tensor(1.0), atol=0.05)
    with pytest.raises(ValueError):
        Views(kind="crops", n=0)


def test_maco_param_has_fixed_natural_contrast():
    p = ImageParam(2, 3, 32, 32, kind="maco", generator=torch.Generator().manual_seed(0))
    img = p().detach()
    assert img.shape == (2, 3, 32, 32) and 0 < float(img.min()) and float(img.max()) < 1
    assert float(img.std()) > 0.05  # standardized before the sigmoid: never a flat grey start
    assert p.raw.shape == (2, 3, 32, 17)  # phase only


def test_optimized_class_logit_far_above_random_images(tiny_cnn):
    from cnnviz.images import preprocess

    model, info = tiny_cnn
    k = 3
    imgs = maximize_classes(model, info, [k], steps=40, seed=0)
    rand = (np.random.default_rng(0).random((16, 32, 32, 3)) * 255).astype(np.uint8)
    with torch.no_grad():
        z_opt = model(preprocess(imgs[0], info))[0, k]
        z_rand = model(torch.cat([preprocess(im, info) for im in rand]))[:, k]
    spread = float(z_rand.std()) + 1e-6
    assert float(z_opt) > float(z_rand.max()) + 3 * spread


def test_batched_classes_one_image_each_and_snapshots_equal_shorter_runs(tiny_cnn):
    model, info = tiny_cnn
    res = maximize(model, info, O.class_logit(0, batch=0) + O.class_logit(4, batch=1) + O.class_logit(2, batch=2),
                   batch=3, steps=6, seed=2, snapshots=(3, 6))
    assert res.images.shape == (3, 64, 64, 3) and len(res.values) == 3
    short = maximize(model, info, O.class_logit(0, batch=0) + O.class_logit(4, batch=1) + O.class_logit(2, batch=2),
                     batch=3, steps=3, seed=2)
    assert np.array_equal(res.snapshots[3], short.images) and np.array_equal(res.snapshots[6], res.images)
    with pytest.raises(TargetError):
        maximize_classes(model, info, [0, 5], steps=1)
    for bad in ({"lr": float("nan")}, {"lr": 0.0}, {"steps": 0}, {"size": 4}, {"batch": 0}):
        with pytest.raises(CnnvizError):
            maximize(model, info, O.class_logit(0), **{"steps": 1, **bad})


def test_check_unit_bounds(tiny_cnn):
    from cnnviz.explain.maximize import check_unit

    model, info = tiny_cnn
    shape = check_unit(model, info, "features.0", 0)
    assert len(shape) == 3
    with pytest.raises(TargetError, match="channels"):
        check_unit(model, info, "features.0", shape[0])
    with pytest.raises(TargetError, match="out of range"):
        check_unit(model, info, "features.0", 0, (shape[1], 0))
    assert check_unit(model, info, "features.0", 0, (shape[1] - 1, shape[2] - 1)) == shape


def test_cli_maximize_writes_png_and_rejects_bad_input(tmp_path):
    from click.testing import CliRunner

    from cnnviz.cli.main import cli

    out = tmp_path / "m.png"
    r = CliRunner().invoke(cli, ["maximize", "--model", "simplecnn:width=4,depth=1", "--class", "1", "--steps", "2",
                                 "--diversity", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 0
    r = CliRunner().invoke(cli, ["maximize", "--model", "simplecnn:width=4,depth=1", "--class", "1", "--channel", "0"])
    assert r.exit_code == 2 and "either" in r.output
    r = CliRunner().invoke(cli, ["maximize", "--model", "simplecnn:width=4,depth=1", "--layer", "features.0", "--channel", "0",
                                 "--neuron", "x", "--out", str(tmp_path / "n.png")])
    assert r.exit_code == 2 and "Y,X" in r.output and not (tmp_path / "n.png").exists()


@pytest.mark.parametrize("args, msg", [
    (["--class", "1", "--size", "4"], "--size"),
    (["--class", "1", "--size", "100000"], "--size"),
    (["--class", "1", "--steps", "0"], "--steps"),
    (["--class", "1", "--diversity", "0"], "--diversity"),
    (["--class", "1", "--diversity", "1000"], "--diversity"),
    (["--class", "1", "--lr", "nan"], "--lr"),
    (["--class", "1", "--lr", "inf"], "--lr"),
    (["--class", "1", "--lr", "0"], "--lr"),
    (["--class", "1", "--bn-prior", "-1"], "--bn-prior"),
    (["--class", "1", "--bn-prior", "nan"], "--bn-prior"),
    (["--class", "1", "--lr", "-1"], "--lr"),
    (["--class", "1,99"], "99"),
    (["--class", "1,,2"], "empty"),
    (["--class", "1", "--snapshots", "5"], "--each"),
    (["--class", "1", "--steps", "4", "--snapshots", "4", "--each", "d"], "between 1 and 3"),
    (["--class", "1", "--view-size", "3"], "--view-size"),
    (["--layer", "features.0", "--channel", "999"], "channel 999"),
    (["--layer", "features.0", "--channel", "0", "--neuron", "999,0"], "neuron 999,0"),
    (["--layer", "nope", "--channel", "0"], "nope"),
])
def test_cli_maximize_bounds_one_line_exit_2(tmp_path, args, msg):
    from click.testing import CliRunner

    from cnnviz.cli.main import cli

    out = tmp_path / "m.png"
    steps = [] if "--steps" in args else ["--steps", "1"]
    r = CliRunner().invoke(cli, ["maximize", "--model", "simplecnn:width=4,depth=1", *steps, *args, "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert msg in r.stderr and "Traceback" not in r.output and not r.stdout
    assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_batched_classes_one_image_per_class(tmp_path):
    import json

    from click.testing import CliRunner

    from cnnviz.cli.main import cli

    out = tmp_path / "b.png"
    r = CliRunner().invoke(cli, ["maximize", "--model", "simplecnn:width=4,depth=1", "--class", "3,1,3",
                                                 "--class", "7", "--steps", "2", "--out", str(out), "--json", "--each", str(tmp_path / "each"),
                                   "--snapshots", "1", "--view-size", "32"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert d["classes"] == [3, 1, 7] and len(d["values"]) == 3 and out.stat().st_size > 0
    from PIL import Image

    assert [Path(p).name[:4] for p in d["each"]] == ["000-", "001-", "002-"]
    assert all(Image.open(p).size == (64, 64) for p in d["each"])  # the canvas, not the upscaled tile
    assert sorted(p.name[:4] for p in (tmp_path / "each" / "step1").iterdir()) == ["000-", "001-", "002-"]


def test_parse_classes_keeps_names_with_commas_whole():
    from cnnviz.cli.units import _parse_classes
    from cnnviz.models import ModelInfo

    info = ModelInfo("x", 3, ["tabby, tabby cat", "goldfish", "Granny Smith"], (3, 32, 32), (0.5,) * 3, (0.5,) * 3)
    assert _parse_classes(("tabby, tabby cat",), info) == [0]
    assert _parse_classes(("goldfish,Granny Smith,0", "1"), info) == [1, 2, 0]
    assert _parse_classes(("all",), info) == [0, 1, 2]
    with pytest.raises(TargetError):
        _parse_classes(("goldfish,nope",), info)


def test_the_batchnorm_prior_is_on_by_default_only_for_small_models_with_their_own_statistics():
    from dataclasses import replace

    from cnnviz.explain.maximize import DEFAULT_BN_PRIOR, default_bn_prior
    from cnnviz.models import build_model

    _, info = build_model("simplecnn", num_classes=4, in_chans=1, arch_kwargs={"width": 4, "depth": 2}, input_size=(28, 28))
    scratch = replace(info, weights="checkpoint", mode="scratch")
    assert default_bn_prior(scratch) == DEFAULT_BN_PRIOR > 0
    assert default_bn_prior(replace(scratch, input_size=(1, 96, 96))) == 0.0  # not a small-input model
    probe = replace(scratch, mode="lp")  # a probe keeps the pretrained (ImageNet) statistics
    assert default_bn_prior(probe) == 0.0 == default_bn_prior(replace(scratch, mode="ft", config={"bn": "auto"}))
    assert default_bn_prior(replace(scratch, mode="ft", config={"bn": "train"})) == DEFAULT_BN_PRIOR


def test_bn_prior_out_of_range_is_refused():
    model, info = color_net()
    with pytest.raises(CnnvizError):
        maximize(model, info, O.class_logit(0), steps=1, bn_prior=-1.0)
    with pytest.raises(CnnvizError):
        maximize(model, info, O.class_logit(0), steps=1, bn_groups="layer")


def test_pyramid_param_sums_levels_and_its_coarse_level_learns():
    """A gradient that wants the left half bright reaches the coarsest grid, which alone can paint a half."""
    g = torch.Generator().manual_seed(0)
    p = ImageParam(1, 1, 32, 32, kind="pyramid", generator=g)
    assert p.levels == [(32, 32), (16, 16), (8, 8), (4, 4)]
    assert p.raw.shape == (1, 1, 32 * 32 + 16 * 16 + 8 * 8 + 4 * 4)
    img = p()
    assert img.shape == (1, 1, 32, 32)
    img[..., :16].mean().backward()
    coarse = p.raw.grad[..., -16:].reshape(4, 4)
    assert float(coarse[:, :2].sum()) > 0 and float(coarse[:, 2:].abs().max()) < float(coarse[:, :2].min())
    model, info = color_net()
    imgs = maximize_classes(model, info, [2, 0], steps=30, seed=0, param="pyramid")
    assert imgs.reshape(2, -1, 3).mean(1).argmax(1).tolist() == [2, 0]  # it climbs like the others
