"""cnnviz checkpoints (``ckpt.pt``): a plain dict of tensors and primitives.

Loaded with ``torch.load(weights_only=True)`` only, so a file that carries code is refused, never
executed. Written atomically, so a crash mid-save leaves the previous checkpoint intact.

Format (``format_version`` 1)::

    {
      "format": "cnnviz-checkpoint", "format_version": 1,
      "arch": "simplecnn" | "timm:efficientnet_lite0" | "torchvision:resnet18",
      "arch_kwargs": {...},            # e.g. simplecnn width/depth
      "num_classes": int, "class_names": [str, ...],
      "input_size": [C, H, W], "in_chans": int, "mean": [float]*C, "std": [float]*C,
      "mode": "scratch" | "lp" | "ft" | "lpft" | None,
      "pixel_mean": [float]*C,         # mean of the training images in [0, 1] (optional)
      "mean_image": Tensor (C, h, w),  # their mean image at the input size, h, w <= 64, in [0, 1] (optional)
      "metrics": {...}, "config": {...},
      "state_dict": {name: Tensor},
      "train_state": {...} | None,     # optimizer/scheduler/RNG/epoch for --resume (optional)
    }
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from cnnviz import limits
from cnnviz.errors import CheckpointError

FORMAT = "cnnviz-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("arch", "num_classes", "input_size", "mean", "std", "state_dict")
MODES = ("scratch", "lp", "ft", "lpft")  # cnnviz.train.config.MODES (the trainer sits above this room)
ARCH_KINDS = ("timm", "torchvision")  # besides the plain "simplecnn"
MAX_NAME = 1000  # characters in a class name / architecture name


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Atomically write a checkpoint dict (see module docstring) to ``path``.

    ``payload`` must hold only tensors, primitives, lists and dicts (what ``weights_only`` loads) and
    pass ``validate_checkpoint`` (``CheckpointError`` otherwise, nothing written). Missing
    ``format``/``format_version`` keys are filled in. Returns the path written.
    """
    import torch

    from cnnviz.atomic import atomic_path

    # the same schema check as load_checkpoint: never write a file that cannot be read back
    data = validate_checkpoint({"format": FORMAT, "format_version": FORMAT_VERSION, **payload}, str(path))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str], map_location: str = "cpu") -> dict[str, Any]:
    """Load and validate a cnnviz checkpoint; never executes code from the file.

    Raises ``CheckpointError`` (one clear line) for a missing, truncated, foreign or unsafe file, and
    for one whose content does not pass ``validate_checkpoint`` (the field that is wrong is named).
    """
    import torch

    p = Path(path)
    if not p.is_file():
        what = "is not a file" if p.exists() else "not found"
        raise CheckpointError(f"checkpoint {what}: '{p}'. Pass a file written by `cnnviz train` or save_checkpoint().")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e) or "GLOBAL" in str(e):
            raise CheckpointError(
                f"refusing to load '{p}': it contains Python objects beyond tensors and plain data "
                "(a pickle that could run code). Re-save it as a cnnviz checkpoint with save_checkpoint()."
            ) from None
        raise CheckpointError(f"'{p}' is not a readable checkpoint ({first}).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, io.UnsupportedOperation) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"'{p}' is truncated or not a PyTorch checkpoint ({msg[:160]}).") from None
    except Exception as e:  # torch raises assorted types for corrupt archives
        raise CheckpointError(f"'{p}' could not be read as a checkpoint ({type(e).__name__}).") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"'{p}' is a PyTorch file but not a cnnviz checkpoint (no 'format': '{FORMAT}'). "
            "Load the weights into a model and save them with cnnviz.checkpoint.save_checkpoint()."
        )
    return validate_checkpoint(data, str(p))


def _bad(source: str, field: str, want: str, got: Any) -> CheckpointError:
    shown = repr(got)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return CheckpointError(f"'{source}': checkpoint field '{field}' must be {want}, got {shown}. "
                           "The file is damaged or was not written by cnnviz; re-save it with save_checkpoint().")


def _is_int(v: Any) -> bool:
    import numbers

    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _int_in(data: dict, field: str, bounds: tuple[int, int], source: str, value: Any = None) -> int:
    v = data[field] if value is None else value
    lo, hi = bounds
    if not _is_int(v) or not lo <= int(v) <= hi:
        raise _bad(source, field, f"an integer in {lo}..{hi}", v)
    return int(v)


def _floats(data: dict, field: str, n: int, lo: float, hi: float, source: str) -> list[float]:
    import math
    import numbers

    v = data[field]
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise _bad(source, field, f"a list of {n} numbers (one per input channel, input_size[0] = {n})", v)
    for x in v:
        if not isinstance(x, numbers.Real) or isinstance(x, bool) or not math.isfinite(float(x)) or not lo <= float(x) <= hi:
            raise _bad(source, field, f"{n} finite numbers in [{lo:g}, {hi:g}]", v)
    return [float(x) for x in v]


