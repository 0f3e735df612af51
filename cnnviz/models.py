"""Model specs -> ``(nn.Module, ModelInfo)``.

Specs (DESIGN.md): a cnnviz checkpoint path (``*.pt``), a timm name (``efficientnet_lite0`` or
``timm:NAME``), ``torchvision:NAME``, or ``simplecnn`` (``simplecnn:width=16,depth=2``). The model's
class names, input size and normalization travel with it in ``ModelInfo``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.errors import CheckpointError, ModelSpecError, WeightsUnavailableError, suggestion

log = logging.getLogger(__name__)

DEFAULT_MODEL = "efficientnet_lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIMPLECNN_KWARGS = ("width", "depth", "dropout")


@dataclass
class ModelInfo:
    """What travels with a model: enough to preprocess inputs and name its outputs."""

    arch: str  # canonical: "simplecnn", "timm:efficientnet_lite0", "torchvision:resnet18"
    num_classes: int
    class_names: list[str]
    input_size: tuple[int, int, int]  # (C, H, W) the model expects / was trained at
    mean: tuple[float, ...]
    std: tuple[float, ...]
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str = "random"  # "pretrained" | "random" | "checkpoint"
    mode: str | None = None  # training mode of a checkpoint: scratch | lp | ft | lpft
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the spec or path it came from

    @property
    def in_chans(self) -> int:
        return self.input_size[0]

    @property
    def label(self) -> str:
        """Short human label, e.g. ``efficientnet_lite0 (lpft)``."""
        name = self.arch.split(":", 1)[-1]
        return f"{name} ({self.mode})" if self.mode else f"{name} ({self.weights})"

    def class_index(self, target: int | str) -> int:
        """Resolve a class index or a case-insensitive name / unique prefix to an index."""
        from cnnviz.errors import TargetError

        if isinstance(target, int) or (isinstance(target, str) and target.strip().lstrip("-").isdigit()):
            idx = int(target)
            if not 0 <= idx < self.num_classes:
                raise TargetError(f"class index {idx} is out of range: the model has {self.num_classes} classes (0-{self.num_classes - 1}).")
            return idx
        want = str(target).strip().lower()
        names = [n.lower() for n in self.class_names]
        # exact name, then exact synonym ("tabby, tabby cat" -> "tabby cat"), then unique prefix
        for i, n in enumerate(names):
            if n == want:
                return i
        for i, n in enumerate(names):
            if want in [s.strip() for s in n.split(",")]:
                return i
        hits = [i for i, n in enumerate(names) if n.startswith(want) or any(s.strip().startswith(want) for s in n.split(","))]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            shown = ", ".join(f"{self.class_names[i]!r}" for i in hits[:6])
            raise TargetError(f"class {target!r} is ambiguous: it matches {len(hits)} classes ({shown}...). Give more of the name or an index.")
        raise TargetError(f"no class named {target!r} in this model's {self.num_classes} classes.{suggestion(want, self.class_names)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class descriptions bundled with timm (e.g. ``'Egyptian cat'``)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(info.num_classes())]


def default_class_names(n: int, arch: str) -> list[str]:
    if n == 1000 and not arch.startswith("simplecnn"):
        return imagenet_class_names()
    return [f"class_{i}" for i in range(n)]


def parse_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """Split a spec into ``(kind, name, kwargs)``; kind is checkpoint | timm | torchvision | simplecnn."""
    s = (spec or DEFAULT_MODEL).strip()
    if s.endswith((".pt", ".pth", ".ckpt")) or Path(s).is_file():
        return "checkpoint", s, {}
    kind, _, name = s.partition(":") if ":" in s else ("", "", s)
    if kind == "" and name.startswith("simplecnn"):
        kind = "simplecnn"
    if kind == "simplecnn" or s.startswith("simplecnn"):
        kwargs: dict[str, Any] = {}
        opts = s.partition(":")[2] if s.startswith("simplecnn:") else ""
        for part in filter(None, opts.split(",")):
            k, eq, v = part.partition("=")
            if not eq or k not in SIMPLECNN_KWARGS:
                raise ModelSpecError(f"bad simplecnn option {part!r}: use simplecnn:width=32,depth=3 (options: {', '.join(SIMPLECNN_KWARGS)}).")
            try:
                kwargs[k] = float(v) if k == "dropout" else int(v)
            except ValueError:
                raise ModelSpecError(f"simplecnn option {k} needs a number, got {v!r}.") from None
        return "simplecnn", "simplecnn", kwargs
    if kind in ("", "timm"):
        return "timm", name, {}
    if kind == "torchvision":
        return "torchvision", name, {}
    raise ModelSpecError(f"unknown model spec prefix {kind!r} in {spec!r}: use a checkpoint path, timm:NAME, torchvision:NAME or simplecnn.")


def build_model(
    arch: str,
    *,
    num_classes: int | None = None,
    in_chans: int = 3,
    arch_kwargs: dict[str, Any] | None = None,
    pretrained: bool = False,
    input_size: tuple[int, int] | None = None,
) -> tuple["torch.nn.Module", ModelInfo]:  # noqa: F821
    """Build ``arch`` (canonical or plain spec, not a checkpoint) -> ``(model in eval mode, info)``.

    With ``pretrained`` the ImageNet weights are loaded first (bundled, else timm/torchvision's hub),
    then the head is replaced when ``num_classes`` differs and the stem adapted when ``in_chans != 3``.
    """
    kind, name, kw = parse_spec(arch)
    kw = {**kw, **(arch_kwargs or {})}
    if "probe_layer" in kw:  # `cnnviz train --probe-layer`: the network cut after that layer, with a new linear head
        from cnnviz.train.truncate import build_truncated

        return build_truncated(arch, kw, num_classes=num_classes, in_chans=in_chans, pretrained=pretrained, input_size=input_size)
    if kind == "checkpoint":
        raise ModelSpecError(f"build_model() takes an architecture, not a checkpoint path ({arch!r}); use load_model().")
    if kind == "simplecnn":
        from cnnviz.simplecnn import SimpleCNN

        if pretrained:
            raise WeightsUnavailableError("simplecnn has no pretrained weights: use --weights random (or train it with `cnnviz train`).")
        n = num_classes or 10
        model = SimpleCNN(num_classes=n, in_chans=in_chans, **kw)
        hw = input_size or (64, 64)
        info = ModelInfo("simplecnn", n, default_class_names(n, "simplecnn"), (in_chans, *hw), (0.5,) * in_chans, (0.5,) * in_chans, kw)
    elif kind == "timm":
        model, info = _build_timm(name, num_classes, in_chans, pretrained, input_size)
    else:
        model, info = _build_torchvision(name, num_classes, in_chans, pretrained, input_size)
    info.weights = "pretrained" if pretrained else "random"
    info.source = arch
    model.eval()
    return model, info


def _build_timm(name: str, num_classes: int | None, in_chans: int, pretrained: bool, input_size: tuple[int, int] | None):
    import timm

    from cnnviz import weights

    if not timm.is_model(name):
        known = timm.list_models()
        raise ModelSpecError(f"unknown timm model {name!r}.{suggestion(name, known)} (see timm.list_models()).")
    if pretrained and weights.is_bundled(name):
        model = timm.create_model(name, pretrained=False)
        weights.load_bundled_into(model, name)
    elif pretrained:
        try:
            with weights.hub_offline_context():
                model = timm.create_model(name, pretrained=True)
        except Exception as e:  # network errors come in many types (OSError, HF errors, URLError)
            log.debug("timm pretrained load failed: %r", e)
            raise WeightsUnavailableError(weights.offline_hint(name)) from None
    else:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes or 1000)
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    if pretrained and num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    if in_chans != 3:
        _adapt_stem(model, in_chans)
    n = model.num_classes
    size = input_size or tuple(cfg.get("input_size", (3, 224, 224)))[1:]
    if name in weights.BUNDLED and input_size is None:
        size = (weights.BUNDLED[name][3],) * 2
    mean = tuple(cfg.get("mean", IMAGENET_MEAN))
    std = tuple(cfg.get("std", IMAGENET_STD))
    if in_chans != 3:
        mean, std = (sum(mean) / 3,) * in_chans, (sum(std) / 3,) * in_chans
    return model, ModelInfo(f"timm:{name}", n, default_class_names(n, "timm"), (in_chans, *size), mean, std)


def _build_torchvision(name: str, num_classes: int | None, in_chans: int, pretrained: bool, input_size: tuple[int, int] | None):
    import torchvision

    available = torchvision.models.list_models()
    if name not in available:
        raise ModelSpecError(f"unknown torchvision model {name!r}.{suggestion(name, available)}")
    class_names = None
    if pretrained:
        from cnnviz import weights

        try:
            w = torchvision.models.get_model_weights(name).DEFAULT
            import os

            import torch

            cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(w.url))
            if not os.path.exists(cached) and not weights.host_reachable("download.pytorch.org"):
                raise OSError("offline and not cached")
            model = torchvision.models.get_model(name, weights=w)
            class_names = list(w.meta.get("categories", [])) or None
        except Exception as e:
            log.debug("torchvision pretrained load failed: %r", e)
            raise WeightsUnavailableError(weights.offline_hint(f"torchvision:{name}")) from None
        if num_classes is not None and num_classes != 1000:
            reset_head(model, num_classes)
            class_names = None
    else:
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes or 1000)
    if in_chans != 3:
        _adapt_stem(model, in_chans)
    n = _head_linear(model)[1].out_features
    size = input_size or (224, 224)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if in_chans != 3:
        mean, std = (sum(mean) / 3,) * in_chans, (sum(std) / 3,) * in_chans
    return model, ModelInfo(f"torchvision:{name}", n, class_names or default_class_names(n, "torchvision"), (in_chans, *size), mean, std)


def _adapt_stem(model: "torch.nn.Module", in_chans: int) -> None:  # noqa: F821
    """Replace the first conv's input channels (weights summed/tiled the way timm adapts them)."""
    import torch
    from torch import nn

    for parent_name, parent in model.named_modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3 and child.groups == 1:
                new = nn.Conv2d(in_chans, child.out_channels, child.kernel_size, child.stride, child.padding,
                                child.dilation, 1, child.bias is not None, child.padding_mode)
                with torch.no_grad():
                    from timm.models import adapt_input_conv

                    new.weight.copy_(adapt_input_conv(in_chans, child.weight))
                    if child.bias is not None:
                        new.bias.copy_(child.bias)
                setattr(parent, child_name, new)
                return
    raise ModelSpecError(f"cannot adapt {type(model).__name__} to {in_chans} input channels: no 3-channel stem conv found.")


def _head_linear(model: "torch.nn.Module") -> tuple[str, "torch.nn.Linear"]:  # noqa: F821
    """The classifier's final ``nn.Linear`` (dotted name, module)."""
    from torch import nn

    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("classifier") if isinstance(cfg, dict) else None
    modules = dict(model.named_modules())
    if name and isinstance(modules.get(name), nn.Linear):
        return name, modules[name]
    linears = [(n, m) for n, m in modules.items() if isinstance(m, nn.Linear)]
    if not linears:
        raise ModelSpecError(f"{type(model).__name__} has no nn.Linear classifier head.")
    return linears[-1]


def head_name(model: "torch.nn.Module") -> str:  # noqa: F821
    """Dotted name of the classifier head (the final ``nn.Linear``): what LP trains."""
    return _head_linear(model)[0]


def reset_head(model: "torch.nn.Module", num_classes: int) -> None:  # noqa: F821
    """Give ``model`` a freshly initialized ``num_classes``-way head in place."""
    from torch import nn

    if hasattr(model, "reset_classifier") and hasattr(model, "num_classes"):
        model.reset_classifier(num_classes)
        return
    name, old = _head_linear(model)
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.Linear(old.in_features, num_classes, bias=old.bias is not None))


