"""Reproduce Adebayo et al.'s cascading-randomization result with `cnnviz sanity` on the bundled Lite0.

The image set: scikit-image's natural photos (astronaut, chelsea, coffee, rocket, the left stereo
motorcycle) plus the first ``--per-class`` CIFAR-10 test images of every class, upsampled from 32 to
224 px (bicubic) -- 25 images by default, none picked by hand. The script runs the exact command
documented in docs/sanity.md in a subprocess, prints the table, the wall time and the machine load,
and with ``--docs`` copies the figures into docs/img/.

    .venv/bin/python benchmarks/bench_sanity.py --docs        # ~40 min on 2 busy CPU cores
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/cnnviz-bench-sanity")
    ap.add_argument("--per-class", type=int, default=2, help="CIFAR-10 test images per class")
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--cifar", default=str(CIFAR))
    ap.add_argument("--extra", default="", help="extra options for `cnnviz sanity`, e.g. '--independent'")
    ap.add_argument("--docs", action="store_true", help="copy the figures into docs/img/")
    a = ap.parse_args()
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
    if a.docs:
        img = ROOT / "docs" / "img"
        shutil.copy(run / "sanity-curves.png", img / "sanity-curves.png")
        shutil.copy(run / "photo-chelsea.sanity.png", img / "sanity-chelsea.png")
        first_cifar = sorted(run.glob("cifar-*.sanity.png"))
        if first_cifar:
            shutil.copy(first_cifar[0], img / "sanity-cifar.png")
        print(f"copied figures to {img}/", file=sys.stderr)


if __name__ == "__main__":
    main()
