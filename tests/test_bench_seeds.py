"""benchmarks/bench_seeds.py: the 3-class folder it makes is a real, stratified subset of the CIFAR split."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz.datasets.cifar import CIFAR10_CLASSES

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_seeds.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_seeds", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cifar_folder(root: Path, per_class: dict[str, int]) -> None:
    """A tiny ``root/cifar10/{train,test}/<class>/N.jpg`` whose pixels encode the class (flat grey level)."""
    for split, n in per_class.items():
        for c, name in enumerate(CIFAR10_CLASSES):
            d = root / "cifar10" / split / name
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((32, 32, 3), 20 * c + 5, np.uint8)).save(d / f"{i:04d}.jpg", quality=95)


def test_folder_holds_the_three_classes_with_their_own_pixels(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _cifar_folder(tmp_path / "data", {"train": 5, "test": 3})
    bench = _bench()
    out = tmp_path / "cifar3"
    counts = bench.make_folder(str(tmp_path / "data"), out, per_class=4, test_per_class=2)
    assert counts == {"train": 12, "test": 6}
    for split, n in (("train", 4), ("test", 2)):
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(bench.FOLDER_CLASSES)
        for name in bench.FOLDER_CLASSES:
            files = sorted((out / split / name).glob("*.png"))
            assert len(files) == n
            level = 20 * CIFAR10_CLASSES.index(name) + 5
            for f in files:  # each image came from its own class, not another one
                a = np.asarray(Image.open(f))
                assert a.shape == (32, 32, 3) and abs(float(a.mean()) - level) < 3


def test_folder_refuses_a_non_empty_target(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _cifar_folder(tmp_path / "data", {"train": 2, "test": 1})
    out = tmp_path / "cifar3"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(SystemExit):
        _bench().make_folder(str(tmp_path / "data"), out, per_class=1, test_per_class=1)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
