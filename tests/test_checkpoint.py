"""Checkpoints: round trip, atomic writes, and files that must be refused (never executed)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

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
