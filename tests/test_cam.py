"""Grad-CAM family: equality with pytorch-grad-cam, ViT support, no hook leaks, model left as found."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnviz.explain.cam import GRADIENT_METHODS, METHODS, CamBatch, compute_cams, default_cam_layer, hook_count, token_reshape


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if a.std() < 1e-9 and b.std() < 1e-9:
        return 1.0  # both flat (e.g. all-zero after ReLU): identical maps
    return float(np.corrcoef(a, b)[0, 1])


def _reference(model, x, layer_module, method, targets, reshape=None):
    import pytorch_grad_cam as P
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = {"gradcam": P.GradCAM, "gradcam++": P.GradCAMPlusPlus, "xgradcam": P.XGradCAM, "layercam": P.LayerCAM,
           "hirescam": P.HiResCAM, "gradcam-elementwise": P.GradCAMElementWise}[method]
    cam = cls(model=model, target_layers=[layer_module], reshape_transform=reshape)
    try:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
    finally:
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)


@pytest.fixture
def tiny_vit():
    """A 2-block DeiT-style ViT on 32x32 inputs (patch 8 -> 4x4 tokens + class token), random weights."""
    import timm

    from cnnviz.models import ModelInfo

    torch.manual_seed(0)
    m = timm.create_model("deit_tiny_patch16_224", pretrained=False, num_classes=5, img_size=32, patch_size=8,
                          depth=2, embed_dim=32, num_heads=2).eval()
    info = ModelInfo("timm:deit_tiny", 5, [f"c{i}" for i in range(5)], (3, 32, 32), (0.5,) * 3, (0.5,) * 3)
    return m, info


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_gradient_cams_match_pytorch_grad_cam(tiny_cnn, method):
    model, info = tiny_cnn
    torch.manual_seed(1)
    x = torch.randn(3, 3, 32, 32)
    for layer in ("features.12", "features.8"):
        ours = compute_cams(model, x, layer=layer, method=method, info=info)
        ref = _reference(model, x, model.get_submodule(layer), method, ours.targets)
        for k in range(3):
            assert _corr(ours.maps[k], ref[k]) >= 0.99, (method, layer, k)


def test_contract_shapes_defaults_and_targets(tiny_cnn):
    model, info = tiny_cnn
    x = torch.randn(2, 3, 32, 32)
    r = compute_cams(model, x, info=info)
    assert isinstance(r, CamBatch) and r.method == "gradcam"
    assert r.layer == default_cam_layer(model, info) == "features"
    assert r.maps.shape == (2, 32, 32) and r.maps.dtype == np.float32
    assert r.maps.min() >= 0 and r.maps.max() <= 1
    assert r.probs.shape == (2, 5) and np.allclose(r.probs.sum(1), 1, atol=1e-5)
    assert r.targets == r.probs.argmax(1).tolist()  # None -> top-1 per image
    r2 = compute_cams(model, x, targets=[3, 1], info=info)
    assert r2.targets == [3, 1]
    from cnnviz.errors import TargetError

    with pytest.raises(TargetError):
        compute_cams(model, x, targets=[7, 0], info=info)


def test_model_left_as_found_and_no_hooks(tiny_cnn):
    from cnnviz.errors import LayerError

    model, info = tiny_cnn
    model.train()
    model.classifier[2].weight.requires_grad_(False)  # a partly frozen model must stay so
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 32, 32)
    for method in METHODS:
        compute_cams(model, x, method=method, info=info)
    # failures inside the probe and inside pytorch-grad-cam (a non-spatial layer) leave no hook either
    with pytest.raises(LayerError):
        compute_cams(model, x, layer="classifier", method="gradcam", info=info)
    with pytest.raises(Exception):
        compute_cams(model, x, layer="classifier", method="eigencam", info=info)
    assert hook_count(model) == 0
    assert all(m.training for m in model.modules())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients filled
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running statistics untouched too


def test_vit_layer_reshape_and_all_methods(tiny_vit):
    model, info = tiny_vit
    assert default_cam_layer(model, info) == "blocks.1.norm1"
    x = torch.randn(2, 3, 32, 32)
    reshape = token_reshape(model)
    assert reshape(torch.zeros(2, 17, 32)).shape == (2, 32, 4, 4)  # class token dropped, 4x4 grid
    for method in METHODS:
        r = compute_cams(model, x, method=method, info=info)
        assert r.maps.shape == (2, 32, 32) and np.isfinite(r.maps).all() and r.maps.max() <= 1, method
    ours = compute_cams(model, x, method="gradcam", info=info)
    ref = _reference(model, x, model.blocks[1].norm1, "gradcam", ours.targets, reshape)
    assert min(_corr(ours.maps[k], ref[k]) for k in range(2)) >= 0.99
    assert hook_count(model) == 0


def test_library_prints_do_not_reach_stdout(tiny_cnn, capsys):
    model, info = tiny_cnn
    compute_cams(model, torch.randn(1, 3, 32, 32), method="fullgrad", info=info)  # FullGrad prints a warning
    compute_cams(model, torch.randn(1, 3, 32, 32), method="scorecam", info=info)  # ScoreCAM draws tqdm bars
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def _composite(size: int = 160) -> np.ndarray:
    from cnnviz.images import resize_image, sample_image

    cat = resize_image(sample_image("chelsea"), (size, size))
    cup = resize_image(sample_image("coffee"), (size, size))
    return np.concatenate([cat, cup], axis=1)  # cat | espresso


@pytest.mark.slow
def test_class_discriminative_on_cat_espresso_composite(lite0):
    from cnnviz.images import to_tensor

    model, info = lite0
    img = _composite(128)
    x = to_tensor(img, info.mean, info.std, img.shape[:2])  # (1, 3, 128, 256): the whole composite, reduced size
    probs = compute_cams(model, x, info=info).probs[0]
    cat = 281 + int(np.argmax(probs[281:286]))
    espresso = 967
    # Grad-CAM separates the two clearly; its relatives more softly but still on the right side
    for method, margin in (("gradcam", 0.15), ("gradcam++", 0.0), ("layercam", 0.0)):
        r = compute_cams(model, torch.cat([x, x]), method=method, targets=[cat, espresso], info=info)
        assert r.layer == "bn2"
        w = r.maps.shape[2] // 2
        left = r.maps[:, :, :w].sum((1, 2)) / r.maps.sum((1, 2))
        assert left[0] > 0.5 + margin, (method, "cat map should sit on the left half", left)
        assert left[1] < 0.5 - margin, (method, "espresso map should sit on the right half", left)


@pytest.fixture
def tiny_swin():
    """A 2-stage random Swin on 32x32 inputs: channels-last (B, h, w, C) stage outputs, 8x8 then 4x4."""
    import timm

    from cnnviz.models import ModelInfo

    torch.manual_seed(0)
    m = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=5, img_size=32, patch_size=4,
                          window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2)).eval()
    info = ModelInfo("timm:swin_tiny", 5, [f"c{i}" for i in range(5)], (3, 32, 32), (0.5,) * 3, (0.5,) * 3)
    return m, info


def test_swin_channels_last_layers_are_detected_and_match_pytorch_grad_cam(tiny_swin):
    from cnnviz.explain.activations import activation_maps
    from cnnviz.explain.methods import explain, method_names
    from cnnviz.probe import describe_layers

    model, info = tiny_swin
    layouts = {r.name: r.layout for r in describe_layers(model, info.input_size)}
    assert layouts["patch_embed.proj"] == "NCHW" and layouts["layers.0"] == layouts["norm"] == "NHWC"
    assert default_cam_layer(model, info) == "norm"  # (B, 4, 4, 32), not a "(B, C=4, H=4, W=32)" map
    x = torch.randn(2, 3, 32, 32)
    nhwc_to_nchw = lambda t: t.permute(0, 3, 1, 2)  # noqa: E731  (what pytorch-grad-cam's Swin example does by hand)
    for layer in ("norm", "layers.0"):
        ours = compute_cams(model, x, layer=layer, method="gradcam", info=info)
        ref = _reference(model, x, model.get_submodule(layer), "gradcam", ours.targets, nhwc_to_nchw)
        assert min(_corr(ours.maps[k], ref[k]) for k in range(2)) >= 0.99, layer
    for method in method_names():  # every registered method runs on it, and leaves the model as found
        r = explain(model, x, method, info=info)
        assert r.maps.shape == (2, 32, 32) and np.isfinite(r.maps).all() and r.maps.max() <= 1, method
    assert hook_count(model) == 0 and not any(p.grad is not None for p in model.parameters())
    acts = activation_maps(model, x[:1], "layers.0", top=4)
    assert acts.shape == (16, 8, 8) and acts.maps.shape == (4, 8, 8)  # (C, h, w), not (8, 8, 16)
