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
