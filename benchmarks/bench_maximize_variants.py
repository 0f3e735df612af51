"""cnnviz's class images on ImageNet classes under loop variants, judged by another network (no lucent run).

For a quick check of a loop setting on the ImageNet protocol of ``bench_maximize.py`` (the same class draws,
the same top-5 judge) without running lucent: every ``--variant`` (``NAME=JSON`` keyword arguments of
``cnnviz.explain.maximize.maximize``) makes one image per class of the draw, ``--batch`` classes per call,
and the judge's top-5 hits are printed at each step budget (snapshots of the same runs)::

    python benchmarks/bench_maximize_variants.py --draw 1 --size 96 --steps 128 \\
        --variant 'default={}' --variant 'bn1={"bn_prior": 1.0}' --variant 'bn0.3={"bn_prior": 0.3}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_maximize import draw_classes, top5_hits, wilson  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--judge", default="efficientnet_lite2")
    ap.add_argument("--draw", type=int, default=1, help="seed of the class draw (bench_maximize.draw_classes)")
    ap.add_argument("--n", type=int, default=50, help="classes in the draw")
    ap.add_argument("--size", type=int, default=96, help="canvas side, also the side the model sees")
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--snapshots", default="64")
    ap.add_argument("--batch", type=int, default=10, help="classes per maximize call")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variant", action="append", required=True, metavar="NAME=JSON")
    ap.add_argument("--json", dest="json_out", default=None)
    a = ap.parse_args()

    import torch

    from cnnviz.explain.maximize import class_objective, maximize
    from cnnviz.models import load_model

    torch.set_num_threads(a.threads)
    model, info = load_model(a.model)
    jm, ji = load_model(a.judge)
    classes = draw_classes(ji.num_classes, a.n, a.draw)
    shots = [int(k) for k in a.snapshots.split(",") if k] if a.snapshots else []
    budgets = sorted(set(shots) | {a.steps})
    out: dict = {"model": a.model, "judge": a.judge, "draw": a.draw, "classes": classes, "size": a.size, "variants": {}}
    for name, spec in (v.split("=", 1) for v in a.variant):
        kw, t0, hits = json.loads(spec), time.perf_counter(), {k: [] for k in budgets}
        for i in range(0, len(classes), a.batch):
            part = classes[i:i + a.batch]
            r = maximize(model, info, class_objective(part), batch=len(part), steps=a.steps, size=a.size, view_size=a.size,
                         seed=0, snapshots=budgets, **kw)
            for k in budgets:
                hits[k].append(top5_hits(jm, ji, r.snapshots[k], part))
        secs = time.perf_counter() - t0
        row = {k: np.concatenate(v) for k, v in hits.items()}
        text = "  ".join(f"{k} steps: {int(h.sum())}/{len(h)} [{wilson(int(h.sum()), len(h))[0]:.0%}-"
                         f"{wilson(int(h.sum()), len(h))[1]:.0%}]" for k, h in row.items())
        print(f"{name:12s} {text}  ({secs:.0f} s)", flush=True)
        out["variants"][name] = {"spec": kw, "seconds": secs, "hits": {str(k): h.tolist() for k, h in row.items()}}
    if a.json_out:
        from cnnviz.atomic import dumps_json, write_text

        write_text(a.json_out, dumps_json(out))


if __name__ == "__main__":
    main()