MEAN_IMAGE_SIDE = 64  # px: a mean image is blurry; larger inputs store it downsampled


def mean_image_size(input_size: "tuple[int, int, int] | list[int]") -> tuple[int, int]:
    """``(h, w)`` a checkpoint stores the mean image at: the input size, shrunk to fit ``MEAN_IMAGE_SIDE``."""
    h, w = int(input_size[1]), int(input_size[2])
    k = min(1.0, MEAN_IMAGE_SIDE / max(h, w))
    return max(1, round(h * k)), max(1, round(w * k))


def _mean_image(v: Any, c: int, source: str) -> Any:
    """``v`` as a float32 ``(c, h, w)`` tensor in [0, 1] with h, w <= ``MEAN_IMAGE_SIDE``; else ``CheckpointError``."""
    import torch

    want = f"a float tensor (C={c}, h, w) with h, w in 1..{MEAN_IMAGE_SIDE} and values in [0, 1]"
    if not isinstance(v, torch.Tensor) or not v.is_floating_point() or v.layout != torch.strided or v.dim() != 3:
        raise _bad(source, "mean_image", want, type(v).__name__ if not isinstance(v, torch.Tensor) else tuple(v.shape))
    if v.shape[0] != c or not all(1 <= int(s) <= MEAN_IMAGE_SIDE for s in v.shape[1:]):
        raise _bad(source, "mean_image", want, tuple(v.shape))
    v = v.detach().float()
    if not bool(torch.isfinite(v).all()) or float(v.min()) < 0 or float(v.max()) > 1:
        raise _bad(source, "mean_image", want, "values outside [0, 1]")
    return v


def check_class_names(names: Any, where: str = "class names") -> list[str]:
    """``names`` as a list of printable, non-empty strings of at most ``MAX_NAME`` characters; else ``CheckpointError``.

    Class names come from untrusted files and folder names and end up in terminals, file names, JSON
    and HTML: control characters (a newline, ``ESC[...`` terminal sequences, bidi overrides) are
    refused here, once, rather than escaped in every place that prints them. Duplicates are allowed
    (ImageNet has two ``crane`` classes); ``ModelInfo.class_index`` refuses to pick between them.
    """
    if not isinstance(names, (list, tuple)):
        raise CheckpointError(f"{where} must be a list of strings, got {type(names).__name__}.")
    for i, c in enumerate(names):
        if not isinstance(c, str) or not c.strip() or len(c) > MAX_NAME or not c.isprintable():
            shown = repr(c) if not isinstance(c, str) or len(c) <= 60 else repr(c[:57] + "...")
            raise CheckpointError(f"{where}: name {i} must be a non-empty string of at most {MAX_NAME} printable "
                                  f"characters (no control characters), got {shown}.")
    return list(names)


