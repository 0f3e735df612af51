"""`cnnviz demo`: trains every run (via train_run), reuses finished runs, prints the table and the site path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo-data")
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for k, cls in enumerate(["left", "right"]):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(8):
                a = rng.integers(0, 60, (28, 28), dtype=np.uint8)
                a[:, 14 * k:14 * k + 14] += 180
                Image.fromarray(a).save(d / f"{i}.png")
    return root


TINY = [("tiny-a", {"model": "simplecnn:width=4,depth=2", "mode": "scratch", "epochs": 1, "limit": 16, "eval_limit": 16, "batch_size": 8}),
        ("tiny-b", {"model": "simplecnn:width=4,depth=2", "mode": "scratch", "epochs": 1, "limit": 16, "eval_limit": 16, "batch_size": 8,
                    "lr": 3e-3})]


def _demo(args):
    from cnnviz.cli.main import cli

    return CliRunner().invoke(cli, ["demo", *args], catch_exceptions=False)


def _tiny_runs(monkeypatch, data: Path):
    import cnnviz.report.demo as D

    monkeypatch.setattr(D, "demo_runs", lambda quick, spec: [(n, {**f, "data": spec}) for n, f in TINY])


@pytest.mark.slow
def test_demo_trains_compares_publishes_and_reuses(folder_data, tmp_path, monkeypatch):
    """The real trainer on a tiny folder dataset: 2 runs, a gallery, a table; the second demo trains nothing."""
    import cnnviz.train as T

    _tiny_runs(monkeypatch, folder_data)
    calls = []
    real = T.train_run
    monkeypatch.setattr(T, "train_run", lambda cfg, progress=True: calls.append(cfg.out) or real(cfg, progress=False))
    out = tmp_path / "demo"
    r = _demo(["--quick", "--data", str(folder_data), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(calls) == 2
    for name, _ in TINY:
        assert (out / "runs" / name / "ckpt.pt").is_file()
        assert name in r.stdout
    index = out / "site" / "index.html"
    assert f"gallery: {index.resolve()}" in r.stdout
    assert (out / "site" / "compare.html").is_file()
    acc = json.loads((out / "runs" / "tiny-a" / "metrics.json").read_text())["test_accuracy"]
    assert f"{100 * acc:.1f}%" in r.stdout  # the table shows the run's own accuracy

    again = _demo(["--quick", "--data", str(folder_data), "--out", str(out)])
    assert again.exit_code == 0
    assert len(calls) == 2, "finished runs must be reused"
    assert again.stdout.count("(reused)") == 2
    assert "0 results computed" in again.stdout


def test_demo_quick_recipe_is_small():
    """--quick stays a few-minutes job: capped data, small images, few epochs."""
    from cnnviz.report.demo import demo_runs
    from cnnviz.train import TrainConfig

    runs = demo_runs(True, "fashion-mnist")
    assert {f["mode"] for _, f in runs} >= {"scratch", "lp", "lpft"}
    assert any(f["model"].startswith("simplecnn") for _, f in runs)
    for _, f in runs:
        assert f["limit"] <= 2000 and f["epochs"] <= 4 and f.get("image_size", 28) <= 64
        TrainConfig(**f).validate()  # every field is one the trainer knows
    for _, f in demo_runs(False, "fashion-mnist"):
        TrainConfig(**f).validate()
