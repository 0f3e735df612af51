"""Deletion/insertion and ROAD reward the map that points at what the model actually uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.explain.faithfulness import deletion_insertion, rank_methods, road


class LeftHalfNet(nn.Module):
    """Class 0's logit grows with the texture energy of the left half only; class 1 is a constant.
    Blacking out, blurring or imputing (smooth) the left half's checkerboard lowers it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.shape[-1] // 2
        energy = (x[:, :, :, :w] ** 2).mean((1, 2, 3))
        return torch.stack([6 * energy - 3, torch.zeros_like(energy)], 1)


def _checker(b: int = 1, n: int = 16) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    return (((yy + xx) % 2) * 2 - 1).float().expand(b, 3, n, n).contiguous()


def _maps(h: int = 16, w: int = 16) -> tuple[np.ndarray, np.ndarray]:
    good = np.zeros((1, h, w), np.float32)
    good[:, :, : w // 2] = 1.0
    good += np.linspace(0, 0.1, w, dtype=np.float32)[None, None, ::-1]
    return good, good[:, :, ::-1].copy()


def test_deletion_and_insertion_prefer_the_true_map():
    model = LeftHalfNet()
    x = _checker()  # deletion turns pixels to 0 (black), insertion starts from a blur (~0)
    good, bad = _maps()
    g = deletion_insertion(model, x, good, [0], steps=8, patch=1)
    b = deletion_insertion(model, x, bad, [0], steps=8, patch=1)
    assert g.deletion_auc[0] < b.deletion_auc[0]
    assert g.insertion_auc[0] > b.insertion_auc[0]
    assert g.deletion_curve.shape == (1, 9)
    assert np.isclose(g.deletion_curve[0, 0], b.deletion_curve[0, 0])  # same start: the unperturbed image
    rows = rank_methods([{"method": "bad", "deletion_auc": float(b.deletion_auc[0]), "insertion_auc": float(b.insertion_auc[0]), "road": None},
                         {"method": "good", "deletion_auc": float(g.deletion_auc[0]), "insertion_auc": float(g.insertion_auc[0]), "road": None}])
    assert [r["method"] for r in rows] == ["good", "bad"] and rows[0]["rank"] == 1


def test_road_prefers_the_true_map():
    model = LeftHalfNet()
    x = _checker(2)
    good, bad = _maps()
    for scale in (1, 2):  # the library's exact imputer and cnnviz's coarse-grid one agree on the order
        rg = road(model, x, np.repeat(good, 2, 0), [0, 0], percentiles=(30, 70), scale=scale)
        rb = road(model, x, np.repeat(bad, 2, 0), [0, 0], percentiles=(30, 70), scale=scale)
        assert rg.shape == (2,) and np.all(rg > rb) and np.all(rg > 0), scale


def test_shape_mismatch_is_a_clear_error():
    from cnnviz.errors import CnnvizError

    with pytest.raises(CnnvizError, match="maps must be"):
        deletion_insertion(LeftHalfNet(), torch.ones(1, 3, 16, 16), np.zeros((1, 8, 8), np.float32), [0])


def test_evaluate_methods_on_tiny_cnn(tiny_cnn):
    from cnnviz.explain.faithfulness import evaluate_methods

    model, info = tiny_cnn
    res = evaluate_methods(model, torch.randn(1, 3, 32, 32), ["gradcam", "saliency", "random"], info=info, steps=6,
                           road_percentiles=(50,))
    assert [r.method for r in res] == ["gradcam", "saliency", "random"]
    for r in res:
        s = r.summary()
        assert 0 <= s["deletion_auc"] <= 1 and 0 <= s["insertion_auc"] <= 1 and np.isfinite(s["road"])
