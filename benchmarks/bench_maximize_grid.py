"""The picture of bench_maximize.py: cnnviz's class images above lucent's for the same classes.

Reads what ``bench_maximize.py --save DIR --json RESULTS`` kept and tiles the FIRST ``--n`` classes of a
draw (the draw's own order: no picking), cnnviz's row above lucent's, each image labelled with the class
and a judge's verdict (``--judge``, default the first of the run; ``ok`` = the class is in its top 5, top 1 for
models of 10 classes or fewer; ``--`` = not).

    .venv/bin/python benchmarks/bench_maximize_grid.py --save /tmp/bench-maximize --json docs/bench/maximize.json \\
        --draw 1 --steps 128 --out docs/img/units-maximize-vs-lucent.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--save", required=True, help="bench_maximize.py --save folder")
    ap.add_argument("--json", dest="results", required=True, help="bench_maximize.py --json results")
    ap.add_argument("--draw", default="1")
    ap.add_argument("--steps", type=int, default=None, help="which step budget [the longest]")
    ap.add_argument("--n", type=int, default=10, help="classes shown (the first N of the draw)")
    ap.add_argument("--upscale", type=int, default=2, help="nearest-neighbour zoom of each image")
    ap.add_argument("--judge", default=None, help="whose verdict labels the images (one of the run's judges) [the first]")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    from PIL import Image

    from cnnviz.models import load_model
    from cnnviz.render import display_image, label, tile, titled

    res = json.loads(Path(a.results).read_text())
    steps = a.steps or max(res["steps"])
    entry = res["draws"][a.draw]
    classes = entry["classes"][: a.n]
    judge = a.judge or res["judges"][0]
    if judge not in res["judges"]:
        raise SystemExit(f"--judge {judge!r} is not one of the run's judges: {', '.join(res['judges'])}")
    hits = entry["hits"][f"{judge}@{steps}"]
    names = load_model(res["model"])[1].class_names
    root = Path(a.save) / f"draw{a.draw}"
    sub = "" if steps == max(res["steps"]) else f"step{steps}"
    files = sorted((root / "cnnviz" / sub).glob("[0-9][0-9][0-9]-*.png"))[: a.n]
    ours = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    with np.load(root / "lucent" / "lucent.npz") as z:
        theirs = list(z[f"step{steps}"][: a.n])
    theirs = [np.repeat(t, 3, axis=2) if t.shape[2] == 1 else t for t in theirs]
    tiles = []
    px = a.upscale * max(im.shape[0] for im in ours + theirs)  # the tools' canvases may differ (small models)
    for tool, imgs in (("cnnviz", ours), ("lucent", theirs)):
        for k, (im, c) in enumerate(zip(imgs, classes)):
            big = display_image(im, px)
            verdict = "ok" if hits[f"{tool}_hits"][k] else "--"
            tiles.append(label(big, f"{verdict} {names[c].split(',')[0][:14]}", scale=0.5))
    grid = tile(tiles, ncols=len(classes))
    size = f"{res['size']}-px canvas" if res.get("size") else "each tool's default canvas"

    def short(spec: str) -> str:  # a checkpoint is named by its run folder
        return Path(spec).parent.name if spec.endswith(".pt") else spec

    d = entry["hits"][f"{judge}@{steps}"]
    titled(grid, f"Class images on {short(res['model'])}: cnnviz (top row) vs lucent (bottom), first {len(classes)} classes of draw {a.draw}",
           a.out, subtitle=f"{steps} steps, {size}, seed {res['seed']}; ok = {short(judge)} has the class in its {'top 5' if len(names) > 10 else 'top 1'} "
                           f"(this draw: cnnviz {d['cnnviz']:.0%}, lucent {d['lucent']:.0%} of {d['n']})")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
