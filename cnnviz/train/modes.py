"""The four training modes: which weights a run starts from and which parameters it trains.

* ``scratch`` - random init, every parameter trained.
* ``lp`` - pretrained backbone frozen (eval mode, so BatchNorm statistics stay put too), a new
  linear head trained on the backbone's pre-logits features.
* ``ft`` - pretrained backbone + new head, every parameter trained (the backbone optionally at a
  lower learning rate), or only the last N stages and the head (``unfreeze``); frozen stages keep
  their BatchNorm statistics.
* ``lpft`` - ``lp`` for K epochs, then ``ft`` starting from the probed head (Kumar et al. 2022).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from cnnviz.models import ModelInfo, build_model, head_name, load_model, parse_spec, reset_head
from cnnviz.train.config import TrainConfig, TrainError

log = logging.getLogger(__name__)


# ImageNet architectures on small images (CIFAR's 32 px, Fashion-MNIST's 28 px): inputs are upsampled to
# at least this side. Chosen by measurement (docs/training.md, "Choosing the default image size";
# benchmarks/bench_recipes.py --study size): ImageNet features need the objects at a scale near
# what they were trained on, and the cost grows with the side squared.
MIN_TRANSFER_SIDE = 128


def default_image_size(cfg: TrainConfig, arch: str, native: tuple[int, int] | None) -> int:
    """``--image-size`` when given; else the data's size (at most 128) for simplecnn, and for ImageNet architectures
    the data's size clamped to ``[MIN_TRANSFER_SIDE, 224]``."""
    if cfg.image_size:
        return int(cfg.image_size)
    side = max(native) if native else 128
    # simplecnn keeps small data at its own size; a folder of large uniform photos is capped like a mixed one
    return min(side, 128) if arch.startswith("simplecnn") else max(MIN_TRANSFER_SIDE, min(side, 224))


def build_for_mode(cfg: TrainConfig, class_names: list[str], data_chans: int, native: tuple[int, int] | None) -> tuple[nn.Module, ModelInfo]:
    """The starting model for ``cfg.mode`` with a fresh ``len(class_names)``-way head.

    Pretrained runs keep the RGB stem (grayscale images are replicated to 3 channels); scratch
    runs build the stem for the data's own channel count. A checkpoint ``--model`` serves as the
    pretrained weights (its head is replaced).
    """
    n = len(class_names)
    kind, _, _ = parse_spec(cfg.model)
    if kind == "checkpoint":
        src, src_info = load_model(cfg.model)
        size = cfg.image_size or src_info.input_size[1]
        if cfg.pretrained:
            model, info = src, src_info
            if info.num_classes != n or cfg.mode != "scratch":
                reset_head(model, n)
            info.input_size = (info.in_chans, size, size)
        else:
            model, info = build_model(src_info.arch, num_classes=n, in_chans=data_chans, arch_kwargs=src_info.arch_kwargs,
                                      input_size=(size, size))
    else:
        size = default_image_size(cfg, cfg.model, native)
        if cfg.pretrained and kind == "simplecnn":
            raise TrainError(f"--mode {cfg.mode} starts from pretrained weights, and simplecnn has none. "
                             "Use --mode scratch, or --model a simplecnn checkpoint from an earlier `cnnviz train`.")
        chans = 3 if cfg.pretrained else data_chans
        model, info = build_model(cfg.model, num_classes=n, in_chans=chans, pretrained=cfg.pretrained, input_size=(size, size))
        if cfg.pretrained:
            reset_head(model, n)  # a fresh head even if the class count happens to match
    if cfg.probe_layer:
        from cnnviz.truncate import truncate_at

        if info.arch_kwargs.get("probe_layer") not in (None, cfg.probe_layer):
            raise TrainError(f"--model is already cut after {info.arch_kwargs['probe_layer']!r}; --probe-layer cannot cut it again.")
        truncate_at(model, cfg.probe_layer, n, info.input_size, head_name(model))
        info.arch_kwargs = {**info.arch_kwargs, "probe_layer": cfg.probe_layer}
    info.num_classes = n
    info.class_names = list(class_names)
    info.mode = cfg.mode
    info.weights = "pretrained" if cfg.pretrained else "random"
    return model, info


