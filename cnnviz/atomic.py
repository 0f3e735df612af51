"""Atomic file and directory writes: a temp file beside the target, then ``os.replace``.

A reader (or a SIGKILL) never sees a half-written file: either the old content or the new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``path``.

    The temp name keeps the target's suffix so writers that sniff the extension (PIL, matplotlib)
    pick the right format. On any exception the temp file is removed and ``path`` is untouched.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix, dir=target.parent
        )
    except OSError as e:
        _name_target(e, target)
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes 0600 files; published pictures and galleries must be readable like any file
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as e:
        _name_target(e, target)
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _name_target(e: OSError, target: Path) -> None:
    """Let ``e`` name the user's path, not our hidden temp file (a full disk's ``write()`` names none)."""
    name = os.fsdecode(e.filename) if e.filename is not None else None
    if name is None or Path(name).name.startswith(f".{target.name}."):
        e.filename, e.filename2 = str(target), None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write UTF-8 ``text`` to ``path``."""
    write_bytes(path, text.encode("utf-8"))


def finite_or_none(o: object) -> object:
    """``o`` with every NaN/Infinity float (also inside dicts, lists, tuples, numpy arrays) replaced by None.

    ``NaN``/``Infinity`` are not JSON: browsers and most parsers reject them. Writers call this (through
    ``dumps_json``) and say in prose why a value is missing.
    """
    import math
    import sys

    np = sys.modules.get("numpy")
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if np is not None:
        if isinstance(o, np.ndarray):
            return finite_or_none(o.tolist())
        if isinstance(o, np.floating):
            return finite_or_none(float(o))
        if isinstance(o, np.generic):
            return o.item()
    if isinstance(o, dict):
        return {k: finite_or_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite_or_none(v) for v in o]
    return o


def dumps_json(obj: object, **kwargs: object) -> str:
    """Strict JSON text: NaN/Infinity become null, numpy values plain numbers, unknown objects their ``str``.

    Every JSON document cnnviz writes or prints goes through here (``allow_nan=False`` proves it).
    """
    import json

    return json.dumps(finite_or_none(obj), default=json_default, allow_nan=False, **kwargs)  # type: ignore[arg-type]


def json_default(o: object) -> object:
    """``json.dumps(default=...)`` for results: numpy scalars/arrays become numbers/lists, tuples lists,
    anything else its ``str``."""
    import sys

    np = sys.modules.get("numpy")  # only numpy objects need numpy; don't import it for plain data
    if np is not None:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


# -- output folders: the one ownership rule -----------------------------------------------------
#
# cnnviz replaces only what it wrote. Every folder it writes whole (a gallery, a compare folder, a
# cache entry) carries MARKER, which names the kind of output and lists every file cnnviz put there.
# ``atomic_dir`` builds the new folder beside the target, then:
#   * target missing or empty    -> the new folder takes its place;
#   * target carries our marker  -> it is swapped for the new folder once that is complete; then only
#                                   the files its marker lists are deleted, and every other file (the
#                                   user's notes, a blog/ folder) is moved into the new folder;
#   * anything else              -> OutputFolderError (exit 2) before any work; nothing is touched.
# ``claim_dir`` marks a folder that cnnviz writes into over time but never replaces (the cache).

from cnnviz.errors import CnnvizError  # noqa: E402  (light: no torch)

MARKER = ".cnnviz-output.json"
_MARKER_TAG = "cnnviz output folder"

# Folders written before the marker existed, recognised by exact file names, so a rebuild over an
# old gallery or compare folder keeps working; a folder holding any other file is not adopted.
# kind -> (files that must be there, pattern every file must match)
_LEGACY: dict[str, tuple[tuple[str, ...], str]] = {
    "gallery": (("index.html", "static/gallery.js", "static/gallery.css"),
                r"(index|compare|model-[^/]+|image-[^/]+)\.html|static/gallery\.(css|js)|(assets|thumbs)/[0-9a-f]{16}-[^/]+"),
    "compare": (("compare.json", "summary.png"),
                r"compare\.json|(summary|cka-grid|drift|agreement|per-class)\.png|(cka|agreement|disagreements)-\d+-\d+\.png"),
    "cache": ((), r"(objects|manifests)/.+"),
    "cache-entry": (("meta.json",), r".+"),
}


