"""Centered kernel alignment (linear kernel): full-data and streaming minibatch estimators.

Linear CKA (Kornblith et al. 2019) compares two representations of the same ``n`` examples,
``X (n, p)`` and ``Y (n, q)`` (any trailing shape is flattened per example)::

    CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)      (Xc, Yc column-centred)

It is 1 for identical representations, invariant to orthogonal maps and isotropic scaling, and
not invariant to general invertible linear maps.

Minibatch CKA (Nguyen et al. 2021, "Do wide and deep networks learn the same things?") streams over
the data: per batch it computes the *unbiased* HSIC estimator (Song et al. 2012) on the batch's Gram
matrices ``K = X X^T``, ``L = Y Y^T`` with their diagonals zeroed (``K - diag(diag(K))``), averages
``HSIC(K, L)``, ``HSIC(K, K)``, ``HSIC(L, L)`` over batches and returns
``mean HSIC(K, L) / sqrt(mean HSIC(K, K) * mean HSIC(L, L))``. Memory is one ``(B, B)`` Gram per
layer per batch, whatever the dataset size.

Efficiency notes (why this is faster than torch-cka): the Gram of each layer is computed once per
batch (not once per layer pair), and every pairwise HSIC is O(B^2) (``tr(K L) = sum(K * L)`` for
symmetric K, L; ``1^T K L 1 = (K 1) . (L 1)``) instead of O(B^3) matrix products -- for a whole
layers x layers matrix it is one ``(La, B^2) @ (B^2, Lb)`` product per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

_GRAM_BLOCK = 8192  # feature columns centred at a time in gram()
_CONSTANT_TOL = 8  # features that vary by at most this many ulps of their magnitude are constant

__all__ = ["linear_cka", "gram", "unbiased_hsic", "MinibatchCKA", "MinibatchCKAMatrix", "MultiModelCKA"]


def _as_2d(x: Any, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``(n, ...)`` array or tensor -> ``(n, d)`` tensor of ``dtype`` (flattened per example, detached)."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim < 1:
        raise ValueError("CKA needs features of shape (n, ...), got a scalar")
    return t.reshape(t.shape[0], -1).to(dtype)


def linear_cka(x: Any, y: Any, *, debiased: bool = False) -> float:
    """Linear CKA between ``x (n, ...)`` and ``y (n, ...)`` (same ``n``; arrays or tensors).

    ``debiased=False`` is Kornblith et al.'s estimator (biased HSIC, the reference formula);
    ``debiased=True`` uses the unbiased HSIC estimator (what ``MinibatchCKA`` averages), which does
    not inflate similarity when features are high-dimensional and ``n`` is small.
    Computed in float64; uses the feature form or the Gram form, whichever is cheaper. NaN when
    either representation is constant over the examples (a dead layer): CKA is 0/0 there, undefined.
    """
    X, Y = _as_2d(x), _as_2d(y)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"CKA needs the same examples in both: got n={X.shape[0]} and n={Y.shape[0]}")
    n = X.shape[0]
    if debiased:
        if n < 4:
            raise ValueError("the unbiased HSIC estimator needs at least 4 examples")
        K, L = gram(X), gram(Y)
        xy, xx, yy = unbiased_hsic(K, L), unbiased_hsic(K, K), unbiased_hsic(L, L)
        den = np.sqrt(max(xx, 0.0) * max(yy, 0.0))
        return float(xy / den) if den > 0 else float("nan")
    X = X - X.mean(0, keepdim=True)
    Y = Y - Y.mean(0, keepdim=True)
    if X.shape[1] + Y.shape[1] <= 2 * n:  # feature form: (p x q) products
        xy = (Y.T @ X).pow(2).sum()
        xx = torch.linalg.matrix_norm(X.T @ X)
        yy = torch.linalg.matrix_norm(Y.T @ Y)
    else:  # Gram form: (n x n) products; identical value since ||Y^T X||_F^2 = <X X^T, Y Y^T>
        K, L = X @ X.T, Y @ Y.T
        xy = (K * L).sum()
        xx, yy = torch.linalg.matrix_norm(K), torch.linalg.matrix_norm(L)
    den = float(xx * yy)
    return float(xy) / den if den > 0 else float("nan")


def gram(x: Any, *, center: bool = True) -> torch.Tensor:
    """``(B, ...)`` features -> ``(B, B)`` float64 linear-kernel Gram matrix with a zero diagonal.

    The batch mean is subtracted first (``center``): the unbiased HSIC estimator is invariant to it,
    and it keeps the float32 product well-conditioned. The diagonal is zeroed as ``K - diag(diag(K))``.
    Features that are constant over the batch (up to rounding) give an all-zero Gram.
    """
    X = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    X = X.reshape(X.shape[0], -1)
    if not X.is_floating_point():
        X = X.float()
    if not center:
        K = X @ X.T
    else:  # centre column blocks one at a time: the temporary is a block, not a copy of the features
        K = torch.zeros(X.shape[0], X.shape[0], dtype=X.dtype, device=X.device)
        spread = scale = 0.0
        for s in range(0, X.shape[1], _GRAM_BLOCK):
            xb = X[:, s : s + _GRAM_BLOCK]
            scale = max(scale, float(xb.abs().max())) if xb.numel() else scale
            xb = xb - xb.mean(0, keepdim=True)
            spread = max(spread, float(xb.abs().max())) if xb.numel() else spread
            K.addmm_(xb, xb.T)
        # Features constant over the batch (a dead layer) centre to rounding noise, not to zero; that
        # noise would make CKA a random number. Zero it, so the layer's self-HSIC is exactly 0 and
        # its CKA reads as undefined (NaN) instead of as a similarity.
        if spread <= _CONSTANT_TOL * torch.finfo(X.dtype).eps * scale:
            K.zero_()
    K = K.to("cpu", torch.float64)  # (B, B): tiny; float64 on CPU (MPS has no float64)
    return K - torch.diag(torch.diag(K))


def _stats(G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row sums ``(..., B)`` and totals ``(...)`` of zero-diagonal Grams ``(..., B, B)``."""
    r = G.sum(-1)
    return r, r.sum(-1)


