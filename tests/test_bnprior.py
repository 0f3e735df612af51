"""The BatchNorm-statistics prior: zero where the features have the stored statistics, and it pulls toward them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnviz.explain.bnprior import BatchNormPrior, batchnorm_layers

pytestmark = pytest.mark.usefixtures("one_thread")


def bn_net(mean: float = 0.3, var: float = 2.0) -> nn.Module:
    """conv (identity) -> BN whose running statistics are ``mean``/``var`` on every channel -> pooled logits."""
    conv = nn.Conv2d(3, 3, 1, bias=False)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        bn.running_mean.fill_(mean)
        bn.running_var.fill_(var)
    return nn.Sequential(conv, bn, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()


def test_zero_on_matching_statistics_and_positive_otherwise():
    net = bn_net(0.3, 2.0)
    x = torch.randn(2, 3, 16, 16)
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), unbiased=False, keepdim=True) * 2.0**0.5 + 0.3
    with BatchNormPrior(net, groups=1) as prior:
        net(x)
        assert prior.loss().item() == pytest.approx(0.0, abs=1e-4)
        net(torch.zeros(2, 3, 16, 16))  # mean 0 (off by 0.3), var 0 (off by 2) on 3 channels: (0.3 + 2) * sqrt(3) / sqrt(3)
        assert prior.loss().item() == pytest.approx(2.3, rel=1e-4)
        assert prior.loss().item() == 0.0  # loss() cleared the terms
    assert not net[1]._forward_pre_hooks  # the hooks are gone


def test_groups_give_each_image_its_own_statistics():
    """Rows are view-major: with 2 views of 2 images, image i owns rows i and 2 + i."""
    net = bn_net(0.0, 1.0)
    good = torch.randn(1, 3, 32, 32)
    good = (good - good.mean((0, 2, 3), keepdim=True)) / good.std((0, 2, 3), unbiased=False, keepdim=True)
    x = torch.cat([good, torch.zeros(1, 3, 32, 32)] * 2)  # image 0 matches, image 1 is flat
    with BatchNormPrior(net, groups=2) as prior:
        net(x)
        loss = prior.loss()
    assert loss.shape == (2,) and loss[0].item() < 1e-3 and loss[1].item() == pytest.approx(1.0, rel=1e-4)


def test_descending_the_prior_moves_the_input_toward_the_statistics():
    net = bn_net(0.3, 2.0)
    x = torch.zeros(1, 3, 8, 8, requires_grad=True)
    first = None
    with BatchNormPrior(net) as prior:
        for _ in range(100):
            net(x + 0.01 * torch.randn_like(x))
            loss = prior.loss().sum()
            first = loss.item() if first is None else first
            loss.backward()
            with torch.no_grad():
                x -= 20.0 * x.grad  # each pixel moves its mean by 1/64
                x.grad = None
    assert loss.item() < 0.5 * first


def test_models_without_batchnorm_have_no_layers_and_a_zero_loss():
    net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Flatten())
    assert batchnorm_layers(net) == []
    with BatchNormPrior(net, groups=3) as prior:
        net(torch.randn(3, 3, 4, 4))
        assert prior.loss().tolist() == [0.0, 0.0, 0.0]


def test_maximize_with_the_prior_keeps_features_nearer_the_statistics():
    """A class objective alone drives the BN input far from its statistics; with the prior it stays nearer."""
    from cnnviz.explain import objectives as O
    from cnnviz.explain.maximize import maximize
    from cnnviz.models import build_model

    torch.manual_seed(0)
    model, info = build_model("simplecnn", num_classes=4, in_chans=1, arch_kwargs={"width": 4, "depth": 2}, input_size=(28, 28))
    model.eval()
    for m in batchnorm_layers(model):  # statistics of some imaginary data
        m.running_mean.uniform_(-0.2, 0.2)
        m.running_var.uniform_(0.5, 1.5)

    def distance(images) -> float:
        from cnnviz.images import preprocess

        x = torch.cat([preprocess(im, info) for im in images])
        with BatchNormPrior(model, groups=len(images)) as prior, torch.no_grad():
            model(x)
            return prior.loss().mean().item()

    plain = maximize(model, info, O.class_logit(1), steps=40, seed=0).images
    held = maximize(model, info, O.class_logit(1), steps=40, seed=0, bn_prior=3.0).images
    assert distance(held) < distance(plain)


def test_the_prior_leaves_no_hook_behind_even_after_an_exception():
    from cnnviz.probe import hook_count

    net = bn_net()
    with pytest.raises(ValueError):
        with BatchNormPrior(net) as prior:
            assert hook_count(net) == 1
            net(torch.randn(1, 3, 4, 4))
            raise ValueError("boom")
    assert hook_count(net) == 0 and prior.loss().tolist() == [0.0]
