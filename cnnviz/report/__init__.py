"""The report: run the explainers over models x images x layers, cache the results, write the manifest.

    cnnviz.report.config        ReportConfig, ModelSource, ImageRef
    cnnviz.report.orchestrator  Report (check, then run -> manifest path)
    cnnviz.report.sections      one module per section (card, filters, activations, maximize,
                                receptive, examples, per_image, comparison)
    cnnviz.report.plan          checks before work; the layers each model shows
    cnnviz.report.explainers    the one door to the per-image explainers
    cnnviz.report.inputs        images from --images / a dataset's test split
    cnnviz.report.job           build_gallery: checks, report, site (what `cnnviz gallery` runs)
    cnnviz.report.demo          the demo's recipe, run reuse and flow (what `cnnviz demo` runs)

The cache is ``cnnviz.cache``; the manifest's schema ``cnnviz.gallery.manifest``.
"""

from cnnviz.cache import Stats
from cnnviz.report.config import ImageRef, ModelSource, ReportConfig
from cnnviz.report.orchestrator import Report

__all__ = ["ImageRef", "ModelSource", "Report", "ReportConfig", "Stats"]
