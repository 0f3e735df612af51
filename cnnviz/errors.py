"""Errors users can act on.

Every ``CnnvizError`` is bad usage or bad input: the CLI prints its message as one line on stderr
and exits with code 2. Messages say what was wrong, the offending value, the options and the fix.
Anything else that escapes is a bug (exit code 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CnnvizError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class ModelSpecError(CnnvizError):
    """A ``--model`` spec that cannot be resolved or built."""


class WeightsUnavailableError(CnnvizError):
    """Pretrained weights that are neither bundled nor cached, while offline."""


class CheckpointError(CnnvizError):
    """A checkpoint file that is missing, foreign, truncated or unsafe."""


class ImageError(CnnvizError):
    """An image file that cannot be read."""


class LayerError(CnnvizError):
    """An unknown layer name, or a layer that cannot serve the requested view."""


class TargetError(CnnvizError):
    """A ``--target`` / ``--class`` that names no class of the model."""


class DataError(CnnvizError):
    """A dataset spec or folder that cannot be loaded."""


class OptionError(CnnvizError):
    """An option or argument value outside what makes sense (a size, a count, a rate)."""


def close_matches(value: str, options: Iterable[str], n: int = 5) -> list[str]:
    """The options most similar to ``value`` (difflib ratio), best first; substring hits included."""
    opts = list(options)
    found = difflib.get_close_matches(value, opts, n=n, cutoff=0.5)
    for o in opts:
        if len(found) >= n:
            break
        if value and value.lower() in o.lower() and o not in found:
            found.append(o)
    return found


def suggestion(value: str, options: Iterable[str], n: int = 5) -> str:
    """`` did you mean: a, b?`` or an empty string."""
    found = close_matches(value, options, n)
    return f" Did you mean: {', '.join(found)}?" if found else ""


def _shown_path(p: object) -> str:
    import os

    s = os.fsdecode(p) if isinstance(p, (str, bytes, os.PathLike)) else str(p)
    return f"'{s}'" if s.isprintable() else repr(s)  # control characters would break the one line


# errno -> what to do about it (the message already says what happened)
_OS_HINTS = {
    "ENOSPC": "free some space or write elsewhere (--out)",
    "EDQUOT": "free some space or write elsewhere (--out)",
    "EACCES": "check its permissions (to write, choose an --out in a folder you can write to)",
    "EPERM": "check its permissions (to write, choose an --out in a folder you can write to)",
    "EROFS": "the file system is read-only: choose another --out",
    "ENOTDIR": "a part of that path is a file, not a folder",
    "EEXIST": "a file of that name is in the way where a folder is needed",
    "EISDIR": "that is a folder; a file is needed there",
    "ENAMETOOLONG": "use a shorter name",
    "ELOOP": "the path has a symbolic-link loop",
    "EMFILE": "too many open files: lower --num-workers or raise `ulimit -n`",
}


def os_error_message(e: OSError) -> str:
    """One line for an ``OSError`` (PermissionError, NotADirectoryError, ENOSPC...): what failed, on which path, the fix.

    The CLI prints it and exits 2: an unwritable ``--out`` or a full disk is bad input or a bad
    environment, not a bug.
    """
    import errno as _errno

    text = str(e).strip()
    reason = e.strerror or (text.splitlines()[0][:300] if text else type(e).__name__)
    paths = [_shown_path(p) for p in (e.filename, e.filename2) if p is not None]
    where = f"{' -> '.join(paths)}: " if paths else ""
    name = _errno.errorcode.get(e.errno or -1, "")
    hint = _OS_HINTS.get(name)
    return f"{where}{reason}" + (f": {hint}." if hint else ".")
