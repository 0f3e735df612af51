"""Atomic writes: all or nothing, and ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from cnnviz.atomic import atomic_dir, atomic_path, write_text


def test_file_is_replaced_whole_and_readable(tmp_path):
    p = tmp_path / "a.txt"
    write_text(p, "one")
    write_text(p, "two")
    assert p.read_text() == "two" and os.listdir(tmp_path) == ["a.txt"]
    mode = stat.S_IMODE(p.stat().st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH  # not mkstemp's 0600


def test_failure_leaves_old_file_and_no_temp(tmp_path):
    p = tmp_path / "a.txt"
    write_text(p, "old")
    with pytest.raises(ValueError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise ValueError
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_dir_swap(tmp_path):
    site = tmp_path / "site"
    with atomic_dir(site) as d:
        (d / "index.html").write_text("v1")
    with pytest.raises(RuntimeError):
        with atomic_dir(site) as d:
            (d / "index.html").write_text("broken")
            raise RuntimeError
    assert (site / "index.html").read_text() == "v1"
    with atomic_dir(site) as d:
        (d / "index.html").write_text("v2")
    assert (site / "index.html").read_text() == "v2" and sorted(os.listdir(tmp_path)) == ["site"]
    assert stat.S_IMODE(site.stat().st_mode) & stat.S_IROTH
