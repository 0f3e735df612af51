"""Class-maximizing images: cnnviz vs lucent at equal steps and seed, judged by a *different* network.

Both make one image per class on the bundled ImageNet EfficientNet-Lite0 (224 px, one batch of all
classes, Adam lr 0.05, FFT + decorrelated colour, their standard transforms); the bundled
EfficientNet-Lite2 then classifies every image. Reports top-1/top-5 hit rates (Lite2 and Lite0)
and seconds per image, and writes the two image strips side by side.

    .venv/bin/python benchmarks/bench_maximize.py --steps 128 --out docs/img/units-bench-maximize.png
    # small inputs: a 48-px Fashion-MNIST Lite0 checkpoint, judged by a 28-px simplecnn checkpoint
    .venv/bin/python benchmarks/bench_maximize.py --model lite0-48px.pt --judge simplecnn-28px.pt --classes all
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch

CLASSES = [1, 9, 130, 281, 309, 407, 417, 574, 948, 980]  # goldfish ostrich flamingo tabby bee ambulance balloon golf-ball granny-smith volcano


def judge(model, info, images: np.ndarray, classes: list[int]) -> dict[str, float]:
    from cnnviz.images import preprocess

    with torch.no_grad():
        logits = model(torch.cat([preprocess(im, info) for im in images]))
    top = logits.topk(5, dim=1).indices
    c = torch.tensor(classes)[:, None]
    return {"top1": float((top[:, :1] == c).any(1).float().mean()), "top5": float((top == c).any(1).float().mean())}


def run_cnnviz(model, info, classes, steps, seed, **kwargs):
    from cnnviz.explain.maximize import maximize_classes

    t = time.perf_counter()
    imgs = maximize_classes(model, info, classes, steps=steps, seed=seed, **kwargs)
    return imgs, time.perf_counter() - t


def run_lucent(model, info, classes, steps, seed, native=False):
    from lucent.optvis import objectives, param, render, transform

    torch.manual_seed(seed)
    np.random.seed(seed)
    obj = sum((objectives.channel("classifier", c, batch=i) for i, c in enumerate(classes[1:], 1)),
              objectives.channel("classifier", classes[0], batch=0))
    t = time.perf_counter()
    # lucent's own behaviour for inputs under 224 px: it upsamples the image to 224 before the model
    out = render.render_vis(model, obj, lambda: param.image(info.input_size[1], batch=len(classes)),
                            transforms=transform.standard_transforms, thresholds=(steps,),
                            show_image=False, progress=False, fixed_image_size=info.input_size[1] if native else None)
    imgs = (np.clip(out[-1], 0, 1) * 255 + 0.5).astype(np.uint8)
    return imgs, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classes", type=str, default=",".join(map(str, CLASSES)), help="indices, or 'all'")
    ap.add_argument("--model", default="efficientnet_lite0", help="the network the images are made on")
    ap.add_argument("--judge", default="efficientnet_lite2", help="the different network that classifies them")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="cnnviz,lucent", help="cnnviz, cnnviz:mode=logprob,lr=0.08 (maximize_classes kwargs), lucent, lucent-native")
    ap.add_argument("--out", default=None, help="PNG with one row of images per variant")
    ap.add_argument("--timing-rounds", type=int, default=0,
                    help="only time: alternate cnnviz and lucent this many rounds (--steps each, same classes), print medians")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from cnnviz.models import load_model

    lite0, info0 = load_model(args.model)
    lite2, info2 = load_model(args.judge)
    classes = list(range(info0.num_classes)) if args.classes == "all" else [int(c) for c in args.classes.split(",")]
    # warm up torch.optim once (its first step imports torch._dynamo: seconds) so neither side pays it
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p])
    p.sum().backward()
    opt.step()
    if args.timing_rounds:
        import statistics

        times: dict[str, list[float]] = {"cnnviz": [], "lucent": []}
        m = copy.deepcopy(lite0).eval()
        for r in range(args.timing_rounds):
            order = ("cnnviz", "lucent") if r % 2 == 0 else ("lucent", "cnnviz")  # alternate who goes first
            for v in order:
                _, secs = (run_cnnviz(lite0, info0, classes, args.steps, args.seed) if v == "cnnviz"
                           else run_lucent(m, info0, classes, args.steps, args.seed))
                times[v].append(secs / (len(classes) * args.steps))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"seconds per image-step (median of {args.timing_rounds} alternating rounds, {len(classes)} images x "
              f"{args.steps} steps): cnnviz {med['cnnviz']:.3f}, lucent {med['lucent']:.3f}, ratio {med['cnnviz'] / med['lucent']:.2f}x")
        print(json.dumps({"timing": times}))
        return
    results, rows = {}, []
    for variant in args.variants.split(","):
        if variant.startswith("lucent"):
            m = copy.deepcopy(lite0).eval()  # lucent leaves its hooks on the model: give it its own copy
            # lucent-native: no upsampling to 224 for small models (its transforms then keep their 224-px sizes)
            imgs, secs = run_lucent(m, info0, classes, args.steps, args.seed, native=variant == "lucent-native")
        else:
            # cnnviz[:key=value,...], e.g. cnnviz:mode=logit,lr=0.08
            kw = dict(kv.split("=") for kv in variant.partition(":")[2].split(",") if kv)
            kw = {k: (v if k == "mode" else float(v)) for k, v in kw.items()}
            imgs, secs = run_cnnviz(lite0, info0, classes, args.steps, args.seed, **kw)
        r = {"judge_lite2": judge(lite2, info2, imgs, classes), "self_lite0": judge(lite0, info0, imgs, classes),
             "seconds_per_image": secs / len(classes)}
        results[variant] = r
        rows.append((variant, imgs))
        print(f"{variant:14s} judge top-1 {r['judge_lite2']['top1']:.2f} top-5 {r['judge_lite2']['top5']:.2f} | "
              f"own model top-1 {r['self_lite0']['top1']:.2f} | {r['seconds_per_image']:.2f} s/image", flush=True)
    if "cnnviz" in results and "lucent" in results:
        a, b = results["cnnviz"], results["lucent"]
        print(f"ratio cnnviz/lucent: judge top-5 {a['judge_lite2']['top5']:.2f} vs {b['judge_lite2']['top5']:.2f}, "
              f"time {a['seconds_per_image'] / b['seconds_per_image']:.2f}x")
    print(json.dumps({"model": args.model, "judge": args.judge, "steps": args.steps, "seed": args.seed, "classes": classes,
                      "results": results}))
    if args.out:
        from cnnviz.images import resize_image
        from cnnviz.render import label, save_png

        strips = []
        for variant, imgs in rows:
            tiles = [label(resize_image(im, (112, 112)), f"{variant} {info0.class_names[c][:14]}", scale=0.3)
                     for im, c in zip(imgs, classes)]
            strips.append(np.concatenate(tiles, axis=1))
        save_png(np.concatenate(strips, axis=0), args.out)


if __name__ == "__main__":
    main()
