"""Several classes in ONE `cnnviz maximize` call vs one call per class: whole jobs, timed from start to exit.

Both make the same images (one per class, same steps, canvas and seed); the batched call pays the interpreter,
CLI start-up and model load once and runs the classes as one batch. Prints both times and the ratio.

    python benchmarks/bench_maximize_batch.py --classes 0,1,2,3,4,5,6,7,8,9 --steps 32 --size 96
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def job(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cnnviz", "maximize", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    classes = a.classes.split(",")
    common = ["--model", a.model, "--steps", str(a.steps), "--size", str(a.size), "--view-size", str(a.size)]
    with tempfile.TemporaryDirectory() as tmp:
        one = job([*common, "--class", a.classes, "--out", f"{tmp}/all.png"], env)
        each = sum(job([*common, "--class", c, "--out", f"{tmp}/c{c}.png"], env) for c in classes)
    load = os.getloadavg()[0]
    print(f"{len(classes)} classes x {a.steps} steps, {a.size} px, {a.model}: one batched call {one:.1f} s, "
          f"one call per class {each:.1f} s in total, ratio {one / each:.2f}x (load {load:.1f})")


if __name__ == "__main__":
    main()
