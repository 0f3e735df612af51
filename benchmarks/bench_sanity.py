"""Reproduce Adebayo et al.'s cascading-randomization result with `cnnviz sanity` on the bundled Lite0.

The image set: scikit-image's natural photos (astronaut, chelsea, coffee, rocket, the left stereo
motorcycle) plus the first ``--per-class`` CIFAR-10 test images of every class, upsampled from 32 to
224 px (bicubic) -- 25 images by default, none picked by hand. The script runs the exact command
documented in docs/sanity.md in a subprocess, prints the table, the wall time and the machine load,
and with ``--docs`` copies the figures into docs/img/.

    .venv/bin/python benchmarks/bench_sanity.py --docs        # ~50 min on 2 busy CPU cores
    .venv/bin/python benchmarks/bench_sanity.py --bn-check    # BatchNorm / initializer comparison
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle")
METHODS = "gradcam,saliency,guided-backprop,guided-gradcam,edges"


def build_images(folder: Path, per_class: int, cifar: Path) -> list[Path]:
    """Write the photo set into ``folder`` (PNG) and return the paths."""
    import numpy as np
    import skimage.data
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in PHOTOS:
        a = getattr(skimage.data, name)()
        a = a[0] if isinstance(a, tuple) else a
        p = folder / f"photo-{name}.png"
        Image.fromarray(np.ascontiguousarray(a[..., :3])).save(p)
        out.append(p)
    if per_class and cifar.is_file():
        with tarfile.open(cifar) as tf:
            names = sorted(m.name for m in tf.getmembers() if m.name.startswith("cifar10/test/") and m.name.endswith(".jpg"))
            by_class: dict[str, list[str]] = {}
            for n in names:
                by_class.setdefault(n.split("/")[2], []).append(n)
            for cls, files in sorted(by_class.items()):
                for n in files[:per_class]:
                    img = Image.open(io.BytesIO(tf.extractfile(n).read())).convert("RGB").resize((224, 224), Image.BICUBIC)
                    p = folder / f"cifar-{cls}-{Path(n).stem}.png"
                    img.save(p)
                    out.append(p)
    elif per_class:
        print(f"note: {cifar} not found; photos only", file=sys.stderr)
    return out


def bn_check(photos: tuple[str, ...] = ("chelsea", "coffee")) -> None:
    """Why BatchNorm statistics are reset with their block, and why the architecture's own initializer:
    the spread of Lite0's ``bn2`` output (and how much the logits differ between two photos) after each
    cascade step, for three ways to re-initialize a block."""
    import torch

    from cnnviz.explain.randomize import FreshWeights, discover_units, reinitialize
    from cnnviz.explain.sanity import private_copy
    from cnnviz.images import preprocess, sample_image
    from cnnviz.models import load_model

    model, info = load_model("efficientnet_lite0")
    x = torch.cat([preprocess(sample_image(n), info) for n in photos])
    units = discover_units(model, x)[::-1]
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    choices = {"cnnviz: architecture init, BN stats reset": (FreshWeights(model, info, 0), False),
               "architecture init, trained BN stats kept": (FreshWeights(model, info, 0), True),
               "PyTorch reset_parameters() (Quantus), BN stats reset": (FreshWeights(model, None, 0), False)}
    for label, (fresh, keep) in choices.items():
        w = private_copy(model)
        cells = []
        for u in units:
            if label.startswith("PyTorch"):
                _pytorch_reset(w, u, fresh.seed)
            else:
                reinitialize(w, u, fresh)
            if keep:
                with torch.no_grad():
                    for key, v in w.state_dict().items():
                        if "running_" in key and any(key.startswith(m + ".") for m in u.modules):
                            v.copy_(trained[key])
            seen = {}
            h = w.bn2.register_forward_hook(lambda m, i, o: seen.__setitem__("bn2", o))
            with torch.no_grad():
                out = w(x)
            h.remove()
            cells.append(f"{u.name} {seen['bn2'].std().item():.2g}/{(out[0] - out[1]).abs().mean().item():.2g}")
        print(f"{label}:\n  " + "; ".join(cells))
    print("(each step: std of bn2's output / mean |logit difference| between the two photos)")


def _pytorch_reset(model, unit, seed: int) -> None:
    import torch

    from cnnviz.explain.randomize import unit_seed

    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(unit_seed(seed, unit))
        for name in unit.modules:
            for sub in model.get_submodule(name).modules():
                if callable(getattr(sub, "reset_parameters", None)):
                    sub.reset_parameters()


def summarize(run: Path) -> None:
    """Per-method verdict values split by image source (photos / CIFAR-10), from ``run/sanity.json``."""
    import numpy as np

    doc = json.loads((run / "sanity.json").read_text())
    print(f"{doc['model']}, {doc['images']} images, cascade {', '.join(doc['cascade'])}")
    for m in doc["methods"]:
        v = m["verdict"]
        k, key = v["step_index"] - 1, v["measure"]
        vals = {src: [p["cascade"][k][key] for p in m["per_image"] if Path(p["image"]).name.startswith(src)] for src in ("photo", "cifar")}
        allv = [p["cascade"][k][key] for p in m["per_image"]]
        hog = " ".join(f"{st['hog']:.2f}" for st in m["cascade"]) if m["cascade"][0]["hog"] is not None else "-"
        parts = ", ".join(f"{src} {np.mean(x):.2f} (n={len(x)})" for src, x in vals.items() if x)
        print(f"{m['method']:>16}: {key} at {v['step']}: mean {v['mean']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]; {parts}; "
              f"range {min(allv):.2f}..{max(allv):.2f}; {sum(x >= doc['threshold'] for x in allv)}/{len(allv)} images >= {doc['threshold']}; "
              f"HOG per step {hog}; "
              f"constant maps per step {[s['constant_maps'] for s in m['cascade']]}")


def _small_png(src: Path, dst: Path) -> None:
    """Copy a figure as a 256-colour PNG (less than half the bytes; keeps the repository small)."""
    from PIL import Image

    im = Image.open(src).convert("RGB")
    im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(dst, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/cnnviz-bench-sanity")
    ap.add_argument("--per-class", type=int, default=2, help="CIFAR-10 test images per class")
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--cifar", default=str(CIFAR))
    ap.add_argument("--extra", default="", help="extra options for `cnnviz sanity`, e.g. '--independent'")
    ap.add_argument("--docs", action="store_true", help="copy the figures into docs/img/")
    ap.add_argument("--bn-check", action="store_true", help="only the BatchNorm/initializer comparison (a minute)")
    ap.add_argument("--summarize", action="store_true", help="only summarize an existing run in OUT/run")
    a = ap.parse_args()
    if a.bn_check:
        bn_check()
        return
    if a.summarize:
        summarize(Path(a.out) / "run")
        return
    out = Path(a.out)
    images = out / "images"
    paths = build_images(images, a.per_class, Path(a.cifar))
    run = out / "run"
    cnnviz = Path(sys.executable).with_name("cnnviz")
    cmd = [str(cnnviz), "sanity", str(images), "--methods", a.methods, "--out", str(run), "--json", *a.extra.split()]
    print("$", " ".join(cmd), file=sys.stderr)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    secs = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"cnnviz sanity exited {res.returncode}")
    rows = json.loads(res.stdout.strip().splitlines()[-1])
    print((run / "sanity.md").read_text())
    print(f"\n{len(paths)} images, {secs:.0f} s wall; load average before {load0[0]:.1f}, after {os.getloadavg()[0]:.1f} "
          f"({os.cpu_count()} CPUs)")
    for r in rows:
        v = r["verdict"]
        print(f"{r['method']:>16}: passes={v['passes']} {v['measure']} {v['mean']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}] at {v['step']}")
    summarize(run)
    if a.docs:
        img = ROOT / "docs" / "img"
        shutil.copy(run / "sanity-curves.png", img / "sanity-curves.png")
        _small_png(run / "photo-chelsea.sanity.png", img / "sanity-chelsea.png")
        if (run / "cifar-automobile-0000.sanity.png").is_file():
            _small_png(run / "cifar-automobile-0000.sanity.png", img / "sanity-cifar.png")
        print(f"copied figures to {img}/", file=sys.stderr)


if __name__ == "__main__":
    main()
