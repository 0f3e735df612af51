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


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path`` whole.

    An existing ``path`` is moved aside first and deleted only after the new one is in place.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / "x")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
