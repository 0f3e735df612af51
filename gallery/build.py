"""Manifest + PNGs -> a static gallery that opens from ``file://`` (no server, no CDN).

The manifest's schema is ``cnnviz.gallery.manifest`` (what ``cnnviz.report`` writes); it is
validated whole before anything is built. Everything from data (class names, file names, captions)
goes through Jinja2 autoescaping and, in the browser, through ``textContent``/``dataset`` only: it
is text, never markup. Every picture the manifest names must be a readable image; it is copied into
``assets/`` (content-named) with a thumbnail in ``thumbs/``. The site is built in a temporary
folder beside ``out`` and moved into place whole by ``cnnviz.atomic.atomic_dir`` (kind
``gallery``): a folder cnnviz did not write is refused, and files of the user's inside a gallery
folder are kept. Never imports torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnviz.atomic import atomic_dir
from cnnviz.gallery.manifest import GalleryError, Manifest, Section, read_manifest

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
THUMB_PX = 256  # longest side of grid thumbnails
MAX_ASSET_BYTES = 64 << 20  # a picture file larger than this is refused (a hostile manifest could name any file)
MAX_ASSET_PIXELS = 64_000_000  # ... and so is a picture with more pixels (a decompression bomb)
_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp"}  # raster only: an SVG can carry script
_ID_RE = re.compile(r"[^A-Za-z0-9_-]+")

__all__ = ["GalleryError", "build_site", "load_manifest", "safe_id"]


def safe_id(text: str, fallback: str = "item") -> str:
    """A file-name and HTML-id safe token (``[A-Za-z0-9_-]``); never empty."""
    s = _ID_RE.sub("-", str(text)).strip("-")[:60]
    return s or fallback


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest (``cnnviz.gallery.manifest.read_manifest``)."""
    return read_manifest(path)


