"""Issue 11, tried as a careless user or an attacker would, on `cnnviz gallery`, `compare` and `demo`:
nothing of the user's is lost, every option is checked before any work, one bad image among several
is exit 3 (the rest built), hostile or stale manifests give one line, every JSON written is strict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gallery_synth import make_manifest
from test_gallery_cli import world  # noqa: F401  (the tiny checkpoints + folder dataset fixture)

FAST = ["--maximize-steps", "2", "--max-classes", "2", "--eval-limit", "8", "--num-images", "2"]


def _invoke(args: list[str]):
    from cnnviz.cli.main import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _one_error_line(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


@pytest.fixture
def loads(monkeypatch):
    """Counts model loads: a check "before any work" loads nothing."""
    import cnnviz.models as M

    calls = []
    real = M.load_model
    monkeypatch.setattr(M, "load_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_gallery_refuses_a_folder_it_did_not_write(world, tmp_path, loads):
    root, data, (a, _) = world
    mysite = tmp_path / "mysite"
    (mysite / "blog").mkdir(parents=True)
    (mysite / "index.html").write_text("my home page")
    (mysite / "blog" / "post.md").write_text("my post")
    (mysite / "notes.txt").write_text("my notes")
    before = _tree(mysite)
    r = _invoke(["gallery", "--model", a, "--data", str(data), *FAST, "--out", str(mysite), "--cache", str(tmp_path / "c")])
    assert r.exit_code == 2
    assert "did not write" in _one_error_line(r) and "mysite" in r.stderr
    assert _tree(mysite) == before
    assert not (tmp_path / "c").exists() and loads == [], "refused before any work"


def test_gallery_rebuild_keeps_the_users_files_in_its_site(world, tmp_path):
    root, data, (a, b) = world
    site, cache = tmp_path / "site", tmp_path / "cache"
    args = ["gallery", "--model", a, "--data", str(data), *FAST, "--out", str(site), "--cache", str(cache)]
    assert _invoke(args).exit_code == 0
    (site / "notes.txt").write_text("mine")
    (site / "blog").mkdir()
    (site / "blog" / "post.md").write_text("my post")
    r = _invoke(args[:3] + ["--model", b] + args[3:])  # a second model: the site changes
    assert r.exit_code == 0, r.output
    assert (site / "notes.txt").read_text() == "mine" and (site / "blog" / "post.md").read_text() == "my post"
    assert (site / "model-m1.html").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no aside or temp folder left"

    def refuse(name):
        raise AssertionError(f"{name} is not JSON")

    written = [*cache.rglob("*.json"), *site.rglob("*.json")]
    assert len(written) > 10
    for p in written:  # cache metas, manifests, the comparison, ownership markers: all strict JSON
        json.loads(p.read_text(), parse_constant=refuse)


def test_compare_never_deletes_the_users_notes(world, tmp_path):
    root, data, (a, b) = world
    base = ["compare", "--model", a, "--model", b, "--data", str(data), "--eval-limit", "8", "--no-cam", "--no-origin"]
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("my notes")
    r = _invoke([*base, "--out", str(theirs)])
    assert r.exit_code == 2 and "did not write" in _one_error_line(r)
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]

    out = tmp_path / "cmp"
    assert _invoke([*base, "--out", str(out)]).exit_code == 0
    (out / "notes.txt").write_text("my notes")
    first = (out / "compare.json").stat().st_mtime_ns
    r = _invoke([*base, "--out", str(out)])  # the second run replaces its own folder
    assert r.exit_code == 0, r.output
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "compare.json").stat().st_mtime_ns != first


@pytest.mark.parametrize("option, value, expect", [
    ("--cam", "gradcamm", "--cam 'gradcamm' is not a method. Did you mean: gradcam"),
    ("--attribute", "salency", "--attribute 'salency' is not a method. Did you mean: saliency"),
    ("--cam", "integrated-gradients", "pass it to --attribute"),
])
def test_bad_methods_are_refused_before_any_work(world, tmp_path, loads, option, value, expect):
    root, data, (a, _) = world
    r = _invoke(["gallery", "--model", a, "--data", str(data), *FAST, option, value,
                 "--out", str(tmp_path / "site"), "--cache", str(tmp_path / "c")])
    assert r.exit_code == 2 and expect in _one_error_line(r)
    assert loads == [] and not (tmp_path / "c").exists() and not (tmp_path / "site").exists()


def test_bad_layer_is_refused_with_a_hint_and_no_cache_entry(world, tmp_path):
    root, data, (a, _) = world
    r = _invoke(["gallery", "--model", a, "--data", str(data), *FAST, "--layers", "features.33",
                 "--out", str(tmp_path / "site"), "--cache", str(tmp_path / "c")])
    assert r.exit_code == 2
    line = _one_error_line(r)
    assert "'features.33' is in none of the models" in line and "features.3" in line.split("Did you mean")[1]
    assert not (tmp_path / "c").exists() and not (tmp_path / "site").exists()


def test_one_unreadable_image_among_several_is_exit_3_and_the_rest_is_built(world, tmp_path):
    root, data, (a, _) = world
    good = sorted((data / "test" / "boots").glob("*.png"))[:2]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    site = tmp_path / "site"
    r = _invoke(["gallery", "--model", a, "--images", str(good[0]), "--images", str(bad), "--images", str(good[1]),
                 "--images", str(tmp_path / "missing.jpg"), *FAST, "--out", str(site), "--cache", str(tmp_path / "c")])
    assert r.exit_code == 3, r.output
    assert "broken.png" in r.stderr and "missing.jpg" in r.stderr and "skipped 2 of 4 images" in r.stderr
    assert len(list(site.glob("image-*.html"))) == 2


def test_a_lone_unreadable_image_is_exit_2_and_nothing_is_built(world, tmp_path):
    root, data, (a, _) = world
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"nope")
    r = _invoke(["gallery", "--model", a, "--images", str(bad), *FAST, "--out", str(tmp_path / "site"),
                 "--cache", str(tmp_path / "c")])
    assert r.exit_code == 2 and "broken.jpg" in _one_error_line(r)
    assert not (tmp_path / "site").exists() and not (tmp_path / "c").exists()


def test_out_under_a_file_or_cache_in_someone_elses_folder_is_refused(world, tmp_path):
    root, data, (a, _) = world
    f = tmp_path / "afile"
    f.write_text("x")
    r = _invoke(["gallery", "--model", a, "--out", str(f / "sub"), "--cache", str(tmp_path / "c")])
    assert r.exit_code == 2 and "which is a file" in _one_error_line(r)
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("x")
    r = _invoke(["gallery", "--model", a, "--out", str(tmp_path / "site"), "--cache", str(home)])
    assert r.exit_code == 2 and "did not write" in _one_error_line(r)
    assert [p.name for p in home.iterdir()] == ["thesis.tex"]


def test_demo_refuses_a_site_it_did_not_write_before_training(tmp_path, monkeypatch):
    import cnnviz.train as T

    calls = []
    monkeypatch.setattr(T, "train_run", lambda cfg, progress=True: calls.append(cfg))
    site = tmp_path / "demo" / "site"
    site.mkdir(parents=True)
    (site / "notes.txt").write_text("mine")
    r = _invoke(["demo", "--quick", "--out", str(tmp_path / "demo")])
    assert r.exit_code == 2 and "did not write" in _one_error_line(r)
    assert calls == [] and (site / "notes.txt").read_text() == "mine"


# -- hostile and stale manifests: one clear line, never a KeyError or a traceback ---------------

def _mutate(tmp_path: Path, change) -> Path:
    m = make_manifest(tmp_path / "src", n_models=1, n_images=1)
    data = json.loads(m.read_text())
    change(data)
    m.write_text(json.dumps(data))
    return m


@pytest.mark.parametrize("change, expect", [
    (lambda d: d.update(version="abc"), "version must be a whole number, got text ('abc')"),
    (lambda d: d.update(version=2), "version 2 is newer than the one this cnnviz reads (1)"),
    (lambda d: d.update(models={"id": "m0"}), "models: expected a list, got an object"),
    (lambda d: d["models"][0].update(accuracy="high"), "models[0].accuracy: expected a number or null, got text"),
    (lambda d: d["models"][0]["sections"][0]["items"][0].update(src=3), "models[0].sections[0].items[0].src: expected text or null, got a number (3)."),
    (lambda d: d["images"][0].update(results=[{"model": "m0", "heat": None, "surprise": 1}]), "images[0].results[0]: unknown key 'surprise'"),
    (lambda d: d["models"][0]["sections"][2]["table"].update(rows=[[{"x": 1}]]), "rows[0][0]: expected"),
    (lambda d: d.update(comparison=[]), "comparison: expected an object or null, got a list"),
])
def test_hostile_manifest_is_one_clear_line(tmp_path, change, expect):
    from cnnviz.gallery import GalleryError, build_site

    with pytest.raises(GalleryError) as e:
        build_site(_mutate(tmp_path, change), tmp_path / "site")
    assert expect in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "site").exists()


def test_manifest_with_nan_is_not_strict_json(tmp_path):
    from cnnviz.gallery import GalleryError, build_site

    m = make_manifest(tmp_path / "src", n_models=1, n_images=1)
    m.write_text(m.read_text().replace('"accuracy": 0.8', '"accuracy": NaN'))
    with pytest.raises(GalleryError, match="not strict JSON"):
        build_site(m, tmp_path / "site")


@pytest.mark.parametrize("content, expect", [
    (b"just text, not a picture", "not a readable picture"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "not a readable picture"),
])
def test_a_manifest_picture_must_be_a_raster_image(tmp_path, content, expect):
    from cnnviz.gallery import GalleryError, build_site

    m = make_manifest(tmp_path / "src", n_models=1, n_images=1)
    (tmp_path / "src" / "files" / "evil.svg").write_bytes(content)
    data = json.loads(m.read_text())
    data["images"][0]["src"] = "files/evil.svg"
    m.write_text(json.dumps(data))
    with pytest.raises(GalleryError, match=expect):
        build_site(m, tmp_path / "site")


def test_a_manifest_naming_a_device_or_folder_is_refused(tmp_path):
    from cnnviz.gallery import GalleryError, build_site

    m = make_manifest(tmp_path / "src", n_models=1, n_images=1)
    data = json.loads(m.read_text())
    for src in ("/dev/zero", str(tmp_path)):
        data["images"][0]["src"] = src
        m.write_text(json.dumps(data))
        with pytest.raises(GalleryError, match="does not exist"):
            build_site(m, tmp_path / "site")
