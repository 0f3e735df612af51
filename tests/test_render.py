"""cnnviz.render.as_rgb: the one RGB converter for dataset items and arrays (compare's figures, the gallery's dataset images)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnviz.render import as_rgb


def test_pil_images_decode_as_load_image_does(tmp_path):
    from cnnviz.images import load_image

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (9, 7, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(rng.random((9, 7)) < 0.5, 0, 255).astype(np.uint8)
    cases = {"rgba.png": Image.fromarray(rgba), "l.png": Image.fromarray(rgba[..., 0]),
             "p.png": Image.fromarray(rgba[..., :3]).convert("P"), "i16.png": Image.fromarray(rgba[..., 0].astype(np.uint16) * 257)}
    for name, im in cases.items():
        im.save(tmp_path / name)
        with Image.open(tmp_path / name) as opened:
            got = as_rgb(opened)
        assert got.dtype == np.uint8 and got.shape == (9, 7, 3), name
        np.testing.assert_array_equal(got, load_image(tmp_path / name), err_msg=name)
    transparent = as_rgb(Image.fromarray(rgba))[rgba[..., 3] == 0]
    assert (transparent == 255).all()  # transparency on white, not the hidden colour


def test_arrays():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for a in (g, g[..., None]):
        out = as_rgb(a)
        assert out.shape == (3, 4, 3) and (out == g[..., None]).all()
    rgba = np.dstack([g, g, g, np.zeros_like(g)])
    assert as_rgb(rgba).shape == (3, 4, 3) and as_rgb(rgba).flags.c_contiguous
    with pytest.raises(TypeError, match="uint8"):
        as_rgb(g.astype(np.float32))
    with pytest.raises(TypeError):
        as_rgb(np.zeros((3, 4, 2), dtype=np.uint8))
