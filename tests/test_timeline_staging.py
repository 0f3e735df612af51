"""A rerun's timeline is staged like its checkpoint: the earlier ``timeline/`` and ``timeline.json`` stay with the
earlier ``ckpt.pt`` until the rerun has finished; a refused ``--resume --timeline`` writes nothing, not even tb/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cnnviz.train import TrainConfig, TrainError, train_run
from cnnviz.train import loop
from cnnviz.train.timeline import STAGING, Timeline

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
pytestmark = pytest.mark.skipif(not FMNIST.is_file(), reason="dataset-fashion-mnist not installed")
TINY = "simplecnn:width=4,depth=2"


def cfg(out: Path, **kw) -> TrainConfig:
    base = dict(data="fashion-mnist", model=TINY, mode="scratch", epochs=2, limit=60, eval_limit=40, batch_size=20,
                device="cpu", out=str(out), tensorboard=False, lr=3e-3, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def tl(per_class: int = 1) -> Timeline:
    return Timeline(images_per_class=per_class, cka_images=40, batch_size=20)


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file of RUN_DIR's timeline and checkpoint, by relative path."""
    files = [run_dir / "timeline.json", run_dir / "ckpt.pt", *sorted((run_dir / "timeline").rglob("*"))]
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in files if p.is_file()}


def epochs(path: Path) -> list[int]:
    return json.loads(path.read_text())["epochs"]


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    """A finished 2-epoch run with a timeline of 2 watched images per class (20 images)."""
    out = tmp_path_factory.mktemp("staging") / "a"
    train_run(cfg(out), progress=False, on_epoch=tl(2))
    return out


@pytest.fixture
def run_dir(earlier, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(earlier, out)
    return out


def diverge_at(monkeypatch, epoch: int) -> None:
    """Make the trainer's epoch ``epoch`` (0-based) diverge, as a too-high --lr would after a good start."""
    real = loop._train_epoch

    def flaky(*args, **kw):
        if args[-1] >= epoch:  # the last positional argument is the epoch
            raise loop._Diverged(f"loss became nan at epoch {args[-1] + 1}, step 1")
        return real(*args, **kw)

    monkeypatch.setattr(loop, "_train_epoch", flaky)


def test_a_rerun_that_diverges_keeps_the_earlier_timeline(run_dir, monkeypatch):
    before = snapshot(run_dir)
    assert any(k.startswith("timeline/cams/") for k in before) and "timeline/state.pt" in before
    diverge_at(monkeypatch, 1)  # epoch 1 is recorded (timeline files written), epoch 2 diverges
    with pytest.raises(TrainError, match="diverged"):
        train_run(cfg(run_dir, epochs=3, seed=1), progress=False, on_epoch=tl(1))
    assert snapshot(run_dir) == before  # the earlier ckpt.pt still has its own timeline, byte for byte
    # the rerun's epoch-1 record is staged beside its staged checkpoint: the pair --resume continues
    assert (run_dir / loop.PARTIAL_CKPT).is_file() and epochs(run_dir / STAGING / "timeline.json") == [0, 1]
    monkeypatch.undo()
    train_run(cfg(run_dir, epochs=3, seed=1, resume=True), progress=False, on_epoch=tl(1))
    d = json.loads((run_dir / "timeline.json").read_text())
    assert d["epochs"] == [0, 1, 2, 3] and d["complete"] and len(d["images"]) == 10
    assert not (run_dir / STAGING).exists() and not (run_dir / loop.PARTIAL_CKPT).exists()


def test_a_first_epoch_that_diverges_leaves_nothing(run_dir):
    before = snapshot(run_dir)
    with pytest.raises(TrainError, match="diverged"):
        train_run(cfg(run_dir, lr=1e9, seed=1), progress=False, on_epoch=tl(1))
    assert snapshot(run_dir) == before
    assert not (run_dir / STAGING).exists() and not (run_dir / loop.PARTIAL_CKPT).exists()


def test_a_finished_rerun_replaces_the_timeline_only_at_its_end(run_dir):
    user = {"timeline/notes.txt": b"mine", "timeline/cams/mine.png": b"not a png", "timeline/images/keep.jpg": b"x"}
    for rel, data in user.items():
        (run_dir / rel).write_bytes(data)
    before = snapshot(run_dir)
    seen: list[dict[str, bytes]] = []

    class Watched(Timeline):
        def __call__(self, epoch, run):
            super().__call__(epoch, run)
            seen.append(snapshot(run_dir))  # RUN_DIR's timeline while the rerun is under way

    train_run(cfg(run_dir, epochs=1, seed=1), progress=False, on_epoch=Watched(images_per_class=1, cka_images=40, batch_size=20))
    assert len(seen) == 2 and all(s == before for s in seen)
    d = json.loads((run_dir / "timeline.json").read_text())
    assert d["epochs"] == [0, 1] and d["complete"] and len(d["images"]) == 10  # the rerun's, not the earlier
    for p in [*(im["src"] for im in d["images"]), *(c for im in d["images"] for c in im["cams"]), *d["figures"].values()]:
        assert (run_dir / p).is_file(), p
    after = snapshot(run_dir)
    assert after["timeline/state.pt"] != before["timeline/state.pt"]
    # the earlier run's files the rerun does not have are gone (its epoch 2, its second image per class)...
    assert not any(k.startswith("timeline/cams/e002_") for k in after)
    assert "timeline/images/010.png" not in after
    # ...and the user's files are where they were, untouched
    assert {k: after[k] for k in user} == user
    assert not (run_dir / STAGING).exists()


def test_a_name_the_timeline_writes_taken_by_a_folder_is_refused_before_training(run_dir):
    (run_dir / "timeline" / "curves.png").unlink()
    (run_dir / "timeline" / "curves.png").mkdir()  # the user's folder: cnnviz would have to delete it
    before = snapshot(run_dir)
    with pytest.raises(TrainError, match="curves.png"):
        train_run(cfg(run_dir, seed=1), progress=False, on_epoch=tl(1))
    assert snapshot(run_dir) == before and not (run_dir / loop.PARTIAL_CKPT).exists()


def test_a_timeline_file_where_its_folder_goes_is_refused_before_training(tmp_path):
    out = tmp_path / "fresh"
    out.mkdir()
    (out / "timeline").write_text("a note")
    with pytest.raises(TrainError, match="timeline"):
        train_run(cfg(out), progress=False, on_epoch=tl(1))
    assert sorted(p.name for p in out.iterdir()) == ["timeline"]  # no checkpoint: refused before any training


def test_refused_resume_with_timeline_writes_no_tensorboard_file(tmp_path):
    """The refusal comes before the trainer's first good epoch, which is when it creates tb/'s events file."""
    out = tmp_path / "no-tl"
    train_run(cfg(out, stop_after=1, tensorboard=True), progress=False)
    listing = sorted((out / "tb").iterdir())
    assert len(listing) == 1
    with pytest.raises(TrainError, match="started without --timeline"):
        train_run(cfg(out, resume=True, tensorboard=True), progress=False, on_epoch=tl(1))
    assert sorted((out / "tb").iterdir()) == listing
    # and where the earlier run had no tb/, none appears
    shutil.rmtree(out / "tb")
    with pytest.raises(TrainError, match="started without --timeline"):
        train_run(cfg(out, resume=True, tensorboard=True), progress=False, on_epoch=tl(1))
    assert not (out / "tb").exists()
