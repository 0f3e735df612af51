"""The report's sections: each turns one kind of explainer output into manifest ``Section``s.

Every section takes a ``ModelJob`` (``cnnviz.report.context``), stores its pictures through the
cache and fails loudly: an error in an explainer propagates. Only work that does not apply (no
dataset, classes that differ, a layer without kernels) becomes a note the gallery shows.
"""
