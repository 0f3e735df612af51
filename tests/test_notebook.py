"""docs/notebooks/tour.ipynb runs top to bottom in a real Jupyter kernel, and is stored without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

TOUR = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "tour.ipynb"


def test_tour_is_stored_small():
    nb = json.loads(TOUR.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code) >= 6
    assert all(not c["outputs"] and c["execution_count"] is None for c in code), "strip the notebook's outputs before committing"
    assert TOUR.stat().st_size < 20_000


@pytest.mark.slow
def test_tour_runs_in_a_real_kernel(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    # a kernelspec for this interpreter, so the kernel imports this checkout's cnnviz
    spec = tmp_path / "jupyter" / "kernels" / "cnnviz-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "cnnviz test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(TOUR, as_version=4)
    NotebookClient(nb, kernel_name="cnnviz-test", timeout=900, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 5  # every cnnviz.show(...) drew inline
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Explanation('gradcam', layer='bn2'" in text and "Egyptian cat" in text
    assert "test accuracy" in text and "CKA" in text and "Grad-CAM agreement" in text
