"""The one ownership rule for output folders (cnnviz.atomic): cnnviz replaces only what it wrote.

A folder cnnviz did not write is refused before any work; a folder it owns is replaced only once the
new one is complete; a file it did not create is never deleted (it is carried into the new folder).
"""

from __future__ import annotations

import json
import os

import pytest

from cnnviz.atomic import MARKER, OutputFolderError, atomic_dir, check_output_dir, claim_dir


def _write(folder, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def _tree(folder) -> dict[str, str]:
    out = {}
    for dirpath, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, folder)] = open(p).read()
    return out


def test_new_folder_is_marked_with_what_was_written(tmp_path):
    site = tmp_path / "site"
    with atomic_dir(site, kind="gallery") as d:
        _write(d, {"index.html": "v1", "assets/a.png": "png"})
    doc = json.loads((site / MARKER).read_text())
    assert doc["kind"] == "gallery" and doc["files"] == ["assets/a.png", "index.html"]
    assert sorted(os.listdir(tmp_path)) == ["site"]


def test_a_folder_cnnviz_did_not_write_is_refused_before_the_work(tmp_path):
    mine = tmp_path / "mysite"
    _write(mine, {"index.html": "my page", "blog/post.md": "my post", "notes.txt": "n"})
    ran = []
    with pytest.raises(OutputFolderError, match="did not write.*blog/"):
        with atomic_dir(mine, kind="gallery"):
            ran.append(1)
    assert ran == [], "the refusal must come before the caller's work"
    assert _tree(mine) == {"index.html": "my page", "blog/post.md": "my post", "notes.txt": "n"}
    assert sorted(os.listdir(tmp_path)) == ["mysite"], "no temporary folder left"
    with pytest.raises(OutputFolderError):
        check_output_dir(mine, "compare")