def _hsic_from_parts(tr: torch.Tensor, ra: torch.Tensor, sa: torch.Tensor, rb: torch.Tensor, sb: torch.Tensor, n: int) -> torch.Tensor:
    """Unbiased HSIC (Song et al. 2012, Eq. 5) for all pairs from ``tr[i, j] = tr(K_i L_j)``.

    ``ra (La, B)``, ``sa (La,)``: row sums / totals of the K's; same for the L's. -> ``(La, Lb)``.
    """
    cross = ra @ rb.T  # 1^T K L 1 = (K 1) . (L 1)
    out = tr + torch.outer(sa, sb) / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)
    return out / (n * (n - 3))


def unbiased_hsic(K: torch.Tensor, L: torch.Tensor) -> float:
    """Unbiased HSIC of two ``(B, B)`` Grams with zero diagonals (B >= 4)."""
    n = K.shape[0]
    ra, sa = _stats(K[None])
    rb, sb = _stats(L[None])
    tr = (K * L).sum().reshape(1, 1)
    return float(_hsic_from_parts(tr, ra, sa, rb, sb, n)[0, 0])


class MinibatchCKA:
    """Streaming CKA between two representations of the same examples (Nguyen et al. 2021).

    Example::

        cka = MinibatchCKA()
        for xa, xb in batches:         # (B, ...) features of model A and model B for one batch
            cka.update(xa, xb)
        value = cka.compute()          # float in [0, 1] (estimator noise can step slightly outside)
    """

    def __init__(self) -> None:
        self._m = MinibatchCKAMatrix(1, 1)

    def update(self, x: Any, y: Any) -> None:
        """Add one batch: ``x (B, ...)`` and ``y (B, ...)`` for the same ``B`` examples (B >= 4)."""
        self._m.update([x], [y])

    def compute(self) -> float:
        return float(self._m.compute()[0, 0])

    @property
    def batches(self) -> int:
        return self._m.batches


class MinibatchCKAMatrix:
    """Streaming layers x layers CKA between two models: ``(n_layers_a, n_layers_b)`` matrix.

    ``update(feats_a, feats_b)`` takes one batch: lists of ``(B, ...)`` features per layer (the same
    ``B`` examples for every entry). Each layer's Gram is formed once per batch; all pairwise HSICs
    are one matrix product. Batches with fewer than 4 examples are skipped (the unbiased estimator
    is undefined there) with a debug log.
    """

    def __init__(self, n_layers_a: int, n_layers_b: int) -> None:
        self.shape = (n_layers_a, n_layers_b)
        self.xy = torch.zeros(n_layers_a, n_layers_b, dtype=torch.float64)
        self.xx = torch.zeros(n_layers_a, dtype=torch.float64)
        self.yy = torch.zeros(n_layers_b, dtype=torch.float64)
        self.batches = 0

    def update(self, feats_a: Sequence[Any], feats_b: Sequence[Any]) -> None:
        if (len(feats_a), len(feats_b)) != self.shape:
            raise ValueError(f"expected {self.shape} feature lists, got ({len(feats_a)}, {len(feats_b)})")
        n = _batch_size([*feats_a, *feats_b])
        if n < 4:
            log.debug("skipping a batch of %d examples (unbiased HSIC needs >= 4)", n)
            return
        Ga = torch.stack([gram(f) for f in feats_a]).reshape(len(feats_a), -1)
        Gb = torch.stack([gram(f) for f in feats_b]).reshape(len(feats_b), -1)
        ra, sa = _stats(Ga.reshape(-1, n, n))
        rb, sb = _stats(Gb.reshape(-1, n, n))
        self.xy += _hsic_from_parts(Ga @ Gb.T, ra, sa, rb, sb, n)
        self.xx += _self_hsic(Ga, ra, sa, n)
        self.yy += _self_hsic(Gb, rb, sb, n)
        self.batches += 1

    def compute(self) -> np.ndarray:
        """The ``(n_layers_a, n_layers_b)`` CKA matrix (float64 numpy); NaN before any update and for a
        layer whose features were constant in every batch (undefined: 0/0)."""
        if self.batches == 0:
            return np.full(self.shape, np.nan)
        return _normalize(self.xy, self.xx, self.yy)


