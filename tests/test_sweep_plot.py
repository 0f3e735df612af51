"""``sweep.png``: the learning-rate axis is labelled with the swept rates only, short, and no two labels overlap."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz.train.sweep import lr_label, plot_sweep


def _rows(lrs, modes=("scratch",)):
    return [{"model": "simplecnn", "mode": mode, "lr": float(lr), "test_accuracy": 0.5 + 0.01 * i,
             "history": [{"epoch": e, "val_accuracy": 0.3 + 0.1 * e} for e in (1, 2, 3)]}
            for mode in modes for i, lr in enumerate(lrs)]


def _lr_axis(monkeypatch, tmp_path, rows) -> dict:
    """What ``plot_sweep`` drew on its learning-rate axis, read from the figure just before it is saved: the
    ticks, and the visible tick labels (major and minor) in axis order with their boxes on the figure."""
    import cnnviz.render

    seen = {}
    real = cnnviz.render.save_figure

    def keep(fig, path, **kw):
        fig.canvas.draw()
        r, ax = fig.canvas.get_renderer(), fig.axes[0]
        labels = [t for t in [*ax.get_xticklabels(), *ax.get_xticklabels(minor=True)] if t.get_visible() and t.get_text()]
        pairs = sorted(((t.get_window_extent(r), t.get_text()) for t in labels), key=lambda p: p[0].x0)
        seen.update(ticks=list(ax.get_xticks()), boxes=[b for b, _ in pairs], texts=[t for _, t in pairs])
        return real(fig, path, **kw)

    monkeypatch.setattr(cnnviz.render, "save_figure", keep)
    plot_sweep(rows, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0
    return seen


@pytest.mark.parametrize("lrs", [
    [3e-4, 1e-3, 3e-3],  # the review's case: log minor labels 3x10^-4 and 4x10^-4 ran into each other
    [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1],
    list(np.logspace(-5, -1, 13)),
    [1e-3, 1.1e-3, 1.2e-3, 1.3e-3, 1.5e-3, 2e-3, 3e-3, 1e-2],  # crowded: some labels must go
])
def test_sweep_plot_lr_labels_do_not_overlap(monkeypatch, tmp_path, lrs):
    seen = _lr_axis(monkeypatch, tmp_path, _rows(lrs, ("ft", "lpft")))
    boxes, shown = seen["boxes"], seen["texts"]
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), shown
    want = sorted(lrs)
    assert seen["ticks"] == pytest.approx(want)  # a tick at every swept rate, and none elsewhere
    assert set(shown) <= {lr_label(v) for v in want}, shown
    assert shown[0] == lr_label(want[0]) and shown[-1] == lr_label(want[-1])  # the range's ends are named
    assert len(shown) >= min(len(want), 4)


def test_lr_label_is_short():
    assert [lr_label(v) for v in (3e-4, 1e-3, 2.5e-5, 3e-2, 9.9999e-4, 0.1, 0.3, 1.0)] == \
        ["3e-4", "1e-3", "2.5e-5", "3e-2", "1e-3", "0.1", "0.3", "1"]
