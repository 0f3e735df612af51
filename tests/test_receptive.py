"""Analytic receptive fields: the Distill table, and gradient measurements on constant-weight nets."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.explain.receptive import receptive_field, receptive_fields

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest


class Branchy(nn.Module):
    """Four branches that see different, off-centre intervals (asymmetric "same" padding, dilation,
    ceil-mode pooling, depthwise conv, an explicit F.pad), merged by cat and +, then a squeeze-excite gate.
    The union of the branches is wider than any single path, so a largest-path rule would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        from timm.layers import create_conv2d

        self.stem = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.a = create_conv2d(4, 4, 3, stride=2, padding="same")  # timm Conv2dSame: pads (0, 1) on 32 px
        self.b = nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2)
        self.c = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.MaxPool2d(3, 2, ceil_mode=True))
        self.d = nn.Conv2d(4, 4, 3, stride=2)
        self.merge = nn.Conv2d(8, 8, 1)
        self.se_fc = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        if float(x.detach().abs().sum()) >= 0:  # data-dependent Python: fx tracing (and the meta device) fail here
            ab = torch.cat([self.a(x), self.b(x)], dim=1)
        cd = torch.cat([self.c(x), self.d(F.pad(x, (0, 2, 0, 2)))], dim=1)
        m = self.merge(ab + cd)
        gated = m * torch.sigmoid(self.se_fc(m.mean((2, 3), keepdim=True)))
        return self.head(gated.mean((2, 3)))

    # the tensor before the gate is exposed as a module for the tests
    @property
    def names(self) -> list[str]:
        return ["a", "b", "c", "d", "merge"]


def constant_copy(model: nn.Module) -> nn.Module:
    """float64 copy with positive constant weights, identity BN and max pools turned into avg pools:
    every input pixel inside the receptive field then gets a strictly positive gradient."""
    m = copy.deepcopy(model).double().eval()
    for name, mod in list(m.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(mod, cname, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode))
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.fill_(1.0 / mod.weight[0].numel())
                if mod.bias is not None:
                    mod.bias.zero_()
            elif isinstance(mod, nn.BatchNorm2d):
                mod.reset_parameters()
                mod.reset_running_stats()
    return m


