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

from cnnviz.errors import CheckpointError

FORMAT = "cnnviz-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("arch", "num_classes", "input_size", "mean", "std", "state_dict")


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Atomically write a checkpoint dict (see module docstring) to ``path``.

    ``payload`` must hold only tensors, primitives, lists and dicts (what ``weights_only`` loads).
    Missing ``format``/``format_version`` keys are filled in. Returns the path written.
    """
    import torch

    from cnnviz.atomic import atomic_path

    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks keys {missing}")
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str], map_location: str = "cpu") -> dict[str, Any]:
    """Load and validate a cnnviz checkpoint; never executes code from the file.

    Raises ``CheckpointError`` (one clear line) for a missing, truncated, foreign or unsafe file.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: '{p}'. Pass a file written by `cnnviz train` or save_checkpoint().")
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
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"'{p}' has checkpoint format version {version!r}; this cnnviz reads up to {FORMAT_VERSION}. Upgrade cnnviz.")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"'{p}' lacks required checkpoint keys {missing}.")
    return data
