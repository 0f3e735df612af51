"""The numbers behind the option-bounds layer: what makes sense for sizes, counts and options.

``cnnviz.cli.common`` turns these into click types (so the CLI refuses absurd values before any
work starts); library entry points and the checkpoint schema check the same ranges with
``check_int`` / ``check_float``, so a notebook user calling them directly is refused the same way.
Torch-free and import-light: the bottom room, beside ``errors``.
"""

from __future__ import annotations

import math
import numbers

from cnnviz.errors import OptionError

__all__ = ["OptionError", "check_int", "check_float", "check_simplecnn_kwargs"]

# (min, max), both inclusive
IMAGE_SIDE = (8, 2048)  # a model input side / canvas side in pixels
BATCH_SIZE = (1, 4096)
NUM_WORKERS = (0, 64)
STEPS = (1, 100_000)  # optimization / integration / curve steps
NUM_CLASSES = (1, 100_000)  # ImageNet-21k has 21,843
IN_CHANS = (1, 64)
IMAGE_COUNT = (1, 10_000_000)  # --limit / --eval-limit / --num: how many dataset images to look at
TOP_K = (1, 1_000)  # how many examples to keep
SEED = (0, 2**32 - 1)  # numpy's RandomState takes no more; torch and numpy's Generator take these too
DRAWS = (1, 1_024)  # images / noise draws averaged for an effective receptive field (all held at once)

# simplecnn:width=W,depth=D,dropout=P; channels double per stage: W * 2**(D-1) at the last one
SIMPLECNN_WIDTH = (1, 512)
SIMPLECNN_DEPTH = (1, 8)
SIMPLECNN_MAX_CHANNELS = 4096


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: object, bounds: tuple[int, int], hint: str = "") -> int:
    """``value`` as an int when it is an integer within ``bounds`` (inclusive); else ``OptionError``.

    ``name`` is how the user spelled it (``--batch-size``, ``top_examples(k=...)``); ``hint`` is
    appended to the message (why the bound, what to do).
    """
    lo, hi = bounds
    if not _is_int(value):
        raise OptionError(f"{name} must be an integer in {lo}..{hi}, got {value!r}.{' ' + hint if hint else ''}")
    v = int(value)  # type: ignore[arg-type]
    if not lo <= v <= hi:
        raise OptionError(f"{name} {v} is out of range: use {lo}..{hi}.{' ' + hint if hint else ''}")
    return v


def check_float(name: str, value: object, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False,
                hint: str = "") -> float:
    """``value`` as a finite float within ``lo``..``hi`` (open ends as flagged); else ``OptionError``."""
    ok_type = isinstance(value, numbers.Real) and not isinstance(value, bool)
    v = float(value) if ok_type else math.nan  # type: ignore[arg-type]
    inside = math.isfinite(v) and (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi)
    if not inside:
        span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise OptionError(f"{name} must be a number in {span}, got {value!r}.{' ' + hint if hint else ''}")
    return v


SIMPLECNN_OPTIONS = ("width", "depth", "dropout")


def check_simplecnn_kwargs(kwargs: object, error: type[Exception] = OptionError, where: str = "simplecnn") -> dict:
    """Validated ``simplecnn`` options (``width``, ``depth``, ``dropout``) -> a new dict; else ``error``.

    One check for the spec parser (``simplecnn:width=16,depth=2``), ``build_model(arch_kwargs=...)``
    and a checkpoint's ``arch_kwargs``: depth 100 or width 0 are refused, not built.
    """
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise error(f"{where}: options must be a mapping of names to numbers, got {type(kwargs).__name__}.")
    unknown = [k for k in kwargs if k not in SIMPLECNN_OPTIONS]
    if unknown:
        raise error(f"{where}: unknown option(s) {', '.join(map(repr, unknown))}; simplecnn takes {', '.join(SIMPLECNN_OPTIONS)}.")
    out: dict = {}
    try:
        if "width" in kwargs:
            out["width"] = check_int(f"{where} width", kwargs["width"], SIMPLECNN_WIDTH)
        if "depth" in kwargs:
            out["depth"] = check_int(f"{where} depth", kwargs["depth"], SIMPLECNN_DEPTH,
                                     hint="Each stage halves the image: depth D needs inputs of at least 2**D pixels.")
        if "dropout" in kwargs:
            out["dropout"] = check_float(f"{where} dropout", kwargs["dropout"], 0.0, 1.0, hi_open=True)
    except OptionError as e:
        raise error(str(e)) from None
    width, depth = out.get("width", 32), out.get("depth", 3)
    if width * 2 ** (depth - 1) > SIMPLECNN_MAX_CHANNELS:
        raise error(f"{where}: width={width}, depth={depth} gives {width * 2 ** (depth - 1)} channels in the last stage "
                    f"(width doubles per stage); keep width * 2**(depth-1) <= {SIMPLECNN_MAX_CHANNELS}.")
    return out
