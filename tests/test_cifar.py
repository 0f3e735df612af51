"""CIFAR-10 offline: the JPEG archive, its extracted folder and torchvision's layout; the decoded-image cache."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cnnviz.data import CIFAR10_CLASSES, open_split
from cnnviz.errors import DataError

ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
if not ARCHIVE.is_file():
    ARCHIVE = Path("/work/shared/data/cifar10-jpeg.tar.gz")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CNNVIZ_DATA", raising=False)


def _jpeg(rng: np.random.Generator, side: int = 32) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_archive(path: Path, per_class=(2, 1), classes=CIFAR10_CLASSES, odd: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """A tiny cifar10-jpeg.tar.gz: ``cifar10/<split>/<class>/NNNN.jpg``; returns member name -> bytes."""
    rng = np.random.default_rng(0)
    members = {f"cifar10/{split}/{c}/{i:04d}.jpg": _jpeg(rng) for split, n in zip(("train", "test"), per_class)
               for c in classes for i in range(n)}
    members.update(odd or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for name, data in sorted(members.items(), reverse=True):  # not in sorted order: the reader sorts
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return members


def _decode(data: bytes) -> np.ndarray:
    from cnnviz.images import decode_image

    return decode_image(io.BytesIO(data), "x")


def test_archive_is_read_decoded_like_load_image_and_cached(tmp_path, monkeypatch):
    root = tmp_path / "root"
    members = make_archive(root / "cifar10-jpeg.tar.gz")
    before = (root / "cifar10-jpeg.tar.gz").read_bytes()
    tr = open_split("cifar10", "train", data_root=str(root))
    te = open_split("cifar-10", "test", data_root=str(root))
    assert len(tr) == 20 and len(te) == 10 and tr.class_names == CIFAR10_CLASSES and tr.channels == 3
    assert tr.class_counts() == [2] * 10 and te.targets == list(range(10))
    assert tr.images.dtype == np.uint8 and tr.images.shape == (20, 32, 32, 3)  # uint8 at the native size
    np.testing.assert_array_equal(tr.array(3), _decode(members["cifar10/train/automobile/0001.jpg"]))
    np.testing.assert_array_equal(np.asarray(te[9][0]), _decode(members["cifar10/test/truck/0000.jpg"]))
    assert (root / "cifar10-jpeg.tar.gz").read_bytes() == before and sorted(os.listdir(root)) == ["cifar10-jpeg.tar.gz"]
    # the next open reads the cache: decoding is not needed any more
    from cnnviz.datasets import cifar

    monkeypatch.setattr(cifar, "_decode", lambda *a: (_ for _ in ()).throw(AssertionError("decoded again")))
    again = open_split("cifar10", "train", data_root=str(root))
    np.testing.assert_array_equal(np.asarray(again.images), np.asarray(tr.images))
    # a changed archive is decoded again (the key is its size and mtime)
    os.utime(root / "cifar10-jpeg.tar.gz", ns=(1, 1))
    with pytest.raises(AssertionError, match="decoded again"):
        open_split("cifar10", "train", data_root=str(root))


def test_extracted_folder_and_data_root_lookup(tmp_path, monkeypatch):
    make_archive(tmp_path / "a" / "cifar10-jpeg.tar.gz")
    with tarfile.open(tmp_path / "a" / "cifar10-jpeg.tar.gz") as tf:
        tf.extractall(tmp_path / "b", filter="data")
    from_archive = open_split("cifar10", "test", data_root=str(tmp_path / "a"))
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path / "b"))  # found through $CNNVIZ_DATA, no --data-root
    from_folder = open_split("cifar10", "test")
    assert from_folder.source == str(tmp_path / "b" / "cifar10")
    np.testing.assert_array_equal(np.asarray(from_folder.images), np.asarray(from_archive.images))
    assert from_folder.targets == from_archive.targets
    # the same folder as an ImageFolder spec gives the same pixels (the explainers' decoder)
    folder_ds = open_split(str(tmp_path / "b" / "cifar10"), "test")
    np.testing.assert_array_equal(folder_ds.array(4), from_folder.array(4))


def make_batches(d: Path, train_per_batch: int = 3, test: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny torchvision ``cifar-10-batches-py`` folder (protocol-2 pickles, like the official Python 2 files);
    returns ``{"train": (N, 3072) rows, "test": ...}`` and the labels under ``"<split>-labels"``."""
    import pickle

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"train": [], "test": [], "train-labels": [], "test-labels": []}
    for name, n in [*[(f"data_batch_{i}", train_per_batch) for i in range(1, 6)], ("test_batch", test)]:
        split = "test" if name == "test_batch" else "train"
        data, labels = rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist()
        (d / name).write_bytes(pickle.dumps({b"batch_label": name.encode(), b"data": data, b"labels": labels,
                                             b"filenames": [b"x.png"] * n}, protocol=2))
        rows[split].append(data)
        rows[f"{split}-labels"] += labels
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                                                   b"num_vis": 3072}, protocol=2))
    return {k: (np.concatenate(v) if k in ("train", "test") else np.asarray(v)) for k, v in rows.items()}


