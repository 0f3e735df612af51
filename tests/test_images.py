"""Image loading across formats and modes, memory-bounded decoding, preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.errors import ImageError
from cnnviz.images import expand_image_paths, load_image, resize_map, to_tensor


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "bmp", "tiff"])
def test_formats(rgb_image, tmp_path, ext):
    p = tmp_path / f"x.{ext}"
    Image.fromarray(rgb_image).save(p)
    a = load_image(p)
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8
    if ext in ("png", "bmp", "tiff"):
        np.testing.assert_array_equal(a, rgb_image)


def test_modes(tmp_path):
    gray = np.tile(np.arange(64, dtype=np.uint8) * 4, (16, 1))
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    a = load_image(tmp_path / "g.png")
    assert a.shape == (16, 64, 3) and (a[..., 0] == gray).all() and (a[..., 0] == a[..., 2]).all()

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :4, 3] = 0  # left half transparent -> white
    rgba[:, 4:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    a = load_image(tmp_path / "a.png")
    assert (a[:, :4] == 255).all() and (a[:, 4:] == [255, 0, 0]).all()

    pal = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), "L").convert("P")
    pal.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (8, 8, 3)

    deep = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")  # uint16 -> a 16-bit PNG
    a = load_image(tmp_path / "d.png")
    assert a[0, 0, 0] == 0 and a[-1, -1, 0] == 255 and a[8, 0, 0] == 128


def test_exif_rotation(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255  # left half white
    im = Image.fromarray(img)
    exif = im.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    im.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    a = load_image(tmp_path / "r.jpg")
    assert a.shape == (40, 20, 3)
    assert a[:15].mean() > 200 and a[-15:].mean() < 50  # white half now on top


def test_huge_jpeg_is_decoded_small(tmp_path):
    import tracemalloc

    big = np.zeros((3000, 4000, 3), np.uint8)
    big[:, :2000] = 200
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=70)
    del big
    tracemalloc.start()
    a = load_image(tmp_path / "big.jpg", max_side=500)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert max(a.shape[:2]) == 500 and a.shape[1] / a.shape[0] == pytest.approx(4 / 3, rel=0.01)
    assert peak < 3000 * 4000 * 3 / 4  # never the full bitmap (36 MB)


def test_bad_files(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match="bad.jpg"):
        load_image(tmp_path / "bad.jpg")
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images"):
        expand_image_paths([tmp_path / "empty"])


def test_expand_folders(tmp_path, rgb_image):
    (tmp_path / "sub").mkdir()
    for n in ("b.png", "a.jpg", "sub/c.webp"):
        Image.fromarray(rgb_image).save(tmp_path / n)
    (tmp_path / "notes.txt").write_text("x")
    got = expand_image_paths([tmp_path])
    assert [p.name for p in got] == ["a.jpg", "b.png", "c.webp"]


def test_to_tensor_whole_image_no_crop(rgb_image):
    x = to_tensor(rgb_image, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), (24, 32))
    assert x.shape == (1, 3, 24, 32) and x.min() >= -1 and x.max() <= 1
    g = to_tensor(np.full((10, 10, 3), 255, np.uint8), (0.0,), (1.0,), (5, 5))
    assert g.shape == (1, 1, 5, 5) and torch.allclose(g, torch.ones_like(g), atol=1e-3)


def test_resize_map_lines_up():
    m = np.zeros((7, 7), np.float32)
    m[0, 0] = 1
    up = resize_map(m, (224, 300))
    assert up.shape == (224, 300) and up.dtype == np.float32
    y, x = np.unravel_index(up.argmax(), up.shape)
    assert y < 224 / 7 and x < 300 / 7
