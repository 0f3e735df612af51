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


def test_frozen_restores_state_grads_and_removes_leaked_hooks(tiny_cnn):
    from cnnviz.probe import frozen, hook_count

    model, _ = tiny_cnn
    model.train()
    model.features[1].eval()
    model.classifier[2].weight.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    training = {n: m.training for n, m in model.named_modules()}
    old_grad = torch.ones_like(model.features[0].weight)
    model.features[0].weight.grad = old_grad
    own = model.features[0].register_forward_hook(lambda *a: None)  # the caller's own hook must survive
    with pytest.raises(RuntimeError, match="boom"):
        with frozen(model):
            assert not model.training and not any(p.requires_grad for p in model.parameters())
            model.features[3].register_forward_hook(lambda *a: None)  # a library "forgets" these
            model.features[3].register_full_backward_hook(lambda *a: None)
            model.features[0].weight.grad = torch.zeros_like(old_grad)  # and fills .grad
            raise RuntimeError("boom")
    assert hook_count(model) == 1 and len(model.features[0]._forward_hooks) == 1
    own.remove()
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert {n: m.training for n, m in model.named_modules()} == training
    assert model.features[0].weight.grad is old_grad
    assert all(p.grad is None for n, p in model.named_parameters() if n != "features.0.weight")


def test_model_device_for_params_buffers_and_stateless():
    from cnnviz.probe import model_device

    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    bn = nn.BatchNorm2d(3, affine=False)  # buffers only
    assert model_device(bn) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")
    assert model_device(nn.Linear(2, 2).to("meta")) == torch.device("meta")
    assert model_device(nn.BatchNorm2d(3, affine=False).to("meta")) == torch.device("meta")


def test_output_layout_tells_nchw_from_nhwc_and_tokens():
    from cnnviz.probe import output_layout, to_nchw

    assert output_layout((1, 96, 56, 56), (224, 224)) == "NCHW"
    assert output_layout((1, 56, 56, 96), (224, 224)) == "NHWC"
    assert output_layout((1, 7, 7, 768), (224, 224)) == "NHWC"
    assert output_layout((1, 16, 8, 12), (64, 96)) == "NCHW"  # non-square input: the aspect decides
    assert output_layout((1, 8, 12, 16), (64, 96)) == "NHWC"
    assert output_layout((1, 8, 8, 8), (32, 32)) == "NCHW"  # ambiguous: a conv convention ...
    assert output_layout((1, 8, 8, 8), (32, 32), nn.LayerNorm(8)) == "NHWC"  # ... unless a LayerNorm over the last axis
    assert output_layout((1, 197, 384), (224, 224)) == "tokens"
    assert output_layout((1, 1000), (224, 224)) is None
    t = torch.arange(24.0).view(1, 2, 3, 4)
    assert to_nchw(t, "NHWC").shape == (1, 4, 2, 3) and to_nchw(t, "NCHW") is t


def test_check_spatial_layer_refuses_vectors_in_one_line(tiny_cnn):
    from cnnviz.probe import check_spatial_layer

    model, info = tiny_cnn
    assert check_spatial_layer(model, "features.3", info.input_size) == "NCHW"
    for bad in ("classifier", "classifier.2", "avgpool"):
        with pytest.raises(LayerError) as e:
            check_spatial_layer(model, bad, info.input_size)
        assert "\n" not in str(e.value) and bad in str(e.value)


def test_layers_and_probe_do_not_import_each_other():
    import ast
    from pathlib import Path

    import cnnviz.layers

    tree = ast.parse(Path(cnnviz.layers.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "cnnviz.probe" not in imported and not any("probe" in (m or "") for m in imported)


def test_trace_shapes_and_forward_shapes_agree(tiny_cnn):
    from cnnviz.compare.layersel import forward_shapes as from_compare
    from cnnviz.probe import forward_shapes, trace_shapes

    model, info = tiny_cnn
    t = trace_shapes(model, info.input_size)
    assert t.order[0] == "features" or t.order[0].startswith("features")
    assert t.shapes["classifier.2"] == (1, 5) and t.layout("features.0", model) == "NCHW"
    assert forward_shapes(model, info.input_size) == from_compare(model, info.input_size) == (t.order, t.shapes)


def test_frozen_puts_back_a_layer_a_library_swapped_in(tiny_cnn):
    """pytorch-grad-cam's AblationCAM swaps the target layer for its own and, when it fails, never swaps it back."""
    from cnnviz.probe import frozen

    model, _ = tiny_cnn
    conv, weight = model.features[3], model.features[0].weight
    with pytest.raises(RuntimeError):
        with frozen(model):
            model.features[3] = nn.Identity()
            model.features[0].weight = nn.Parameter(torch.zeros(1))
            model.features.add_module("extra", nn.ReLU())
            raise RuntimeError("the library failed")
    assert model.features[3] is conv and model.features[0].weight is weight and not hasattr(model.features, "extra")
