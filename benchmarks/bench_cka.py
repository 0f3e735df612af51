"""Layer-by-layer CKA: cnnviz vs torch-cka on the same models, layers and data.

Models: pretrained EfficientNet-Lite0 and Lite1 (bundled ImageNet weights), both fed the same
Fashion-MNIST test images at ``--size`` px; layers: cnnviz's defaults for each (5 stage outputs +
pre-logits). Each tool runs in its own fresh subprocess so peak memory is its own:

* wall time of the CKA computation (data loading + forwards + CKA);
* peak RSS growth over the RSS after the models and data were loaded (``ru_maxrss``) -- torch tensors
  are allocated outside Python's allocator, so tracemalloc alone would miss them; it is reported too.

torch-cka (``torch_cka.CKA``) is used as its README shows: ``CKA(m1, m2, model1_layers=...,
model2_layers=...).compare(loader)``. Its own estimator choices: per batch it zeroes the Gram
diagonals and computes the same unbiased HSIC (Song et al. 2012) as cnnviz, averages over batches and
divides -- the same Nguyen et al. estimator, in float32 with O(B^3) ``K @ L`` products, recomputing the
second model's Gram for every layer pair, and running the forwards with autograd on (its hooks keep the
graph alive). A second run wraps it in ``torch.no_grad()`` (a fairer, patched-from-outside variant).
Its hooks are never removed, so each run gets fresh models.

Usage::

    python benchmarks/bench_cka.py [--n 256] [--batch-size 64] [--size 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
import warnings


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(tool: str, n: int, batch: int, size: int, threads: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from cnnviz.compare.layersel import default_layers
    from cnnviz.data import eval_transform, make_loader, open_split
    from cnnviz.models import build_model

    models = [build_model(name, pretrained=True, input_size=(size, size)) for name in ("efficientnet_lite0", "efficientnet_lite1")]
    layers = [default_layers(m, i) for m, i in models]
    ds = open_split("fashion-mnist", "test", limit=n, seed=0)
    # preload the transformed images so both tools time the same work (forwards + CKA), not PIL decoding
    loader = make_loader(ds, eval_transform(models[0][1]), batch_size=batch, pin_memory=False)
    batches = [(x, y) for x, y in loader]

    class Preloaded:  # what torch-cka iterates: (x, y) batches, len(), .dataset
        dataset = ds

        def __iter__(self):
            return iter(batches)

        def __len__(self):
            return len(batches)

    base_rss = _rss_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    if tool == "cnnviz":
        from cnnviz.compare.cka import MultiModelCKA, gram
        from cnnviz.probe import LayerProbe

        # what compare_models does per batch (minus predictions/CAMs): one forward per model, Grams at once
        cka = MultiModelCKA([len(l) for l in layers])
        for x, _ in Preloaded():
            grams = []
            for (m, _), names in zip(models, layers):
                with LayerProbe(m, names, stop_after=True) as probe:  # no logits needed: stop after the last layer
                    probe.run(x)
                    grams.extend(gram(probe.activations[k]) for k in names)
                    probe.clear()
            cka.update_grams(grams)
        matrix = cka.block(0, 1)
    else:
        from torch_cka import CKA

        warnings.filterwarnings("ignore")
        c = CKA(models[0][0], models[1][0], "lite0", "lite1", model1_layers=layers[0], model2_layers=layers[1], device="cpu")
        ctx = torch.no_grad() if tool == "torch-cka-nograd" else torch.enable_grad()
        with ctx:
            c.compare(Preloaded())
        matrix = c.export()["CKA"].numpy()
    elapsed = time.perf_counter() - t0
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"tool": tool, "seconds": elapsed, "peak_rss_growth_mb": max(0.0, _peak_mb() - base_rss), "base_rss_mb": base_rss,
            "tracemalloc_peak_mb": py_peak / 2**20, "matrix": np.asarray(matrix, dtype=float).tolist(), "layers": layers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.n, a.batch_size, a.size, a.threads)))
        return
    import numpy as np

    res = {}
    for tool in ("cnnviz", "torch-cka", "torch-cka-nograd"):
        cmd = [sys.executable, __file__, "--worker", tool, "--n", str(a.n), "--batch-size", str(a.batch_size), "--size", str(a.size),
               "--threads", str(a.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        if out.returncode != 0:
            sys.exit(f"{tool} failed:\n{out.stderr[-2000:]}")
        res[tool] = json.loads(out.stdout.strip().splitlines()[-1])
    ours = np.asarray(res["cnnviz"]["matrix"])
    print(f"EfficientNet-Lite0 vs Lite1 (ImageNet), {a.n} Fashion-MNIST test images at {a.size}px, batch {a.batch_size}, "
          f"{a.threads} threads; layers: {res['cnnviz']['layers'][0]} vs {res['cnnviz']['layers'][1]}")
    print(f"{'tool':<18} {'time s':>8} {'peak RSS +MB':>13} {'tracemalloc MB':>15} {'max |ΔCKA|':>11}")
    for tool, r in res.items():
        diff = float(np.max(np.abs(np.asarray(r["matrix"]) - ours)))
        print(f"{tool:<18} {r['seconds']:8.2f} {r['peak_rss_growth_mb']:13.1f} {r['tracemalloc_peak_mb']:15.2f} {diff:11.2e}")
    for ref in ("torch-cka", "torch-cka-nograd"):
        print(f"speed-up vs {ref}: {res[ref]['seconds'] / res['cnnviz']['seconds']:.2f}x; memory ratio "
              f"{res[ref]['peak_rss_growth_mb'] / max(res['cnnviz']['peak_rss_growth_mb'], 1e-9):.2f}x")
    print("cnnviz CKA matrix (rows Lite0 layers, cols Lite1 layers):")
    print(np.array2string(ours, precision=3, suppress_small=True))


if __name__ == "__main__":
    main()
