"""`cnnviz gallery` end to end on tiny simplecnn checkpoints and a tiny folder dataset (hostile class name)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

HOSTILE = '"><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import torch

    from cnnviz.data import open_split
    from cnnviz.models import build_model, save_model

    root = tmp_path_factory.mktemp("gcli")
    data = root / "data"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k, cls in enumerate(["boots", HOSTILE]):
            d = data / split / cls
            d.mkdir(parents=True)
            for i in range(6):
                a = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
                a[:, (16 * k):(16 * k + 16)] += 150  # a class cue the model could find
                Image.fromarray(a).save(d / f"{i}.png")
    names = open_split(str(data), "test").class_names
    ckpts = []
    for s, mode in enumerate(("scratch", "lpft")):
        torch.manual_seed(s)
        model, info = build_model("simplecnn", num_classes=2, in_chans=3, arch_kwargs={"width": 4, "depth": 2}, input_size=(32, 32))
        info.class_names, info.mode = list(names), mode
        info.metrics = {"test_accuracy": 0.5 + 0.25 * s, "train_seconds": 1.5}
        run = root / "runs" / mode
        save_model(run / "ckpt.pt", model, info)
        ckpts.append(str(run / "ckpt.pt"))
    return root, data, ckpts


def _invoke(args: list[str]):
    from cnnviz.cli.main import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_gallery_command_end_to_end(world):
    root, data, (a, b) = world
    out = root / "site"
    args = ["gallery", "--model", a, "--model", b, "--data", str(data), "--num-images", "3", "--out", str(out),
            "--maximize-steps", "2", "--max-classes", "2", "--eval-limit", "8", "--cache", str(root / "cache"), "--json"]
    r = _invoke(args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(doc["index"]) == out / "index.html" and doc["computed"] > 0
    pages = {p.name for p in out.glob("*.html")}
    assert {"index.html", "compare.html", "model-m0.html", "model-m1.html"} <= pages
    assert len([p for p in pages if p.startswith("image-")]) == 3
    index = (out / "index.html").read_text()
    assert "scratch" in index and "lpft" in index and "75.0%" in index
    assert HOSTILE not in index and "&#34;&gt;&lt;img src=x" in index  # the class name is escaped text
    compare = (out / "compare.html").read_text()
    assert "CKA" in compare
    model_page = (out / "model-m0.html").read_text()
    for section in ("Filters: features.0", "Activation maps", "Receptive fields"):
        assert section in model_page
    # m0 is the untrained simplecnn of seed 0, the draw --seed 0's sanity check re-initializes with: a note, no verdicts
    assert 'id="sec-sanity"' not in model_page and any("untrained architecture drawn with seed 0" in n for n in doc["notes"])
    assert 'id="sec-sanity"' in (out / "model-m1.html").read_text()
    assert all('id="strips"' in p.read_text() for p in out.glob("image-*.html"))

    again = _invoke(args)  # the second build computes nothing new
    assert again.exit_code == 0
    doc2 = json.loads(again.stdout.strip().splitlines()[-1])
    assert doc2["computed"] == 0 and doc2["cached"] > 0


def test_bad_input_is_one_line_and_exit_2(world, tmp_path):
    root, data, (a, _) = world
    r = CliRunner().invoke(__import__("cnnviz.cli.main", fromlist=["cli"]).cli,
                           ["gallery", "--model", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "site")])
    assert r.exit_code == 2
    assert r.output.strip().startswith("error:") and "nope.pt" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "site").exists()
    r = _invoke(["gallery", "--model", a, "--name", "x", "--name", "y", "--out", str(tmp_path / "site")])
    assert r.exit_code == 2 and "--name" in r.output


def test_no_strips_no_sanity_flags(world, tmp_path):
    root, data, (_, b) = world
    out = tmp_path / "site"
    r = _invoke(["gallery", "--model", b, "--data", str(data), "--num-images", "2", "--out", str(out), "--maximize-steps", "2",
                 "--max-classes", "1", "--no-compare", "--no-strips", "--no-sanity", "--cache", str(root / "cache"), "--json"])
    assert r.exit_code == 0, r.output
    pages = list(out.glob("image-*.html"))
    assert len(pages) == 2 and not any('id="strips"' in p.read_text() for p in pages)
    assert 'id="sec-sanity"' not in (out / "model-m0.html").read_text()
    assert not any(".verdict" in p.read_text() or 'class="verdict' in p.read_text() for p in pages)
