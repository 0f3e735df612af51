"""The seeds' experiments reproduced (CPU-sized) with cnnviz's own commands: docs/reproductions.md.

Subcommands (one per reproduction of issue 10; reproduction 1's image-size study is
``benchmarks/bench_recipes.py --study size``):

* ``transfer`` (reproduction 1, seed "CNN: transfer learning, fine tuning and linear probing"): the tables of a
  finished full ``cnnviz demo`` (scratch / LP / FT / LP-FT Lite0 at equal images, size and epochs, plus
  simplecnn): ``--demo-out DIR``.

* ``folder``: write a 3-class photo folder (cat / horse / ship) from the CIFAR-10 archive, read through
  cnnviz's own CIFAR loader: ``FOLDER/train/<class>/*.png`` (``--per-class`` each, stratified by seed 0)
  and ``FOLDER/test/<class>/*.png`` (``--test-per-class`` each). PNG, so no second JPEG loss.
* ``user-cnn`` (reproduction 4, seed "user CNN vs transfer learning"): simplecnn from scratch vs a Lite0
  linear probe on that folder; accuracy, time, per-class table.
* ``modulo5`` (reproduction 2, seed "Modulo 5"): Lite0 ``--mode lpft --unfreeze N`` for N = 1, 2 and all,
  and a linear probe on the last layer vs an earlier one (``--probe-layer``), on CIFAR-10 and
  Fashion-MNIST.
* ``lr`` (reproduction 3, seed "Understanding CNNs"): ``cnnviz sweep`` of simplecnn from scratch (32 px) over
  3 LRs with ``--scheduler cosine`` vs ``none``; ``models``: Lite0 vs Lite2 linear probes (96 px) with
  per-class metrics.

Every run is a real ``python -m cnnviz train|sweep ...`` (printed before it starts) into ``OUT/<study>/<name>``;
a run whose metrics.json (summary.json for a sweep) exists is reused, so an interrupted study continues.
Each run records the 1-minute load average before it and the 1/5/15-minute ones after it (``load.txt``).

    python benchmarks/bench_seeds.py folder --data-root DIR --folder /tmp/cifar3
    python benchmarks/bench_seeds.py user-cnn --folder /tmp/cifar3 [--out bench-runs]
    python benchmarks/bench_seeds.py modulo5 --data-root DIR [--limit 1000] [--eval-limit 1000]
    python benchmarks/bench_seeds.py lr --data-root DIR
    python benchmarks/bench_seeds.py models --data-root DIR
    cnnviz demo --data-root DIR --out demo-full && python benchmarks/bench_seeds.py transfer --demo-out demo-full
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

FOLDER_CLASSES = ("cat", "horse", "ship")


def make_folder(data_root: str | None, folder: Path, per_class: int, test_per_class: int, seed: int = 0) -> dict[str, int]:
    """Write ``folder/{train,test}/<class>/NNNNN.png`` for FOLDER_CLASSES; returns images written per split."""
    import numpy as np
    from PIL import Image

    from cnnviz.datasets.cifar import load_cifar

    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"{folder} exists and is not empty; give a new --folder (nothing was written).")
    counts = {}
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", test_per_class)):
        ds = load_cifar("cifar10", split, data_root)
        targets = np.asarray(ds.targets)
        counts[split] = 0
        for name in FOLDER_CLASSES:
            idx = np.flatnonzero(targets == ds.class_names.index(name))
            pick = np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False))
            d = folder / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in pick:
                Image.fromarray(ds.array(int(i))).save(d / f"{int(i):05d}.png")
            counts[split] += len(pick)
    return counts


def _load() -> list[str]:
    with open("/proc/loadavg") as fh:
        return fh.read().split()[:3]


def run(cmd_name: str, args: list[str], out: Path, done_file: str = "metrics.json") -> dict | list | None:
    """Run ``cnnviz CMD ARGS --out OUT`` unless OUT/done_file exists; return the parsed done_file."""
    if not (out / done_file).is_file():
        cmd = [sys.executable, "-m", "cnnviz", cmd_name, *args, "--out", str(out), "--no-progress"]
        print("$ cnnviz " + " ".join(shlex.quote(x) for x in cmd[3:]), file=sys.stderr, flush=True)
        load0 = _load()[0]
        r = subprocess.run(cmd, env=dict(os.environ), text=True, capture_output=True)
        if r.returncode != 0:
            raise SystemExit(f"{out.name} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
        (out / "load.txt").write_text(f"{load0} -> " + " ".join(_load()) + "\n")
    return json.loads((out / done_file).read_text())


def load_of(out: Path) -> str:
    return (out / "load.txt").read_text().strip() if (out / "load.txt").is_file() else "?"


def train_table(rows: list[tuple[str, dict, str]]) -> None:
    print("| run | trainable / total params | image size | train / test images | epoch accuracies | test accuracy | macro F1 | "
          "train s | load (1-min before -> 1/5/15-min after) |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---|")
    for name, m, load in rows:
        eps = " / ".join(f"{100 * e['val_accuracy']:.1f}%{' (LP)' if e.get('phase') == 'lp' else ''}" for e in m["history"])
        tr = m.get("trainable") or {}
        tr = f"{tr['trainable_params']:,} / {tr['total_params']:,}" if "trainable_params" in tr else "?"
        print(f"| {name} | {tr} | {m['input_size'][1]} | {m['num_train_images']} / {m['num_test_images']} | {eps} | "
              f"{100 * m['test_accuracy']:.2f}% | {m['macro_f1']:.3f} | {m['train_seconds']:.0f} | {load} |")


def per_class_table(rows: list[tuple[str, dict, str]]) -> None:
    names = rows[0][1]["class_names"]
    print("\n| class (test images) | " + " | ".join(f"{n} recall / F1" for n, _, _ in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for c in names:
        sup = int(rows[0][1]["per_class"][c]["support"])
        cells = [f"{100 * m['per_class'][c]['recall']:.1f}% / {m['per_class'][c]['f1']:.3f}" for _, m, _ in rows]
        print(f"| {c} ({sup}) | " + " | ".join(cells) + " |")


def cifar_args(a: argparse.Namespace, data: str = "cifar10") -> list[str]:
    args = ["--data", data, "--limit", str(a.limit), "--eval-limit", str(a.eval_limit), "--seed", str(a.seed), "--device", "cpu"]
    if a.data_root:
        args += ["--data-root", a.data_root]
    return args


def study_user_cnn(a: argparse.Namespace) -> None:
    base = ["--data", str(a.folder), "--epochs", str(a.epochs), "--seed", str(a.seed), "--device", "cpu"]
    runs = [
        # The folder's own 32 px: a folder dataset has no native size for cnnviz, so simplecnn's default would be 128 px.
        ("simplecnn-scratch-32", [*base, "--model", "simplecnn", "--mode", "scratch", "--image-size", "32"]),
        (f"lite0-lp-{a.image_size}", [*base, "--model", "efficientnet_lite0", "--mode", "lp", "--image-size", str(a.image_size)]),
    ]
    rows = []
    for name, args in runs:
        out = Path(a.out) / "user-cnn" / name
        rows.append((name, run("train", args, out), load_of(out)))
    train_table(rows)
    per_class_table(rows)


def study_modulo5(a: argparse.Namespace) -> None:
    for data in [d for d in a.datasets.split(",") if d]:
        base = [*cifar_args(a, data), "--model", "efficientnet_lite0", "--image-size", str(a.image_size), "--epochs", str(a.epochs)]
        # LP-FT (1 LP epoch, then --epochs - 1 of fine-tuning the last N stages): plain `--mode ft` starts the
        # new head from random at the fine-tuning LR (1e-4), which in ~30 steps barely moves it (31% on CIFAR-10
        # with --unfreeze 1 here), so it would measure the head's LR, not which layers are worth training.
        ft = [*base, "--mode", "lpft", "--lp-epochs", "1"]
        runs = [(f"lpft-unfreeze{n}", [*ft, "--unfreeze", str(n)]) for n in (1, 2)]
        runs.append(("lpft-all", ft))
        runs.append(("lp-last", [*base, "--mode", "lp"]))
        runs += [(f"lp-{layer}", [*base, "--mode", "lp", "--probe-layer", layer]) for layer in a.probe_layers.split(",") if layer]
        rows = []
        for name, args in runs:
            out = Path(a.out) / "modulo5" / f"{data}-{name}-n{a.limit}-s{a.image_size}"
            rows.append((name, run("train", args, out), load_of(out)))
        print(f"\n### {data}\n")
        train_table(rows)


def study_lr(a: argparse.Namespace) -> None:
    for sched in ("cosine", "none"):
        args = [*cifar_args(a), "--model", a.model, "--mode", a.mode, "--lr", a.lrs, "--epochs", str(a.epochs),
                "--image-size", str(a.image_size), "--scheduler", sched]
        out = Path(a.out) / "lr" / f"{a.model}-{a.mode}-{sched}-n{a.limit}-s{a.image_size}"
        rows = run("sweep", args, out, "summary.json")
        print(f"\n### --scheduler {sched} (load {load_of(out)})\n")
        print((out / "summary.md").read_text())


def study_models(a: argparse.Namespace) -> None:
    rows = []
    for model in ("efficientnet_lite0", "efficientnet_lite2"):
        args = [*cifar_args(a), "--model", model, "--mode", a.mode, "--epochs", str(a.epochs), "--image-size", str(a.image_size)]
        out = Path(a.out) / "models" / f"{model}-{a.mode}-n{a.limit}-s{a.image_size}"
        rows.append((model, run("train", args, out), load_of(out)))
    train_table(rows)
    per_class_table(rows)


def study_transfer(a: argparse.Namespace) -> None:
    """Reproduction 1 at CPU size: the tables of a finished full ``cnnviz demo --out DIR`` (its runs are the study:
    every Lite0 mode at the same images, size and epochs, plus simplecnn). Run the demo first."""
    from cnnviz.report.demo import demo_runs

    root = Path(a.demo_out) / "runs"
    rows = []
    for name, _ in demo_runs(False, "cifar10"):
        m = root / name / "metrics.json"
        if not m.is_file():
            raise SystemExit(f"{m} is missing: run `cnnviz demo --data-root DIR --out {a.demo_out}` first.")
        rows.append((name, json.loads(m.read_text()), "-"))
    train_table(rows)
    per_class_table(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="study", required=True)
    for name, limit, epochs, size, mode in (("folder", 0, 0, 0, "lp"), ("user-cnn", 0, 3, 96, "lp"), ("modulo5", 1000, 3, 64, "lp"),
                                            ("lr", 1000, 3, 32, "scratch"), ("models", 1000, 3, 96, "lp"),
                                            ("transfer", 0, 0, 0, "lpft")):
        p = sub.add_parser(name)
        p.add_argument("--data-root", default=None)
        p.add_argument("--out", default="bench-runs")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--limit", type=int, default=limit, help="training images (stratified)")
        p.add_argument("--eval-limit", type=int, default=1000, help="test images (stratified)")
        p.add_argument("--epochs", type=int, default=epochs)
        p.add_argument("--image-size", type=int, default=size)
        p.add_argument("--folder", type=Path, default=Path("/tmp/cnnviz-cifar3"))
        p.add_argument("--per-class", type=int, default=300, help="folder: training images per class")
        p.add_argument("--test-per-class", type=int, default=200, help="folder: test images per class")
        p.add_argument("--datasets", default="cifar10,fashion-mnist", help="modulo5: datasets")
        p.add_argument("--probe-layers", default="blocks.2,blocks.4", help="modulo5: earlier layers to probe")
        p.add_argument("--mode", default=mode, help="lr: the swept mode; models: the compared mode")
        p.add_argument("--model", default="simplecnn", help="lr: the swept model")
        p.add_argument("--lrs", default="3e-4,1e-3,3e-3", help="lr: learning rates")
        p.add_argument("--demo-out", default="demo-out", help="transfer: the folder of a finished full `cnnviz demo`")
    a = ap.parse_args()
    if a.study == "folder":
        print(make_folder(a.data_root, a.folder, a.per_class, a.test_per_class, a.seed))
    else:
        {"user-cnn": study_user_cnn, "modulo5": study_modulo5, "lr": study_lr, "models": study_models,
         "transfer": study_transfer}[a.study](a)


if __name__ == "__main__":
    main()