def test_an_empty_folder_is_used(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with atomic_dir(out, kind="compare") as d:
        _write(d, {"compare.json": "{}"})
    assert (out / "compare.json").read_text() == "{}"


def test_owned_folder_replaced_and_user_files_kept(tmp_path):
    site = tmp_path / "site"
    with atomic_dir(site, kind="gallery") as d:
        _write(d, {"index.html": "v1", "old-page.html": "gone soon", "assets/a.png": "a"})
    # the user adds their own things into the gallery folder
    _write(site, {"notes.txt": "mine", "blog/post.md": "my post", "assets/my-photo.jpg": "photo"})
    (site / "empty-dir").mkdir()
    with atomic_dir(site, kind="gallery") as d:
        _write(d, {"index.html": "v2", "assets/b.png": "b"})
    tree = _tree(site)
    assert tree.pop(MARKER)
    assert tree == {"index.html": "v2", "assets/b.png": "b", "notes.txt": "mine", "blog/post.md": "my post",
                    "assets/my-photo.jpg": "photo"}
    assert (site / "empty-dir").is_dir()
    assert sorted(os.listdir(tmp_path)) == ["site"], "no aside folder left"
    # the user's files are not listed as cnnviz's, so a third build still keeps them
    with atomic_dir(site, kind="gallery") as d:
        _write(d, {"index.html": "v3"})
    assert (site / "notes.txt").read_text() == "mine" and not (site / "assets" / "b.png").exists()


def test_a_user_file_in_the_way_of_a_new_output_is_refused(tmp_path):
    site = tmp_path / "site"
    with atomic_dir(site, kind="gallery") as d:
        _write(d, {"index.html": "v1"})
    _write(site, {"compare.html": "the user's own page"})
    with pytest.raises(OutputFolderError, match="compare.html.*not written by cnnviz"):
        with atomic_dir(site, kind="gallery") as d:
            _write(d, {"index.html": "v2", "compare.html": "ours"})
    assert (site / "compare.html").read_text() == "the user's own page" and (site / "index.html").read_text() == "v1"
    assert sorted(os.listdir(tmp_path)) == ["site"]


def test_failure_in_the_block_leaves_the_old_folder(tmp_path):
    site = tmp_path / "site"
    with atomic_dir(site, kind="gallery") as d:
        _write(d, {"index.html": "v1"})
    with pytest.raises(RuntimeError):
        with atomic_dir(site, kind="gallery") as d:
            _write(d, {"index.html": "half"})
            raise RuntimeError("boom")
    assert (site / "index.html").read_text() == "v1" and sorted(os.listdir(tmp_path)) == ["site"]


def test_a_hostile_marker_cannot_delete_outside_or_unlisted_files(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    site = tmp_path / "site"
    _write(site, {"index.html": "x", "thesis.tex": "keep too"})
    (site / MARKER).write_text(json.dumps({"cnnviz": "cnnviz output folder", "kind": "gallery",
                                           "files": ["../precious.txt", "/etc/passwd", "index.html"]}))
    with atomic_dir(site, kind="gallery") as d:
        _write(d, {"index.html": "new"})
    assert outside.read_text() == "keep" and (site / "thesis.tex").read_text() == "keep too"
    assert (site / "index.html").read_text() == "new"


def test_a_corrupt_or_foreign_marker_means_not_ours(tmp_path):
    site = tmp_path / "site"
    _write(site, {"index.html": "x", MARKER: "{not json"})
    with pytest.raises(OutputFolderError, match="did not write"):
        check_output_dir(site, "gallery")
    with atomic_dir(tmp_path / "cmp", kind="compare") as d:
        _write(d, {"compare.json": "{}"})
    with pytest.raises(OutputFolderError, match="cnnviz compare output, not a gallery"):
        check_output_dir(tmp_path / "cmp", "gallery")


def test_an_old_unmarked_gallery_is_adopted_but_not_a_lookalike(tmp_path):
    old = tmp_path / "old"
    _write(old, {"index.html": "i", "model-m0.html": "m", "static/gallery.js": "js", "static/gallery.css": "css",
                 "assets/0123456789abcdef-img.png": "p"})
    with atomic_dir(old, kind="gallery") as d:
        _write(d, {"index.html": "new"})
    assert not (old / "model-m0.html").exists() and (old / "index.html").read_text() == "new"
    look = tmp_path / "look"
    _write(look, {"index.html": "i", "static/gallery.js": "js", "static/gallery.css": "css", "cv.pdf": "mine"})
    with pytest.raises(OutputFolderError):
        check_output_dir(look, "gallery")


def test_paths_under_a_file_are_refused(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(OutputFolderError, match="is a file"):
        check_output_dir(f, "gallery")
    with pytest.raises(OutputFolderError, match="which is a file"):
        check_output_dir(f / "sub", "gallery")


def test_symlinked_folder_replaces_its_target_not_the_link(tmp_path):
    real = tmp_path / "real"
    with atomic_dir(real, kind="gallery") as d:
        _write(d, {"index.html": "v1"})
    link = tmp_path / "link"
    link.symlink_to(real)
    with atomic_dir(link, kind="gallery") as d:
        _write(d, {"index.html": "v2"})
    assert link.is_symlink() and (real / "index.html").read_text() == "v2"


def test_claim_dir_marks_and_refuses(tmp_path):
    cache = claim_dir(tmp_path / "cache", "cache")
    assert json.loads((cache / MARKER).read_text())["kind"] == "cache"
    claim_dir(cache, "cache")  # again: fine
    home = tmp_path / "home"
    _write(home, {"thesis.tex": "x"})
    with pytest.raises(OutputFolderError):
        claim_dir(home, "cache")


def test_a_users_empty_folder_in_the_way_of_a_new_file_is_refused(tmp_path):
    site = tmp_path / "site"
    with atomic_dir(site, kind="gallery") as d:
        _write(d, {"index.html": "v1"})
    (site / "compare.html").mkdir()  # the user's (empty) folder; the next build writes a file of that name
    with pytest.raises(OutputFolderError, match="compare.html"):
        with atomic_dir(site, kind="gallery") as d:
            _write(d, {"index.html": "v2", "compare.html": "page"})
    assert (site / "compare.html").is_dir() and (site / "index.html").read_text() == "v1"
    assert sorted(os.listdir(tmp_path)) == ["site"]


def test_an_empty_folder_of_cnnviz_does_not_block_a_rebuild(tmp_path):
    site = tmp_path / "site"
    for v in ("v1", "v2"):
        with atomic_dir(site, kind="gallery") as d:
            _write(d, {"index.html": v})
            (d / "thumbs").mkdir()  # a gallery of small pictures has an empty thumbs/
    assert (site / "index.html").read_text() == "v2" and (site / "thumbs").is_dir()