def measured_support(model: nn.Module, layer: str, size: int) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """Box (y0, x0, y1, x1) of input pixels with a nonzero gradient for the centre unit of ``layer``."""
    from cnnviz.probe import LayerProbe

    x = torch.ones(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    with LayerProbe(model, [layer], grad=True, stop_after=True) as probe:
        probe.run(x)
        a = probe.activations[layer]
        cy, cx = (a.shape[2] - 1) // 2, (a.shape[3] - 1) // 2
        (g,) = torch.autograd.grad(a[0, :, cy, cx].sum(), x)
    nz = g[0].abs().sum(0) > 0
    ys = torch.nonzero(nz.any(1)).flatten()
    xs = torch.nonzero(nz.any(0)).flatten()
    return (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1), (cy, cx)


def check_against_gradients(model: nn.Module, layers: list[str], size: int) -> None:
    const = constant_copy(model)
    fields = {r.layer: r for r in receptive_fields(const, (3, size, size), layers)}
    for layer in layers:
        box, (cy, cx) = measured_support(const, layer, size)
        want = fields[layer].region(cy, cx, clip_to=(size, size))
        assert box == want, f"{layer}: gradient support {box} != analytic {want} ({fields[layer].to_dict()})"


def test_vgg16_pool5_matches_distill_table():
    from torchvision.models.vgg import cfgs, make_layers

    with torch.device("meta"):  # skip the random init: the field depends on the graph, not the weights
        vgg = make_layers(cfgs["D"])  # torchvision vgg16's `features` (the table covers the conv trunk)
    vgg = vgg.to_empty(device="cpu")
    rf = receptive_field(vgg, (3, 64, 64), "30")  # the field does not depend on the input size here
    assert rf.to_dict() == {"layer": "30", "type": "MaxPool2d", "rf": [212, 212], "stride": [32, 32], "padding": [90, 90]}
    conv1 = receptive_field(vgg, (3, 64, 64), "0")
    assert (conv1.rf, conv1.stride, conv1.padding) == ((3, 3), (1, 1), (1, 1))


def test_branches_dilation_asymmetric_padding_ceil_mode_match_gradients():
    torch.manual_seed(0)
    net = Branchy()
    check_against_gradients(net, ["a", "b", "c", "d", "merge"], 64)
    merged = receptive_field(net, (3, 64, 64), "merge")
    # union of the branch intervals, wider than the widest single branch (11)
    assert merged.rf == (13, 13) and merged.padding == (5, 5)
    a = receptive_field(net, (3, 64, 64), "a")
    assert a.padding == (1, 1) and a.rf == (7, 7)  # Conv2dSame pads 0 before, 1 after


def test_resnet18_and_googlenet_match_gradients():
    import torchvision

    torch.manual_seed(0)
    check_against_gradients(torchvision.models.resnet18(weights=None), ["maxpool", "layer1.1", "layer2.0", "layer2.1"], 112)
    g = torchvision.models.googlenet(weights=None, init_weights=False, aux_logits=False)
    check_against_gradients(g, ["maxpool1", "inception3a", "inception3b"], 112)


def test_global_after_pooling_squeeze_excite_and_attention():
    torch.manual_seed(0)
    fields = {r.layer: r for r in receptive_fields(Branchy(), (3, 64, 64))}
    assert fields["merge"].rf != "global"
    assert fields["se_fc"].rf == "global" and fields["head"].rf == "global"

    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.attn = nn.MultiheadAttention(4, 1, batch_first=True)
            self.post = nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            b, c, h, w = y.shape
            t = y.flatten(2).transpose(1, 2)
            t, _ = self.attn(t, t, t)
            return self.post(t.transpose(1, 2).reshape(b, c, h, w))

    f = {r.layer: r for r in receptive_fields(Attn(), (3, 16, 16))}
    assert f["conv"].rf == (3, 3)
    assert f["post"].rf == "global"


def test_squeeze_excite_is_global_unless_gates_are_ignored():
    import timm

    with torch.device("meta"):
        b0, lite0 = timm.create_model("efficientnet_b0"), timm.create_model("efficientnet_lite0")
    b0, lite0 = b0.to_empty(device="cpu"), lite0.to_empty(device="cpu")
    layers = ["blocks.0", "blocks.2", "blocks.4"]
    strict = receptive_fields(b0, (3, 96, 96), layers)
    assert all(r.rf == "global" for r in strict)  # the SE gate in blocks.0 pools the whole input
    local = [r.to_dict() for r in receptive_fields(b0, (3, 96, 96), layers, ignore_gates=True)]
    # B0 without its gates has Lite0's kernels and strides (Lite0 = B0 minus SE, with ReLU6)
    assert local == [r.to_dict() for r in receptive_fields(lite0, (3, 96, 96), layers)]
    assert local[1]["rf"] == [67, 67]


def test_rf_restores_model_and_names_bad_layer(tiny_cnn):
    from cnnviz.errors import LayerError

    model, info = tiny_cnn
    model.train()
    fields = receptive_fields(model, info.input_size)
    assert model.training and all(not m._forward_hooks for m in model.modules())
    # simplecnn: conv3 conv3 pool2 -> rf 6 stride 2, then conv3 conv3 pool2 -> rf 16 stride 4
    by = {r.layer: r for r in fields}
    assert by["features.6"].rf == (6, 6) and by["features.6"].stride == (2, 2)
    assert by["features.13"].rf == (16, 16) and by["features.13"].stride == (4, 4)
    with pytest.raises(LayerError):
        receptive_field(model, info.input_size, "features.99")


def test_mass_radius_of_a_gaussian():
    from cnnviz.explain.erf import mass_radius

    yy, xx = np.mgrid[0:201, 0:201]
    s = 12.0
    g = np.exp(-((yy - 100.0) ** 2 + (xx - 100.0) ** 2) / (2 * s * s))
    # a 2-D Gaussian holds fraction p within radius s * sqrt(-2 ln(1 - p))
    assert mass_radius(g, (100.0, 100.0), 0.5) == pytest.approx(s * np.sqrt(2 * np.log(2)), abs=0.6)
    assert mass_radius(g, (100.0, 100.0), 0.9) == pytest.approx(s * np.sqrt(2 * np.log(10)), abs=0.6)


def test_erf_lives_inside_the_analytic_field(tiny_cnn):
    from cnnviz.explain.erf import effective_receptive_field, render_erfs

    model, info = tiny_cnn
    e = effective_receptive_field(model, info, "features.10", n=4, seed=0)
    assert e.heat.shape == (32, 32) and e.heat.sum() == pytest.approx(1.0, abs=1e-4)
    y0, x0, y1, x1 = e.analytic.region(*e.unit, clip_to=(32, 32))
    inside = np.zeros_like(e.heat, dtype=bool)
    inside[y0:y1, x0:x1] = True
    assert e.heat[~inside].sum() == 0 and e.heat[inside].sum() > 0.99
    assert 0 < e.r50 < e.r90 <= np.hypot(y1 - y0, x1 - x0) / 2 + 1
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    e2 = effective_receptive_field(model, info, "features.10", images)
    assert e2.n_images == 3 and not np.allclose(e.heat, e2.heat)
    assert render_erfs([("a", e), ("b", e2)]).shape[1] > 2 * 200


def test_library_entry_points_refuse_absurd_values(tiny_cnn):
    """A notebook user calls these without the CLI's bounds: the same limits hold (OptionError / LayerError)."""
    from cnnviz.errors import LayerError, OptionError
    from cnnviz.explain.erf import effective_receptive_field

    model, info = tiny_cnn
    with pytest.raises(OptionError, match=r"--num 100000 is out of range: use 1\.\.1024"):
        effective_receptive_field(model, info, "features.3", n=100_000)  # was: a 100000x3x32x32 noise tensor
    with pytest.raises(OptionError):
        effective_receptive_field(model, info, "features.3", n=0)
    with pytest.raises(OptionError, match="batch_size"):
        effective_receptive_field(model, info, "features.3", n=2, batch_size=0)  # was: range() step 0 ValueError
    with pytest.raises(LayerError, match="--channel 99 is out of range.*4 channels"):
        effective_receptive_field(model, info, "features.3", n=2, channel=99)  # was: IndexError
    with pytest.raises(OptionError):
        effective_receptive_field(model, info, "features.3", n=2, channel=-1)
    with pytest.raises(OptionError, match="input size 100000"):
        receptive_fields(model, (3, 100000, 100000))
    with pytest.raises(OptionError, match=r"\(C, H, W\)"):
        receptive_fields(model, (32, 32))