def info_from_checkpoint(data: dict[str, Any], source: str) -> ModelInfo:
    """``ModelInfo`` from a checkpoint dict (see cnnviz.checkpoint)."""
    n = int(data["num_classes"])
    names = list(data.get("class_names") or default_class_names(n, str(data["arch"])))
    return ModelInfo(
        arch=str(data["arch"]), num_classes=n, class_names=names,
        input_size=tuple(int(v) for v in data["input_size"]),  # type: ignore[arg-type]
        mean=tuple(float(v) for v in data["mean"]), std=tuple(float(v) for v in data["std"]),
        arch_kwargs=dict(data.get("arch_kwargs") or {}), weights="checkpoint", mode=data.get("mode"),
        metrics=dict(data.get("metrics") or {}), config=dict(data.get("config") or {}), source=source,
    )


def checkpoint_payload(model: "torch.nn.Module", info: ModelInfo, **extra: Any) -> dict[str, Any]:  # noqa: F821
    """The plain dict ``save_checkpoint`` writes for ``model`` + ``info`` (tensors on CPU)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "arch": info.arch, "arch_kwargs": dict(info.arch_kwargs), "num_classes": info.num_classes,
        "class_names": list(info.class_names), "input_size": list(info.input_size), "in_chans": info.in_chans,
        "mean": list(info.mean), "std": list(info.std), "mode": info.mode, "metrics": dict(info.metrics),
        "config": dict(info.config), "state_dict": state,
    }
    payload.update(extra)
    return payload


def save_model(path: str | Path, model: "torch.nn.Module", info: ModelInfo, **extra: Any) -> Path:  # noqa: F821
    """Save ``model`` with its ``info`` as a cnnviz checkpoint (atomic)."""
    from cnnviz.checkpoint import save_checkpoint

    return save_checkpoint(path, checkpoint_payload(model, info, **extra))


def load_model(
    spec: str | None = None,
    weights: str = "pretrained",
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    device: "str | torch.device" = "cpu",  # noqa: F821
) -> tuple["torch.nn.Module", ModelInfo]:  # noqa: F821
    """Resolve a ``--model`` spec into ``(model in eval mode on device, info)``.

    ``weights`` is ``pretrained`` or ``random`` (ignored for checkpoints, which carry their own).
    ``simplecnn`` has no pretrained weights, so ``pretrained`` quietly means random for it.
    """
    from cnnviz.checkpoint import load_checkpoint

    if weights not in ("pretrained", "random"):
        raise ModelSpecError(f"--weights {weights!r} is not one of pretrained, random.")
    spec = spec or DEFAULT_MODEL
    kind, name, _ = parse_spec(spec)
    if kind == "checkpoint":
        data = load_checkpoint(name)
        info = info_from_checkpoint(data, name)
        model, _ = build_model(info.arch, num_classes=info.num_classes, in_chans=info.in_chans,
                               arch_kwargs=info.arch_kwargs, pretrained=False, input_size=info.input_size[1:])
        try:
            model.load_state_dict(data["state_dict"])
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise CheckpointError(f"'{name}': its weights do not fit architecture {info.arch} ({first}).") from None
        model.eval()
        return model.to(device), info
    pretrained = weights == "pretrained" and kind != "simplecnn"
    model, info = build_model(spec, num_classes=num_classes, in_chans=in_chans or 3, pretrained=pretrained)
    return model.to(device), info
