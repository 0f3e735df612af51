"""The static-site builder: a manifest (JSON) + PNGs -> a self-contained HTML gallery.

Never imports torch: it reads only what ``cnnviz.report`` (or anyone) wrote. The manifest's schema
is ``cnnviz.gallery.manifest``; the builder is ``cnnviz.gallery.build``.
"""

from cnnviz.gallery.build import build_site, load_manifest
from cnnviz.gallery.manifest import GalleryError, Manifest, read_manifest, write_manifest

__all__ = ["GalleryError", "Manifest", "build_site", "load_manifest", "read_manifest", "write_manifest"]
