"""Hostile and careless input to the data and training paths: nothing executed, nothing lost, one line, exit 2."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cnnviz.cli.main import cli
from cnnviz.data import open_split
from cnnviz.errors import DataError, ImageError

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_fmnist = pytest.mark.skipif(not FMNIST.is_file(), reason="dataset-fashion-mnist not installed")
TINY = ["--data", "fashion-mnist", "--model", "simplecnn:width=4,depth=2", "--mode", "scratch", "--limit", "160",
        "--eval-limit", "80", "--batch-size", "32", "--device", "cpu", "--no-progress"]


def one_line_exit_2(r) -> None:
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


# --------------------------------------------------------------------------------------------
# code in a dataset file never runs
# --------------------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_cifar_batch_with_a_reduce_payload_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    marker = tmp_path / "pwned"
    good = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    for i in range(1, 6):
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(good, protocol=2))
    (d / "data_batch_3").write_bytes(pickle.dumps({b"data": _Payload(marker), b"labels": [0]}, protocol=2))
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"] * 10}))
    with pytest.raises(DataError, match=r"refusing to read .*data_batch_3.*references posix.mkdir") as e:
        open_split("cifar10", "train", data_root=str(tmp_path))
    assert not marker.exists() and "\n" not in str(e.value)
    r = CliRunner().invoke(cli, ["train", "--data", "cifar10", "--data-root", str(tmp_path), "--model", "simplecnn",
                                 "--mode", "scratch", "--out", str(tmp_path / "run")])
    one_line_exit_2(r)
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_cifar_labels_out_of_range_are_refused(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    (d / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 99]}))
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"] * 10}))
    with pytest.raises(DataError, match="outside the 10 classes"):
        open_split("cifar10", "test", data_root=str(tmp_path))


def test_a_tampered_cache_entry_is_data_never_code(tmp_path, monkeypatch):
    """Cache files are read with allow_pickle=False: an object array in one is ignored and rebuilt."""
    import io
    import tarfile

    from PIL import Image

    from cnnviz.data import CIFAR10_CLASSES

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with tarfile.open(tmp_path / "cifar10-jpeg.tar.gz", "w:gz") as tf:
        for split in ("train", "test"):
            for c in CIFAR10_CLASSES:
                buf = io.BytesIO()
                Image.new("RGB", (32, 32), (10, 20, 30)).save(buf, format="JPEG")
                info = tarfile.TarInfo(f"cifar10/{split}/{c}/0000.jpg")
                info.size = len(buf.getvalue())
                tf.addfile(info, io.BytesIO(buf.getvalue()))
    first = open_split("cifar10", "test", data_root=str(tmp_path))
    entry = next((tmp_path / "xdg" / "cnnviz" / "decoded").iterdir())
    marker = tmp_path / "pwned"
    np.save(entry / "test-images.npy", np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    again = open_split("cifar10", "test", data_root=str(tmp_path))
    assert not marker.exists()
    np.testing.assert_array_equal(np.asarray(again.images), np.asarray(first.images))


def test_idx_gzip_bomb_header_is_refused_before_reading(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    header = bytes([0, 0, 8, 3]) + b"".join(int(v).to_bytes(4, "big") for v in (100_000, 280, 280))
    with gzip.open(d / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(header + bytes(1 << 16))  # a few KB on disk claiming 7.8 GB
    with gzip.open(d / "train-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(10))
    with pytest.raises(DataError, match="claims 7840000000 bytes"):
        open_split("mnist", "train", data_root=str(tmp_path))


# --------------------------------------------------------------------------------------------
# pixel bombs
# --------------------------------------------------------------------------------------------
def png_bomb(path: Path, side: int = 13000) -> Path:
    """A valid 1-bit PNG of side x side pixels: a few KB on disk, 507 MB as RGB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes((side + 7) // 8)
    raw = zlib.compress(row * side, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def test_pixel_bomb_is_refused_with_bounded_memory_and_pil_guard_untouched(tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 100_000
    code = ("import resource, sys\nfrom PIL import Image\nguard = Image.MAX_IMAGE_PIXELS\n"
            "from cnnviz.images import load_image\nfrom cnnviz.errors import ImageError\n"
            f"try:\n    load_image({str(bomb)!r})\nexcept ImageError as e:\n    print('refused:', e)\n"
            "assert Image.MAX_IMAGE_PIXELS == guard, 'PIL global guard changed'\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
            "print('peak_mb', int(hwm) // 1024)\n")  # VmHWM: ru_maxrss would include the forking parent
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "refused:" in r.stdout and "13000x13000" in r.stdout
    assert int(r.stdout.split("peak_mb")[1]) < 400  # imports only: nothing near the 507 MB bitmap


def test_pixel_bomb_in_gradcam_and_in_a_folder_dataset(tmp_path):
    from PIL import Image

    r = CliRunner().invoke(cli, ["gradcam", str(png_bomb(tmp_path / "bomb.png")), "--model", "simplecnn", "--weights", "random",
                                 "--out", str(tmp_path / "cams")])
    one_line_exit_2(r)
    assert "13000x13000" in r.stderr
    for c in ("a", "b"):
        (tmp_path / "ds" / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (200 * (c == "a"), 0, 0)).save(tmp_path / "ds" / c / f"{i}.png")
    png_bomb(tmp_path / "ds" / "a" / "3-bomb.png")
    ds = open_split(str(tmp_path / "ds"), "train")
    assert len(ds) == 7 and ds.skipped == 0  # the header is fine: refused only when decoded
    assert ds.array(ds.paths.index(tmp_path / "ds" / "a" / "3-bomb.png")) is None and ds.skipped == 1


# --------------------------------------------------------------------------------------------
# a file that fails to decode is skipped, labels never shift
# --------------------------------------------------------------------------------------------
def test_undecodable_file_is_skipped_and_labels_never_shift(tmp_path, tiny_cnn):
    import torch
    from PIL import Image

    from cnnviz.data import eval_transform, make_loader

    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    for c, rgb in colours.items():
        (tmp_path / c).mkdir()
        for i in range(4):
            Image.new("RGB", (32, 32), rgb).save(tmp_path / c / f"{i}.png")
    good = (tmp_path / "red" / "0.png").read_bytes()
    (tmp_path / "red" / "2.png").write_bytes(good[: len(good) // 2])  # header fine, pixels truncated
    ds = open_split(str(tmp_path), "train")
    assert len(ds) == 12
    _, info = tiny_cnn
    seen = 0
    for x, y in make_loader(ds, eval_transform(info), batch_size=5):
        for img, label in zip(x, y):  # the colour of every image matches its label
            mean = img.view(3, -1).mean(1) * torch.tensor(info.std) + torch.tensor(info.mean)
            assert ("red", "green", "blue")[int(mean.argmax())] == ds.class_names[int(label)]
            seen += 1
    assert seen == 11 and ds.skipped == 1
    bad = ds.paths.index(tmp_path / "red" / "2.png")
    img, label = ds[bad]  # the map-style view gives the next readable image with *its own* label
    nxt = ds.paths.index(tmp_path / "red" / "3.png")
    assert label == ds.targets[nxt] and np.array_equal(np.asarray(img), np.asarray(ds[nxt][0]))


# --------------------------------------------------------------------------------------------
# nothing of an earlier run is removed before the new result is ready; diverged runs fail
# --------------------------------------------------------------------------------------------
@needs_fmnist
def test_a_typo_never_deletes_results(tmp_path):
    run = tmp_path / "x"
    run.mkdir()
    (run / "metrics.json").write_text('{"test_accuracy": 0.9}')
    (run / "ckpt.pt").write_bytes(b"earlier checkpoint")
    r = CliRunner().invoke(cli, ["train", *TINY, "--data", "fashion-mnistt", "--out", str(run)])
    one_line_exit_2(r)
    assert (run / "metrics.json").read_text() == '{"test_accuracy": 0.9}' and (run / "ckpt.pt").read_bytes() == b"earlier checkpoint"


@needs_fmnist
def test_a_diverging_run_fails_without_nan_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "div"
    r = CliRunner().invoke(cli, ["train", *TINY, "--epochs", "1", "--out", str(run)])
    assert r.exit_code == 0, r.output
    before = (run / "metrics.json").read_text()
    good = (run / "ckpt.pt").read_bytes()
    r = CliRunner().invoke(cli, ["train", *TINY, "--epochs", "2", "--lr", "1e12", "--optimizer", "sgd", "--out", str(run)])
    one_line_exit_2(r)
    assert "diverged" in r.stderr and "NaN" not in (run / "metrics.json").read_text()
    assert (run / "metrics.json").read_text() == before and (run / "ckpt.pt").read_bytes() == good  # nothing replaced
    json.loads(before)  # strict JSON


@needs_fmnist
def test_a_run_that_diverges_at_once_leaves_no_trace(tmp_path):
    """``--lr 1e9``: exit 2, one line, and the RUN_DIR that did not exist still does not (no tb/ either)."""
    r = CliRunner().invoke(cli, ["train", *TINY, "--epochs", "1", "--lr", "1e9", "--optimizer", "sgd", "--json",
                                 "--out", str(tmp_path / "run")])
    one_line_exit_2(r)
    assert "diverged" in r.stderr and r.stdout == "" and not (tmp_path / "run").exists()


@needs_fmnist
def test_a_rerun_replaces_the_earlier_result_only_when_finished(tmp_path, monkeypatch):
    """While a new run trains into a RUN_DIR holding a finished one, ckpt.pt and metrics.json stay the earlier
    run's; a failure at the very end (here: writing metrics.json) replaces nothing, --resume finishes the new
    run from ckpt.partial.pt, and only then are both replaced (atomically) and the partial file removed."""
    from cnnviz.train import TrainConfig, train_run
    from cnnviz.train import loop

    run = tmp_path / "run"
    cfg = TrainConfig(data="fashion-mnist", model="simplecnn:width=4,depth=2", mode="scratch", epochs=2, limit=160,
                      eval_limit=80, batch_size=32, device="cpu", out=str(run), tensorboard=False, lr=3e-3)
    first = train_run(cfg, progress=False)
    before = {n: (run / n).read_bytes() for n in ("ckpt.pt", "metrics.json")}
    again = TrainConfig(**{**cfg.to_dict(), "seed": 1, "epochs": 3})

    def disk_full_at_metrics(path, text, *a, **k):
        if Path(path).name == "metrics.json":
            raise OSError(28, "No space left on device")
        return write_text(path, text, *a, **k)

    write_text = loop.write_text
    monkeypatch.setattr(loop, "write_text", disk_full_at_metrics)
    with pytest.raises(OSError):
        train_run(again, progress=False)
    monkeypatch.undo()
    assert {n: (run / n).read_bytes() for n in before} == before and (run / "ckpt.partial.pt").is_file()
    assert json.loads(before["metrics.json"])["test_accuracy"] == first["test_accuracy"]
    done = train_run(TrainConfig(**{**again.to_dict(), "resume": True}), progress=False)
    assert [h["epoch"] for h in done["history"]] == [1, 2, 3] and not (run / "ckpt.partial.pt").exists()
    m = json.loads((run / "metrics.json").read_text())
    assert m["config"]["seed"] == 1 and len(m["history"]) == 3 and (run / "ckpt.pt").read_bytes() != before["ckpt.pt"]
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == \
        ["ckpt.pt", "confusion.png", "curves.png", "metrics.json"]


@needs_fmnist
@pytest.mark.parametrize("args, msg", [
    (["--image-size", "100000"], "--image-size"),
    (["--num-workers", "100000"], "--num-workers"),
    (["--batch-size", "10000000"], "--batch-size"),
])
def test_absurd_sizes_are_refused_before_work(tmp_path, args, msg):
    r = CliRunner().invoke(cli, ["train", *TINY, *args, "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and msg in r.output and not (tmp_path / "r").exists()


def test_absurd_sizes_are_refused_by_the_library():
    from cnnviz.train import TrainConfig, TrainError

    for kw in ({"image_size": 100000}, {"num_workers": 100000}, {"batch_size": 10**7}):
        with pytest.raises(TrainError):
            TrainConfig(**kw).validate()


def test_sweep_without_learning_rates_is_refused(tmp_path):
    r = CliRunner().invoke(cli, ["sweep", *TINY, "--lr", ",", "--out", str(tmp_path / "sw")])
    assert r.exit_code == 2 and "no learning rate" in r.output and not (tmp_path / "sw").exists()


def test_resume_after_a_class_folder_was_added(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)

    def add(cls: str) -> None:
        (tmp_path / "ds" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / "ds" / cls / f"{i}.png")

    add("a")
    add("b")
    common = ["train", "--data", str(tmp_path / "ds"), "--model", "simplecnn:width=4,depth=1", "--mode", "scratch",
              "--epochs", "3", "--batch-size", "4", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "run")]
    from cnnviz.train import TrainConfig, train_run

    train_run(TrainConfig(data=str(tmp_path / "ds"), model="simplecnn:width=4,depth=1", mode="scratch", epochs=3, batch_size=4,
                          device="cpu", out=str(tmp_path / "run"), stop_after=1, tensorboard=False), progress=False)
    add("c")
    r = CliRunner().invoke(cli, [*common, "--resume"])
    one_line_exit_2(r)
    assert "classes changed" in r.stderr and "added c" in r.stderr


def test_devices_and_out_files_are_refused(tmp_path):
    from cnnviz.images import load_image
    from cnnviz.train import TrainConfig, TrainError, train_run

    with pytest.raises(ImageError, match="not a regular file"):
        load_image("/dev/zero")  # would never end
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(TrainError, match="is a file"):
        train_run(TrainConfig(data="fashion-mnist", model="simplecnn", mode="scratch", out=str(tmp_path / "afile")), progress=False)
    assert (tmp_path / "afile").read_text() == "mine"
