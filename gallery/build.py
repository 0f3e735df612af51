"""Manifest (JSON) + PNGs -> a static gallery that opens from ``file://`` (no server, no CDN).

The manifest is what ``cnnviz.report`` writes; paths in it are relative to the manifest's folder
(or absolute). Schema, version 1 (``null`` / missing keys are fine everywhere but ``models``)::

    {"version": 1, "title": str, "generated": str,
     "models": [{"id", "name", "arch", "mode", "weights", "accuracy", "train_seconds", "num_classes",
                 "input_size", "params", "curves": path, "confusion": path,
                 "per_class": [{"name", "precision", "recall", "f1", "support"}],
                 "sections": [SECTION, ...]}],
     "images": [{"id", "name", "src": path, "class": str,
                 "results": [{"model": id, "method", "heat": path, "overlay": path,
                              "pred", "prob", "target"}]}],
     "comparison": {"headline": [str], "sections": [SECTION, ...]},
     "notes": [str]}
    SECTION = {"id", "title", "note", "items": [{"src": path, "caption", "class"}],
               "table": {"columns": [str], "rows": [[cell]]}}

Everything from data (class names, file names, captions) goes through Jinja2 autoescaping and, in
the browser, through ``textContent``/``dataset`` only: it is text, never markup. The site is built
in a temporary folder beside ``out`` and moved into place whole (``cnnviz.atomic.atomic_dir``).
Never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnviz.atomic import atomic_dir
from cnnviz.errors import CnnvizError

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
THUMB_PX = 256  # longest side of grid thumbnails
_ID_RE = re.compile(r"[^A-Za-z0-9_-]+")


class GalleryError(CnnvizError):
    """A manifest the gallery cannot render (missing file, bad JSON, wrong version)."""


def safe_id(text: str, fallback: str = "item") -> str:
    """A file-name and HTML-id safe token (``[A-Za-z0-9_-]``); never empty."""
    s = _ID_RE.sub("-", str(text)).strip("-")[:60]
    return s or fallback


def load_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and minimally validate a manifest; relative asset paths resolve against its folder."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GalleryError(f"manifest not found: '{p}'") from None
    except json.JSONDecodeError as e:
        raise GalleryError(f"manifest '{p}' is not valid JSON ({e.msg} at line {e.lineno}).") from None
    data.setdefault("_base", str(p.parent.resolve()))
    return data


class _Assets:
    """Copies every referenced PNG into ``site/assets`` once (content-named) and makes thumbnails."""

    def __init__(self, site: Path, base: Path) -> None:
        self.site, self.base = site, base
        self.done: dict[str, tuple[str, str]] = {}
        (site / "assets").mkdir(parents=True, exist_ok=True)
        (site / "thumbs").mkdir(parents=True, exist_ok=True)

    def _resolve(self, src: str) -> Path:
        p = Path(src)
        return p if p.is_absolute() else self.base / p

    def add(self, src: str | None) -> tuple[str, str] | None:
        """``(asset href, thumbnail href)`` relative to the site root, or None for no picture."""
        if not src:
            return None
        if src in self.done:
            return self.done[src]
        path = self._resolve(src)
        if not path.is_file():
            raise GalleryError(f"the manifest names a picture that does not exist: '{path}'")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        suffix = path.suffix.lower() if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".svg", ".webp", ".gif") else ".png"
        name = f"{digest}-{safe_id(path.stem, 'img')[:40]}{suffix}"
        dest = self.site / "assets" / name
        if not dest.exists():
            shutil.copyfile(path, dest)
        thumb = self._thumb(dest, name)
        self.done[src] = (f"assets/{name}", thumb)
        return self.done[src]

    def _thumb(self, full: Path, name: str) -> str:
        """A thumbnail no larger than ``THUMB_PX`` (the original when already small)."""
        if full.suffix == ".svg":
            return f"assets/{name}"
        from PIL import Image

        with Image.open(full) as im:
            if max(im.size) <= THUMB_PX:
                return f"assets/{name}"
            im = im.convert("RGBA") if im.mode in ("RGBA", "LA", "P") else im.convert("RGB")
            im.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
            tname = Path(name).stem + ".png"
            im.save(self.site / "thumbs" / tname, format="PNG", optimize=True)
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


_MODEL_KEYS = ("arch", "mode", "weights", "accuracy", "train_seconds", "num_classes", "input_size", "params")
_RESULT_KEYS = ("method", "pred", "prob", "target")


def _with(d: dict[str, Any], keys: tuple[str, ...], **kw: Any) -> dict[str, Any]:
    """A copy of ``d`` where every key in ``keys`` exists (missing -> None), updated with ``kw``."""
    out = {k: d.get(k) for k in keys}
    out.update({k: v for k, v in d.items() if k not in out or v is not None})
    out.update(kw)
    return out


def _prepare(m: dict[str, Any], assets: _Assets) -> dict[str, Any]:
    """A render-ready copy of the manifest: ids sanitized and unique, pictures copied (href, thumb)."""
    if not isinstance(m.get("models"), list) or not m["models"]:
        raise GalleryError("the manifest lists no models; a gallery needs at least one.")
    if int(m.get("version", 1)) != 1:
        raise GalleryError(f"manifest version {m.get('version')} is not supported (this cnnviz reads version 1).")

    def pic(src: str | None) -> dict[str, str] | None:
        got = assets.add(src)
        return {"href": got[0], "thumb": got[1]} if got else None

    def section(s: dict[str, Any], i: int) -> dict[str, Any]:
        items = [_with(it, ("caption", "class"), pic=pic(it.get("src"))) for it in s.get("items") or []]
        return {"id": safe_id(s.get("id") or f"s{i}"), "title": str(s.get("title") or ""), "note": s.get("note"),
                "items": [it for it in items if it["pic"]], "table": s.get("table"), "wide": bool(s.get("wide")),
                "pixelated": bool(s.get("pixelated")), "hero": bool(s.get("hero"))}

    seen: set[str] = set()

    def unique(raw: str, prefix: str) -> str:
        base = safe_id(raw, prefix)
        out, n = base, 1
        while out in seen:
            n += 1
            out = f"{base}-{n}"
        seen.add(out)
        return out

    models = []
    idmap: dict[str, str] = {}
    names: dict[str, str] = {}
    for i, mm in enumerate(m["models"]):
        mid = unique(mm.get("id") or f"m{i}", "model")
        idmap[str(mm.get("id") or f"m{i}")] = mid
        names[mid] = str(mm.get("name") or mid)
        models.append(_with(mm, _MODEL_KEYS, id=mid, name=str(mm.get("name") or mid), curves=pic(mm.get("curves")),
                           confusion=pic(mm.get("confusion")), per_class=[_with(r, ("name", "precision", "recall", "f1", "support")) for r in mm.get("per_class") or []],
                           sections=[section(s, j) for j, s in enumerate(mm.get("sections") or [])]))
    images = []
    for i, im in enumerate(m.get("images") or []):
        iid = unique(im.get("id") or f"img{i}", "image")
        results = []
        for r in im.get("results") or []:
            mid = idmap.get(str(r.get("model")))
            if mid is None:
                log.warning("image %s: result for unknown model %r skipped", iid, r.get("model"))
                continue
            results.append(_with(r, _RESULT_KEYS, model=mid, model_name=names[mid], heat=pic(r.get("heat")), overlay=pic(r.get("overlay"))))
        images.append(_with(im, ("class",), id=iid, name=str(im.get("name") or iid), pic=pic(im.get("src")), results=results,
                           methods=list(dict.fromkeys(r.get("method") or "" for r in results if r.get("method")))))
    comp = m.get("comparison")
    if comp:
        secs = [section(s, j) for j, s in enumerate(comp.get("sections") or [])]
        with_pics = [s for s in secs if s["items"]]
        hero = next((s for s in with_pics if s.get("hero")), with_pics[0] if with_pics else None)
        comp = dict(comp, headline=list(comp.get("headline") or []), sections=secs, hero=hero)
    classes: list[str] = []
    for im in images:
        if im.get("class") is not None and str(im["class"]) not in classes:
            classes.append(str(im["class"]))
    for mm in models:
        for s in mm["sections"]:
            for it in s["items"]:
                if it.get("class") is not None and str(it["class"]) not in classes:
                    classes.append(str(it["class"]))
    return {"title": str(m.get("title") or "cnnviz gallery"), "generated": m.get("generated"), "models": models,
            "images": images, "comparison": comp, "notes": [str(n) for n in m.get("notes") or []], "classes": classes}


def build_site(
    manifest: str | os.PathLike[str] | dict[str, Any],
    out: str | os.PathLike[str],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render ``manifest`` (a path or a dict) into the site folder ``out``; return ``out/index.html``.

    Pages: ``index.html``, ``model-<id>.html`` per model, ``image-<id>.html`` per image,
    ``compare.html`` when the manifest has a comparison. ``static/`` holds the CSS and JS,
    ``assets/`` the pictures (content-named), ``thumbs/`` their thumbnails. The folder is replaced
    atomically: a failed build leaves the previous site untouched. ``progress(done, total)`` is
    called after each page.
    """
    m = load_manifest(manifest) if not isinstance(manifest, dict) else dict(manifest)
    base = Path(base_dir or m.get("_base") or ".").resolve()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GalleryError(f"--out '{out}' is a file; give a folder for the site.")
    if out.exists() and any(out.iterdir()) and not (out / "index.html").exists():
        raise GalleryError(f"--out '{out}' is a non-empty folder that is not a gallery; refusing to replace it.")
    env = _env()
    with atomic_dir(out) as tmp:
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
