"""LayerProbe: captures, gradients at the cost floor, and nothing left behind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnviz.errors import LayerError
from cnnviz.probe import LayerProbe


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_no_hook_survives_success_or_exception(tiny_cnn):
    model, _ = tiny_cnn
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    with LayerProbe(model, ["features.0", "features.3"]) as probe:
        assert _hook_count(model) == 2 and probe.active
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        probe.run(torch.randn(2, 3, 32, 32))
    assert _hook_count(model) == 0 and model.training
    assert [p.requires_grad for p in model.parameters()] == flags

    model.features[1].eval()  # a mixed state must come back exactly
    with pytest.raises(RuntimeError, match="boom"):
        with LayerProbe(model, ["features.0"], grad=True):
            raise RuntimeError("boom")
    assert _hook_count(model) == 0 and model.training and not model.features[1].training
    assert [p.requires_grad for p in model.parameters()] == flags


def test_unknown_layer_lists_close_names(tiny_cnn):
    model, _ = tiny_cnn
    with pytest.raises(LayerError, match="features.3"):
        LayerProbe(model, ["features.33"])
    assert _hook_count(model) == 0


def test_captures_match_a_manual_forward(tiny_cnn):
    model, _ = tiny_cnn
    x = torch.randn(3, 3, 32, 32)
    with LayerProbe(model, ["features.3"]) as probe:
        out = probe.run(x)
        act = probe.activations["features.3"]
    with torch.no_grad():
        ref = model.features[:4](x)
        torch.testing.assert_close(act, ref)
        torch.testing.assert_close(out, model(x))


def test_stop_after_skips_the_rest(tiny_cnn):
    model, _ = tiny_cnn
    calls = []
    h = model.classifier.register_forward_hook(lambda *a: calls.append(1))
    try:
        with LayerProbe(model, ["features.0"], stop_after=True) as probe:
            assert probe.run(torch.randn(1, 3, 32, 32)) is None
            assert probe.activations["features.0"].shape == (1, 4, 32, 32)
    finally:
        h.remove()
    assert calls == []


def test_gradients_equal_autograd_and_leave_no_param_grads(tiny_cnn):
    model, _ = tiny_cnn
    x = torch.randn(2, 3, 32, 32)
    with LayerProbe(model, ["features.3"], grad=True) as probe:
        logits = probe.run(x)
        g = probe.gradients(logits[:, 1].sum())["features.3"]
    assert all(p.grad is None for p in model.parameters())
    # reference: plain autograd with a leaf at the same place
    model.eval()
    with torch.no_grad():
        a = model.features[:4](x)
    a.requires_grad_(True)
    out = model.classifier(model.avgpool(model.features[4:](a)))
    (ref,) = torch.autograd.grad(out[:, 1].sum(), a)
    torch.testing.assert_close(g, ref)


def test_inplace_op_downstream_does_not_corrupt_capture():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(2 * 8 * 8, 1))
    torch.manual_seed(0)
    x = torch.randn(1, 1, 8, 8)
    for grad in (False, True):
        with LayerProbe(net, ["0"], grad=grad) as probe:
            out = probe.run(x)
            act = probe.activations["0"]
            assert (act < 0).any()  # the conv's own output, not the ReLU-ed one
            if grad:
                g = probe.gradients(out.sum())["0"]
                assert g.shape == act.shape and (g[act < 0] == 0).all()
