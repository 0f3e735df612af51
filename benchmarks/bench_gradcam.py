"""Grad-CAM speed: cnnviz vs pytorch-grad-cam, captum LayerGradCam and torchcam, in ONE run.

(a) compute: one 224x224 image, EfficientNet-Lite0 (bundled weights), layer ``conv_head``, CPU,
    2 threads; also a plain inference forward and a full forward+backward for scale.
(b) folder job: load, explain, overlay, save PNG for ~40 photos (scikit-image samples, varied
    crops/sizes, written as JPEGs), each tool in its documented idiom, same model and layer.

Contestants run interleaved (round-robin, shuffled each round) in the same process, and medians
are reported, because the machine may be shared. Prints Markdown tables and the ratios.

    .venv/bin/python benchmarks/bench_gradcam.py [--rounds 15] [--folder-rounds 3] [--images 40]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore")
LAYER = "conv_head"


def make_photos(d: Path, n: int) -> list[Path]:
    """``n`` JPEGs of varied content and size (crops, flips and scales of scikit-image photos)."""
    from PIL import Image

    from cnnviz.images import resize_image, sample_image

    rng = np.random.default_rng(0)
    srcs = [sample_image(s) for s in ("chelsea", "coffee", "astronaut", "rocket")]
    out = []
    for i in range(n):
        a = srcs[i % len(srcs)]
        h, w = a.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = a[y : y + ch, x : x + cw]
        if i % 2:
            crop = crop[:, ::-1]
        s = rng.uniform(0.7, 1.2)
        crop = resize_image(np.ascontiguousarray(crop), (max(64, int(ch * s)), max(64, int(cw * s))))
        p = d / f"img{i:03d}.jpg"
        Image.fromarray(crop).save(p, quality=90)
        out.append(p)
    return out


# -- (a) compute ------------------------------------------------------------------------------
def compute_contestants(model, info, x):
    import pytorch_grad_cam as pgc
    from captum.attr import LayerAttribution, LayerGradCam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchcam.methods import GradCAM as TcGradCAM

    from cnnviz.explain.cam import compute_cams

    layer = model.get_submodule(LAYER)
    with torch.no_grad():
        target = int(model(x).argmax())

    def forward():
        with torch.no_grad():
            model(x)

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        model(x)[0, target].backward()

    def cnnviz():
        compute_cams(model, x, layer=LAYER, targets=[target], info=info)

    pg = pgc.GradCAM(model=model, target_layers=[layer])

    def pytorch_grad_cam():
        pg(input_tensor=x, targets=[ClassifierOutputTarget(target)])
        model.zero_grad(set_to_none=True)

    lgc = LayerGradCam(model, layer)

    def captum():
        a = lgc.attribute(x, target=target, relu_attributions=True)
        LayerAttribution.interpolate(a, x.shape[-2:], interpolate_mode="bilinear")

    def torchcam():
        with TcGradCAM(model, LAYER) as ex:
            out = model(x)
            ex(target, out)

    return {"forward (inference)": forward, "forward+backward (full)": fwd_bwd, "cnnviz": cnnviz,
            "pytorch-grad-cam": pytorch_grad_cam, "captum LayerGradCam": captum, "torchcam": torchcam}, pg


# -- (b) folder job --------------------------------------------------------------------------
def folder_contestants(model, info):
    import cv2
    import pytorch_grad_cam as pgc
    from PIL import Image
    from pytorch_grad_cam.utils.image import preprocess_image, show_cam_on_image
    from torchcam.methods import GradCAM as TcGradCAM
    from torchcam.utils import overlay_mask
    from torchvision.transforms.functional import normalize, resize, to_pil_image, to_tensor

    from cnnviz.cli.cam import _run_images
    from cnnviz.explain.methods import Explainer

    size = tuple(info.input_size[1:])

    def cnnviz(paths, out):
        explainer = Explainer(model, "gradcam", info=info, layer=LAYER)  # what `cnnviz gradcam` builds once
        _run_images(paths, [], explainer, info, str(out), False, False, 16, None, None, {})

    def torchcam(paths, out):
        with TcGradCAM(model, LAYER) as ex:
            for p in paths:
                img = Image.open(p).convert("RGB")
                x = normalize(to_tensor(resize(img, list(size))), info.mean, info.std).unsqueeze(0)
                scores = model(x)
                cam = ex(int(scores.argmax()), scores)[0].squeeze(0)
                overlay_mask(img, to_pil_image(cam, mode="F"), alpha=0.5).save(out / f"{p.stem}.png")

    pg = pgc.GradCAM(model=model, target_layers=[model.get_submodule(LAYER)])

    def pytorch_grad_cam(paths, out):
        for p in paths:
            rgb = cv2.imread(str(p))[:, :, ::-1]
            rgbf = np.float32(rgb) / 255
            x = preprocess_image(cv2.resize(rgbf, size[::-1]), mean=list(info.mean), std=list(info.std))
            cam = pg(input_tensor=x, targets=None)[0]
            vis = show_cam_on_image(rgbf, cv2.resize(cam, (rgb.shape[1], rgb.shape[0])), use_rgb=True)
            cv2.imwrite(str(out / f"{p.stem}.png"), vis[:, :, ::-1])
        model.zero_grad(set_to_none=True)

    return {"cnnviz": cnnviz, "torchcam": torchcam, "pytorch-grad-cam": pytorch_grad_cam}, pg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--folder-rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from cnnviz.images import preprocess, sample_image
    from cnnviz.models import load_model

    model, info = load_model("efficientnet_lite0")
    x = preprocess(sample_image("chelsea"), info)
    fns, pg = compute_contestants(model, info, x)
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():  # warm-up
        f()
    rng = random.Random(0)
    for _ in range(args.rounds):
        order = list(fns)
        rng.shuffle(order)
        for k in order:
            c0, t0 = time.process_time(), time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)  # CPU seconds: less sensitive to other tenants than wall time
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    cmed = {k: statistics.median(v) * 1000 for k, v in cpu.items()}
    fb = med["forward+backward (full)"]
    fw = med["forward (inference)"]
    print(f"## (a) Grad-CAM compute, Lite0 `{LAYER}`, 1x3x224x224, CPU, {args.threads} threads, median of {args.rounds} interleaved rounds\n")
    print("| contestant | wall ms | x forward | x forward+backward | cnnviz speed-up | CPU ms | CPU x forward |\n|---|---:|---:|---:|---:|---:|---:|")
    for k, v in med.items():
        print(f"| {k} | {v:.1f} | {v / fw:.2f} | {v / fb:.2f} | {v / med['cnnviz']:.2f}x | {cmed[k]:.1f} | {cmed[k] / cmed['forward (inference)']:.2f} |")
    pg.activations_and_grads.release()

    tmp = Path(tempfile.mkdtemp(prefix="bench-gradcam-"))
    try:
        paths = make_photos(tmp, args.images)
        ffns, pg2 = folder_contestants(model, info)
        ft: dict[str, list[float]] = {k: [] for k in ffns}
        fc: dict[str, list[float]] = {k: [] for k in ffns}
        for k, f in ffns.items():  # warm-up on 2 images
            o = tmp / f"warm-{k}"
            o.mkdir()
            f(paths[:2], o)
        for r in range(args.folder_rounds):
            order = list(ffns)
            rng.shuffle(order)
            for k in order:
                o = tmp / f"out-{k}-{r}"
                o.mkdir()
                c0, t0 = time.process_time(), time.perf_counter()
                ffns[k](paths, o)
                ft[k].append((time.perf_counter() - t0) / len(paths))
                fc[k].append((time.process_time() - c0) / len(paths))
                shutil.rmtree(o)
        pg2.activations_and_grads.release()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fmed = {k: statistics.median(v) * 1000 for k, v in ft.items()}
    fcmed = {k: statistics.median(v) * 1000 for k, v in fc.items()}
    print(f"\n## (b) folder job (load, Grad-CAM `{LAYER}`, overlay at full resolution, save PNG), {args.images} JPEGs, "
          f"median of {args.folder_rounds} interleaved rounds\n")
    print("| tool | wall ms / image | cnnviz / tool (wall) | CPU ms / image | cnnviz / tool (CPU) |\n|---|---:|---:|---:|---:|")
    for k, v in fmed.items():
        print(f"| {k} | {v:.1f} | {fmed['cnnviz'] / v:.2f} | {fcmed[k]:.1f} | {fcmed['cnnviz'] / fcmed[k]:.2f} |")
    import os

    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\nratios: compute cnnviz/pytorch-grad-cam {med['cnnviz'] / med['pytorch-grad-cam']:.2f}, "
          f"cnnviz/forward {med['cnnviz'] / fw:.2f}; folder cnnviz/torchcam {fmed['cnnviz'] / fmed['torchcam']:.2f}, "
          f"cnnviz/pytorch-grad-cam {fmed['cnnviz'] / fmed['pytorch-grad-cam']:.2f}")


if __name__ == "__main__":
    main()
