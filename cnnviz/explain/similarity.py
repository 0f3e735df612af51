"""How alike two saliency maps are: the measures of Adebayo et al. 2018 ("Sanity Checks for Saliency Maps").

* **Spearman rank correlation** of the two maps' pixel values (the paper's main measure): the Pearson
  correlation of their ranks, ties averaged -- ``scipy.stats.spearmanr`` on the flattened maps, computed
  here from ``scipy.stats.rankdata`` so a batch costs one ranking per map. On the absolute-value maps
  (what cnnviz displays) and, for signed attributions, on the signed maps ("without absolute values").
* **SSIM** (scikit-image's ``structural_similarity``) of the two ``[0, 1]`` maps.
* **HOG similarity**: Pearson correlation of the maps' histograms of oriented gradients
  (``skimage.feature.hog``), which compares edge structure rather than pixel ranks.

A constant map (Grad-CAM of a random network is often zero everywhere: ReLU of a negative sum) has no
ranking, so its correlation is undefined (NaN in scipy). cnnviz scores it 0 against a non-constant map
("it shares no ranking with it") and 1 against an identical map, so means over images stay numbers;
callers count such maps separately (``is_constant``) and report the count.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def is_constant(m: np.ndarray) -> bool:
    """True when every value of ``m`` is the same (to 1e-12 of its scale): no ranking, no structure."""
    a = np.asarray(m, dtype=np.float64)
    return a.size == 0 or float(a.max() - a.min()) <= _EPS * max(1.0, float(np.abs(a).max()))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def _degenerate(a: np.ndarray, b: np.ndarray) -> float | None:
    """The agreed score when either map is constant (1 if both are the same map, else 0); None otherwise."""
    ca, cb = is_constant(a), is_constant(b)
    if not (ca or cb):
        return None
    return 1.0 if ca and cb and np.allclose(a, b) else 0.0


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps of the same shape (any shape; ties get average ranks)."""
    from scipy.stats import rankdata

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps differ in size: {a.size} vs {b.size} values")
    d = _degenerate(a, b)
    return d if d is not None else _pearson(rankdata(a), rankdata(b))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """SSIM of two ``(H, W)`` maps (scikit-image; 7x7 window, smaller on tiny maps)."""
    from skimage.metrics import structural_similarity

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"ssim needs two (H, W) maps of one shape, got {a.shape} and {b.shape}")
    side = min(a.shape)
    if side < 3:
        return 1.0 if np.allclose(a, b) else 0.0
    win = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(a, b, data_range=data_range, win_size=win))


def hog_features(m: np.ndarray) -> np.ndarray:
    """HOG descriptor of a ``(H, W)`` map: 9 orientations, cells of about 1/14 of the side, 2x2 blocks."""
    from skimage.feature import hog

    m = np.asarray(m, dtype=np.float64)
    cell = max(2, min(m.shape) // 14)
    blocks = 2 if min(m.shape) >= 2 * cell else 1
    return hog(m, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(blocks, blocks), feature_vector=True)


def hog_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the two maps' HOG descriptors (the paper's third measure)."""
    fa, fb = hog_features(a), hog_features(b)
    d = _degenerate(fa, fb)
    return d if d is not None else _pearson(fa, fb)


def compare_maps(ref: np.ndarray, maps: np.ndarray, *, ref_signed: np.ndarray | None = None,
                 signed: np.ndarray | None = None, with_hog: bool = False) -> dict[str, np.ndarray | None]:
    """Every measure for a batch: ``ref`` and ``maps`` ``(N, H, W)`` in [0, 1] (absolute-value maps),
    optional signed maps ``(N, H, W)``. Returns ``(N,)`` float arrays under ``spearman``, ``ssim``,
    ``spearman_signed`` and ``hog`` (None where not computed) and a boolean ``constant`` ``(N,)``
    (the new map has no ranking)."""
    ref, maps = np.asarray(ref), np.asarray(maps)
    if ref.shape != maps.shape or ref.ndim != 3:
        raise ValueError(f"compare_maps needs two (N, H, W) batches of one shape, got {ref.shape} and {maps.shape}")
    n = ref.shape[0]
    out: dict[str, np.ndarray | None] = {
        "spearman": np.array([spearman(ref[i], maps[i]) for i in range(n)], np.float64),
        "ssim": np.array([ssim(ref[i], maps[i]) for i in range(n)], np.float64),
        "spearman_signed": None,
        "hog": None,
        "constant": np.array([is_constant(maps[i]) for i in range(n)], bool),
    }
    if ref_signed is not None and signed is not None:
        out["spearman_signed"] = np.array([spearman(ref_signed[i], signed[i]) for i in range(n)], np.float64)
    if with_hog:
        out["hog"] = np.array([hog_similarity(ref[i], maps[i]) for i in range(n)], np.float64)
    return out
