"""Class images, cnnviz vs lucent: judged by a network that never saw the optimization, timed as whole jobs.

For each draw of classes (``--draws 1,2``: ``numpy.random.default_rng(seed).choice(K, n)``; cnnviz's defaults
were tuned on classes outside draws 1 and 2), both tools make one image per class in ONE batch at equal
steps and seed, each as its own process, timed from start to exit (interpreter, CLI start-up, model load
and image writing included):

* cnnviz: ``cnnviz maximize --class a,b,... --steps S --each DIR --snapshots K`` (its defaults);
* lucent: ``bench_maximize_lucent.py`` (``render_vis``, its defaults, thresholds K and S).

The judge networks (``--judge``, default the bundled EfficientNet-Lite2; images made on Lite0) classify
every image; a hit is the class in the judge's top 5. Reported per draw and pooled: hit rates with Wilson
95% intervals, and the paired difference (same classes) with a bootstrap 95% interval over classes.
The order alternates with the draw's seed (odd, e.g. draw 1: cnnviz first; even, e.g. draw 2 or 0: lucent
first) so a load change hits both. Draws after the first are disjoint from earlier draws and the tuning classes.

    # the protocol in docs/benchmarks.md (96-px canvas seen at 96 px, 2 draws x 50 classes, 64 + 128 steps)
    nice -n 5 .venv/bin/python benchmarks/bench_maximize.py --size 96 --steps 128 --snapshots 64 \\
        --save /tmp/bench-maximize --json docs/bench/maximize.json
    # small-input checkpoints: every class, judged by the model itself and a second model
    .venv/bin/python benchmarks/bench_maximize.py --model a.pt --judge a.pt --judge b.pt --n 0 --draws 0 --steps 64
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _raw_draw(num_classes: int, n: int, seed: int) -> list[int]:
    return [int(c) for c in np.random.default_rng(seed).choice(num_classes, n, replace=False)]


def tuning_classes(num_classes: int, n: int, size: int = 20) -> list[int]:
    """The tuning draw as docs/units.md defines it: ``default_rng(3)`` picks ``size`` of the classes (ascending)
    outside the raw draws 1 and 2 (empty when too few classes are left)."""
    taken = set(_raw_draw(num_classes, n, 1)) | set(_raw_draw(num_classes, n, 2))
    rest = [c for c in range(num_classes) if c not in taken]
    if len(rest) < size:
        return []
    return [rest[int(i)] for i in np.random.default_rng(3).choice(len(rest), size, replace=False)]


def draw_classes(num_classes: int, n: int, seed: int) -> list[int]:
    """``n`` distinct classes drawn with ``seed`` (all of them, in order, when ``n`` is 0 or >= K).

    Draw 1 is ``default_rng(1).choice(K, n)``. A later draw ``d`` is disjoint from draws 1..d-1 and from the
    tuning classes: ``default_rng(d).choice(K, n)`` without those, topped up from the same generator with
    classes outside all of them (draw 2 keeps 48 of its raw 50 classes; its raw draw shared 2 with draw 1).
    """
    if n <= 0 or n >= num_classes:
        return list(range(num_classes))
    raw = _raw_draw(num_classes, n, seed)
    if seed <= 1:
        return raw
    excluded = set(tuning_classes(num_classes, n)).union(*(draw_classes(num_classes, n, s) for s in range(1, seed)))
    keep = [c for c in raw if c not in excluded]
    pool = [c for c in range(num_classes) if c not in excluded and c not in raw]
    if len(keep) + len(pool) < n:
        raise SystemExit(f"draw {seed}: only {len(keep) + len(pool)} classes left outside earlier draws")
    rng = np.random.default_rng([seed, 1])  # the top-up's own stream, so `raw` stays default_rng(seed)'s draw
    return keep + [pool[int(i)] for i in rng.choice(len(pool), n - len(keep), replace=False)]


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion ``k / n``."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (float(c - h), float(c + h))


def paired_bootstrap(a: np.ndarray, b: np.ndarray, rounds: int = 10000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` (per-class hits, paired) and its bootstrap 95% interval, resampling classes."""
    d = np.asarray(a, float) - np.asarray(b, float)
    idx = np.random.default_rng(seed).integers(0, len(d), size=(rounds, len(d)))
    means = d[idx].mean(1)
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def run_job(cmd: list[str], env: dict[str, str]) -> float:
    """Wall-clock seconds of one whole job (a subprocess); its stderr is shown only if it fails."""
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    secs = time.perf_counter() - t
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-4000:])
        raise SystemExit(f"job failed ({r.returncode}): {' '.join(cmd[:6])} ...")
    return secs