class _Assets:
    """Copies every referenced picture into ``site/assets`` once (content-named) and makes thumbnails."""

    def __init__(self, site: Path, base: Path) -> None:
        self.site, self.base = site, base
        self.done: dict[str, tuple[str, str]] = {}
        (site / "assets").mkdir(parents=True, exist_ok=True)
        (site / "thumbs").mkdir(parents=True, exist_ok=True)

    def add(self, src: str | None) -> tuple[str, str] | None:
        """``(asset href, thumbnail href)`` relative to the site root, or None for no picture."""
        if not src:
            return None
        if src in self.done:
            return self.done[src]
        p = Path(src)
        path = p if p.is_absolute() else self.base / p
        if not path.is_file():
            raise GalleryError(f"the manifest names a picture that does not exist: '{path}'")
        if path.stat().st_size > MAX_ASSET_BYTES:
            raise GalleryError(f"the manifest names a picture larger than {MAX_ASSET_BYTES >> 20} MB: '{path}'")
        data = path.read_bytes()
        suffix = self._check(path)
        name = f"{hashlib.sha256(data).hexdigest()[:16]}-{safe_id(path.stem, 'img')[:40]}{suffix}"
        dest = self.site / "assets" / name
        if not dest.exists():
            dest.write_bytes(data)
        self.done[src] = (f"assets/{name}", self._thumb(dest, name))
        return self.done[src]

    @staticmethod
    def _check(path: Path) -> str:
        """The picture's suffix by its content; ``GalleryError`` for anything but a sane raster image."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                fmt, (w, h) = im.format, im.size
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            raise GalleryError(f"the manifest names a file that is not a readable picture: '{path}' ({type(e).__name__})") from None
        if fmt not in _FORMATS:
            raise GalleryError(f"'{path}' is a {fmt} picture; the gallery takes {', '.join(_FORMATS)}.")
        if w * h > MAX_ASSET_PIXELS:
            raise GalleryError(f"'{path}' has {w}x{h} pixels, more than the gallery takes ({MAX_ASSET_PIXELS:,}).")
        return _FORMATS[fmt]

    def _thumb(self, full: Path, name: str) -> str:
        """A thumbnail no larger than ``THUMB_PX`` (the original when already small)."""
        from PIL import Image

        try:
            with Image.open(full) as im:
                if max(im.size) <= THUMB_PX:
                    return f"assets/{name}"
                im = im.convert("RGBA") if im.mode in ("RGBA", "LA", "P") else im.convert("RGB")
                im.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
                tname = Path(name).stem + ".png"
                im.save(self.site / "thumbs" / tname, format="PNG", optimize=True)
        except (OSError, ValueError) as e:  # a truncated file passes the header check and fails here
            raise GalleryError(f"a picture of the manifest cannot be decoded ({name}: {e}).") from None
        return f"thumbs/{tname}"


def _env():  # noqa: ANN202
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * float(v):.1f}%"
    env.filters["secs"] = _fmt_secs
    env.filters["num"] = lambda v, d=3: "–" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))
    return env


def _fmt_secs(v: float | None) -> str:
    if v is None:
        return "–"
    v = float(v)
    if v < 90:
        return f"{v:.1f} s"
    if v < 5400:
        return f"{v / 60:.1f} min"
    return f"{v / 3600:.1f} h"


def _prepare(m: Manifest, assets: _Assets) -> dict[str, Any]:
    """The render context: ids sanitized and unique, pictures copied (``{"href", "thumb"}``), plain dicts."""

    def pic(src: str | None) -> dict[str, str] | None:
        got = assets.add(src)
        return {"href": got[0], "thumb": got[1]} if got else None

    def section(s: Section, i: int) -> dict[str, Any]:
        items = [{"caption": it.caption, "class": it.cls, "pic": pic(it.src)} for it in s.items]
        table = {"columns": s.table.columns, "rows": s.table.rows} if s.table else None
        return {"id": safe_id(s.id or f"s{i}"), "title": s.title, "note": s.note, "items": [it for it in items if it["pic"]],
                "table": table, "wide": s.wide, "pixelated": s.pixelated, "hero": s.hero}

    seen: set[str] = set()

    def unique(raw: str, prefix: str) -> str:
        base = safe_id(raw, prefix)
        out, n = base, 1
        while out in seen:
            n += 1
            out = f"{base}-{n}"
        seen.add(out)
        return out

    models, idmap, names = [], {}, {}
    for i, mm in enumerate(m.models):
        raw = mm.id or f"m{i}"
        mid = unique(raw, "model")
        idmap.setdefault(raw, mid)
        names[mid] = mm.name or mid
        models.append({"id": mid, "name": names[mid], "arch": mm.arch, "mode": mm.mode, "weights": mm.weights,
                       "accuracy": mm.accuracy, "train_seconds": mm.train_seconds, "num_classes": mm.num_classes,
                       "input_size": mm.input_size, "params": mm.params, "curves": pic(mm.curves), "confusion": pic(mm.confusion),
                       "per_class": [vars(r) for r in mm.per_class], "sections": [section(s, j) for j, s in enumerate(mm.sections)]})
    images = []
    for i, im in enumerate(m.images):
        iid = unique(im.id or f"img{i}", "image")
        results = []
        for r in im.results:
            mid = idmap.get(r.model or "")
            if mid is None:
                log.warning("image %s: result for unknown model %r skipped", iid, r.model)
                continue
            results.append({"model": mid, "model_name": names[mid], "method": r.method, "pred": r.pred, "prob": r.prob,
                            "target": r.target, "heat": pic(r.heat), "overlay": pic(r.overlay)})
        images.append({"id": iid, "name": im.name or iid, "class": im.cls, "pic": pic(im.src), "results": results,
                       "methods": list(dict.fromkeys(r["method"] for r in results if r["method"]))})
    comp = None
    if m.comparison:
        secs = [section(s, j) for j, s in enumerate(m.comparison.sections)]
        with_pics = [s for s in secs if s["items"]]
        hero = next((s for s in with_pics if s["hero"]), with_pics[0] if with_pics else None)
        comp = {"headline": list(m.comparison.headline), "sections": secs, "hero": hero}
    classes: list[str] = []
    for im in images:
        if im["class"] is not None and im["class"] not in classes:
            classes.append(im["class"])
    for mm in models:
        for s in mm["sections"]:
            for it in s["items"]:
                if it["class"] is not None and it["class"] not in classes:
                    classes.append(it["class"])
    return {"title": m.title or "cnnviz gallery", "generated": m.generated, "models": models, "images": images,
            "comparison": comp, "notes": list(m.notes), "classes": classes}


def build_site(
    manifest: str | os.PathLike[str] | Manifest | dict[str, Any],
    out: str | os.PathLike[str],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render ``manifest`` (a path, a ``Manifest`` or its dict) into the site folder ``out``; return ``out/index.html``.

    Pages: ``index.html``, ``model-<id>.html`` per model, ``image-<id>.html`` per image,
    ``compare.html`` when the manifest has a comparison. ``static/`` holds the CSS and JS,
    ``assets/`` the pictures (content-named), ``thumbs/`` their thumbnails. Relative picture paths
    resolve against ``base_dir`` (default: the manifest's folder, or the current one for an object).
    The folder is replaced by cnnviz's ownership rule (``cnnviz.atomic.atomic_dir``): a failed
    build leaves the previous site untouched. ``progress(done, total)`` is called after each page.
    """
    if isinstance(manifest, Manifest):
        m, default_base = manifest, Path(".")
    elif isinstance(manifest, dict):
        m, default_base = Manifest.from_dict(manifest), Path(".")
    else:
        m, default_base = read_manifest(manifest), Path(manifest).parent
    base = Path(base_dir or default_base).resolve()
    out = Path(out)
    env = _env()
    with atomic_dir(out, kind="gallery") as tmp:
        ctx = _prepare(m, _Assets(tmp, base))
        shutil.copytree(HERE / "static", tmp / "static")
        pages: list[tuple[str, str, dict[str, Any]]] = [("index.html", "index.html", {"page": "index"})]
        for mm in ctx["models"]:
            pages.append((f"model-{mm['id']}.html", "model.html", {"page": "model", "model": mm}))
        for i, im in enumerate(ctx["images"]):
            prev = ctx["images"][i - 1]["id"] if i > 0 else None
            nxt = ctx["images"][i + 1]["id"] if i + 1 < len(ctx["images"]) else None
            pages.append((f"image-{im['id']}.html", "image.html", {"page": "image", "image": im, "prev": prev, "next": nxt}))
        if ctx["comparison"]:
            pages.append(("compare.html", "compare.html", {"page": "compare"}))
        for n, (name, template, extra) in enumerate(pages, 1):
            html = env.get_template(template).render(**ctx, **extra)
            (tmp / name).write_text(html, encoding="utf-8")
            if progress:
                progress(n, len(pages))
    log.info("gallery: %d pages in %s", len(pages), out)
    return out / "index.html"
