"""Checkpoints: round trip, atomic writes, and files that must be refused (never executed)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz.checkpoint import load_checkpoint, save_checkpoint
from cnnviz.errors import CheckpointError
from cnnviz.models import load_model, save_model


def test_round_trip(tiny_cnn, tmp_path):
    model, info = tiny_cnn
    info.mode, info.metrics, info.class_names = "scratch", {"test_accuracy": 0.5}, list("abcde")
    path = save_model(tmp_path / "ckpt.pt", model, info, config={"lr": 0.1})
    loaded, linfo = load_model(str(path))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))
    assert linfo.mode == "scratch" and linfo.class_names == list("abcde") and linfo.metrics["test_accuracy"] == 0.5
    assert linfo.input_size == (3, 32, 32) and linfo.arch_kwargs == {"width": 4, "depth": 2}
    assert linfo.config == {"lr": 0.1} and linfo.weights == "checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left
    assert linfo.pixel_mean is None  # optional: absent unless the trainer recorded it
    info.pixel_mean = (0.1, 0.2, 0.3)
    assert load_model(str(save_model(tmp_path / "ckpt.pt", model, info)))[1].pixel_mean == (0.1, 0.2, 0.3)
    assert linfo.mean_image is None
    info.mean_image = np.linspace(0, 1, 3 * 32 * 32, dtype=np.float32).reshape(3, 32, 32)
    back = load_model(str(save_model(tmp_path / "ckpt.pt", model, info)))[1].mean_image
    assert isinstance(back, np.ndarray) and back.dtype == np.float32 and np.array_equal(back, info.mean_image)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    torch.save({"format": "cnnviz-checkpoint", "payload": _Exploit(marker)}, bad)
    with pytest.raises(CheckpointError, match="refusing"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_legacy_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "old.pt"
    with open(bad, "wb") as fh:
        pickle.dump(_Exploit(marker), fh)
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)
    assert not marker.exists()


def test_truncated_foreign_and_garbage(tiny_cnn, tmp_path):
    model, info = tiny_cnn
    good = save_model(tmp_path / "good.pt", model, info)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated|not"):
        load_checkpoint(cut)
    foreign = tmp_path / "sd.pt"
    torch.save(model.state_dict(), foreign)
    with pytest.raises(CheckpointError, match="not a cnnviz checkpoint"):
        load_checkpoint(foreign)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"hello, not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_save_keeps_previous_file(tiny_cnn, tmp_path, monkeypatch):
    model, info = tiny_cnn
    path = save_model(tmp_path / "ckpt.pt", model, info)
    before = path.read_bytes()

    def boom(obj, fh, *a, **k):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_model(path, model, info)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_weights_that_do_not_fit_the_arch(tiny_cnn, tmp_path):
    model, info = tiny_cnn
    from cnnviz.models import checkpoint_payload

    payload = checkpoint_payload(model, info)
    payload["arch_kwargs"] = {"width": 8, "depth": 2}
    save_checkpoint(tmp_path / "x.pt", payload)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(str(tmp_path / "x.pt"))


# --- the one schema check (issue 11): every malformed field is named, nothing crashes later ------
def _raw_payload(tiny_cnn) -> dict:
    from cnnviz.checkpoint import FORMAT
    from cnnviz.models import checkpoint_payload

    model, info = tiny_cnn
    info.class_names = list("abcde")
    return {"format": FORMAT, "format_version": 1, **checkpoint_payload(model, info)}


MALFORMED = [
    ("class_names", {"class_names": ["a"]}),  # fewer names than classes: IndexError in cli/cam before
    ("class_names", {"class_names": [1, 2, 3, 4, 5]}),
    ("class_names", {"class_names": ["a", "b", "", "d", "e"]}),
    ("class_names", {"class_names": ["a", "b\x1b[31m", "c", "d", "e"]}),  # a terminal escape from a hostile file
    ("class_names", {"class_names": ["a", "line\nbreak", "c", "d", "e"]}),
    ("class_names", {"class_names": ["a", "\u202eevil", "c", "d", "e"]}),  # bidi override
    ("class_names", {"class_names": "abcde"}),
    ("num_classes", {"num_classes": -1}),
    ("num_classes", {"num_classes": "5"}),
    ("num_classes", {"num_classes": 5.0}),
    ("num_classes", {"num_classes": True}),
    ("num_classes", {"num_classes": 10**12}),
    ("arch_kwargs", {"arch_kwargs": {"bogus": 1}}),
    ("arch_kwargs", {"arch_kwargs": {"depth": 100}}),
    ("arch_kwargs", {"arch_kwargs": {"width": 0}}),
    ("arch_kwargs", {"arch_kwargs": {"dropout": float("nan")}}),
    ("arch_kwargs", {"arch_kwargs": [1]}),
    ("arch_kwargs", {"arch": "timm:efficientnet_lite0"}),  # simplecnn's width/depth are not timm options
    ("arch", {"arch": ["simplecnn"]}),
    ("arch", {"arch": "pickle:os.system"}),
    ("arch", {"arch": "timm:"}),
    ("state_dict", {"state_dict": [1, 2]}),
    ("state_dict", {"state_dict": {}}),
    ("state_dict", {"state_dict": {"features.0.weight": [1.0]}}),
    ("mean", {"mean": []}),
    ("mean", {"mean": [0.5, 0.5]}),
    ("mean", {"mean": [float("nan")] * 3}),
    ("std", {"std": [0.0] * 3}),
    ("std", {"std": [float("inf")] * 3}),
    ("std", {"std": ["a", "b", "c"]}),
    ("pixel_mean", {"pixel_mean": [0.5, 0.5]}),
    ("pixel_mean", {"pixel_mean": [1.5, 0.5, 0.5]}),
    ("mean_image", {"mean_image": [[0.5]]}),
    ("mean_image", {"mean_image": torch.full((1, 8, 8), 0.5)}),  # 1 channel for a 3-channel model
    ("mean_image", {"mean_image": torch.full((3, 65, 8), 0.5)}),  # larger than MEAN_IMAGE_SIDE
    ("mean_image", {"mean_image": torch.full((3, 8, 8), 1.5)}),
    ("mean_image", {"mean_image": torch.full((3, 8, 8), float("nan"))}),
    ("mean_image", {"mean_image": torch.full((3, 8, 8), 1, dtype=torch.uint8)}),
    ("input_size", {"input_size": [32, 32]}),
    ("input_size", {"input_size": [3, 100000, 100000]}),
    ("input_size", {"input_size": [3, 0, 32]}),
    ("input_size", {"input_size": [0, 32, 32]}),
    ("input_size", {"input_size": "3x32x32"}),
    ("input_size", {"input_size": [3.0, 32.0, 32.0]}),
    ("in_chans", {"in_chans": 1}),
    ("mode", {"mode": "evil"}),
    ("metrics", {"metrics": [1, 2]}),
    ("config", {"config": "lr=1"}),
    ("train_state", {"train_state": 7}),
    ("format_version", {"format_version": "1"}),
    ("format_version", {"format_version": 0}),
]


@pytest.mark.parametrize("field,change", MALFORMED, ids=[f"{f}-{i}" for i, (f, _) in enumerate(MALFORMED)])
def test_malformed_checkpoint_names_the_field(tiny_cnn, tmp_path, field, change):
    bad = tmp_path / "bad.pt"
    torch.save({**_raw_payload(tiny_cnn), **change}, bad)
    with pytest.raises(CheckpointError) as e:
        load_model(str(bad))
    msg = str(e.value)
    assert field in msg and "bad.pt" in msg and "\n" not in msg


def test_nan_weights_are_refused_on_load_and_on_save(tiny_cnn, tmp_path):
    payload = _raw_payload(tiny_cnn)
    sd = dict(payload["state_dict"])
    sd["features.0.weight"] = torch.full_like(sd["features.0.weight"], float("nan"))
    torch.save({**payload, "state_dict": sd}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"features\.0\.weight.*NaN"):
        load_model(str(tmp_path / "nan.pt"))
    # the writer checks the same schema: it never writes what the reader would refuse
    with pytest.raises(CheckpointError, match="NaN"):
        save_checkpoint(tmp_path / "out.pt", {**payload, "state_dict": sd})
    with pytest.raises(CheckpointError, match="class_names"):
        save_checkpoint(tmp_path / "out.pt", {**payload, "class_names": ["x"]})
    assert not (tmp_path / "out.pt").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["nan.pt"]


def test_missing_class_names_get_defaults_and_valid_names_survive(tiny_cnn, tmp_path):
    payload = _raw_payload(tiny_cnn)
    torch.save({**payload, "class_names": None}, tmp_path / "a.pt")
    _, info = load_model(str(tmp_path / "a.pt"))
    assert info.class_names == [f"class_{i}" for i in range(5)]
    names = ["Cat", "cat", "ünïcødé 猫", "a/b", "x" * 1000]
    torch.save({**payload, "class_names": names}, tmp_path / "b.pt")
    assert load_model(str(tmp_path / "b.pt"))[1].class_names == names


def test_state_dict_mismatch_is_one_line_naming_keys(tiny_cnn, tmp_path):
    payload = _raw_payload(tiny_cnn)
    sd = {k: v for k, v in payload["state_dict"].items() if not k.startswith("classifier")}
    sd["extra.weight"] = torch.zeros(2)
    torch.save({**payload, "state_dict": sd}, tmp_path / "keys.pt")
    with pytest.raises(CheckpointError) as e:
        load_model(str(tmp_path / "keys.pt"))
    msg = str(e.value)
    assert "2 missing (classifier.2.weight; classifier.2.bias)" in msg and "1 unexpected (extra.weight)" in msg
    assert "\n" not in msg
    torch.save({**payload, "num_classes": 3, "class_names": None}, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"classifier\.2\.weight is \(5, 8\) in the file but \(3, 8\) in the model"):
        load_model(str(tmp_path / "shape.pt"))


def test_unbuildable_arch_is_a_checkpoint_error(tiny_cnn, tmp_path):
    payload = _raw_payload(tiny_cnn)
    torch.save({**payload, "arch": "timm:no_such_model_x", "arch_kwargs": {}}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="no_such_model_x.*cannot be built"):
        load_model(str(tmp_path / "a.pt"))
    # depth 5 halves a 16 px input five times: refused with the reason, not a pooling crash
    torch.save({**payload, "arch_kwargs": {"width": 4, "depth": 5}, "input_size": [3, 16, 16]}, tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="at least 32x32"):
        load_model(str(tmp_path / "d.pt"))


def test_a_directory_is_not_a_checkpoint(tmp_path):
    (tmp_path / "dir.pt").mkdir()
    with pytest.raises(CheckpointError, match="is not a file"):
        load_checkpoint(tmp_path / "dir.pt")