def cnnviz_job(args, classes: list[int], outdir: Path, env: dict[str, str]) -> tuple[float, dict[int, np.ndarray]]:
    from PIL import Image

    exe = str(Path(sys.executable).with_name("cnnviz"))
    cmd = [exe, "maximize", "--model", args.model, "--class", ",".join(map(str, classes)), "--steps", str(args.steps),
           "--seed", str(args.seed), "--each", str(outdir), "--out", str(outdir.parent / "cnnviz-grid.png")]
    if args.size:
        cmd += ["--size", str(args.size), "--view-size", str(args.size)]
    if args.snapshots:
        cmd += ["--snapshots", args.snapshots]
    cmd += args.cnnviz_args.split()
    secs = run_job(cmd, env)

    def read(folder: Path) -> np.ndarray:
        files = sorted(p for p in folder.glob("[0-9][0-9][0-9]-*.png"))
        return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files])

    out = {args.steps: read(outdir)}
    for k in budgets(args)[:-1]:
        out[k] = read(outdir / f"step{k}")
    return secs, out


def lucent_job(args, classes: list[int], outdir: Path, env: dict[str, str]) -> tuple[float, dict[int, np.ndarray]]:
    npz = outdir / "lucent.npz"
    cmd = [sys.executable, str(HERE / "bench_maximize_lucent.py"), "--model", args.model, "--classes",
           ",".join(map(str, classes)), "--steps", str(args.steps), "--seed", str(args.seed), "--out", str(npz),
           "--threads", str(args.threads), "--thresholds", args.snapshots or ""]
    if args.size:
        cmd += ["--size", str(args.size)]
    secs = run_job(cmd, env)
    with np.load(npz) as z:
        out = {k: z[f"step{k}"] for k in budgets(args)}
    return secs, {k: (np.repeat(v, 3, axis=3) if v.shape[3] == 1 else v) for k, v in out.items()}


def read_kept(args, tool: str, outdir: Path) -> tuple[float, dict[int, np.ndarray]]:
    """``--rejudge``: the images (and, if recorded, the job's seconds) an earlier run left in ``outdir``."""
    from PIL import Image

    t = outdir / "seconds.json"
    secs = json.loads(t.read_text())["seconds"] if t.exists() else float("nan")
    if tool == "lucent":
        with np.load(outdir / "lucent.npz") as z:
            return secs, {k: z[f"step{k}"] for k in budgets(args)}

    def read(folder: Path) -> np.ndarray:
        return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("[0-9][0-9][0-9]-*.png"))])

    return secs, {k: read(outdir if k == args.steps else outdir / f"step{k}") for k in budgets(args)}


def budgets(args) -> list[int]:
    return sorted({args.steps, *(int(k) for k in (args.snapshots or "").split(",") if k)})


def top5_hits(model, info, images: np.ndarray, classes: list[int]) -> np.ndarray:
    """``(N,)`` 1.0 where the class is in the model's top 5 for its image (top 1 if it has <= 5 classes)."""
    import torch

    from cnnviz.images import preprocess

    k = 5 if info.num_classes > 10 else 1
    with torch.no_grad():
        z = torch.cat([model(torch.cat([preprocess(im, info) for im in images[i:i + 25]])) for i in range(0, len(images), 25)])
    top = z.topk(k, dim=1).indices
    return (top == torch.tensor(classes)[:, None]).any(1).float().numpy()


def summarize(hits_c: np.ndarray, hits_l: np.ndarray) -> dict:
    n = len(hits_c)
    d, lo, hi = paired_bootstrap(hits_c, hits_l)
    return {"n": n, "cnnviz": float(hits_c.mean()), "cnnviz_ci": wilson(hits_c.sum(), n), "lucent": float(hits_l.mean()),
            "lucent_ci": wilson(hits_l.sum(), n), "diff": d, "diff_ci": (lo, hi)}


