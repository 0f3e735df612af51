"""The static-site builder on synthetic manifests (no models): escaping, atomicity, thumbnails, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from gallery_synth import HOSTILE, make_manifest


def _build(tmp_path: Path, **kw) -> Path:
    from cnnviz.gallery import build_site

    m = make_manifest(tmp_path / "src", **kw)
    return build_site(m, tmp_path / "site")


def test_pages_written_and_links_resolve(tmp_path):
    index = _build(tmp_path, n_models=2, n_images=3)
    site = index.parent
    names = sorted(p.name for p in site.glob("*.html"))
    assert names == sorted(["index.html", "compare.html", "model-m0.html", "model-m1.html",
                            "image-img0.html", "image-img1.html", "image-img2.html"])
    import re

    for page in site.glob("*.html"):
        html = page.read_text()
        for ref in re.findall(r'(?:src|href)="([^"#]+)"', html):
            if ref.startswith(("data:", "http")):
                continue
            assert (site / ref).exists(), f"{page.name} links to missing {ref}"
        assert "http://" not in html and "https://" not in html  # no CDN, works offline


def test_hostile_names_are_escaped(tmp_path):
    site = _build(tmp_path).parent
    for page in site.glob("*.html"):
        html = page.read_text()
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "<b>bold</b>" not in html and "<em>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (site / "index.html").read_text()


def test_thumbnails_are_small_and_originals_kept(tmp_path):
    site = _build(tmp_path, big=True).parent
    thumbs = list((site / "thumbs").glob("*.png"))
    assert thumbs, "big pictures should get thumbnails"
    for t in thumbs:
        with Image.open(t) as im:
            assert max(im.size) <= 256
    html = (site / "model-m0.html").read_text()
    assert "thumbs/" in html and "assets/" in html  # grid shows the thumb, links the full picture


def test_failed_build_leaves_previous_site(tmp_path):
    from cnnviz.gallery import build_site
    from cnnviz.gallery.build import GalleryError

    m = make_manifest(tmp_path / "src")
    out = tmp_path / "site"
    build_site(m, out)
    before = (out / "index.html").read_text()
    data = json.loads(m.read_text())
    data["images"][0]["src"] = "files/missing.png"
    m.write_text(json.dumps(data))
    with pytest.raises(GalleryError, match="missing.png"):
        build_site(m, out)
    assert (out / "index.html").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")], "temp folders left behind"


def test_refuses_to_replace_a_folder_that_is_not_a_gallery(tmp_path):
    from cnnviz.atomic import OutputFolderError
    from cnnviz.gallery import build_site

    m = make_manifest(tmp_path / "src")
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    with pytest.raises(OutputFolderError, match="did not write"):
        build_site(m, precious)
    assert [p.name for p in precious.iterdir()] == ["thesis.tex"]


def test_bad_manifests_raise_clear_errors(tmp_path):
    from cnnviz.gallery import build_site
    from cnnviz.gallery.build import GalleryError

    bad = tmp_path / "m.json"
    bad.write_text("{not json")
    with pytest.raises(GalleryError, match="not valid JSON"):
        build_site(bad, tmp_path / "a")
    bad.write_text(json.dumps({"version": 1, "models": []}))
    with pytest.raises(GalleryError, match="no models"):
        build_site(bad, tmp_path / "b")


def test_minimal_manifest_renders(tmp_path):
    """Only a model name: every optional key missing must still render (no StrictUndefined errors)."""
    from cnnviz.gallery import build_site

    m = tmp_path / "m.json"
    m.write_text(json.dumps({"models": [{"name": "solo"}], "images": [{"name": "x", "results": []}]}))
    index = build_site(m, tmp_path / "site")
    assert "solo" in index.read_text()
    assert (index.parent / "image-img0.html").exists()


def test_ids_are_sanitized(tmp_path):
    from cnnviz.gallery import build_site

    m = tmp_path / "m.json"
    m.write_text(json.dumps({"models": [{"id": "../../etc/passwd", "name": "a"}, {"id": "../../etc/passwd", "name": "b"}]}))
    site = build_site(m, tmp_path / "site").parent
    pages = sorted(p.name for p in site.glob("model-*.html"))
    assert len(pages) == 2 and all("/" not in p and ".." not in p for p in pages)


def test_gallery_never_imports_torch():
    """Building a site needs neither torch nor numpy: the manifest schema is plain dataclasses."""
    code = ("import sys, tempfile, pathlib; import cnnviz.gallery, cnnviz.gallery.build, cnnviz.gallery.manifest; "
            "from cnnviz.gallery import build_site, Manifest; from cnnviz.gallery.manifest import ModelEntry; "
            "build_site(Manifest(models=[ModelEntry(name='m')]), pathlib.Path(tempfile.mkdtemp()) / 'site'); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_class_list_collects_hostile_names(tmp_path):
    from cnnviz.gallery.build import _Assets, _prepare, load_manifest

    path = make_manifest(tmp_path / "src")
    ctx = _prepare(load_manifest(path), _Assets(tmp_path / "site", path.parent))
    assert set(HOSTILE) <= set(ctx["classes"])
