"""Atomic writes: all or nothing, and ordinary permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

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


# -- strict JSON (finite_or_none, dumps_json, json_default) ------------------------------------
def test_dumps_json_is_strict_json():
    import json
    import math

    import numpy as np

    from cnnviz.atomic import dumps_json, finite_or_none

    doc = {"nan": float("nan"), "inf": [float("inf"), -math.inf, 1.5], "t": (np.float32("nan"), np.int64(3)),
           "arr": np.array([[1.0, np.nan], [np.inf, 2.0]]), "np": np.float64(0.25), "nested": {"x": [{"y": float("nan")}]},
           "obj": object.__name__}
    text = dumps_json(doc, indent=1)
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(c)))
    assert back["nan"] is None and back["inf"] == [None, None, 1.5] and back["t"] == [None, 3]
    assert back["arr"] == [[1.0, None], [None, 2.0]] and back["np"] == 0.25 and back["nested"]["x"][0]["y"] is None
    assert finite_or_none(2.0) == 2.0 and finite_or_none("NaN") == "NaN"  # strings are data, not numbers
    assert json.loads(dumps_json({"p": Path("/a b")})) == {"p": "/a b"}  # unknown objects: their str


def test_every_json_writer_in_these_rooms_uses_dumps_json():
    """No json.dumps/json.dump writer left in the CLI rooms, compare or checkpoints: each went through
    dumps_json (NaN -> null). Others' rooms are listed in the hardening report."""
    root = Path(__file__).resolve().parents[1]
    files = [root / "cli" / f for f in ("main.py", "common.py", "compare.py", "units.py")]
    files += sorted((root / "cnnviz" / "compare").glob("*.py")) + [root / "cnnviz" / "checkpoint.py", root / "cnnviz" / "models.py"]
    for f in files:
        text = f.read_text()
        assert "json.dumps(" not in text and "json.dump(" not in text, f
