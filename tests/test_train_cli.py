"""``cnnviz train / evaluate / sweep / augment`` end to end; SIGKILL + --resume; torchrun with 2 processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnnviz.cli.main import cli

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_fmnist = pytest.mark.skipif(not FMNIST.is_file(), reason="dataset-fashion-mnist not installed")
TINY = ["--data", "fashion-mnist", "--model", "simplecnn:width=4,depth=2", "--mode", "scratch", "--limit", "160",
        "--eval-limit", "80", "--batch-size", "32", "--device", "cpu", "--lr", "3e-3", "--no-progress"]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


@needs_fmnist
def test_train_then_evaluate_json(tmp_path):
    r = CliRunner().invoke(cli, ["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert "test accuracy" in r.stderr and "wrote" in r.stderr
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    r2 = CliRunner().invoke(cli, ["evaluate", "--model", str(tmp_path / "run" / "ckpt.pt"), "--data", "fashion-mnist",
                                  "--eval-limit", "80", "--json", "--confusion", str(tmp_path / "c.png")])
    assert r2.exit_code == 0, r2.output
    ev = json.loads(r2.stdout)
    assert ev["accuracy"] == pytest.approx(m["test_accuracy"]) and ev["confusion"] == m["confusion"]
    assert (tmp_path / "c.png").is_file()
    r3 = CliRunner().invoke(cli, ["evaluate", "--model", str(tmp_path / "run" / "ckpt.pt"), "--data", "fashion-mnist", "--eval-limit", "20"])
    assert r3.exit_code == 0 and "Ankle boot" in r3.stdout and "confusion" in r3.stdout


@pytest.mark.parametrize("args, msg", [
    (["--mode", "scratch", "--data", "/nonexistent/folder"], "unknown dataset"),
    (["--mode", "scratch", "--data", "cifar1O"], "Did you mean"),
    (["--mode", "lp", "--data", "fashion-mnist"], "simplecnn has none"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, msg):
    base = [a for a in TINY if a not in ("--mode", "scratch", "--data", "fashion-mnist")]  # each case gives its own (a repeated option is refused)
    r = CliRunner().invoke(cli, ["train", *base, *args, "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2, r.output
    assert msg in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "bad" / "metrics.json").exists()


def test_folder_with_an_empty_class_is_exit_2(tmp_path):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "ds" / c).mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "ds" / "a" / "x.png")
    r = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "ds"), "--model", "simplecnn", "--mode", "scratch"])
    assert r.exit_code == 2 and "has no images" in r.stderr


def test_folder_dataset_with_corrupt_file_trains(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("red", "blue"):
        (tmp_path / "ds" / c).mkdir(parents=True)
        for i in range(10):
            a = rng.integers(0, 60, (12, 12, 3), dtype=np.uint8)
            a[..., 0 if c == "red" else 2] += 180
            Image.fromarray(a).save(tmp_path / "ds" / c / f"{i}.png")
    (tmp_path / "ds" / "red" / "bad.png").write_bytes(b"\x89PNG garbage")
    r = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "ds"), "--model", "simplecnn:width=4,depth=1", "--mode", "scratch",
                                 "--epochs", "2", "--batch-size", "4", "--image-size", "12", "--device", "cpu", "--no-progress",
                                 "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["skipped_images"] == 1 and m["num_train_images"] == 16 and m["class_names"] == ["blue", "red"]
    assert "skipped 1 unreadable" in r.stderr


def test_augment_preview(tmp_path, photos):
    from PIL import Image

    out = tmp_path / "aug.png"
    r = CliRunner().invoke(cli, ["augment", str(photos["chelsea"]), "--preset", "strong", "--n", "6", "--size", "48", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert Image.open(out).size[0] > 100


@needs_fmnist
def test_sweep_cli(tmp_path):
    base = [a for a in TINY if a not in ("--lr", "3e-3")]
    r = CliRunner().invoke(cli, ["sweep", *base, "--lr", "1e-3,1e-2", "--epochs", "1", "--out", str(tmp_path / "sw"), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["lr"] for row in rows] == [1e-3, 1e-2] and (tmp_path / "sw" / "sweep.png").is_file()


def test_sweep_refuses_a_mode_its_model_cannot_run_before_any_training(tmp_path):
    """simplecnn has no pretrained weights: `--mode scratch --mode ft` is refused up front, not after the scratch runs."""
    base = [a for a in TINY if a not in ("--lr", "3e-3", "--mode", "scratch")]
    r = CliRunner().invoke(cli, ["sweep", *base, "--mode", "scratch", "--mode", "ft", "--lr", "1e-3,1e-2", "--epochs", "1",
                                 "--out", str(tmp_path / "sw")])
    assert r.exit_code == 2 and "simplecnn has none" in r.stderr and "Traceback" not in r.stderr, r.output
    assert not list(tmp_path.glob("sw/**/ckpt.pt")), "no setting may train before the refusal"


@pytest.mark.slow
@needs_fmnist
def test_sigkill_then_resume(tmp_path):
    """Kill a run with SIGKILL after its first checkpoint; --resume finishes it with one history entry per epoch."""
    from cnnviz.checkpoint import load_checkpoint

    out = tmp_path / "run"
    args = [sys.executable, "-m", "cnnviz", "train", *TINY, "--epochs", "12", "--out", str(out)]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out / "ckpt.pt"
    try:
        while not ckpt.exists() and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = load_checkpoint(ckpt)["train_state"]["epoch"]  # loadable whatever the moment of the kill
    assert 1 <= done < 12 and not (out / "metrics.json").exists()
    r = subprocess.run([*args, "--resume"], env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in m["history"]] == list(range(1, 13))


@pytest.mark.slow
@needs_fmnist
def test_torchrun_two_processes_match_one(tmp_path):
    """2 CPU processes (gloo) with the same global batch train as well as one."""
    common = ["--data", "fashion-mnist", "--model", "simplecnn:width=8,depth=2", "--mode", "scratch", "--limit", "600",
              "--eval-limit", "300", "--batch-size", "32", "--epochs", "3", "--lr", "3e-3", "--device", "cpu", "--no-progress"]
    one = subprocess.run([sys.executable, "-m", "cnnviz", "train", *common, "--out", str(tmp_path / "one")],
                         env=_env(), capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000)]
    two = subprocess.run([*torchrun, "-m", "cnnviz", "train", *common, "--out", str(tmp_path / "two")],
                         env=_env(), capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m2["world_size"] == 2 and m2["num_test_images"] == 300  # eval shards reduced, nothing counted twice
    assert len(m2["history"]) == 3 and two.stderr.count("done:") == 1  # only rank 0 reports
    assert m1["test_accuracy"] > 0.4 and m2["test_accuracy"] > m1["test_accuracy"] - 0.08
