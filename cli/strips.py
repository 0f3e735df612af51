"""``cnnviz gradcam --layers``: a CAM at every depth, one strip per image, one row per ``--model``.

Each model's layers are resolved once (``stages``: the stage outputs ``cnnviz compare`` uses; or the
names given, put in forward order), then the images stream through in batches: per batch and model
one forward pass and one backward for all layers (``cnnviz.explain.cam.compute_cam_strip``).

Writes ``<out>/<stem>.<method>-layers.png`` per image (``cnnviz.explain.strip_plot``) and, with
``--save-raw``, ``<stem>.<method>-layers.<k>.npy`` per model ``k``: float32 ``(L, H, W)`` in [0, 1]
at the image file's resolution. ``--json`` prints one object per image.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnviz.cli.common import emit_json, info


@dataclass
class StripModel:
    """One ``--model`` of the strip job."""

    name: str  # what the row title calls it
    model: Any
    minfo: Any
    layers: list[str]
    target: int | None
    size: tuple[int, int]


def prepare_models(specs: tuple[str, ...], weights: tuple[str, ...], device: str, layers: str, target: str | None,
                   image_size: int | None, method: str) -> list[StripModel]:
    """Load every model and resolve its layers and ``--target`` before any image is explained."""
    from cnnviz.cli.common import load
    from cnnviz.errors import CnnvizError
    from cnnviz.explain.cam import strip_layers

    if len(weights) not in (1, len(specs)):
        raise CnnvizError(f"--weights was given {len(weights)} times for {len(specs)} --model; give it once (for all) "
                          "or once per --model, in order.")
    out, names = [], []
    for k, spec in enumerate(specs):
        w = weights[k] if len(weights) > 1 else weights[0]
        model, minfo, _ = load(spec, w, device)
        size = (image_size, image_size) if image_size else tuple(minfo.input_size[1:])
        if image_size:
            from cnnviz.probe import check_input_size

            check_input_size(model, (minfo.input_size[0], *size))
        names_k = strip_layers(model, layers, (minfo.input_size[0], *size))
        tgt = minfo.class_index(target) if target is not None else None
        name = minfo.label if Path(spec).suffix != ".pt" else (Path(spec).parent.name or Path(spec).stem)
        if w == "random" and Path(spec).suffix != ".pt" and "random" not in name:
            name += " (random weights)"
        base, n = name, 2
        while name in names:
            name, n = f"{base} #{n}", n + 1
        names.append(name)
        out.append(StripModel(name, model, minfo, names_k, tgt, size))  # type: ignore[arg-type]
    info(f"{method} at {', '.join(f'{m.name}: {len(m.layers)} layers' for m in out)}")
    return out


def run_strips(paths: list[Path], pre_bad: list[tuple[Path, str]], models: list[StripModel], method: str, out: str,
               save_raw: bool, as_json: bool, batch_size: int) -> None:
    """The folder job for strips (see the module docstring). Exit 3 when some inputs were unreadable."""
    import torch
    from tqdm import tqdm

    from cnnviz.cli.cam import FolderJob
    from cnnviz.cli.common import safe_name
    from cnnviz.explain.cam import compute_cam_strip
    from cnnviz.explain.inputs import map_at
    from cnnviz.explain.stream import image_batches
    from cnnviz.explain.strip_plot import StripRow, strips_picture
    from cnnviz.images import preprocess
    from cnnviz.render import save_npy, save_png

    job = FolderJob.start(paths, pre_bad, out)
    out_dir, stems = job.out_dir, job.stems
    tag = safe_name(method)
    first = models[0]
    bar = tqdm(total=len(paths), desc=f"{method} strips", unit="img", file=sys.stderr, disable=None, leave=False)
    for batch in image_batches(paths, first.minfo, batch_size, first.size):
        job.skip(batch.bad)
        if batch.x is not None:
            strips = []
            for k, m in enumerate(models):
                x = batch.x if k == 0 else torch.cat([preprocess(img, m.minfo, m.size) for img in batch.images])
                strips.append(compute_cam_strip(m.model, x, m.layers, method=method,
                                                targets=None if m.target is None else [m.target]))
            for j, (img, p, i, hw) in enumerate(zip(batch.images, batch.paths, batch.indices, batch.sizes)):
                rows, row_json = [], []
                raw_hw = job.raw_size(p, hw, img.shape[:2]) if save_raw else hw
                for k, (m, s) in enumerate(zip(models, strips)):
                    t = int(s.targets[j])
                    name, prob = m.minfo.class_names[t], float(s.probs[j, t])
                    rows.append(StripRow(f"{m.name}: {name} {prob:.1%} | {method}", s, j))
                    r: dict[str, Any] = {"model": m.name, "target": t, "target_name": name, "score": round(prob, 6),
                                         "layers": list(s.layers), "grids": [list(g) for g in (s.grids or [])]}
                    if save_raw:
                        arr = torch.stack([torch.from_numpy(map_at(mm, raw_hw)) for mm in s.maps[j]]).numpy()
                        r["npy"] = str(save_npy(arr, out_dir / f"{stems[i]}.{tag}-layers.{k}.npy"))
                        r["raw_shape"] = [len(s.layers), int(raw_hw[0]), int(raw_hw[1])]
                    row_json.append(r)
                png = save_png(strips_picture(img, rows), out_dir / f"{stems[i]}.{tag}-layers.png", compression=1)
                job.done += 1
                if as_json:
                    emit_json({"image": str(p), "method": method, "png": str(png), "models": row_json})
        bar.update(len(batch.paths) + len(batch.bad))
    bar.close()
    if not as_json and job.done:
        info(f"wrote {job.done} strip(s) to {out_dir}/")
    job.finish()
