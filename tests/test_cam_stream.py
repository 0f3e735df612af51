"""The folder-job plumbing: prefetched batches keep order and report bad files; fast overlay = render.overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cnnviz.explain.stream import fast_overlay, image_batches, save_npy, save_png_fast, unique_stems


def test_batches_keep_order_and_report_bad_files(tmp_path, tiny_cnn):
    _, info = tiny_cnn
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        p = tmp_path / f"{i}.png"
        if i == 3:
            p.write_bytes(b"broken")
        else:
            Image.fromarray(rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    batches = list(image_batches(paths, info, batch_size=3))
    assert [len(b.paths) + len(b.bad) for b in batches] == [3, 3, 1]
    assert [p.name for b in batches for p in b.paths] == ["0.png", "1.png", "2.png", "4.png", "5.png", "6.png"]
    assert [p.name for b in batches for p, _ in b.bad] == ["3.png"]
    assert batches[1].x.shape == (2, 3, 32, 32) and batches[1].images[1].shape == (25, 30, 3)


def test_fast_overlay_matches_render_overlay(rgb_image):
    from cnnviz.render import overlay

    heat = np.random.default_rng(1).random((12, 16)).astype(np.float32)
    a = fast_overlay(rgb_image, heat).astype(int)
    b = overlay(rgb_image, heat).astype(int)
    assert a.shape == b.shape == rgb_image.shape and np.abs(a - b).max() <= 2


def test_writers_and_unique_stems(tmp_path, rgb_image):
    png = save_png_fast(rgb_image, tmp_path / "x.png")
    assert np.array_equal(np.asarray(Image.open(png)), rgb_image)
    arr = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    assert np.array_equal(np.load(save_npy(arr, tmp_path / "x.npy")), arr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "x.png"]  # no temp files left
    assert unique_stems([Path("a/x.jpg"), Path("b/x.png"), Path("y.jpg"), Path("c/x.jpg")]) == ["x", "x-2", "y", "x-3"]
