"""A synthetic manifest + PNGs for gallery tests (no torch, no models): hostile names included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "T-shirt/top"]


def _png(path: Path, seed: int, size: tuple[int, int] = (64, 64), alpha: bool = False) -> str:
    rng = np.random.default_rng(seed)
    h, w = size
    arr = rng.integers(0, 256, size=(h, w, 4 if alpha else 3), dtype=np.uint8)
    if alpha:
        arr[..., 3] = 200
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path.name if path.parent.name == "" else str(path.relative_to(path.parents[1]))


def make_manifest(root: Path, n_models: int = 2, n_images: int = 3, big: bool = False) -> Path:
    """Write ``root/files/*.png`` and ``root/manifest.json``; return the manifest path."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)

    def png(name: str, seed: int, size=(64, 64), alpha=False) -> str:
        _png(files / name, seed, size, alpha)
        return f"files/{name}"

    models = []
    for m in range(n_models):
        mid = f"m{m}"
        models.append({
            "id": mid, "name": ["scratch <b>bold</b>", "lpft", "lp", "ft"][m % 4], "arch": "simplecnn",
            "mode": ["scratch", "lpft", "lp", "ft"][m % 4], "weights": "checkpoint", "accuracy": 0.8 + 0.05 * m,
            "train_seconds": 12.5 * (m + 1), "num_classes": 3, "input_size": [1, 28, 28],
            "curves": png(f"curves{m}.png", 100 + m, (120, 300) if big else (60, 150)),
            "confusion": png(f"conf{m}.png", 200 + m),
            "per_class": [{"name": c, "precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 10} for c in HOSTILE],
            "sections": [
                {"id": "filters", "title": "Filters: features.0", "wide": True, "items": [{"src": png(f"filt{m}.png", 300 + m), "caption": "features.0"}]},
                {"id": "maximize", "title": "Class-maximizing images",
                 "items": [{"src": png(f"max{m}-{i}.png", 400 + 10 * m + i, (300, 300) if big else (32, 32)), "caption": c, "class": c}
                           for i, c in enumerate(HOSTILE)]},
                {"id": "rf", "title": "Receptive fields", "table": {"columns": ["layer", "rf"], "rows": [["features.0", 3], ["<i>x</i>", 5.5]]}},
            ],
            "sanity": [{"method": "gradcam", "passes": True, "mean": 0.12, "ci95": [0.05, 0.2], "step": "features.7+features.8",
                        "step_index": 3, "steps": 5, "measure": "spearman", "threshold": 0.5, "images": n_images, "seed": 0},
                       {"method": "saliency", "passes": [False, None][m % 2], "mean": 0.81, "ci95": [0.3, 0.95],
                        "step": HOSTILE[0], "step_index": 3, "steps": 5, "measure": "spearman_signed", "threshold": 0.5,
                        "images": n_images, "seed": 0}],
        })
    images = []
    for i in range(n_images):
        cls = HOSTILE[i % len(HOSTILE)]
        images.append({
            "id": f"img{i}", "name": f"image {i} <em>.png", "src": png(f"img{i}.png", 500 + i), "class": cls,
            "results": [{"model": f"m{m}", "method": meth, "heat": png(f"heat{i}-{m}-{meth}.png", 600 + 7 * i + m, alpha=True),
                         "pred": HOSTILE[(i + m) % 3], "prob": 0.7, "target": HOSTILE[(i + m) % 3]}
                        for m in range(n_models) for meth in ("gradcam", "saliency")],
            "strips": [{"model": f"m{m}", "method": "gradcam", "pred": HOSTILE[m % 3], "prob": 0.6, "target": HOSTILE[m % 3],
                        "layers": [{"layer": name, "grid": f"{16 >> k}x{16 >> k}",
                                    "heat": png(f"strip{i}-{m}-{k}.png", 800 + 31 * i + 7 * m + k, alpha=True)}
                                   for k, name in enumerate(["features.2", HOSTILE[1], "features.12"])]}
                       for m in range(n_models)],
        })
    comparison = {"headline": ["lpft beats scratch by 5.0 points", "CKA <script>x</script>"],
                  "sections": [{"id": "cka", "title": "CKA", "wide": True, "items": [{"src": png("cka.png", 700, (80, 160)), "caption": "CKA heatmaps"}]}]}
    manifest = {"version": 1, "title": "Synthetic <gallery>", "generated": "now", "models": models, "images": images,
                "comparison": comparison, "notes": ["note: maximize skipped"]}
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path
