"""captum attributions: every method runs, the caller's model is untouched, no hook survives,
ReLU6 is handled exactly (DeepLift completeness), IG/SmoothGrad/occlusion batching is equivalent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.explain.attribute import ATTRIBUTION_METHODS, Attributor, compute_attributions, working_copy
from cnnviz.explain.cam import hook_count


class Relu6Net(nn.Module):
    """A timm-like little CNN with in-place ReLU6 (what EfficientNet-Lite uses)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU6(inplace=True),
                                      nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU6(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.fixture
def relu6_net():
    torch.manual_seed(0)
    m = Relu6Net().eval()
    with torch.no_grad():  # scale weights up so some activations pass 6 and the upper clamp matters
        m.features[0].weight.mul_(8)
    return m


def test_working_copy_is_same_function_and_original_untouched(relu6_net):
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        pre = relu6_net.features[0](x)
    assert (relu6_net.features[2](pre.clone()) >= 6).any()  # the clamp is exercised
    c = working_copy(relu6_net)
    with torch.no_grad():
        assert torch.allclose(c(x), relu6_net(x), atol=1e-5)
    assert isinstance(relu6_net.features[2], nn.ReLU6) and relu6_net.features[2].inplace  # caller's model unchanged
    assert not any(isinstance(m, nn.ReLU6) for m in c.modules())
    assert all(p.requires_grad for p in relu6_net.parameters())


def test_deeplift_completeness_through_relu6(relu6_net):
    """DeepLift's rescale rule sums to f(x) - f(baseline) only if every nonlinearity is one it knows:
    with ReLU6 split into two ReLUs the gap is tiny."""
    import captum.attr as ca

    x = torch.randn(2, 3, 16, 16)
    c = working_copy(relu6_net)
    base = torch.zeros_like(x)
    att, delta = ca.DeepLift(c).attribute(x, baselines=base, target=[1, 2], return_convergence_delta=True)
    with torch.no_grad():
        gap = (c(x) - c(base))[[0, 1], [1, 2]]
    assert torch.allclose(att.sum((1, 2, 3)), gap, atol=1e-3 * (1 + gap.abs().max()))
    assert hook_count(c) == 0


@pytest.mark.parametrize("method", ATTRIBUTION_METHODS)
def test_every_method_runs_without_leaks(tiny_cnn, method):
    model, info = tiny_cnn
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 32, 32)
    att = Attributor(model, method, info=info, n_steps=8, nt_samples=4)
    r = att(x, targets=[1, 3])
    assert r.maps.shape == (2, 32, 32) and r.maps.dtype == np.float32
    assert r.raw.shape == (2, 3, 32, 32) and np.isfinite(r.raw).all()
    assert 0 <= r.maps.min() and r.maps.max() <= 1 and r.maps.max() > 0
    assert r.targets == [1, 3] and r.probs.shape == (2, 5)
    assert hook_count(att.model) == 0 and hook_count(model) == 0  # captum's hooks (guided/DeepLift) are gone
    assert all(m.training for m in model.modules()) and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_internal_batching_does_not_change_results(tiny_cnn):
    model, info = tiny_cnn
    x = torch.randn(2, 3, 32, 32)
    a = compute_attributions(model, x, method="integrated-gradients", info=info, n_steps=12, internal_batch_size=4)
    b = compute_attributions(model, x, method="integrated-gradients", info=info, n_steps=12, internal_batch_size=24)
    assert np.allclose(a.raw, b.raw, atol=1e-5)
    a = compute_attributions(model, x, method="occlusion", info=info, window=8, perturbations_per_eval=1)
    b = compute_attributions(model, x, method="occlusion", info=info, window=8, perturbations_per_eval=50)
    assert np.allclose(a.raw, b.raw, atol=1e-5)
    state = torch.random.get_rng_state()
    s1 = compute_attributions(model, x, method="smoothgrad", info=info, nt_samples=6, seed=3)
    s2 = compute_attributions(model, x, method="smoothgrad", info=info, nt_samples=6, seed=3)
    s3 = compute_attributions(model, x, method="smoothgrad", info=info, nt_samples=6, seed=4)
    assert np.array_equal(s1.raw, s2.raw) and not np.allclose(s1.raw, s3.raw)  # seeded
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left as found


def test_unknown_method_is_a_user_error(tiny_cnn):
    from cnnviz.errors import CnnvizError

    with pytest.raises(CnnvizError, match="saliency"):
        Attributor(tiny_cnn[0], "salency")