def _normalize(xy: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor) -> np.ndarray:
    """``xy[i, j] / sqrt(xx[i] * yy[j])``; NaN where a self-HSIC is <= 0 (constant features: undefined)."""
    den = torch.outer(torch.sqrt(torch.clamp(xx, min=0)), torch.sqrt(torch.clamp(yy, min=0)))  # no underflow
    out = torch.full_like(xy, float("nan"))
    ok = den > 0
    out[ok] = xy[ok] / den[ok]
    return out.numpy()


def _self_hsic(G: torch.Tensor, r: torch.Tensor, s: torch.Tensor, n: int) -> torch.Tensor:
    """Unbiased HSIC(K_i, K_i) for each row of flattened Grams ``G (L, B*B)`` -> ``(L,)``."""
    tr = (G * G).sum(1)
    cross = (r * r).sum(1)
    return (tr + s * s / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3))


def _batch_size(feats: Sequence[Any]) -> int:
    sizes = {int(f.shape[0]) for f in feats}
    if len(sizes) != 1:
        raise ValueError(f"every feature in a batch needs the same number of examples, got {sorted(sizes)}")
    return sizes.pop()


class MultiModelCKA:
    """Streaming CKA among every layer of several models at once (model pairs and each model vs itself).

    ``sizes[m]`` = number of layers of model m. ``update([feats_model0, feats_model1, ...])`` with one
    list of ``(B, ...)`` features per model for the same batch. ``block(a, b)`` -> the
    ``(sizes[a], sizes[b])`` CKA matrix. All Grams of a batch go into one ``(L, B^2)`` matrix and one
    symmetric product gives every pairwise HSIC.
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = list(sizes)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        total = int(self.offsets[-1])
        self.hsic = torch.zeros(total, total, dtype=torch.float64)
        self.batches = 0

    def update(self, feats: Sequence[Sequence[Any]]) -> None:
        """One batch: ``feats[m]`` = model m's list of ``(B, ...)`` features (same B examples everywhere)."""
        if [len(f) for f in feats] != self.sizes:
            raise ValueError(f"expected feature lists of lengths {self.sizes}, got {[len(f) for f in feats]}")
        self.update_grams([gram(f) for fs in feats for f in fs])

    def update_grams(self, grams: Sequence[torch.Tensor]) -> None:
        """One batch given as zero-diagonal Grams (``gram(features)``), all layers of all models in order.

        Lets a caller turn each model's features into ``(B, B)`` Grams right after its forward pass and
        free the activations before the next model runs (peak memory = one model's features).
        """
        if len(grams) != int(self.offsets[-1]):
            raise ValueError(f"expected {int(self.offsets[-1])} Gram matrices, got {len(grams)}")
        n = int(grams[0].shape[0])
        if n < 4:
            log.debug("skipping a batch of %d examples (unbiased HSIC needs >= 4)", n)
            return
        G = torch.stack([g.to("cpu", torch.float64) for g in grams]).reshape(len(grams), -1)
        r, s = _stats(G.reshape(-1, n, n))
        self.hsic += _hsic_from_parts(G @ G.T, r, s, r, s, n)
        self.batches += 1

    def block(self, a: int, b: int) -> np.ndarray:
        """CKA matrix between model ``a``'s layers (rows) and model ``b``'s layers (columns); NaN in the
        rows/columns of ``undefined`` layers."""
        if self.batches == 0:
            return np.full((self.sizes[a], self.sizes[b]), np.nan)
        d = self.hsic.diagonal()
        ia = slice(self.offsets[a], self.offsets[a + 1])
        ib = slice(self.offsets[b], self.offsets[b + 1])
        return _normalize(self.hsic[ia, ib], d[ia], d[ib])

    def undefined(self, m: int) -> list[int]:
        """Positions (in model ``m``'s layer list) of layers whose CKA is undefined: features constant
        over every batch (a dead layer or model), so their self-HSIC is 0."""
        d = self.hsic.diagonal()[self.offsets[m] : self.offsets[m + 1]]
        return [int(i) for i in torch.nonzero(d <= 0).flatten()] if self.batches else list(range(self.sizes[m]))
