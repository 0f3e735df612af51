"""The files of ``cnnviz train --timeline`` in RUN_DIR: which are cnnviz's, the resume state, staging.

``RUN_DIR/timeline.json`` and ``RUN_DIR/timeline/`` (``state.pt``, ``curves.png``, ``cams.png``,
``cams/eEEE_KKK.png``, ``images/KKK.png``) are the timeline of the checkpoint beside them. While the trainer
stages a rerun's checkpoint (``ckpt.partial.pt``), the rerun's timeline is written in the same layout under
``RUN_DIR/timeline.partial/`` and ``install`` moves it in place once the run has finished. cnnviz replaces or
deletes only regular files with the names it gives them; any other file in ``timeline/`` is the user's.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

from cnnviz.train.config import TrainError

STATE_VERSION = 1
STAGING = "timeline.partial"  # RUN_DIR/STAGING: a staged run's timeline.json and timeline/
_OWN = re.compile(r"^(e\d{3}_\d{3}\.png|\d{3}\.png)$")  # the files under timeline/cams, timeline/images that are ours
_OWN_TOP = ("state.pt", "curves.png", "cams.png")  # the files directly under timeline/ that are ours


def save_state(tdir: Path, s: dict[str, Any]) -> None:
    """``timeline/state.pt``: what a resumed run needs (tensors and plain containers; loads with weights_only)."""
    import torch

    from cnnviz.atomic import atomic_path

    keep = {k: v for k, v in s.items() if not k.startswith("_") and k != "fresh"}
    keep["tb_last"] = s["epochs"][-1]
    keep["grams"] = torch.stack(s["grams"])  # (E, L, nb, B, B)
    tdir.mkdir(parents=True, exist_ok=True)
    with atomic_path(tdir / "state.pt", suffix=".pt") as tmp:
        torch.save(keep, tmp)


def load_state(root: Path) -> dict[str, Any] | None:
    """The state ``save_state`` wrote under ``root`` (RUN_DIR, or its staging folder); None when there is none."""
    import torch

    p = Path(root) / "timeline" / "state.pt"
    if not p.is_file():
        return None
    try:
        s = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged file: say so in one line
        raise TrainError(f"--timeline: '{p}' cannot be read ({type(e).__name__}); start a new run (another --out).") from None
    if not isinstance(s, dict) or s.get("version") != STATE_VERSION or "grams" not in s:
        raise TrainError(f"--timeline: '{p}' is not a timeline state this cnnviz writes; start a new run (another --out).")
    s["grams"] = list(s["grams"])
    return s


def _own_files(tdir: Path) -> list[str]:
    """The files a timeline wrote under ``tdir`` (``/``-separated, relative): only regular files with the
    names cnnviz gives them; anything else there (a symlink, another name) is the user's."""
    def regular(p: Path) -> bool:
        return p.is_file() and not p.is_symlink()

    out = [n for n in _OWN_TOP if regular(tdir / n)]
    for sub in ("cams", "images"):
        d = tdir / sub
        if d.is_dir():
            out += sorted(f"{sub}/{p.name}" for p in d.iterdir() if _OWN.match(p.name) and regular(p))
    return out


def clear_own(tdir: Path) -> None:
    """Remove the files an earlier timeline wrote under ``tdir`` (only names cnnviz gives them)."""
    for rel in _own_files(tdir):
        (tdir / rel).unlink()


def check_paths(run_dir: Path) -> None:
    """Refuse (``TrainError``, before any training) a RUN_DIR where a name the timeline writes is taken by
    something cnnviz did not write and would have to delete: a file where it writes a folder, a folder or a
    symlink where it writes a file."""
    bad: list[tuple[Path, str]] = []
    for root in (run_dir, run_dir / STAGING):
        if root != run_dir and (root.is_symlink() or (root.exists() and not root.is_dir())):
            bad.append((root, "a folder"))
            continue
        if not root.is_dir():
            continue
        j = root / "timeline.json"
        if j.is_symlink() or (j.exists() and not j.is_file()):
            bad.append((j, "a file"))
        tdir = root / "timeline"
        bad += [(d, "a folder") for d in (tdir, tdir / "cams", tdir / "images") if d.exists() and not d.is_dir()]
        if tdir.is_dir():
            bad += [(tdir / n, "a file") for n in _OWN_TOP if (tdir / n).is_symlink() or (tdir / n).is_dir()]
            for sub in ("cams", "images"):
                if (tdir / sub).is_dir():
                    bad += [(f, "a file") for f in sorted((tdir / sub).iterdir())
                            if _OWN.match(f.name) and (f.is_symlink() or not f.is_file())]
    if bad:
        path, want = bad[0]
        raise TrainError(f"--timeline writes {want} named '{path}', and what is there now was not written by cnnviz; "
                         "move it away, or use another --out.")


def install(staging: Path, run_dir: Path) -> None:
    """Put the finished timeline in ``staging`` (``timeline.json`` + ``timeline/``) in place of ``run_dir``'s.

    The new files are moved over the earlier ones (each ``os.replace``: a reader sees the old file or the new
    one), then the earlier run's files that the new timeline does not have (its later epochs) are deleted, then
    ``timeline.json`` is replaced. Only files cnnviz wrote are replaced or deleted; the user's stay where they are.
    """
    src, dst = staging / "timeline", run_dir / "timeline"
    new = _own_files(src)
    stale = sorted(set(_own_files(dst)) - set(new))
    for rel in new:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(src / rel, dst / rel)
    for rel in stale:
        (dst / rel).unlink()
    os.replace(staging / "timeline.json", run_dir / "timeline.json")
    for d in (src / "cams", src / "images", src, staging, *(dst / s for s in ("cams", "images"))):
        with contextlib.suppress(OSError):  # not empty: what is left there is not cnnviz's, so it stays
            d.rmdir()