def test_torchvision_layout_wins_and_is_read_without_pickle_code(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    rows = make_batches(d)
    make_archive(tmp_path / "cifar10-jpeg.tar.gz")  # also there: torchvision's files are the originals, so they win
    tr = open_split("cifar10", "train", data_root=str(tmp_path))
    te = open_split("cifar10", "test", data_root=str(tmp_path))
    assert len(tr) == 15 and len(te) == 4 and te.source == str(d) and te.class_names == CIFAR10_CLASSES
    assert tr.images.dtype == np.uint8 and tr.images.shape == (15, 32, 32, 3)
    assert tr.targets == rows["train-labels"].tolist() and te.targets == rows["test-labels"].tolist()
    # a row is R plane, G plane, B plane (1024 bytes each, row-major): image 7 is the second of data_batch_3
    want = rows["train"][7].reshape(3, 32, 32).transpose(1, 2, 0)
    np.testing.assert_array_equal(tr.array(7), want)
    np.testing.assert_array_equal(np.asarray(te[3][0]), rows["test"][3].reshape(3, 32, 32).transpose(1, 2, 0))


def test_default_data_root_lookup_order(tmp_path, monkeypatch):
    """``--data-root`` first, then ``$CNNVIZ_DATA``, then ``$XDG_CACHE_HOME/cnnviz/data`` (``~/.cache/...``)."""
    cache_root = tmp_path / "xdg" / "cnnviz" / "data"
    make_batches(cache_root / "cifar-10-batches-py", test=2, seed=1)
    assert open_split("cifar10", "test").source == str(cache_root / "cifar-10-batches-py")  # nothing given
    make_archive(tmp_path / "env" / "cifar10-jpeg.tar.gz")
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path / "env"))
    assert len(open_split("cifar10", "test")) == 10  # $CNNVIZ_DATA before the cache dir
    make_batches(tmp_path / "given" / "cifar-10-batches-py", test=3, seed=2)
    got = open_split("cifar10", "test", data_root=str(tmp_path / "given"))
    assert len(got) == 3 and got.source == str(tmp_path / "given" / "cifar-10-batches-py")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # without $XDG_CACHE_HOME: ~/.cache/cnnviz/data
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv("CNNVIZ_DATA")
    make_batches(tmp_path / "home" / ".cache" / "cnnviz" / "data" / "cifar-10-batches-py", test=5)
    assert len(open_split("cifar10", "test")) == 5


def test_download_when_nothing_is_local_goes_to_the_data_root(tmp_path, monkeypatch):
    """Online, torchvision's CIFAR10 downloads into ``--data-root`` and the files it wrote are read."""
    import torchvision.datasets as tvd

    calls = []

    class FakeCIFAR10:  # what torchvision.datasets.CIFAR10(root, train, download=True) leaves on disk
        def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
            calls.append((root, train, download))
            if not (Path(root) / "cifar-10-batches-py").is_dir():
                make_batches(Path(root) / "cifar-10-batches-py", test=6)

    monkeypatch.setattr(tvd, "CIFAR10", FakeCIFAR10)
    te = open_split("cifar10", "test", data_root=str(tmp_path / "dl"))
    assert len(te) == 6 and te.source == str(tmp_path / "dl" / "cifar-10-batches-py")
    assert calls == [(str(tmp_path / "dl"), True, True), (str(tmp_path / "dl"), False, True)]

    class Offline:
        def __init__(self, *a, **k) -> None:
            raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(tvd, "CIFAR10", Offline)
    with pytest.raises(DataError, match="cifar10-jpeg.tar.gz") as e:
        open_split("cifar10", "test", data_root=str(tmp_path / "empty"))
    assert "\n" not in str(e.value) and "name resolution" in str(e.value)


@pytest.mark.parametrize("odd, msg", [
    ({"cifar10/train/cat/big.jpg": None}, "not a 32x32"),
    ({"cifar10/train/cat/bad.jpg": b"not a jpeg"}, "cannot read image"),
])
def test_damaged_archives_are_one_line_errors(tmp_path, odd, msg):
    rng = np.random.default_rng(1)
    odd = {k: (v if v is not None else _jpeg(rng, 40)) for k, v in odd.items()}
    make_archive(tmp_path / "cifar10-jpeg.tar.gz", odd=odd)
    with pytest.raises(DataError, match=msg) as e:
        open_split("cifar10", "train", data_root=str(tmp_path))
    assert "\n" not in str(e.value)


def test_archive_missing_classes_or_truncated(tmp_path):
    make_archive(tmp_path / "x" / "cifar10-jpeg.tar.gz", classes=CIFAR10_CLASSES[:9])
    with pytest.raises(DataError, match="expected the ten CIFAR-10 classes"):
        open_split("cifar10", "train", data_root=str(tmp_path / "x"))
    make_archive(tmp_path / "y" / "cifar10-jpeg.tar.gz")
    raw = (tmp_path / "y" / "cifar10-jpeg.tar.gz").read_bytes()
    (tmp_path / "y" / "cifar10-jpeg.tar.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="damaged"):
        open_split("cifar10", "train", data_root=str(tmp_path / "y"))


@pytest.mark.slow
@pytest.mark.skipif(not ARCHIVE.is_file(), reason="no cifar10-jpeg.tar.gz")
def test_the_real_archive(tmp_path):
    """The shared 19 MB archive: all 60,000 images, 5,000 / 1,000 a class, pixels as load_image decodes them."""
    root = tmp_path / "root"
    root.mkdir()
    (root / ARCHIVE.name).symlink_to(ARCHIVE)
    tr = open_split("cifar10", "train", data_root=str(root))
    te = open_split("cifar10", "test", data_root=str(root))
    assert len(tr) == 50000 and len(te) == 10000 and tr.class_counts() == [5000] * 10 and te.class_counts() == [1000] * 10
    assert tr.images.nbytes == 50000 * 32 * 32 * 3
    with tarfile.open(ARCHIVE) as tf:
        data = tf.extractfile("cifar10/test/ship/0007.jpg").read()
    np.testing.assert_array_equal(te.array(8 * 1000 + 7), _decode(data))
