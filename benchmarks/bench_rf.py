"""Analytic receptive fields: cnnviz vs torchscan on the same models, one run.

Times ``cnnviz.explain.receptive.receptive_fields`` on torchvision resnet101 (104 convs, 286
modules) and vgg16, and torchscan's ``crawl_module`` (the peer that reports receptive fields; its
0.2 release reports each module's own kernel-level field) on the same models, then prints both
tools' field for VGG16 pool5 (Distill table: 212 / 32 / 90) and for ResNet18's blocks (where a
sequential rule breaks on the residual branches).

    .venv/bin/python benchmarks/bench_rf.py          # torchscan optional: pip install torchscan
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import torchvision

    from cnnviz.explain.receptive import receptive_fields

    try:
        from torchscan import crawl_module
    except ImportError:
        crawl_module = None
        print("torchscan not installed: timing cnnviz only")
    for name in ("resnet101", "vgg16"):
        m = torchvision.models.get_model(name, weights=None).eval()
        convs = sum(isinstance(x, torch.nn.Conv2d) for x in m.modules())
        ours = timed(lambda: receptive_fields(m, (3, 224, 224)), args.repeat)
        line = f"{name:10s} ({convs} convs, {len(list(m.modules()))} modules): cnnviz {ours:.3f}s"
        if crawl_module is not None:
            peer = timed(lambda: crawl_module(m, (3, 224, 224)), args.repeat)
            line += f" | torchscan {peer:.3f}s | ratio {ours / peer:.2f}x"
        print(line, flush=True)

    def peer_fields(model) -> dict[str, tuple]:
        if crawl_module is None:
            return {}
        out = {}
        for layer in crawl_module(model, (3, 224, 224))["layers"]:
            mt = layer["metrics"]
            out[layer["path"]] = tuple(mt.get(k, {}).get("value") for k in ("receptive_field", "effective_stride", "effective_padding"))
        return out

    for name, layers in (("vgg16", ["features.30"]), ("resnet18", ["layer1.1", "layer2.1", "layer3.1", "layer4.1", "avgpool"])):
        m = torchvision.models.get_model(name, weights=None).eval()
        ours = {r.layer: r.to_dict() for r in receptive_fields(m, (3, 224, 224), layers)}
        peer = peer_fields(m)
        for layer in layers:
            o = ours[layer]
            print(f"{name} {layer:10s} cnnviz rf {o['rf']} stride {o['stride']} padding {o['padding']}"
                  + (f" | torchscan rf/stride/padding {peer.get(layer)}" if peer else ""))


if __name__ == "__main__":
    main()
