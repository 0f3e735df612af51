"""``--device auto|cpu|cuda|mps`` -> ``torch.device``; no module-level device."""

from __future__ import annotations

from cnnviz.errors import CnnvizError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> "torch.device":  # noqa: F821
    """The device for ``name``: ``auto`` picks CUDA, then MPS, then CPU.

    Asking for an accelerator that is not present is a usage error, not a silent fallback.
    """
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CnnvizError(f"--device {name}: CUDA is not available on this machine. Use --device cpu or auto.")
        return torch.device(name)
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise CnnvizError("--device mps: Apple MPS is not available on this machine. Use --device cpu or auto.")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise CnnvizError(f"--device {name!r} is not one of {', '.join(DEVICE_CHOICES)}.")
