"""cnnviz: see what convolutional networks learn.

The library computes; the CLI (``cnnviz.cli``) renders and saves; the gallery (``cnnviz.gallery``)
publishes. Heavy dependencies (torch, timm, ...) are imported by the submodules that need them, so
``import cnnviz`` stays cheap.
"""

__version__ = "0.1.0"

from cnnviz.errors import CnnvizError  # noqa: E402  (light, no torch)

__all__ = ["CnnvizError", "__version__"]