def print_summary(results: dict) -> None:
    """The per-draw and pooled hit rates and the time ratio of a results dict (a run's, or ``--pool``'s)."""

    def pct(x: float) -> str:
        return f"{100 * x:.0f}"

    print(f"\nmodel {results['model']}, size {results['size'] or 'native'}, seed {results['seed']}; top-5 hits "
          f"(Wilson 95%), difference paired by class (bootstrap 95%)")
    for key, s in results["pooled"].items():
        rows = [(f"draw {d}", results["draws"][d]["hits"][key]) for d in results["draws"]] + [("pooled", s)]
        for name, r in rows:
            print(f"{key:28s} {name:8s} n={r['n']:3d}  cnnviz {pct(r['cnnviz'])}% [{pct(r['cnnviz_ci'][0])}-{pct(r['cnnviz_ci'][1])}]"
                  f"  lucent {pct(r['lucent'])}% [{pct(r['lucent_ci'][0])}-{pct(r['lucent_ci'][1])}]"
                  f"  diff {100 * r['diff']:+.0f} [{100 * r['diff_ci'][0]:+.0f}, {100 * r['diff_ci'][1]:+.0f}] points")
    total = results["seconds"]
    loads = "; ".join(f"load {a[0]:.1f} before, {b[0]:.1f} after" for a, b in results["loads"])
    print(f"whole-job time (all draws): cnnviz {total['cnnviz']:.0f} s, lucent {total['lucent']:.0f} s, "
          f"ratio {results['time_ratio']:.2f}x; {loads}")