class OutputFolderError(CnnvizError):
    """An output folder cnnviz may not write: not its own, of another kind, or a file."""


def _files(root: Path) -> list[str]:
    """Every file and symlink under ``root`` (``/``-separated relative paths), never following links."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        out.extend((rel / n).as_posix() for n in filenames)
        out.extend((rel / n).as_posix() for n in dirnames if os.path.islink(os.path.join(dirpath, n)))
    return sorted(out)


def _empty_dirs(root: Path) -> list[str]:
    """Empty folders under ``root`` (relative paths): cnnviz writes none, so they are the user's."""
    return sorted(Path(d).relative_to(root).as_posix() for d, dirs, files in os.walk(root)
                  if not dirs and not files and Path(d) != root)


def _owned_files(target: Path, kind: str) -> set[str] | None:
    """The files cnnviz wrote in ``target`` as ``kind`` (its marker's list), or None if not ours.

    A missing or empty folder is trivially ours (nothing listed). Raises ``OutputFolderError`` when
    the folder is a cnnviz output of another kind.
    """
    import json
    import re

    if not target.exists() or not any(target.iterdir()):
        return set()
    marker = target / MARKER
    if marker.is_file() and not marker.is_symlink():
        try:
            doc = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        if isinstance(doc, dict) and doc.get("cnnviz") == _MARKER_TAG and isinstance(doc.get("files"), list):
            if doc.get("kind") != kind:
                raise OutputFolderError(f"'{target}' holds a cnnviz {doc.get('kind')} output, not a {kind}; "
                                        f"give another folder.")
            return {f for f in doc["files"] if isinstance(f, str)}
        return None
    needed, pattern = _LEGACY.get(kind, ((), None))
    if pattern is None:
        return None
    files = _files(target)
    rx = re.compile(pattern)
    if all(rx.fullmatch(f) for f in files) and all(n in files for n in needed):
        return set(files)  # an output of an earlier cnnviz (before the marker)
    return None


def _real(path: str | os.PathLike[str]) -> Path:
    """``path`` with a symlinked final folder resolved (replace the real folder, not the link)."""
    p = Path(path)
    return Path(os.path.realpath(p)) if p.is_symlink() else p.absolute()


def check_output_dir(path: str | os.PathLike[str], kind: str) -> None:
    """Raise ``OutputFolderError`` unless cnnviz may write the folder ``path`` as a ``kind`` output.

    Call it before any work so that a refused ``--out`` costs nothing.
    """
    target = _real(path)
    for parent in [target, *target.parents]:
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == target else f"is under '{parent}', which is a file"
                raise OutputFolderError(f"'{target}' {what}; give a folder for the output.")
            break
    if _owned_files(target, kind) is None:
        shown = sorted(p.name + ("/" if p.is_dir() else "") for p in target.iterdir())
        listing = ", ".join(shown[:4]) + (f" and {len(shown) - 4} more" if len(shown) > 4 else "")
        raise OutputFolderError(f"'{target}' is a folder cnnviz did not write (it holds {listing}); refusing to write "
                                f"a {kind} into it. Give a new or empty folder.")


def _marker_text(kind: str, files: list[str]) -> str:
    doc = {"cnnviz": _MARKER_TAG, "kind": kind, "files": files,
           "note": "cnnviz wrote the files listed here and replaces only those; other files in this folder are kept."}
    return dumps_json(doc, indent=1)


