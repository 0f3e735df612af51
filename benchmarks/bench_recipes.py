"""The trainings behind docs/training.md's tables: run each `cnnviz train` command, print the table.

Studies (``--study``):

* ``fmnist``: transfer vs scratch on Fashion-MNIST (5000 training images, 64 px, 2 epochs, seed 0,
  evaluated on 2000 test images): Lite0 LP-FT, Lite0 scratch, simplecnn scratch.
* ``size``: the default image size for ImageNet models on small images - Lite0 LP-FT (3 epochs: 1 LP +
  2 FT) and a 3-epoch linear probe (``--modes``) on ``--limit`` CIFAR-10 training images (stratified,
  default 5000) at each ``--sizes`` side, seed 0, evaluated on ``--eval-limit`` test images (default 2000).

Every run is a real ``python -m cnnviz train ...`` (printed before it starts) into ``OUT/<name>``; a run
whose metrics.json exists is reused, so an interrupted study continues.

    python benchmarks/bench_recipes.py --study size --data-root DIR [--sizes 64,96,128,160,224] [--limit 5000]
        [--eval-limit 2000] [--modes lpft,lp] [--out bench-runs]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path


def studies(a: argparse.Namespace) -> dict[str, list[tuple[str, list[str]]]]:
    fm = ["--data", "fashion-mnist", "--limit", "5000", "--image-size", "64", "--epochs", "2", "--seed", "0",
          "--eval-limit", "2000", "--device", "cpu"]
    cf = ["--data", "cifar10", "--limit", str(a.limit), "--epochs", "3", "--seed", "0", "--eval-limit", str(a.eval_limit),
          "--device", "cpu"]
    if a.data_root:
        cf += ["--data-root", a.data_root]
    size_runs = []
    tag = "" if (a.limit, a.eval_limit) == (5000, 2000) else f"-n{a.limit}-e{a.eval_limit}"
    for s in [int(v) for v in a.sizes.split(",") if v]:
        for mode in [m for m in a.modes.split(",") if m]:
            size_runs.append((f"lite0-{mode}-{s}{tag}", [*cf, "--model", "efficientnet_lite0", "--mode", mode, "--image-size", str(s)]))
    return {
        "fmnist": [
            ("lite0-lpft", [*fm, "--model", "efficientnet_lite0", "--mode", "lpft"]),
            ("lite0-scratch", [*fm, "--model", "efficientnet_lite0", "--mode", "scratch"]),
            ("simplecnn-scratch", [*fm, "--model", "simplecnn", "--mode", "scratch"]),
        ],
        "size": size_runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=["fmnist", "size"], required=True)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--sizes", default="64,96,128,160,224")
    ap.add_argument("--limit", type=int, default=5000, help="size study: training images")
    ap.add_argument("--eval-limit", type=int, default=2000, help="size study: test images")
    ap.add_argument("--modes", default="lpft,lp", help="size study: modes per size")
    ap.add_argument("--out", default="bench-runs")
    ap.add_argument("--only", default=None, help="Comma-separated run names to (re)run; the table shows every finished run.")
    a = ap.parse_args()
    rows = []
    only = set(a.only.split(",")) if a.only else None
    for name, args in studies(a)[a.study]:
        out = Path(a.out) / a.study / name
        cmd = [sys.executable, "-m", "cnnviz", "train", *args, "--out", str(out), "--no-progress"]
        if not (out / "metrics.json").is_file() and (only is None or name in only):
            print("$ cnnviz train " + " ".join(shlex.quote(x) for x in cmd[4:]), file=sys.stderr, flush=True)
            with open("/proc/loadavg") as fh:
                load0 = fh.read().split()[0]
            r = subprocess.run(cmd, env=dict(os.environ), text=True, capture_output=True)
            if r.returncode != 0:
                raise SystemExit(f"{name} failed:\n{r.stderr[-2000:]}")
            with open("/proc/loadavg") as fh:
                load = fh.read().split()[:3]
            (out / "load.txt").write_text(f"{load0} -> " + " ".join(load) + "\n")
        if (out / "metrics.json").is_file():
            m = json.loads((out / "metrics.json").read_text())
            load = (out / "load.txt").read_text().strip() if (out / "load.txt").is_file() else "?"
            rows.append((name, m, load))
    print("| run | image size | train / test images | epoch accuracies | test accuracy | macro F1 | train s | "
          "training passes s | load (1-min before -> 1/5/15-min after) |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---|")
    for name, m, load in rows:
        h = m["history"]
        eps = " / ".join(f"{100 * e['val_accuracy']:.2f}%{' (LP)' if e['phase'] == 'lp' else ''}" for e in h)
        passes = sum(e.get("train_pass_seconds", 0.0) for e in h)
        print(f"| {name} | {m['input_size'][1]} | {m['num_train_images']} / {m['num_test_images']} | {eps} | {100 * m['test_accuracy']:.2f}% | {m['macro_f1']:.3f} | "
              f"{m['train_seconds']:.0f} | {passes:.0f} | {load} |")


if __name__ == "__main__":
    main()