def validate_checkpoint(data: Any, source: str = "checkpoint", *, check_tensors: bool = True) -> dict[str, Any]:
    """The one schema check of a checkpoint dict (see the module docstring); returns a normalized copy.

    Checks types, lengths, ranges and consistency: ``num_classes`` an int in ``limits.NUM_CLASSES``;
    ``class_names`` absent/None or exactly ``num_classes`` non-empty strings; ``input_size`` ``[C, H, W]``
    with C in ``limits.IN_CHANS`` and H, W in ``limits.IMAGE_SIDE``; ``in_chans`` (if present) = C;
    ``mean``/``std`` C finite numbers (std > 0); ``pixel_mean`` (optional) C numbers in [0, 1]; ``mean_image`` (optional) a float tensor ``(C, h, w)``
    with h, w in 1..``MEAN_IMAGE_SIDE`` and values in [0, 1]; ``arch`` ``simplecnn``, ``timm:NAME`` or
    ``torchvision:NAME``; ``arch_kwargs`` only options the arch takes, within their bounds; ``mode``
    one of ``MODES`` or None; ``metrics``/``config``/``train_state`` dicts or None; ``state_dict`` a
    non-empty ``{str: Tensor}`` of dense tensors without NaN/Infinity. Raises ``CheckpointError``
    naming ``source`` and the first wrong field. ``check_tensors=False`` skips the pass over the
    tensor values (metadata only). Whether the weights fit the architecture is checked by
    ``cnnviz.models.load_model`` (it builds the model).
    """
    import torch

    if not isinstance(data, dict):
        raise CheckpointError(f"'{source}': a checkpoint is a dict, got {type(data).__name__}.")
    if data.get("format") != FORMAT:
        raise _bad(source, "format", repr(FORMAT), data.get("format"))
    version = data.get("format_version")
    if not _is_int(version) or not 1 <= int(version) <= FORMAT_VERSION:
        if _is_int(version) and int(version) > FORMAT_VERSION:
            raise CheckpointError(f"'{source}' has checkpoint format version {version!r}; this cnnviz reads up to "
                                  f"{FORMAT_VERSION}. Upgrade cnnviz.")
        raise _bad(source, "format_version", f"an integer in 1..{FORMAT_VERSION}", version)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"'{source}' lacks required checkpoint keys {missing}.")
    out = dict(data)

    arch = data["arch"]
    kind, _, name = arch.partition(":") if isinstance(arch, str) else ("", "", "")
    if not isinstance(arch, str) or len(arch) > MAX_NAME or not arch.isprintable() or not (
            arch == "simplecnn" or (kind in ARCH_KINDS and name.strip())):
        raise _bad(source, "arch", "'simplecnn', 'timm:NAME' or 'torchvision:NAME'", arch)
    kwargs = data.get("arch_kwargs")
    kwargs = {} if kwargs is None else kwargs
    if not isinstance(kwargs, dict):
        raise _bad(source, "arch_kwargs", "a dict of architecture options", kwargs)
    probe_layer = kwargs.get("probe_layer")  # `cnnviz train --probe-layer`: any arch cut after that layer
    if probe_layer is not None:
        if not isinstance(probe_layer, str) or not probe_layer or len(probe_layer) > MAX_NAME or not probe_layer.isprintable():
            raise _bad(source, "arch_kwargs.probe_layer", "a layer name", probe_layer)
        kwargs = {k: v for k, v in kwargs.items() if k != "probe_layer"}
    if arch == "simplecnn":
        out["arch_kwargs"] = limits.check_simplecnn_kwargs(kwargs, CheckpointError, f"'{source}': checkpoint field 'arch_kwargs'")
    elif kwargs:
        raise _bad(source, "arch_kwargs", f"empty for {arch} (only simplecnn takes {', '.join(limits.SIMPLECNN_OPTIONS)})", kwargs)
    else:
        out["arch_kwargs"] = {}
    if probe_layer is not None:
        out["arch_kwargs"] = {**out["arch_kwargs"], "probe_layer": probe_layer}

    n = out["num_classes"] = _int_in(data, "num_classes", limits.NUM_CLASSES, source)
    names = data.get("class_names")
    if names is not None:
        if not isinstance(names, (list, tuple)):
            raise _bad(source, "class_names", f"a list of num_classes = {n} names", names)
        if len(names) != n:
            raise CheckpointError(f"'{source}': checkpoint field 'class_names' has {len(names)} names but num_classes is {n}. "
                                  "The file is damaged or was not written by cnnviz; re-save it with save_checkpoint().")
        out["class_names"] = check_class_names(names, f"'{source}': checkpoint field 'class_names'")

    size = data["input_size"]
    if not isinstance(size, (list, tuple)) or len(size) != 3 or not all(_is_int(v) for v in size):
        raise _bad(source, "input_size", "[C, H, W] (three integers)", size)
    c = _int_in(data, "input_size", limits.IN_CHANS, source, value=size[0])
    lo, hi = limits.IMAGE_SIDE
    if not all(lo <= int(v) <= hi for v in size[1:]):
        raise _bad(source, "input_size", f"[C, H, W] with H and W in {lo}..{hi} pixels", size)
    out["input_size"] = [int(v) for v in size]
    if data.get("in_chans") is not None:
        if not _is_int(data["in_chans"]) or int(data["in_chans"]) != c:
            raise _bad(source, "in_chans", f"input_size[0] = {c}", data["in_chans"])
        out["in_chans"] = c
    out["mean"] = _floats(data, "mean", c, -1e3, 1e3, source)
    out["std"] = _floats(data, "std", c, 1e-6, 1e3, source)
    if data.get("pixel_mean") is not None:
        out["pixel_mean"] = _floats(data, "pixel_mean", c, 0.0, 1.0, source)
    if data.get("mean_image") is not None:
        out["mean_image"] = _mean_image(data["mean_image"], c, source)

    mode = data.get("mode")
    if mode is not None and mode not in MODES:
        raise _bad(source, "mode", f"one of {', '.join(MODES)} or None", mode)
    for key in ("metrics", "config", "train_state"):
        v = data.get(key)
        if v is not None and (not isinstance(v, dict) or not all(isinstance(k, str) for k in v)):
            raise _bad(source, key, "a dict with string keys (or None)", type(v).__name__)

    sd = data["state_dict"]
    if not isinstance(sd, dict) or not sd:
        raise _bad(source, "state_dict", "a non-empty dict of parameter name -> tensor", type(sd).__name__)
    for k, t in sd.items():
        if not isinstance(k, str) or not isinstance(t, torch.Tensor):
            raise _bad(source, f"state_dict[{k!r}]", "a tensor under a string key", type(t).__name__)
        if t.layout != torch.strided:
            raise _bad(source, f"state_dict[{k!r}]", "a dense tensor", str(t.layout))
        if check_tensors and (t.is_floating_point() or t.is_complex()) and t.numel() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"'{source}': state_dict[{k!r}] holds NaN or Infinity: the run that wrote it diverged. "
                                  "Use an earlier checkpoint or retrain with a lower --lr.")
    return out
