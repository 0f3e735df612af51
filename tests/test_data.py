"""cnnviz.data: dataset specs, local files first, folders with bad files, stratified subsets, loaders."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from cnnviz.data import eval_transform, make_loader, open_split, read_idx, stratified_indices
from cnnviz.errors import DataError

FMNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fmnist = pytest.mark.skipif(not (FMNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed")


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def _make_folder(root: Path, classes=("cat", "dog", "eel"), per_class=6, size=(20, 24)) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_idx_round_trip_and_data_root(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 255, (30, 28, 28), dtype=np.uint8)
    labels = np.arange(30) % 10
    for pre in ("train", "t10k"):
        _write_idx(d / f"{pre}-images-idx3-ubyte.gz", imgs)
        _write_idx(d / f"{pre}-labels-idx1-ubyte.gz", labels)
    assert np.array_equal(read_idx(d / "train-images-idx3-ubyte.gz"), imgs)
    ds = open_split("MNIST", "test", data_root=str(tmp_path))
    assert len(ds) == 30 and ds.class_names[3] == "3" and ds.channels == 1
    img, y = ds[7]
    assert img.size == (28, 28) and y == 7 and np.array_equal(np.asarray(img), imgs[7])


def test_truncated_idx_is_a_clear_error(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    _write_idx(d / "train-images-idx3-ubyte.gz", np.zeros((5, 28, 28)))
    _write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(5))
    raw = gzip.open(d / "train-images-idx3-ubyte.gz").read()
    with gzip.open(d / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(raw[:200])
    with pytest.raises(DataError, match="truncated"):
        open_split("mnist", "train", data_root=str(tmp_path))


def test_unknown_spec_suggests():
    with pytest.raises(DataError, match="fashion-mnist"):
        open_split("fashon-mnist")


def test_offline_cifar_is_a_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def no_net(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(tvd.CIFAR10, "__init__", no_net)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="not available locally.*network unreachable"):
        open_split("cifar10", data_root=str(tmp_path / "empty"))


def test_stratified_limit_keeps_proportions_and_is_seeded():
    targets = [0] * 60 + [1] * 30 + [2] * 10
    a = stratified_indices(targets, 20, seed=0)
    b = stratified_indices(targets, 20, seed=0)
    c = stratified_indices(targets, 20, seed=1)
    assert a == b and a != c and len(set(a)) == 20
    counts = np.bincount(np.asarray(targets)[a])
    assert counts.tolist() == [12, 6, 2]


def test_folder_single_split_is_deterministic_and_disjoint(tmp_path):
    root = _make_folder(tmp_path / "pets")
    tr, te = open_split(str(root), "train"), open_split(str(root), "test")
    assert tr.class_names == ["cat", "dog", "eel"]
    assert len(tr) + len(te) == 18 and len(te) == 3
    assert not set(tr.paths) & set(te.paths)
    img, y = tr[0]
    assert img.mode == "RGB" and img.size == (24, 20) and y == 0


def test_folder_train_val_layout_and_corrupt_files_skipped(tmp_path):
    root = tmp_path / "ds"
    _make_folder(root / "train")
    _make_folder(root / "val", per_class=2)
    (root / "train" / "dog" / "broken.png").write_bytes(b"not a png at all")
    # a file with a valid header but a truncated body fails only when decoded
    good = (root / "train" / "eel" / "0.png").read_bytes()
    (root / "train" / "eel" / "zz_trunc.png").write_bytes(good[: len(good) // 2])
    tr = open_split(str(root), "train")
    assert tr.skipped == 1 and len(tr) == 19
    seen = [tr[i][1] for i in range(len(tr))]  # never raises mid-epoch
    assert tr.skipped == 2 and len(seen) == 19
    te = open_split(str(root), "val")
    assert len(te) == 6 and te.class_names == tr.class_names


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no class subfolders"):
        (tmp_path / "empty").mkdir()
        open_split(str(tmp_path / "empty"))
    root = _make_folder(tmp_path / "x", classes=("a", "b"))
    (root / "c").mkdir()
    with pytest.raises(DataError, match="has no images"):
        open_split(str(root))


def test_eval_transform_and_loader_shapes(tmp_path, tiny_cnn):
    from cnnviz.models import build_model

    root = _make_folder(tmp_path / "pets")
    ds = open_split(str(root), "train")
    _, info1 = build_model("simplecnn", num_classes=3, in_chans=1, input_size=(16, 16))
    x = eval_transform(info1)(ds[0][0])
    assert tuple(x.shape) == (1, 16, 16)
    loader = make_loader(ds, eval_transform(tiny_cnn[1]), batch_size=4, shuffle=True, seed=3)
    xb, yb = next(iter(loader))
    assert tuple(xb.shape) == (4, 3, 32, 32) and str(xb.dtype) == "torch.float32" and str(yb.dtype) == "torch.int64"
    order1 = [int(v) for _, y in make_loader(ds, eval_transform(tiny_cnn[1]), batch_size=5, shuffle=True, seed=3) for v in y]
    order2 = [int(v) for _, y in make_loader(ds, eval_transform(tiny_cnn[1]), batch_size=5, shuffle=True, seed=3) for v in y]
    assert order1 == order2


@needs_fmnist
def test_fashion_mnist_local_gray_to_rgb(lite0):
    import torch

    ds = open_split("fashion-mnist", "test", limit=50, seed=0)
    assert len(ds) == 50 and ds.class_names[0] == "T-shirt/top" and ds.class_counts() == [5] * 10
    _, info = lite0
    x = eval_transform(info)(ds[0][0])
    assert tuple(x.shape) == (3, 224, 224)
    assert torch.allclose(x[0] * info.std[0] + info.mean[0], x[1] * info.std[1] + info.mean[1], atol=1e-5)  # gray replicated


def test_local_cifar10_python_layout(tmp_path):
    import pickle

    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [*[(f"data_batch_{i}", 4) for i in range(1, 6)], ("test_batch", 6)]:
        batch = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
        (d / name).write_bytes(pickle.dumps(batch))
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    tr = open_split("cifar10", "train", data_root=str(tmp_path))
    te = open_split("cifar-10", "test", data_root=str(tmp_path))
    assert len(tr) == 20 and len(te) == 6 and tr.class_names[2] == "c2" and tr.channels == 3
    img, y = te[5]
    assert img.mode == "RGB" and img.size == (32, 32) and y == 5
    raw = pickle.loads((d / "test_batch").read_bytes())[b"data"][5].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(np.asarray(img), raw)  # channel-planar rows decoded to HWC correctly


def test_folder_images_decode_like_the_explainers(tmp_path):
    """Training/eval pixels equal what gradcam & friends load: 16-bit scaled, transparency on white."""
    import numpy as np
    from PIL import Image

    from cnnviz.data import open_split
    from cnnviz.images import load_image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "a" / "deep.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :4, 3] = 0
    rgba[:, 4:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b" / "alpha.png")
    ds = open_split(str(tmp_path), "train")
    for i in range(len(ds)):
        img, label = ds[i]
        path = tmp_path / ds.class_names[label] / ("deep.png" if ds.class_names[label] == "a" else "alpha.png")
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), load_image(path))


def test_mean_image_resizes_like_the_model_input_and_adapts_channels():
    """The mean image equals the mean of what the model sees (the one transform, mean 0 / std 1), RGB or grey."""
    from cnnviz.datasets.base import ArrayImages
    from cnnviz.transforms import to_tensor

    a = np.zeros((2, 6, 6, 3), np.uint8)
    a[0, :, :3, 0] = 255  # image 0: left half red
    a[1, ..., 2] = 200  # image 1: all blue
    ds = ArrayImages(a, [0, 1], ["x", "y"], name="t")
    for chans in (3, 1):
        seen = np.mean([to_tensor(im, (0.0,) * chans, (1.0,) * chans, (4, 4))[0].numpy() for im in a], axis=0)
        got = ds.mean_image(chans, (4, 4))
        assert got.shape == (chans, 4, 4) and got.dtype == np.float32
        np.testing.assert_allclose(got, seen, atol=1e-6)
    assert ds.mean_image(3, (4, 4))[0, :, 0].min() > 0.4 > 0.1 > ds.mean_image(3, (4, 4))[0, :, 3].max()