def head_module(model: nn.Module) -> tuple[str, nn.Module]:
    """``(dotted name, module)`` of the classifier head (the final Linear)."""
    name = head_name(model)
    return name, model.get_submodule(name)


@contextlib.contextmanager
def headless(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily swap the head for ``nn.Identity`` so ``model(x)`` returns pre-logits features.

    The head is put back on exit, success or not, so checkpoints always see the full model.
    """
    name, head = head_module(model)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, nn.Identity())
    try:
        yield model
    finally:
        setattr(parent, attr, head)


def freeze_backbone(model: nn.Module) -> nn.Module:
    """LP: every parameter frozen except the head's; the whole model in eval mode (BN stats fixed)."""
    _, head = head_module(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    model.eval()
    return head


def unfreeze(model: nn.Module, freeze_bn: bool = False, last: int | None = None) -> list[str]:
    """FT / scratch: every parameter trainable, or (``last`` = N) only the last N stages and the head.

    Returns the labels of the stages that train (``stage_groups``). Frozen stages stay in eval mode
    (``set_train_mode``), so their BatchNorm statistics do not move either.
    """
    groups = stage_groups(model)
    if last is None:
        for p in model.parameters():
            p.requires_grad_(True)
        chosen = groups
    else:
        stages = groups[:-1]
        if not 0 <= last <= len(stages):
            raise TrainError(f"--unfreeze {last}: {type(model).__name__} has {len(stages)} stages before its head "
                             f"({', '.join(label for label, _ in stages)}); use 0-{len(stages)}.")
        chosen = stages[len(stages) - last:] + groups[-1:]
        trained = {n for _, names in chosen for n in names}
        for name, p in model.named_parameters():
            p.requires_grad_(name in trained)
    set_train_mode(model, freeze_bn)
    return [label for label, _ in chosen]


def set_train_mode(model: nn.Module, freeze_bn: bool = False) -> None:
    """``model.train()``, except: with ``freeze_bn`` every BatchNorm stays in eval mode (running stats
    used, not updated), and any module whose parameters are all frozen stays in eval mode (a frozen
    stage keeps its BatchNorm statistics and has no dropout)."""
    model.train()
    for m in model.modules():
        own = list(m.parameters())
        if (own and not any(p.requires_grad for p in own)) or (freeze_bn and isinstance(m, nn.modules.batchnorm._BatchNorm)):
            m.eval()


@torch.no_grad()
def backbone_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` images -> ``(B, D)`` pre-logits features of the (frozen, eval-mode) backbone."""
    with headless(model):
        return model(x).flatten(1)


def param_groups(model: nn.Module, lr: float, backbone_lr_scale: float, weight_decay: float) -> list[dict[str, Any]]:
    """Head at ``lr``, backbone at ``lr * backbone_lr_scale``; no weight decay on norms and biases."""
    hname, _ = head_module(model)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = name.startswith(hname + ".")
        decay = p.ndim > 1
        groups.setdefault((is_head, decay), []).append(p)
    out = []
    for (is_head, decay), params in groups.items():
        out.append({"params": params, "lr": lr if is_head else lr * backbone_lr_scale,
                    "weight_decay": weight_decay if decay else 0.0, "name": f"{'head' if is_head else 'backbone'}{'' if decay else '_nodecay'}"})
    return out


def make_optimizer(cfg: TrainConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups)


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, total_steps: int) -> Any:
    """Per-step schedule over one phase: cosine to 0, one-cycle, or constant (None)."""
    total_steps = max(1, total_steps)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total_steps)
    return None


def stage_groups(model: nn.Module) -> list[tuple[str, list[str]]]:
    """The network's stages, input to output, as ``(label, parameter names)``; the last one is the head.

    timm models say it themselves (``group_matcher``: stem, each stage, the head); for others the
    stages are the children of the main ``nn.Sequential`` (torchvision's ``features``) or the
    ``nn.Sequential`` children of the root (``layer1``...), with modules before the first stage in a
    ``stem`` and modules between the last stage and the head joining that last stage.
    """
    hname = head_module(model)[0]
    names = [n for n, _ in model.named_parameters()]
    if hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        grouped = group_parameters(model, model.group_matcher(coarse=True))
        groups = [list(v) for _, v in sorted(grouped.items())]
        # timm's last group is the head (with whatever it puts beside the classifier: a norm, conv_head...)
        head = groups.pop() if groups and any(n.startswith(hname + ".") for n in groups[-1]) else []
    else:
        head_root = hname.split(".")[0]
        groups = _generic_groups(model, head_root)
        head = [n for n in names if n.startswith(head_root + ".")]  # an MLP head trains whole
    head += [n for n in names if n.startswith(hname + ".") and n not in head]
    in_head = set(head)
    groups = [g for g in ([n for n in g if n not in in_head] for g in groups) if g]
    return list(zip(_labels(groups), groups)) + [(hname, head)]


def _generic_groups(model: nn.Module, head_root: str) -> list[list[str]]:
    children = [(n, m) for n, m in model.named_children() if n != head_root and next(m.parameters(), None) is not None]
    seqs = [n for n, m in children if isinstance(m, nn.Sequential)]
    if len(seqs) == 1 and len(list(dict(children)[seqs[0]].children())) >= 2:
        main = seqs[0]
        kids = list(dict(children)[main].named_children())
        if all(not list(m.children()) for _, m in kids):  # a flat conv/bn/relu/pool list (simplecnn, VGG): cut at pools
            stages, run = [], []
            for c, m in kids:
                run.append(f"{main}.{c}")
                if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) or c == kids[-1][0]:
                    stages.append(run)
                    run = []
            stages = [st for st in stages if any(next(dict(kids)[q.split(".")[-1]].parameters(), None) is not None for q in st)]
        else:
            stages = [[f"{main}.{c}"] for c, m in kids if next(m.parameters(), None) is not None]
    else:
        stages = [[n] for n in (seqs or [n for n, _ in children])]
    prefixes: list[list[str]] = [list(s) for s in stages]
    first = [n for n, _ in children].index(stages[0][0].split(".")[0])
    last = [n for n, _ in children].index(stages[-1][0].split(".")[0])
    before = [n for n, _ in children[:first]]
    after = [n for n, _ in children[last + 1:]]
    if before:
        prefixes.insert(0, before)
    prefixes[-1] += after
    return [[p for p, _ in model.named_parameters() if any(p.startswith(q + ".") for q in group)] for group in prefixes]


def _labels(groups: list[list[str]]) -> list[str]:
    """``blocks.3`` / ``conv_stem, bn1`` / ``blocks.6, conv_head, bn2`` / ``layer2``: the modules each group
    covers (a container split over several groups, like timm's ``blocks``, is named with its index)."""
    owners: dict[str, set[int]] = {}
    for k, g in enumerate(groups):
        for n in g:
            owners.setdefault(n.split(".")[0], set()).add(k)
    out = []
    for g in groups:
        seen: list[str] = []
        for n in g:
            parts = n.split(".")
            key = ".".join(parts[:2]) if len(owners[parts[0]]) > 1 and len(parts) > 2 else parts[0]
            if key not in seen:
                seen.append(key)
        heads = {k.split(".")[0] for k in seen}
        if len(seen) > 2 and len(heads) == 1 and all(k.count(".") == 1 and k.split(".")[1].isdigit() for k in seen):
            idx = [int(k.split(".")[1]) for k in seen]  # features.0, features.1, ... features.4 -> features.0-4
            seen = [f"{heads.pop()}.{min(idx)}-{max(idx)}"]
        out.append(", ".join(seen))
    return out