def claim_dir(path: str | os.PathLike[str], kind: str) -> Path:
    """Create (or accept) ``path`` as a folder cnnviz writes into as ``kind`` and never replaces whole."""
    target = _real(path)
    check_output_dir(target, kind)
    target.mkdir(parents=True, exist_ok=True)
    if not (target / MARKER).exists():
        write_text(target / MARKER, _marker_text(kind, []))
    return target


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], kind: str = "output") -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it becomes ``path`` (see above).

    ``path`` is checked first (``check_output_dir``), so a folder cnnviz may not write is refused
    before the caller's work. On an exception in the block, ``path`` is left as it was and the
    temporary folder is removed. Afterwards ``path/MARKER`` lists every file written.
    """
    target = _real(path)
    check_output_dir(target, kind)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        _install(tmp, target, kind)
    finally:
        if tmp.exists():  # only what the block wrote is in here: the user's files never are
            shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp: Path, target: Path, kind: str) -> None:
    """Put the complete folder ``tmp`` in place of ``target`` by the ownership rule."""
    (tmp / MARKER).write_text(_marker_text(kind, [f for f in _files(tmp) if f != MARKER]), encoding="utf-8")
    if not target.exists():
        os.replace(tmp, target)
        return
    listed = _owned_files(target, kind)  # again: the folder may have changed while we worked
    if listed is None:
        check_output_dir(target, kind)  # raises with the listing
        raise OutputFolderError(f"'{target}' is not cnnviz's to replace.")  # pragma: no cover
    listed = listed | {MARKER}
    clashes = [f for f in _files(target) if f not in listed and _blocked(tmp, f)]
    clashes += [d for d in _empty_dirs(target) if _blocked(tmp, d, folder=True)]
    if clashes:
        raise OutputFolderError(f"'{target / clashes[0]}' was not written by cnnviz, and the new {kind} has a file "
                                f"of that name; move it away and run again.")
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.replace(target, aside / "old")
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(aside / "old", target)
        aside.rmdir()
        raise
    kept = _carry_over(aside / "old", target, listed)
    if kept:
        import logging

        logging.getLogger(__name__).warning("kept %d file(s) that were not cnnviz's in %s (their names are taken in %s)",
                                            len(kept), aside, target)
    else:
        aside.rmdir()


def _blocked(new: Path, rel: str, folder: bool = False) -> bool:
    """Whether the user's file (or empty ``folder``) ``rel`` cannot move into ``new``: its name, or a
    parent's, is taken by a file of the new output (a folder there is fine for a folder)."""
    p = new
    parts = rel.split("/")
    for i, part in enumerate(parts):
        p = p / part
        if not p.exists() and not p.is_symlink():
            return False
        if p.is_symlink() or not p.is_dir() or (i == len(parts) - 1 and not folder):
            return True
    return False


def _carry_over(old: Path, new: Path, listed: set[str]) -> list[str]:
    """Delete from ``old`` the files cnnviz listed; move every other file and folder into ``new``.

    Returns what could not move (left in ``old``). Never follows a symlink, never deletes an unlisted file.
    """
    kept = []
    implied = {str(Path(f).parent.as_posix()) for f in listed} | {"."}
    for f in listed:  # every parent folder of a listed file is cnnviz's too
        parts = f.split("/")
        implied.update("/".join(parts[:i]) for i in range(1, len(parts)))
    for dirpath, dirnames, filenames in os.walk(old, topdown=False):
        here = Path(dirpath)
        rel_dir = here.relative_to(old).as_posix()
        entries = filenames + [d for d in dirnames if os.path.islink(here / d)]
        for name in entries:
            rel = f"{rel_dir}/{name}" if rel_dir != "." else name
            if rel in listed:
                os.unlink(here / name)
            elif _blocked(new, rel):
                kept.append(rel)
            else:
                (new / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(here / name, new / rel)
        if here == old:
            continue
        if not any(here.iterdir()):
            if rel_dir not in implied:  # the user's own empty folder: keep it
                try:
                    (new / rel_dir).mkdir(parents=True, exist_ok=True)
                except OSError:  # its name is a file of the new output: leave the folder where it is
                    kept.append(rel_dir)
                    continue
            here.rmdir()
    if not kept:
        old.rmdir()
    return kept
