"""Training memory against split size: peak RSS of `cnnviz.train.train_run` on CIFAR-10 subsets.

Each setting runs in its own subprocess (peak RSS = that process's ``ru_maxrss``) and trains a few
batches only (``max_steps``), which is all it takes to reach the steady state: the split is held as
uint8 at 32 px and each batch is resized to the training size on the way in. Two tables:

1. fine-tuning EfficientNet-Lite0 at 224 px, batch 64 (the default), for N = 1k / 5k / 20k / 50k
   training images; on the largest N also batch 32 and ``--grad-checkpointing`` (the batch's
   activations are what costs memory);
2. the linear probe's feature cache (backbone features of every training image, ``(N, 1280)``
   float32), at the native 32 px so that extracting 50,000 images' features stays affordable on a
   CPU (the cache's size does not depend on the image size).

    python benchmarks/bench_memory.py --data-root DIR [--sizes 1000,5000,20000,50000] [--threads 2]

DIR holds cifar10-jpeg.tar.gz (or its cifar10/ folder, or cifar-10-batches-py). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def worker(a: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(a.threads)
    from cnnviz.models import load_model
    from cnnviz.train import TrainConfig, train_run

    load_model("efficientnet_lite0")  # imports + weights: the baseline every row pays
    base = _peak_mb()
    out = tempfile.mkdtemp(prefix="bench-mem-")
    cfg = TrainConfig(data="cifar10", data_root=a.data_root, model="efficientnet_lite0", mode=a.mode, epochs=1, limit=a.n,
                      eval_limit=a.eval_limit, image_size=a.size, batch_size=a.batch, device="cpu", out=out,
                      tensorboard=False, max_steps=a.steps, seed=0, grad_checkpointing=a.grad_ckpt)
    t = time.perf_counter()
    m = train_run(cfg, progress=False)
    return {"n": a.n, "mode": a.mode, "size": a.size, "batch": a.batch, "steps": a.steps, "grad_checkpointing": a.grad_ckpt,
            "baseline_mb": round(base),
            "peak_rss_mb": round(_peak_mb()),
            "held_mb": round(m["held_data_bytes"] / 2**20, 1), "seconds": round(time.perf_counter() - t, 1),
            "val_accuracy": m["history"][-1]["val_accuracy"]}


def _peak_mb() -> float:
    """This process's peak RSS (VmHWM; ``ru_maxrss`` would also count the parent it was forked from)."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args: list[str]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    r = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"worker {args} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--sizes", default="1000,5000,20000,50000")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=1000, help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="ft", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=224, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--eval-limit", type=int, default=128, help=argparse.SUPPRESS)
    ap.add_argument("--grad-ckpt", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--only", default="ft,ft32,ftckpt,lp", help="Row groups: ft (batch 64), ft32, ftckpt (gradient checkpointing), lp.")
    ap.add_argument("--json", default=None, help="Also write the rows here.")
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a)))
        return
    from cnnviz.atomic import dumps_json

    sizes = [int(s) for s in a.sizes.split(",") if s]
    common = ["--data-root", a.data_root, "--threads", str(a.threads)]
    rows = []
    print("| training | images | image size | batch | peak RSS | of which baseline (python, torch, Lite0) | split held (uint8 + features) | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    groups = {"ft": [("ft", 224, 64, n, False) for n in sizes], "ft32": [("ft", 224, 32, sizes[-1], False)],
              "ftckpt": [("ft", 224, 64, sizes[-1], True)], "lp": [("lp", 32, 64, n, False) for n in sizes]}
    plan = [row for g in a.only.split(",") for row in groups[g]]
    for mode, size, batch, n, ckpt in plan:
        r = run([*common, "--n", str(n), "--mode", mode, "--size", str(size), "--batch", str(batch), "--steps", "2",
                 *(["--grad-ckpt"] if ckpt else [])])
        rows.append(r)
        what = ("fine-tune, 2 batches" + (", gradient checkpointing" if ckpt else "")) if mode == "ft" \
            else "linear probe, feature cache of every image"
        print(f"| {what} | {n} | {size} | {r['batch']} | {r['peak_rss_mb']} MB | {r['baseline_mb']} MB | "
              f"{r['held_mb']} MB | {r['seconds']} |", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            fh.write(dumps_json(rows, indent=2))


if __name__ == "__main__":
    main()
