"""The static-site builder: a manifest (JSON) + PNGs -> a self-contained HTML gallery.

Never imports torch: it reads only what ``cnnviz.report`` (or anyone) wrote. See ``build.py``.
"""

from cnnviz.gallery.build import build_site, load_manifest

__all__ = ["build_site", "load_manifest"]
