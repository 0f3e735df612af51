"""Compare what networks learned: CKA, filter drift, attention agreement, per-class differences.

``linear_cka`` / ``MinibatchCKA`` / ``MinibatchCKAMatrix`` are the similarity measures;
``compare_models`` runs all comparisons over a dataset in one pass and returns a ``Comparison``
(``to_json()``, ``write_figures(dir)``).
"""

from cnnviz.compare.cka import MinibatchCKA, MinibatchCKAMatrix, MultiModelCKA, linear_cka
from cnnviz.compare.core import Comparison, compare_models

__all__ = ["linear_cka", "MinibatchCKA", "MinibatchCKAMatrix", "MultiModelCKA", "compare_models", "Comparison"]
