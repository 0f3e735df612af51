"""`cnnviz gradcam / attribute / faithfulness`: files, JSON, folders, bad inputs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli.main import cli

TINY = ["--model", "simplecnn:width=4,depth=2", "--weights", "random", "--image-size", "32"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (40, 60), "b.jpg": (50, 30), "sub/c.png": (33, 33)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / name)
    return d


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]


def test_gradcam_folder_outputs_raw_and_json(folder, tmp_path):
    out = tmp_path / "out"
    r = run("gradcam", str(folder), *TINY, "--out", str(out), "--save-raw", "--json", "--batch-size", "2")
    assert r.exit_code == 0, r.output
    rows = _json_lines(r.stdout)
    assert len(rows) == 3
    for row in rows:
        assert set(row) >= {"image", "target", "target_name", "score", "top5"}
        assert len(row["top5"]) == 5 and row["top5"][0][0] == row["target"]
        assert abs(row["top5"][0][2] - row["score"]) < 1e-6 and row["target_name"] == f"class_{row['target']}"
        stem = Path(row["image"]).stem
        raw = np.load(out / f"{stem}.gradcam.npy")
        h, w = np.asarray(Image.open(row["image"])).shape[:2]
        assert raw.shape == (h, w) and raw.dtype == np.float32 and 0 <= raw.min() and raw.max() <= 1  # original resolution
        png = np.asarray(Image.open(out / f"{stem}.gradcam.png"))
        assert png.shape == (h, w, 3)


def test_gradcam_target_by_name_and_method(folder, tmp_path):
    r = run("gradcam", str(folder / "a.png"), *TINY, "--target", "class_3", "--method", "layercam",
            "--out", str(tmp_path / "o"), "--json")
    assert r.exit_code == 0, r.output
    (row,) = _json_lines(r.stdout)
    assert row["target"] == 3 and (tmp_path / "o" / "a.layercam.png").exists()


def test_bad_file_among_many_is_named_and_skipped(folder, tmp_path):
    bad = folder / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    out = tmp_path / "o"
    r = run("gradcam", str(folder / "a.png"), str(bad), str(tmp_path / "missing.png"), *TINY, "--out", str(out))
    assert r.exit_code == 3
    assert "broken.jpg" in r.stderr and "missing.png" in r.stderr and "skipped 2 of 3" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.gradcam.png"]


@pytest.mark.parametrize("cmd", ["gradcam", "attribute"])
def test_single_bad_input_exit_2_nothing_written(tmp_path, cmd):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"\x89PNG garbage")
    out = tmp_path / "o"
    r = run(cmd, str(bad), *TINY, "--out", str(out))
    assert r.exit_code == 2 and "x.jpg" in r.stderr and "Traceback" not in r.output
    assert not out.exists()


def test_bad_usage_exit_2(folder, tmp_path):
    out = tmp_path / "o"
    for extra in (["--layer", "featurez.3"], ["--target", "nope"], ["--method", "gradcamm"]):
        r = run("gradcam", str(folder / "a.png"), *TINY, "--out", str(out), *extra)
        assert r.exit_code == 2 and r.stderr.startswith("error:"), (extra, r.output)
    assert not out.exists()


def test_attribute_cli(folder, tmp_path):
    out = tmp_path / "att"
    r = run("attribute", str(folder / "a.png"), str(folder / "b.jpg"), *TINY, "--method", "integrated-gradients",
            "--steps", "4", "--out", str(out), "--json", "--save-raw")
    assert r.exit_code == 0, r.output
    assert len(_json_lines(r.stdout)) == 2
    assert np.load(out / "b.integrated-gradients.npy").shape == (50, 30)


def test_faithfulness_cli(folder, tmp_path):
    out = tmp_path / "f"
    r = run("faithfulness", str(folder / "a.png"), *TINY, "--methods", "gradcam,saliency,random", "--steps", "4",
            "--no-road", "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [row["rank"] for row in doc["ranking"]] == [1, 2, 3]
    assert {row["method"] for row in doc["ranking"]} == {"gradcam", "saliency", "random"}
    assert (out / "a.faithfulness.png").exists() and (out / "faithfulness.md").exists()
    r = run("faithfulness", str(folder / "a.png"), *TINY, "--methods", "gradcam,bogus", "--out", str(out))
    assert r.exit_code == 2 and "bogus" in r.stderr


@pytest.mark.slow
def test_gradcam_default_model_names_the_cat(photos, tmp_path):
    """The line users type first: bundled Lite0, auto layer, top-1 -- at a reduced size to keep it quick."""
    r = run("gradcam", str(photos["chelsea"]), "--out", str(tmp_path / "g"), "--json", "--image-size", "160")
    assert r.exit_code == 0, r.output
    (row,) = _json_lines(r.stdout)
    assert 281 <= row["target"] <= 285 and row["layer"] == "bn2"
    assert (tmp_path / "g" / "chelsea.gradcam.png").exists()
