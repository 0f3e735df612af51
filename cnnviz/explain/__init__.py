"""Explainers: each returns numpy arrays and small dataclasses; nothing here writes files.

This package is also callable: ``cnnviz.explain(model, inputs, method="gradcam", *, info=None,
layer=None, target=None, size=None, **options)`` is ``cnnviz.explain.methods.explain`` -- any
registered method (``cnnviz.list_methods()``) -> an ``Explanation`` (``maps`` ``(B, H, W)`` in
[0, 1], ``targets``, ``probs``, ``method``, ``layer``, ``raw``). See ``cnnviz.explain.methods``.

Why callable: ``cnnviz.explain`` must be both the notebook's function and this package. Once
any ``cnnviz.explain.<module>`` is imported, Python binds the name ``cnnviz.explain`` to the
package, which would hide a plain function of the same name; a callable package keeps both.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    """The ``cnnviz.explain`` package, callable as ``cnnviz.explain.methods.explain``."""

    def __call__(self, model, inputs, method="gradcam", **kwargs):  # noqa: ANN001, ANN204
        from cnnviz.explain.methods import explain

        return explain(model, inputs, method, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
