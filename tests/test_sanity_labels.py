"""`cnnviz sanity --labels`: the data-randomization test through the real trainer (``--random-labels``).

A tiny simplecnn is trained twice on a 2-class folder whose classes differ by a bright square; the real-label
run learns it, the permuted-label run cannot, and the command compares their maps with the cascade's output shape.
"""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image


def _folder(root, n=24, side=16, seed=0):
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("test", 8)):
        for c, cls in enumerate(("plain", "square")):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(count):
                a = rng.integers(0, 60, (side, side, 3), dtype=np.uint8)
                if c:
                    a[4:12, 4:12] = 230
                Image.fromarray(a).save(d / f"{i}.png")
    return root


def test_labels_trains_real_and_random_and_compares_their_maps(tmp_path, one_thread):
    from cnnviz.cli.main import cli

    data = _folder(tmp_path / "data")
    imgs = sorted((data / "test" / "square").glob("*.png"))[:2]
    out = tmp_path / "san"
    r = CliRunner().invoke(cli, ["sanity", *map(str, imgs), "--labels", "--data", str(data), "--model",
                                 "simplecnn:width=8,depth=2", "--epochs", "3", "--methods", "gradcam,saliency",
                                 "--no-figures", "--json", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert [e["method"] for e in res] == ["gradcam", "saliency"]
    for e in res:
        assert [s["layer"] for s in e["cascade"]] == ["random-labels"]
        assert -1.0 <= e["cascade"][0]["spearman"] <= 1.0
    runs = json.loads((out / "sanity.json").read_text())
    text = json.dumps(runs)
    assert "real-labels" in text or "real" in text
    assert (out / "runs" / "real-labels" / "ckpt.pt").is_file() and (out / "runs" / "random-labels" / "ckpt.pt").is_file()
    # the two runs differ only in their labels: same recipe, different weights
    import torch

    a = torch.load(out / "runs" / "real-labels" / "ckpt.pt", weights_only=True)
    b = torch.load(out / "runs" / "random-labels" / "ckpt.pt", weights_only=True)
    sa, sb = a["state_dict"], b["state_dict"]
    assert sa.keys() == sb.keys() and any(not torch.equal(sa[k], sb[k]) for k in sa)
