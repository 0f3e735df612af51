"""Shared fixtures: tiny models and images for unit tests, the real bundled Lite0 for a few e2e tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Tests must never reach a hub: the machine is offline and CI must be deterministic.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TORCH_HOME", str(Path(__file__).parent / ".torch-home-unused"))


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield


@pytest.fixture
def one_thread():
    """One intra-op thread for tests of tiny models: 2 threads cost more in sync than they save,
    and far more when the machine is shared."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_cnn():
    """A random simplecnn (width 4, depth 2) for 3x32x32 inputs: ``(model, info)``."""
    import torch

    from cnnviz.models import build_model

    torch.manual_seed(0)
    return build_model("simplecnn", num_classes=5, in_chans=3, arch_kwargs={"width": 4, "depth": 2}, input_size=(32, 32))


@pytest.fixture(scope="session")
def lite0():
    """The real bundled ImageNet EfficientNet-Lite0 ``(model, info)`` (shared: do not modify it)."""
    from cnnviz.models import load_model

    return load_model("efficientnet_lite0", weights="pretrained")


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> dict[str, Path]:
    """scikit-image's ``chelsea`` (cat) and ``coffee`` (espresso) saved as JPEGs."""
    from PIL import Image

    from cnnviz.images import sample_image

    d = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("chelsea", "coffee"):
        p = d / f"{name}.jpg"
        Image.fromarray(sample_image(name)).save(p, quality=92)
        out[name] = p
    return out


@pytest.fixture
def rgb_image() -> np.ndarray:
    """A deterministic 48x64 RGB uint8 test pattern."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
