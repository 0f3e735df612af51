"""Activation maximization on tiny models: shapes, seeds, objectives that compose and really climb."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnviz.errors import CnnvizError
from cnnviz.explain import objectives as O
from cnnviz.explain.fvparam import ImageParam, random_views
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
    assert imgs.shape == (3, 32, 32, 3) and imgs.dtype == np.uint8
    dominant = imgs.reshape(3, -1, 3).mean(1).argmax(1).tolist()
    assert dominant == [2, 0, 1]  # blue, red, green: the batch terms did not mix


def test_classes_seeded_progress_and_no_hooks_left(tiny_cnn):
    model, info = tiny_cnn
    classes = [0, 2, 4]
    calls = []
    imgs = maximize_classes(model, info, classes, steps=6, seed=3, progress=lambda s, n: calls.append((s, n)))
    assert imgs.shape == (3, 32, 32, 3)
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
    assert res.images.shape == (1, 28, 28, 3)
    assert np.array_equal(res.images[..., 0], res.images[..., 2])  # one channel, shown as grey
    big = maximize(model, info, O.class_logit(3), steps=2, size=56, seed=0)  # larger canvas, views resized to 28
    assert big.images.shape == (1, 56, 56, 3)
    with pytest.raises(CnnvizError):
        maximize(model, info, O.class_logit(3), param="dct")


def test_fft_param_spectrum_and_views_are_reproducible():
    g = torch.Generator().manual_seed(0)
    p = ImageParam(2, 3, 32, 32, generator=g)
    img = p()
    assert img.shape == (2, 3, 32, 32) and 0 < float(img.detach().min()) and float(img.detach().max()) < 1
    v1 = random_views(img, (28, 28), torch.Generator().manual_seed(5))
    v2 = random_views(img, (28, 28), torch.Generator().manual_seed(5))
    assert v1.shape == (2, 3, 28, 28) and torch.equal(v1, v2)
    # the two images of the batch get different random views
    same = random_views(img[:1].expand(2, -1, -1, -1), (28, 28), torch.Generator().manual_seed(5))
    assert not torch.allclose(same[0], same[1])


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
