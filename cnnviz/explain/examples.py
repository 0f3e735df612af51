"""Dataset examples: the K images that most excite a class or a unit, and where.

For a unit (``layer`` + ``channel``) the score of an image is the channel's maximum over
positions and the strongest location is that argmax. For a class the score is its logit and the
location is the Grad-CAM peak at ``layer``; by default Grad-CAM is taken at the last spatial layer
(where it localizes well) and its peak mapped onto the grid of the deepest layer whose analytic
receptive field is at most half the input, so the patch is a part of the image, not all of it. The box is
the *analytic* receptive field of that location, in the pixels of the image as fed to the model
(squeeze-excitation gates are read as channel rescaling here, so SE networks get local boxes too).

The data streams through a bounded min-heap: memory holds ``k`` images whatever the dataset size.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.errors import CnnvizError, LayerError, TargetError
from cnnviz.explain.cam import cam_from_gradients
from cnnviz.explain.receptive import ReceptiveField, receptive_fields
from cnnviz.probe import LayerProbe, model_device

log = logging.getLogger(__name__)


@dataclass
class Example:
    """One top-scoring dataset image."""

    index: int  # position in the dataset
    score: float
    label: int  # the dataset's label
    image: np.ndarray  # (H, W, 3) uint8 as fed to the model
    box: tuple[int, int, int, int]  # (y0, x0, y1, x1), end exclusive, clipped to the image
    patch: np.ndarray  # image[y0:y1, x0:x1]
    location: tuple[int, int]  # (y, x) of the strongest unit in the layer's grid

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "score": self.score, "label": self.label, "box": list(self.box),
                "location": list(self.location)}


def _spatial_fields(model: nn.Module, input_size: tuple[int, int, int]) -> list[ReceptiveField]:
    return [r for r in receptive_fields(model, input_size, ignore_gates=True)
            if not r.is_global and r.output_shape and len(r.output_shape) == 3 and r.output_shape[1] * r.output_shape[2] > 1]


def cell_to_grid(cell: tuple[int, int], src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> tuple[int, int]:
    """The unit of a ``dst_hw`` grid whose centre is nearest the centre of ``cell`` on a ``src_hw`` grid
    over the same image.

    Why not upsample the coarse map and take its argmax: bilinear upsampling of e.g. a 2x2 CAM makes a
    flat plateau over a whole corner, and argmax then returns the plateau's first pixel -- the image
    corner, usually background -- instead of the middle of the winning cell.
    """
    return tuple(  # type: ignore[return-value]
        min(dst - 1, max(0, math.floor((c + 0.5) * dst / src))) for c, src, dst in zip(cell, src_hw, dst_hw)
    )


def default_box_layer(model: nn.Module, input_size: tuple[int, int, int],
                      fields: list[ReceptiveField] | None = None) -> tuple[str, ReceptiveField]:
    """The deepest spatial layer whose receptive field fits in half the input (else the smallest)."""
    fields = _spatial_fields(model, input_size) if fields is None else fields
    if not fields:
        raise LayerError("the model has no spatial layer to locate examples on; give --layer.")
    side = min(input_size[1:])
    fitting = [r for r in fields if max(r.rf) <= side / 2]  # type: ignore[arg-type]
    best = fitting[-1] if fitting else min(fields, key=lambda r: max(r.rf))  # type: ignore[arg-type]
    return best.layer, best


class _Head:
    """The first ``n`` items of a map-style dataset (what make_loader batches)."""

    def __init__(self, ds: Any, n: int) -> None:
        self.ds, self.n = ds, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return self.ds[i]


def top_examples(
    model: nn.Module,
    info: "ModelInfo",  # noqa: F821
    dataset: Any,
    *,
    target_class: int | None = None,
    layer: str | None = None,
    channel: int | None = None,
    k: int = 9,
    batch_size: int = 64,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Example]:
    """The ``k`` images of ``dataset`` (items ``(PIL image, label)``) that most excite the target.

    Give ``target_class`` (class logit) or ``layer`` + ``channel`` (max activation of a unit).
    ``limit`` looks at the first ``limit`` images only. Returns examples best first.
    """
    from cnnviz.data import eval_transform, make_loader
    from cnnviz.images import denormalize

    if (target_class is None) == (channel is None):
        raise TargetError("give either a class or a layer and a channel.")
    if channel is not None and layer is None:
        raise LayerError("a channel needs --layer.")
    from cnnviz import limits

    k = limits.check_int("--top / top_examples(k=...)", k, limits.TOP_K)
    batch_size = limits.check_int("--batch-size", batch_size, limits.BATCH_SIZE)
    if limit is not None:
        limit = limits.check_int("--limit", limit, limits.IMAGE_COUNT)
    if channel is not None:
        channel = limits.check_int("--channel", channel, (0, 1 << 20))
    if target_class is not None:
        target_class = limits.check_int("target_class", target_class, (0, info.num_classes - 1),
                                        hint=f"The model has {info.num_classes} classes.")
    cam_layer = layer
    if layer is None:
        fields = _spatial_fields(model, info.input_size)
        layer, rf = default_box_layer(model, info.input_size, fields)
        # a class is located by Grad-CAM at the last spatial layer (where CAMs localize well), then
        # the peak is mapped onto the box layer's grid: the box is that layer's field at the peak
        cam_layer = fields[-1].layer if target_class is not None else layer
    else:
        rf = next(iter(receptive_fields(model, info.input_size, [layer], ignore_gates=True)))
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    device = model_device(model)
    hw = tuple(info.input_size[1:])
    heap: list[tuple[float, int, Example]] = []  # min-heap on (score, -index): ties keep the earlier image
    seen = 0
    loader = make_loader(_Head(dataset, n), eval_transform(info), batch_size=batch_size, pin_memory=False)
    grid_hw: tuple[int, int] = tuple(rf.output_shape[1:]) if rf.output_shape else (1, 1)  # type: ignore[assignment]
    with LayerProbe(model, [cam_layer], grad=target_class is not None, stop_after=target_class is None) as probe:
        for x, y in loader:
            x = x.to(device)
            logits = probe.run(x)
            act = probe.activations[cam_layer]
            if act.dim() != 4:
                raise LayerError(f"layer {cam_layer!r} outputs shape {tuple(act.shape[1:])}, not a spatial map (C, h, w).")
            if target_class is not None:
                scores = logits[:, target_class]
                g = probe.gradients(scores.sum())[cam_layer]
                m = torch.relu(cam_from_gradients(act, g, "gradcam")).detach()  # Grad-CAM (B, h, w)
                scores = scores.detach()
            else:
                if not 0 <= channel < act.shape[1]:
                    raise TargetError(f"channel {channel} is out of range: {layer!r} has {act.shape[1]} channels (0-{act.shape[1] - 1}).")
                m = act[:, channel].detach()
                scores = m.flatten(1).amax(1)
            flat = m.flatten(1).argmax(1)
            for i in range(len(x)):
                s, idx = float(scores[i]), seen + i
                if len(heap) == k and (s, -idx) <= heap[0][:2]:
                    continue
                loc = cell_to_grid(divmod(int(flat[i]), m.shape[2]), tuple(m.shape[1:]), grid_hw)
                img = denormalize(x[i], info.mean, info.std)
                box = rf.region(*loc, clip_to=hw)
                ex = Example(idx, s, int(y[i]), img, box, img[box[0] : box[2], box[1] : box[3]].copy(), loc)
                item = (s, -idx, ex)
                if len(heap) < k:
                    heapq.heappush(heap, item)
                else:
                    heapq.heappushpop(heap, item)
            seen += len(x)
            if progress is not None:
                progress(seen, n)
    return [e for _, _, e in sorted(heap, key=lambda t: (t[0], t[1]), reverse=True)]


def render_examples(examples: list[Example], class_names: list[str] | None = None, tile_px: int = 112, ncols: int | None = None) -> np.ndarray:
    """Each example as [image with its box outlined | the patch], in a grid -> ``uint8`` picture."""
    import cv2

    from cnnviz.images import resize_image
    from cnnviz.render import label, tile

    cells = []
    for e in examples:
        h, w = e.image.shape[:2]
        s = tile_px / max(h, w)
        img = resize_image(e.image, (max(1, round(h * s)), max(1, round(w * s))))
        img = np.ascontiguousarray(np.pad(img, ((0, tile_px - img.shape[0]), (0, tile_px - img.shape[1]), (0, 0)), constant_values=255))
        y0, x0, y1, x1 = e.box
        cv2.rectangle(img, (int(x0 * s), int(y0 * s)), (max(int(x0 * s), int(x1 * s) - 1), max(int(y0 * s), int(y1 * s) - 1)),
                      (255, 40, 40), max(1, tile_px // 112), cv2.LINE_AA)
        patch = resize_image(e.patch, (tile_px, tile_px)) if e.patch.size else np.full((tile_px, tile_px, 3), 255, np.uint8)
        name = class_names[e.label] if class_names and 0 <= e.label < len(class_names) else str(e.label)
        img = label(img, f"#{e.index} {e.score:.2f} {name}", scale=0.3)
        cells.append(np.concatenate([img, np.full((tile_px, 3, 3), 255, np.uint8), patch], axis=1))
    return tile(cells, ncols=ncols or (3 if len(cells) > 4 else len(cells)), pad=6)
