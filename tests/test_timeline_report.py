"""The gallery's timeline: a section per model with a timeline, runs side by side in the comparison, stale files left out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cnnviz.train import TrainConfig, train_run
from cnnviz.train.timeline import Timeline

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
pytestmark = pytest.mark.skipif(not FMNIST.is_file(), reason="dataset-fashion-mnist not installed")


def _train(out: Path, timeline: bool, **kw) -> str:
    base = dict(data="fashion-mnist", model="simplecnn:width=4,depth=2", mode="scratch", epochs=2, limit=60, eval_limit=40,
                batch_size=20, device="cpu", out=str(out), tensorboard=False, lr=3e-3)
    base.update(kw)
    train_run(TrainConfig(**base), progress=False,
              on_epoch=Timeline(images_per_class=1, cka_images=40, batch_size=20) if timeline else None)
    return str(out / "ckpt.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tlrep")
    return root, _train(root / "a", True, seed=0), _train(root / "b", True, seed=1), _train(root / "plain", False)


def _report(cache: Path, specs: list[str]):
    from cnnviz.report import ModelSource, Report, ReportConfig

    cfg = ReportConfig(maximize_steps=2, max_classes=2, top_channels=4, activation_images=0, erf=False, compare=False)
    rep = Report(cache, cfg)
    path = rep.run([ModelSource(s, Path(s).parent.name) for s in specs], [], title="t")
    return rep, json.loads(path.read_text()), path


def test_models_with_a_timeline_get_its_sections_and_the_comparison_puts_them_side_by_side(runs, tmp_path):
    from cnnviz.gallery import build_site

    root, a, b, plain = runs
    rep, m, path = _report(tmp_path / "cache", [a, b, plain])
    secs = [{s["id"]: s for s in e["sections"]} for e in m["models"]]
    assert "timeline-curves" in secs[0] and "timeline-cams" in secs[1]
    assert not any(k.startswith("timeline") for k in secs[2])  # trained without --timeline: no section, no note
    doc = json.loads((Path(a).parent / "timeline.json").read_text())
    cams = secs[0]["timeline-cams"]["items"]
    assert len(cams) == len(doc["images"]) == 10 and [c["class"] for c in cams] == [im["label"] for im in doc["images"]]
    table = secs[0]["timeline-curves"]["table"]
    assert [r[0] for r in table["rows"]] == doc["layers"]
    assert table["rows"][0][1] == pytest.approx(doc["cka_to_init"][doc["layers"][0]][-1], abs=1e-3)
    comp = {s["id"]: s for s in m["comparison"]["sections"]}
    assert len(comp["timeline-depth"]["items"]) == 3  # the depth figure + both models' curves
    for it in [*cams, *secs[0]["timeline-curves"]["items"], *comp["timeline-depth"]["items"]]:
        assert (path.parent / it["src"]).is_file(), it["src"]
    index = build_site(path, tmp_path / "site")
    assert "Timeline: representations and weights by epoch" in (index.parent / "model-m0.html").read_text()
    assert 'id="sec-timeline-depth"' in (index.parent / "compare.html").read_text()
    # a rebuild computes nothing new
    n = len(rep.stats.computed)
    rep2, _, _ = _report(tmp_path / "cache", [a, b, plain])
    assert len(rep2.stats.computed) == 0 and n > 0


def test_a_timeline_of_another_run_is_left_out_with_a_note(runs, tmp_path):
    root, a, _, _ = runs
    run = tmp_path / "reused"
    shutil.copytree(Path(a).parent, run)
    _train(run, False, seed=0, lr=1e-3)  # another run into the folder, without --timeline: timeline.json is stale
    rep, m, _ = _report(tmp_path / "cache", [str(run / "ckpt.pt")])
    assert not any(s["id"].startswith("timeline") for s in m["models"][0]["sections"])
    assert any("does not describe" in n and "lr" in n for n in m["notes"])