def pool_saved(paths: list[str]) -> dict:
    """``--pool``: one results dict from the JSON of several runs (same model, judges, size, steps and seed;
    different, disjoint draws), pooled from their per-class hits."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    same = ("model", "judges", "size", "steps", "seed")
    for p, r in zip(paths[1:], runs[1:]):
        if any(r[k] != runs[0][k] for k in same):
            raise SystemExit(f"{p}: not the same protocol as {paths[0]} ({', '.join(same)})")
    draws: dict = {}
    for p, r in zip(paths, runs):
        for d, e in r["draws"].items():
            if d in draws:
                raise SystemExit(f"{p}: draw {d} is in two files")
            if set(e["classes"]) & {c for x in draws.values() for c in x["classes"]}:
                raise SystemExit(f"{p}: draw {d} shares classes with another draw")
            draws[d] = e
    pooled = {key: summarize(np.concatenate([np.asarray(draws[d]["hits"][key]["cnnviz_hits"]) for d in draws]),
                             np.concatenate([np.asarray(draws[d]["hits"][key]["lucent_hits"]) for d in draws]))
              for key in runs[0]["pooled"]}
    total = {t: sum(r["seconds"][t] for r in runs) for t in ("cnnviz", "lucent")}
    return {**{k: runs[0][k] for k in same}, "pooled_from": [Path(p).name for p in paths], "draws": draws,
            "pooled": pooled, "seconds": total, "time_ratio": total["cnnviz"] / total["lucent"],
            "loads": [lo for r in runs for lo in r.get("loads", [(r["load_before"], r["load_after"])])]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="efficientnet_lite0", help="the network the images are made on")
    ap.add_argument("--judge", action="append", default=None,
                    help="a judge network; repeat for several (the first is the headline) [efficientnet_lite2]")
    ap.add_argument("--n", type=int, default=50, help="classes per draw (0: all)")
    ap.add_argument("--draws", default="1,2", help="seeds of the class draws")
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--snapshots", default="64", help="also judge the images at these step counts (same runs)")
    ap.add_argument("--size", type=int, default=None, help="canvas side, also the side the model sees [model's input]")
    ap.add_argument("--seed", type=int, default=0, help="optimization seed (both tools)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cnnviz-args", default="", help="extra `cnnviz maximize` options (variants)")
    ap.add_argument("--save", default=None, help="keep the images here (DIR/drawD/{cnnviz,lucent}), for the grid")
    ap.add_argument("--json", dest="json_out", default=None, help="write the results as JSON here")
    ap.add_argument("--rejudge", action="store_true",
                    help="run no jobs: judge the images an earlier run kept in --save (its draws that are complete)")
    ap.add_argument("--pool", nargs="+", default=None, metavar="JSON",
                    help="run nothing: pool the per-class hits of earlier runs' --json files (disjoint draws)")
    args = ap.parse_args()
    if args.pool:
        pooled = pool_saved(args.pool)
        print_summary(pooled)
        if args.json_out:
            from cnnviz.atomic import dumps_json, write_text

            write_text(args.json_out, dumps_json(pooled, indent=1) + "\n")
        return
    import torch

    from cnnviz.atomic import dumps_json, write_text
    from cnnviz.models import load_model

    torch.set_num_threads(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    judges = [(j, *load_model(j)) for j in args.judge or ["efficientnet_lite2"]]
    num_classes = judges[0][2].num_classes
    root = Path(args.save) if args.save else Path(tempfile.mkdtemp(prefix="bench-maximize-"))
    load0 = os.getloadavg()
    results: dict = {"model": args.model, "judges": [j for j, _, _ in judges], "size": args.size, "steps": budgets(args),
                     "seed": args.seed, "draws": {}, "load_before": load0}
    per: dict = {}  # (judge, steps) -> {"cnnviz": [...], "lucent": [...]}
    total = {"cnnviz": 0.0, "lucent": 0.0}
    for d in (int(x) for x in args.draws.split(",")):
        classes = draw_classes(num_classes, args.n, d)
        # by the draw's seed, not its place in --draws, so `--draws 2` alone keeps draw 2's order (lucent first)
        order = ("cnnviz", "lucent") if d % 2 == 1 else ("lucent", "cnnviz")
        imgs, secs = {}, {}
        if args.rejudge and not all(any((root / f"draw{d}" / t).glob(m)) for t, m in (("cnnviz", "000-*.png"), ("lucent", "lucent.npz"))):
            print(f"draw {d}: not complete in {root}, skipped", flush=True)
            continue
        for tool in order:
            outdir = root / f"draw{d}" / tool
            outdir.mkdir(parents=True, exist_ok=True)
            job = cnnviz_job if tool == "cnnviz" else lucent_job
            if args.rejudge:
                secs[tool], imgs[tool] = read_kept(args, tool, outdir)
            else:
                secs[tool], imgs[tool] = job(args, classes, outdir, env)
                write_text(outdir / "seconds.json", dumps_json({"seconds": secs[tool], "load": os.getloadavg()}))
            total[tool] += secs[tool]
            kept = outdir / "seconds.json"
            load = json.loads(kept.read_text())["load"][0] if args.rejudge and kept.exists() else os.getloadavg()[0]
            print(f"draw {d}: {tool} {len(classes)} classes x {args.steps} steps in {secs[tool]:.0f} s "
                  f"(load {load:.1f})", flush=True)
        entry = {"classes": classes, "seconds": secs, "hits": {}}
        for jname, jm, ji in judges:
            for k in budgets(args):
                hc, hl = top5_hits(jm, ji, imgs["cnnviz"][k], classes), top5_hits(jm, ji, imgs["lucent"][k], classes)
                entry["hits"][f"{jname}@{k}"] = {"cnnviz_hits": hc.tolist(), "lucent_hits": hl.tolist(), **summarize(hc, hl)}
                acc = per.setdefault((jname, k), {"cnnviz": [], "lucent": []})
                acc["cnnviz"].append(hc)
                acc["lucent"].append(hl)
        results["draws"][str(d)] = entry
    results["pooled"] = {f"{j}@{k}": summarize(np.concatenate(v["cnnviz"]), np.concatenate(v["lucent"]))
                         for (j, k), v in per.items()}
    results["seconds"] = total
    results["time_ratio"] = total["cnnviz"] / total["lucent"] if total["lucent"] else float("nan")
    results["load_after"] = os.getloadavg()
    results["loads"] = [(load0, results["load_after"])]

    print_summary(results)
    if args.json_out:
        write_text(args.json_out, dumps_json(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
