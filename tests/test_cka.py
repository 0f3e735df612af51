"""CKA: the properties the papers state, the reference formula, and the streaming estimators."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnviz.compare import MinibatchCKA, MinibatchCKAMatrix, MultiModelCKA, linear_cka
from cnnviz.compare.cka import gram, unbiased_hsic


def _data(n: int = 400, p: int = 12, q: int = 9, noise: float = 0.7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    y = np.tanh(x @ rng.normal(size=(p, q))) + noise * rng.normal(size=(n, q))
    return x, y


def _reference(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. Eq. (feature form) on column-centred data, written out independently."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_self_similarity_is_one_and_symmetric():
    x, y = _data()
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)
    assert 0.05 < linear_cka(x, y) < 0.95  # related but different representations


def test_matches_reference_formula_in_both_forms():
    x, y = _data(n=50, p=8, q=5)
    assert linear_cka(x, y) == pytest.approx(_reference(x, y), rel=1e-10)
    # wide features (p + q > 2n) take the Gram path: same value
    rng = np.random.default_rng(1)
    xw, yw = rng.normal(size=(30, 200)), rng.normal(size=(30, 150))
    yw[:, :100] += xw[:, :100]
    assert linear_cka(xw, yw) == pytest.approx(_reference(xw, yw), rel=1e-10)


def test_invariant_to_orthogonal_maps_and_isotropic_scaling():
    x, y = _data()
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(y.shape[1], y.shape[1])))
    base = linear_cka(x, y)
    assert linear_cka(x, y @ q) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x * 7.5, y * 0.01) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x + 3.0, y - 10.0) == pytest.approx(base, abs=1e-10)  # centring


def test_not_invariant_to_general_invertible_map():
    x, y = _data()
    a = np.diag(np.geomspace(1, 100, y.shape[1]))  # invertible, not orthogonal up to scale
    assert abs(linear_cka(x, y @ a) - linear_cka(x, y)) > 0.02


def test_tensors_and_trailing_dims_are_flattened():
    t = torch.randn(40, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    u = t.flatten(1) @ torch.randn(48, 48, generator=torch.Generator().manual_seed(1))
    assert linear_cka(t, u) == pytest.approx(linear_cka(t.numpy().reshape(40, -1), u.numpy()), abs=1e-10)
    with pytest.raises(ValueError):
        linear_cka(np.zeros((5, 2)), np.zeros((6, 2)))


def test_gram_zeroes_only_the_diagonal():
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    g = gram(x, center=False)
    full = (x @ x.T).double()
    assert torch.all(g.diagonal() == 0)
    off = ~torch.eye(6, dtype=torch.bool)
    assert torch.allclose(g[off], full[off])  # K - diag(K) would have wiped rows, not just the diagonal


def test_unbiased_hsic_matches_song_et_al_formula_and_ignores_feature_means():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(20, 4)), rng.normal(size=(20, 3))
    y[:, 0] += x[:, 0]
    n = 20
    k, l = x @ x.T, y @ y.T
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    ref = (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))
    ours = unbiased_hsic(gram(torch.as_tensor(x), center=False), gram(torch.as_tensor(y), center=False))
    assert ours == pytest.approx(ref, rel=1e-10)
    shifted = unbiased_hsic(gram(torch.as_tensor(x + 5), center=False), gram(torch.as_tensor(y - 2), center=False))
    assert shifted == pytest.approx(ref, rel=1e-8)


def test_minibatch_close_to_full_data_value():
    x, y = _data(n=2048, p=10, q=8, noise=0.5)
    full = linear_cka(x, y)
    cka = MinibatchCKA()
    for i in range(0, 2048, 128):
        cka.update(torch.as_tensor(x[i : i + 128]), torch.as_tensor(y[i : i + 128]))
    assert cka.batches == 16
    assert cka.compute() == pytest.approx(full, abs=0.03)
    # one batch = the debiased full-data estimator exactly
    one = MinibatchCKA()
    one.update(x[:256], y[:256])
    assert one.compute() == pytest.approx(linear_cka(x[:256], y[:256], debiased=True), rel=1e-9)


def test_minibatch_debiasing_removes_high_dimensional_inflation():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(256, 2000)), rng.normal(size=(256, 2000))  # independent
    assert linear_cka(x, y) > 0.4  # the biased estimator sees similarity in noise
    cka = MinibatchCKA()
    for i in range(0, 256, 64):
        cka.update(x[i : i + 64], y[i : i + 64])
    assert abs(cka.compute()) < 0.1


def test_matrix_and_multi_model_accumulators_agree_with_single_pairs():
    g = torch.Generator().manual_seed(5)
    a = [torch.randn(128, 6, generator=g), torch.randn(128, 2, 3, 3, generator=g)]
    b = [a[0] @ torch.randn(6, 4, generator=g) + 0.3 * torch.randn(128, 4, generator=g), torch.randn(128, 5, generator=g)]
    mat, multi = MinibatchCKAMatrix(2, 2), MultiModelCKA([2, 2])
    singles = {(i, j): MinibatchCKA() for i in range(2) for j in range(2)}
    for s in range(0, 128, 32):
        fa, fb = [f[s : s + 32] for f in a], [f[s : s + 32] for f in b]
        mat.update(fa, fb)
        multi.update([fa, fb])
        for (i, j), c in singles.items():
            c.update(fa[i], fb[j])
    m = mat.compute()
    assert m.shape == (2, 2)
    for (i, j), c in singles.items():
        assert m[i, j] == pytest.approx(c.compute(), abs=1e-10)
    assert np.allclose(multi.block(0, 1), m, atol=1e-10)
    assert np.allclose(np.diag(multi.block(0, 0)), 1.0)
    assert m[0, 0] > 0.5 > abs(m[1, 1])


def test_small_batches_are_skipped_not_fatal():
    cka = MinibatchCKA()
    cka.update(np.ones((3, 2)), np.ones((3, 2)))
    assert cka.batches == 0 and np.isnan(cka.compute())


def test_constant_features_make_cka_undefined_not_a_number():
    """A dead layer (features constant over the images) has no CKA: 0/0. It used to read as 0.0
    (biased), as a rounding-noise value or NaN-in-JSON (streaming); now NaN, listed as undefined."""
    g = torch.Generator().manual_seed(0)
    live = torch.randn(64, 10, generator=g)
    dead = torch.full((64, 10), 3.7)  # constant, non-zero: centring leaves only rounding noise
    assert np.isnan(linear_cka(live, dead)) and np.isnan(linear_cka(dead, dead))
    assert np.isnan(linear_cka(live.numpy(), dead.numpy(), debiased=True))
    assert torch.count_nonzero(gram(dead)) == 0 and torch.count_nonzero(gram(dead.float() * 1e-3 + 5.0)) == 0
    assert torch.count_nonzero(gram(live)) > 0
    multi = MultiModelCKA([2, 1])
    for s in range(0, 64, 16):
        multi.update([[live[s : s + 16], dead[s : s + 16]], [live[s : s + 16] * 2.0]])
    own = multi.block(0, 0)
    assert own[0, 0] == pytest.approx(1.0) and np.isnan(own[1]).all() and np.isnan(own[:, 1]).all()
    assert multi.block(0, 1)[0, 0] == pytest.approx(1.0) and np.isnan(multi.block(0, 1)[1, 0])
    assert multi.undefined(0) == [1] and multi.undefined(1) == []
    mat = MinibatchCKAMatrix(1, 1)
    mat.update([live[:16]], [dead[:16]])
    assert np.isnan(mat.compute()).all()
    # tiny but real variation is not "constant"
    assert np.isfinite(linear_cka(live, 1e-20 * live))
