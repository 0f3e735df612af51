"""The four training modes: which weights a run starts from and which parameters it trains.

* ``scratch`` - random init, every parameter trained.
* ``lp`` - pretrained backbone frozen (eval mode, so BatchNorm statistics stay put too), a new
  linear head trained on the backbone's pre-logits features.
* ``ft`` - pretrained backbone + new head, every parameter trained (the backbone optionally at a
  lower learning rate).
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


def default_image_size(cfg: TrainConfig, arch: str, native: tuple[int, int] | None) -> int:
    """``--image-size`` when given; else the data's size for simplecnn, at least 64 px for others."""
    if cfg.image_size:
        return int(cfg.image_size)
    side = max(native) if native else 128
    return side if arch.startswith("simplecnn") else max(64, min(side, 224))


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


def unfreeze(model: nn.Module, freeze_bn: bool = False) -> None:
    """FT / scratch: every parameter trainable, train mode (BatchNorm statistics fixed if ``freeze_bn``)."""
    for p in model.parameters():
        p.requires_grad_(True)
    set_train_mode(model, freeze_bn)


def set_train_mode(model: nn.Module, freeze_bn: bool = False) -> None:
    """``model.train()``; with ``freeze_bn`` the BatchNorm layers stay in eval mode (running stats used, not updated)."""
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
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
