"""Grad-CAM at every depth (``cnnviz gradcam --layers stages``): what a strip costs, and the docs figure.

(a) compute: a batch of scikit-image photos at 224 px, bundled EfficientNet-Lite0, the five stage
    outputs (``bn1, blocks.1, blocks.3, blocks.5, bn2``). Contestants, interleaved in one process
    (round-robin, shuffled each round; medians), all as ratios to one inference forward of the batch:
    * ``cnnviz strip``: ``compute_cam_strip``, one forward + one backward for the five layers;
    * ``cnnviz per layer``: five ``compute_cams`` calls (what a loop over layers costs);
    * ``torchcam GradCAM([5 layers])``: torchcam's multi-layer extractor (one forward, a full backward);
    * ``pytorch-grad-cam x5``: its GradCAM once per layer (it would average the layers if given all five).
    Also the largest difference between the strip's maps and the per-layer calls.
(b) the sanity verdict's cost (``--sanity``): ``sanity_verdicts`` vs the whole ``cascading_randomization``
    on the same images, methods and seed, and whether their verdicts agree.
(c) ``--figure DIR``: docs/img/gradcam-layers.png, made by ``cnnviz gradcam --layers stages`` on the bundled
    Lite0 and a Lite0 with random weights (seed 1, saved as a checkpoint so the figure can be remade);
    with ``--gallery``, also docs/img/gallery-image.png: the image page of a gallery of the same two models
    on the four photos (``--cam gradcam --attribute saliency,guided-backprop``), screenshot in Chromium.

    .venv/bin/python benchmarks/bench_strips.py [--rounds 7] [--threads 1] [--sanity] [--figure docs/img [--gallery]]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore")
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def photos_batch(info, n: int):
    from cnnviz.images import preprocess, sample_image

    return torch.cat([preprocess(sample_image(PHOTOS[i % len(PHOTOS)]), info) for i in range(n)])


def compute(rounds: int, n: int) -> None:
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchcam.methods import GradCAM as TcGradCAM

    from cnnviz.explain.cam import compute_cam_strip, compute_cams, strip_layers
    from cnnviz.models import load_model

    model, info = load_model("efficientnet_lite0")
    x = photos_batch(info, n)
    layers = strip_layers(model, "stages", info.input_size)
    with torch.no_grad():
        targets = model(x).argmax(1).tolist()

    def forward():
        with torch.no_grad():
            model(x)

    def strip():
        return compute_cam_strip(model, x, layers, targets=targets)

    def per_layer():
        return [compute_cams(model, x, layer=n_, targets=targets) for n_ in layers]

    def torchcam():
        with TcGradCAM(model, target_layer=layers) as ex:
            ex(class_idx=targets, scores=model(x))
        model.zero_grad(set_to_none=True)

    def pgc_each():
        for n_ in layers:
            with pgc.GradCAM(model=model, target_layers=[model.get_submodule(n_)]) as cam:
                cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
        model.zero_grad(set_to_none=True)

    s, p = strip(), per_layer()
    diff = max(float(np.abs(s.maps[:, k] - p[k].maps).max()) for k in range(len(layers)))
    contestants = {"forward (inference)": forward, "cnnviz strip": strip, "cnnviz per layer": per_layer,
                   "torchcam GradCAM([5 layers])": torchcam, "pytorch-grad-cam x5": pgc_each}
    times: dict[str, list[float]] = {k: [] for k in contestants}
    for fn in contestants.values():  # warm-up
        fn()
    order = list(contestants)
    rng = random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)
        for k in order:
            t0 = time.perf_counter()
            contestants[k]()
            times[k].append(time.perf_counter() - t0)
    base = statistics.median(times["forward (inference)"])
    print(f"\n(a) {n} photos at 224 px, Lite0, layers {', '.join(layers)}; {rounds} rounds, "
          f"{torch.get_num_threads()} thread(s), load {os.getloadavg()[0]:.1f}\n")
    print("| contestant | median s | x one forward | x cnnviz strip |\n|---|---:|---:|---:|")
    strip_t = statistics.median(times["cnnviz strip"])
    for k, v in times.items():
        m = statistics.median(v)
        print(f"| {k} | {m:.3f} | {m / base:.2f} | {m / strip_t:.2f} |")
    print(f"\nlargest |strip - per-layer call| over all maps: {diff:.2e}")


def sanity(n: int) -> None:
    from cnnviz.explain.sanity import cascading_randomization, sanity_verdicts
    from cnnviz.models import load_model

    model, info = load_model("efficientnet_lite0")
    x = photos_batch(info, n)
    methods = ["gradcam", "saliency", "guided-backprop"]
    t0 = time.perf_counter()
    quick = sanity_verdicts(model, x, methods, info=info, seed=0, batch_size=4)
    tq = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = cascading_randomization(model, x, methods, info=info, seed=0, batch_size=4, keep_maps=False)
    tf = time.perf_counter() - t0
    print(f"\n(b) sanity verdict: {n} photos, {', '.join(methods)}, Lite0 at 224 px, seed 0, "
          f"{torch.get_num_threads()} thread(s), load {os.getloadavg()[0]:.1f}")
    print(f"sanity_verdicts {tq:.1f} s, cascading_randomization {tf:.1f} s ({len(full.cascade)} steps): {tf / tq:.1f}x")
    for a, b in zip(full.methods, quick.methods):
        print(f"  {a.method}: cascade {a.verdict['passes']} (mean {a.verdict['mean']:.3f}), "
              f"verdict only {b.verdict['passes']} (mean {b.verdict['mean']:.3f}), identical: {a.verdict == b.verdict}")


def figure(out_dir: Path, gallery: bool = False) -> None:
    from PIL import Image

    from cnnviz.images import sample_image
    from cnnviz.models import build_model, save_model

    work = Path(tempfile.mkdtemp(prefix="cnnviz-strips-"))
    # seed 1: not the draw `cnnviz sanity --seed 0` re-initializes with (that model would equal its own randomization)
    torch.manual_seed(1)
    model, info = build_model("efficientnet_lite0", pretrained=False)
    rand = work / "lite0-random" / "ckpt.pt"
    rand.parent.mkdir()
    save_model(rand, model, info)
    for name in PHOTOS:
        Image.fromarray(sample_image(name)).save(work / f"{name}.jpg", quality=92)
    img = work / "chelsea.jpg"
    cmd = [sys.executable, "-m", "cnnviz", "gradcam", str(img), "--layers", "stages", "--model", "efficientnet_lite0",
           "--model", str(rand), "--out", str(work / "out"), "--json"]
    print("\n(c)", " ".join(cmd[2:]))
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    print(r.stdout.strip())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gradcam-layers.png").write_bytes((work / "out" / "chelsea.gradcam-layers.png").read_bytes())
    print(f"wrote {out_dir / 'gradcam-layers.png'}; the random Lite0 stays at {rand}")
    if gallery:
        shot_gallery(work, rand, out_dir / "gallery-image.png")


def shot_gallery(work: Path, rand: Path, out: Path) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from cnnviz.report import ModelSource, ReportConfig
    from cnnviz.report.job import build_gallery

    photos = work / "photos"
    photos.mkdir()
    for name in PHOTOS:
        (work / f"{name}.jpg").rename(photos / f"{name}.jpg")
    cfg = ReportConfig(cam_methods=["gradcam"], attr_methods=["saliency", "guided-backprop"], maximize_steps=8, max_classes=2,
                       compare=False, erf=False)
    res = build_gallery([ModelSource("efficientnet_lite0", "Lite0 ImageNet"), ModelSource(str(rand), "Lite0 random init")],
                        work / "site", images=[str(photos)], cfg=cfg, cache=work / "cache")
    site = Path(res.index).parent
    page_path = next(p for p in sorted(site.glob("image-*.html")) if "chelsea" in p.read_text())
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = b.new_page(viewport={"width": 1200, "height": 900})
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        page.evaluate("() => Promise.all([...document.images].map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }))")
        page.screenshot(path=str(work / "shot.png"), full_page=True)
        b.close()
    im = Image.open(work / "shot.png").convert("RGB")
    im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.LANCZOS).save(out, optimize=True)
    for m in res.stats.notes:
        print("note:", m)
    print(f"wrote {out} ({page_path.name})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-compute", action="store_true")
    ap.add_argument("--sanity", action="store_true")
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument("--gallery", action="store_true", help="with --figure: also the gallery screenshot")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if not a.no_compute:
        compute(a.rounds, a.images)
    if a.sanity:
        sanity(a.images)
    if a.figure:
        figure(a.figure, a.gallery)


if __name__ == "__main__":
    main()
