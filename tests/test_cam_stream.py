"""The folder-job plumbing: prefetched batches keep order and report bad files; render's overlay and writers."""

from __future__ import annotations

import numpy as np
from PIL import Image

from cnnviz.explain.stream import image_batches, stored_size
from cnnviz.render import colorize, lut, overlay, save_npy, save_png


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
    assert [i for b in batches for i in b.indices] == [0, 1, 2, 4, 5, 6]
    assert [p.name for b in batches for p, _ in b.bad] == ["3.png"]
    assert batches[1].x.shape == (2, 3, 32, 32) and batches[1].images[1].shape == (25, 30, 3)
    assert batches[1].sizes[1] == (25, 30)


def test_stored_size_reads_the_header_and_exif(tmp_path):
    p = tmp_path / "long.png"
    Image.fromarray(np.zeros((10, 5000, 3), np.uint8)).save(p)
    assert stored_size(p) == (10, 5000)
    im = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotated 90 degrees: load_image turns it upright, (40, 20)
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert stored_size(tmp_path / "rot.jpg") == (40, 20)


def _old_overlay(img: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """cnnviz.render.overlay before it became the cv2/LUT one: float blend over a fresh colour table."""
    import cv2
    from matplotlib import colormaps

    if heat.shape[:2] != img.shape[:2]:
        heat = cv2.resize(np.asarray(heat, np.float32), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    table = (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
    col = table[np.clip(np.clip(heat, 0, 1) * 255 + 0.5, 0, 255).astype(np.uint8)].astype(np.float32)
    return np.clip((1 - alpha) * img.astype(np.float32) + alpha * col + 0.5, 0, 255).astype(np.uint8)


def test_overlay_matches_the_old_float_overlay_to_rounding(rgb_image):
    rng = np.random.default_rng(1)
    for heat, alpha, cmap in ((rng.random((12, 16)).astype(np.float32), 0.5, "jet"),
                              (rng.random((48, 64)) * 1.4 - 0.2, 0.3, "viridis")):  # out-of-range values clip the same
        a = overlay(rgb_image, heat, alpha=alpha, cmap=cmap).astype(int)
        b = _old_overlay(rgb_image, heat, alpha=alpha, cmap=cmap).astype(int)
        assert a.shape == b.shape == rgb_image.shape and a.dtype == b.dtype
        assert np.abs(a - b).max() <= 1, np.abs(a - b).max()
    assert overlay(rgb_image[..., 0], np.zeros((4, 4))).shape == rgb_image.shape  # gray images are fine


def test_colorize_uses_one_cached_table():
    assert lut("jet") is lut("jet") and lut("jet").shape == (256, 3)
    assert np.array_equal(colorize(np.array([[0.0, 1.0]])), lut("jet")[[0, 255]][None])
    assert np.array_equal(colorize(np.array([[np.nan]])), lut("jet")[[0]][None])


def test_png_and_npy_writers(tmp_path, rgb_image):
    for comp in (1, 6):
        png = save_png(rgb_image, tmp_path / f"x{comp}.png", compression=comp)
        assert np.array_equal(np.asarray(Image.open(png)), rgb_image)  # RGB order kept (cv2 writes BGR)
    gray = rgb_image[..., 0]
    assert np.array_equal(np.asarray(Image.open(save_png(gray, tmp_path / "g.png"))), gray)
    rgba = np.dstack([rgb_image, np.full(gray.shape, 128, np.uint8)])
    assert np.array_equal(np.asarray(Image.open(save_png(rgba, tmp_path / "a.png"))), rgba)
    arr = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    assert np.array_equal(np.load(save_npy(arr, tmp_path / "x.npy")), arr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "g.png", "x.npy", "x1.png", "x6.png"]  # no temp files
