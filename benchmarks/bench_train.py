"""Trainer benchmarks, one run, ratios printed.

1. Throughput: ``cnnviz.train.train_run`` vs a bare PyTorch loop (same model, init, optimizer,
   schedule, batch size, preloaded tensors, shuffled batches) - images/s of the training pass.
   Runs are interleaved and the best of ``--reps`` is kept for each, so a shared machine hurts
   both the same way.
2. Linear probe: epochs on cached backbone features vs epochs through the frozen backbone
   (bundled EfficientNet-Lite0) - seconds per steady-state epoch, and the one-time cache cost.

    python benchmarks/bench_train.py [--threads 2] [--reps 3] [--lp-images 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def bare_loop(model_spec: str, limit: int, batch: int, lr: float, seed: int, size: int) -> float:
    """Seconds for one training epoch of the plainest loop: model(x), CE, backward, AdamW, cosine step."""
    from cnnviz.data import eval_transform, materialize, open_split
    from cnnviz.models import build_model

    ds = open_split("fashion-mnist", "train", limit=limit, seed=seed)
    torch.manual_seed(seed)
    model, info = build_model(model_spec, num_classes=10, in_chans=1, input_size=(size, size))
    x, y = materialize(ds, eval_transform(info))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = len(x) // batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    t = time.perf_counter()
    for b in range(steps):
        j = perm[b * batch:(b + 1) * batch]
        loss = torch.nn.functional.cross_entropy(model(x[j]), y[j])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return time.perf_counter() - t


def trainer(model_spec: str, limit: int, batch: int, lr: float, seed: int, size: int, out: Path) -> float:
    from cnnviz.train import TrainConfig, train_run

    cfg = TrainConfig(data="fashion-mnist", model=model_spec, mode="scratch", epochs=1, limit=limit, eval_limit=100,
                      batch_size=batch, lr=lr, seed=seed, image_size=size, device="cpu", out=str(out), tensorboard=False)
    return train_run(cfg, progress=False)["history"][0]["train_pass_seconds"]


def lp_epochs(cache: bool, images: int, size: int, out: Path) -> dict[str, float]:
    from cnnviz.train import TrainConfig, train_run

    cfg = TrainConfig(data="fashion-mnist", model="efficientnet_lite0", mode="lp", epochs=2, limit=images, eval_limit=100,
                      batch_size=64, image_size=size, device="cpu", out=str(out), tensorboard=False, cache_features=cache)
    h = train_run(cfg, progress=False)["history"]
    return {"first_epoch_s": h[0]["seconds"], "steady_epoch_s": h[1]["train_pass_seconds"], "val_accuracy": h[1]["val_accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model", default="simplecnn")
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lp-images", type=int, default=1000)
    ap.add_argument("--lp-size", type=int, default=64)
    ap.add_argument("--json", type=Path, default=None, help="Also write the numbers here.")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    res: dict[str, object] = {"threads": a.threads, "torch": torch.__version__}

    # warm-up: imports, allocator, dataset decode
    bare_loop(a.model, 256, a.batch, 1e-3, 0, a.size)
    trainer(a.model, 256, a.batch, 1e-3, 0, a.size, tmp / "warm")
    bare, ours = [], []
    for r in range(a.reps):
        bare.append(bare_loop(a.model, a.limit, a.batch, 1e-3, 0, a.size))
        ours.append(trainer(a.model, a.limit, a.batch, 1e-3, 0, a.size, tmp / f"t{r}"))
    n = (a.limit // a.batch) * a.batch
    ib, it = n / min(bare), n / min(ours)
    res["throughput"] = {"model": a.model, "images": n, "size": a.size, "batch": a.batch, "bare_s": bare, "cnnviz_s": ours,
                         "bare_img_s": ib, "cnnviz_img_s": it, "ratio": it / ib}
    print(f"throughput ({a.model}, {n} images/epoch, {a.size}px, batch {a.batch}, best of {a.reps}):")
    print(f"  bare PyTorch loop {ib:8.1f} img/s   cnnviz train_run {it:8.1f} img/s   cnnviz/bare = {it / ib:.3f}")

    cached = lp_epochs(True, a.lp_images, a.lp_size, tmp / "lp-cache")
    frozen = lp_epochs(False, a.lp_images, a.lp_size, tmp / "lp-frozen")
    speed = frozen["steady_epoch_s"] / max(cached["steady_epoch_s"], 1e-9)
    res["linear_probe"] = {"images": a.lp_images, "size": a.lp_size, "cached": cached, "frozen_forward": frozen, "speedup": speed}
    print(f"linear probe (efficientnet_lite0, {a.lp_images} images, {a.lp_size}px), seconds per epoch after the first:")
    print(f"  frozen forward {frozen['steady_epoch_s']:.3f} s   cached features {cached['steady_epoch_s']:.4f} s   speedup {speed:.0f}x")
    print(f"  first epoch (includes caching train+eval features): cached {cached['first_epoch_s']:.2f} s, "
          f"frozen {frozen['first_epoch_s']:.2f} s; val accuracy {cached['val_accuracy']:.3f} vs {frozen['val_accuracy']:.3f}")
    if a.json:
        from cnnviz.atomic import dumps_json

        a.json.write_text(dumps_json(res, indent=2))


if __name__ == "__main__":
    main()
