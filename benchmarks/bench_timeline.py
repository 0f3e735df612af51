"""``cnnviz train --timeline``: what it costs, and what it measures (scratch vs fine-tuned).

1. ``overhead``: the same run (model, data, seed, machine) with and without ``--timeline``,
   interleaved ``--reps`` times; prints seconds per run and the ratio (best of each, and median),
   plus the time the timeline itself reports. Also checks the final weights are identical.

       python benchmarks/bench_timeline.py overhead [--model efficientnet_lite0] [--limit 1000] [--reps 3]

2. ``study``: EfficientNet-Lite0 trained from scratch and fine-tuned from the bundled ImageNet
   weights on the same data, with ``--timeline``; prints per tracked layer the CKA to epoch 0 and
   the weight drift after the last epoch (Neyshabur et al. 2020: a fine-tuned network's lower
   layers barely move, a scratch network's move far) and, with ``--docs``, writes the figures of
   docs/timeline.md.

       python benchmarks/bench_timeline.py study --data fashion-mnist [--limit 2000] [--epochs 3] [--docs]
       python benchmarks/bench_timeline.py study --data cifar10 --data-root /work/shared/data --docs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _cfg(args: argparse.Namespace, mode: str, out: Path, **kw):
    from cnnviz.train import TrainConfig

    base = dict(data=args.data, data_root=args.data_root, model=args.model, mode=mode, epochs=args.epochs, limit=args.limit,
                eval_limit=args.eval_limit, batch_size=args.batch_size, image_size=args.image_size, seed=args.seed,
                device="cpu", out=str(out), tensorboard=False)
    base.update(kw)
    return TrainConfig(**base)


def overhead(args: argparse.Namespace) -> None:
    from cnnviz.checkpoint import load_checkpoint
    from cnnviz.train import train_run
    from cnnviz.train.timeline import Timeline

    plain, timed, own = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.reps):
            for with_tl in ((False, True) if r % 2 == 0 else (True, False)):  # alternate who goes first
                out = Path(tmp) / f"{'tl' if with_tl else 'plain'}{r}"
                tl = Timeline(images_per_class=args.timeline_images) if with_tl else None
                t0 = time.perf_counter()
                train_run(_cfg(args, args.mode, out), progress=False, on_epoch=tl)
                dt = time.perf_counter() - t0
                (timed if with_tl else plain).append(dt)
                if tl is not None:
                    own.append(tl.seconds)
                print(f"rep {r}: {'--timeline' if with_tl else 'plain     '} {dt:7.2f} s" + (f" (timeline {tl.seconds:.2f} s)" if tl else ""),
                      flush=True)
        a, b = load_checkpoint(Path(tmp) / "plain0" / "ckpt.pt")["state_dict"], load_checkpoint(Path(tmp) / "tl0" / "ckpt.pt")["state_dict"]
        same = all(torch.equal(a[k], b[k]) for k in a)
    print(f"\n{args.model} {args.mode} on {args.data}: {args.limit} train images, {args.epochs} epochs, {args.image_size or 'native'} px, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}")
    print(f"plain:      best {min(plain):.2f} s, median {statistics.median(plain):.2f} s")
    print(f"--timeline: best {min(timed):.2f} s, median {statistics.median(timed):.2f} s "
          f"(its own records: median {statistics.median(own):.2f} s = {statistics.median(own) / (args.epochs + 1):.2f} s per record)")
    print(f"ratio --timeline / plain: best {min(timed) / min(plain):.3f}, median {statistics.median(timed) / statistics.median(plain):.3f}")
    print(f"final weights identical: {same}")


def study(args: argparse.Namespace) -> None:
    from cnnviz.train import train_run
    from cnnviz.train.timeline import Timeline
    from cnnviz.train.timeline_plot import image_strip, plot_curves, plot_depth

    root = Path(args.out)
    docs: dict[str, dict] = {}
    for mode in args.modes.split(","):
        out = root / f"{Path(args.data).name}-{mode}-s{args.seed}"
        if not (out / "timeline.json").is_file() or not json.loads((out / "timeline.json").read_text()).get("complete"):
            t0 = time.perf_counter()
            m = train_run(_cfg(args, mode, out), progress=False, on_epoch=Timeline(images_per_class=args.timeline_images))
            print(f"{mode}: test accuracy {m['test_accuracy']:.3f} in {time.perf_counter() - t0:.0f} s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
        else:
            m = json.loads((out / "metrics.json").read_text())
            print(f"{mode}: (finished run in {out}) test accuracy {m['test_accuracy']:.3f}")
        docs[mode] = json.loads((out / "timeline.json").read_text())
        docs[mode]["_dir"] = str(out)
    layers = list(docs.values())[0]["layers"]
    print(f"\nafter epoch {list(docs.values())[0]['epochs'][-1]} ({args.model}, {args.data}, {args.limit} images, seed {args.seed}):")
    print(f"{'layer':<14}" + "".join(f"{'CKA0 ' + m:>16}{'drift ' + m:>16}" for m in docs))
    for l in layers:
        row = f"{l:<14}"
        for d in docs.values():
            c, w = d["cka_to_init"][l][-1], d["drift"][l][-1]
            row += f"{'-' if c is None else f'{c:.3f}':>16}{'-' if w is None else f'{w:.3f}':>16}"
        print(row)
    if args.docs:
        from cnnviz.render import save_png

        img = Path(args.docs_dir)
        img.mkdir(parents=True, exist_ok=True)
        tag = Path(args.data).name
        plot_depth([(m, d) for m, d in docs.items()], img / f"timeline-{tag}-depth.png",
                   f"{args.model} on {tag}: scratch vs fine-tuned ({args.limit} images, {args.epochs} epochs)")
        for m, d in docs.items():
            plot_curves(d, img / f"timeline-{tag}-{m}-curves.png", f"{args.model} {m} on {tag}")
        # the same watched images, scratch above fine-tuned: the first --cams of them
        import numpy as np

        strips = []
        ims = docs[next(iter(docs))]["images"]
        per_class = max(1, sum(im["class"] == ims[0]["class"] for im in ims))
        for k in list(range(0, len(ims), per_class))[: args.cams]:  # one image of each of the first --cams classes
            for m, d in docs.items():
                strips.append(image_strip(d, d["_dir"], k, px=72, title=f"{m}: {d['images'][k]['label']}"))
        w = max(s.shape[1] for s in strips)
        strips = [np.pad(s, ((0, 4), (0, w - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
        save_png(np.concatenate(strips, 0), img / f"timeline-{tag}-cams.png")
        for f in img.glob(f"timeline-{tag}-*.png"):
            _palette(f)
        print(f"wrote {img}/timeline-{tag}-*.png (CAM rows alternate: {', '.join(docs)})")
    if args.clean:
        shutil.rmtree(root)


def _palette(path: Path) -> None:
    """Rewrite a docs figure as a 256-colour PNG (a fraction of the bytes; keeps the repository small)."""
    from PIL import Image

    with Image.open(path) as im:
        q = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    q.save(path, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["overhead", "study"])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-root", default=None)
    p.add_argument("--model", default=None, help="[overhead: simplecnn; study: efficientnet_lite0]")
    p.add_argument("--mode", default="scratch", help="overhead: the run's mode")
    p.add_argument("--modes", default="scratch,ft", help="study: the runs compared")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--eval-limit", type=int, default=500)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeline-images", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="runs/timeline-study")
    p.add_argument("--docs", action="store_true", help="study: write the figures of docs/timeline.md")
    p.add_argument("--docs-dir", default="docs/img")
    p.add_argument("--cams", type=int, default=6, help="study --docs: watched images in the CAM figure")
    p.add_argument("--clean", action="store_true", help="study: remove the runs afterwards")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what == "overhead":
        args.model = args.model or "simplecnn"
        args.limit = args.limit or 2000
        overhead(args)
    else:
        args.model = args.model or "efficientnet_lite0"
        args.limit = args.limit or 2000
        args.image_size = args.image_size or 64
        study(args)


if __name__ == "__main__":
    main()
