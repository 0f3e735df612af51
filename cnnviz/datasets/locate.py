"""Where local copies of the built-in datasets are looked for, and the torchvision download fallback."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cnnviz.errors import DataError


def data_roots(data_root: str | None = None) -> list[Path]:
    """Where local copies are looked for, in order: ``--data-root``, ``$CNNVIZ_DATA``,
    ``~/.cache/cnnviz/data`` (``$XDG_CACHE_HOME``), ``/usr/share/datasets`` (Debian's dataset packages)."""
    roots: list[Path] = []
    if data_root:
        roots.append(Path(data_root).expanduser())
    if os.environ.get("CNNVIZ_DATA"):
        roots.append(Path(os.environ["CNNVIZ_DATA"]).expanduser())
    roots.append(cache_home() / "data")
    roots.append(Path("/usr/share/datasets"))
    return roots


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/cnnviz`` (default ``~/.cache/cnnviz``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "cnnviz"


def download_root(data_root: str | None = None) -> Path:
    """Where a torchvision download goes: ``--data-root``, ``$CNNVIZ_DATA`` or the cache dir."""
    return data_roots(data_root)[0]


def offline_error(name: str, roots: Sequence[Path], why: str) -> DataError:
    where = ", ".join(str(r) for r in roots)
    hint = "`apt install dataset-fashion-mnist`, or " if name == "fashion-mnist" else ""
    if name == "cifar10":
        hint = "put cifar10-jpeg.tar.gz (or its extracted cifar10/ folder) in --data-root DIR, or "
    return DataError(
        f"dataset {name!r} is not available locally (looked in {where}) and could not be downloaded ({why}). "
        f"Fix: {hint}copy the files into --data-root DIR (torchvision layout), or run once with internet access."
    )


def download(name: str, data_root: str | None, roots: Sequence[Path]) -> None:
    """torchvision download into ``download_root`` (raises DataError when offline)."""
    import torchvision.datasets as tvd

    cls = {"fashion-mnist": tvd.FashionMNIST, "mnist": tvd.MNIST, "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}[name]
    root = download_root(data_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except Exception as e:  # URLError, socket timeouts, HTTP errors, checksum failures...
        msg = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise offline_error(name, roots, msg) from None
