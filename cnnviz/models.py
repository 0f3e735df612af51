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
SIMPLECNN_KWARGS = ("width", "depth", "dropout")  # = cnnviz.limits.SIMPLECNN_OPTIONS (bounds there)


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
    pixel_mean: tuple[float, ...] | None = None  # mean of its training images in [0, 1] (checkpoints), per channel
    # (C, h, w) float32 ndarray in [0, 1]: their mean image at the input size (checkpoints); not compared
    mean_image: Any = field(default=None, compare=False, repr=False)

    @property
    def in_chans(self) -> int:
        return self.input_size[0]

    @property
    def label(self) -> str:
        """Short human label, e.g. ``efficientnet_lite0 (lpft)``."""
        name = self.arch.split(":", 1)[-1]
        return f"{name} ({self.mode})" if self.mode else f"{name} ({self.weights})"

    def class_index(self, target: int | str) -> int:
        """Resolve a class index or a class name to an index.

        An ``int`` is an index. A string is, in order: ``#N`` (always index N); a name spelled
        exactly (case and all: with classes ``Cat`` and ``cat``, ``cat`` is ``cat``); a string of
        digits that is no class name, as an index; a name in another case; one synonym of a
        comma-separated ImageNet description (``tabby cat`` of ``tabby, tabby cat``); a unique prefix.
        Two classes matching at the same step (``crane`` is two ImageNet classes; ``CAT`` with
        ``Cat`` and ``cat``; prefix ``ca``) is refused with the candidates listed (``TargetError``).
        """
        from cnnviz.errors import TargetError

        n = self.num_classes

        def index(idx: int, spelled: object) -> int:
            if not 0 <= idx < n:
                raise TargetError(f"class index {spelled} is out of range: the model has {n} classes (0-{n - 1}).")
            return idx

        def pick(hits: list[int], how: str) -> int | None:
            hits = list(dict.fromkeys(hits))
            if len(hits) == 1:
                return hits[0]
            if hits:
                shown = ", ".join(f"{i} {self.class_names[i]!r}" for i in hits[:8])
                more = f" and {len(hits) - 8} more" if len(hits) > 8 else ""
                raise TargetError(f"class {target!r} is ambiguous: {len(hits)} classes match {how} ({shown}{more}). "
                                  "Give the exact name or its index.")
            return None

        if isinstance(target, bool) or not isinstance(target, (int, str)):
            import numbers

            if isinstance(target, numbers.Integral) and not isinstance(target, bool):
                return index(int(target), target)
            raise TargetError(f"a class is an index or a name, got {type(target).__name__} {target!r}.")
        if isinstance(target, int):
            return index(target, target)
        raw = target
        want = raw.strip()
        if not want:
            raise TargetError("an empty class name: give a class index or a name.")
        if want.startswith("#") and want[1:].isdigit():
            return index(int(want[1:]), want)
        names = list(self.class_names)
        found = pick([i for i, c in enumerate(names) if c == raw or c == want], "exactly")
        if found is not None:
            return found
        if want.lstrip("-").isdigit() and want.lstrip("-").isascii():
            return index(int(want), want)
        low = want.casefold()
        syn = [[s.strip() for s in c.split(",")] for c in names]
        steps = (
            ("ignoring case", [i for i, c in enumerate(names) if c.strip().casefold() == low]),
            ("as a synonym", [i for i, ss in enumerate(syn) if want in ss]),
            ("as a synonym ignoring case", [i for i, ss in enumerate(syn) if low in (s.casefold() for s in ss)]),
            ("as a prefix", [i for i, (c, ss) in enumerate(zip(names, syn))
                             if c.casefold().startswith(low) or any(s.casefold().startswith(low) for s in ss)]),
        )
        for how, hits in steps:
            found = pick(hits, how)
            if found is not None:
                return found
        raise TargetError(f"no class named {want!r} in this model's {n} classes.{suggestion(want, names)}")

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
    """Split a spec into ``(kind, name, kwargs)``; kind is checkpoint | timm | torchvision | simplecnn.

    A run folder holding ``ckpt.pt`` means that checkpoint. ``hf-hub:ORG/NAME`` (or ``timm:hf-hub:ORG/NAME``) is a timm model whose config and weights come
    from the Hugging Face Hub (or its local cache). simplecnn options are checked against
    ``cnnviz.limits`` here, before anything is built.
    """
    from cnnviz import limits

    s = (spec or DEFAULT_MODEL).strip()
    if not s.isprintable():
        raise ModelSpecError(f"model spec {spec!r} holds control characters.")
    if s.endswith((".pt", ".pth", ".ckpt")) or Path(s).is_file():
        return "checkpoint", s, {}
    if Path(s).is_dir():  # a run folder written by `cnnviz train`
        if (Path(s) / "ckpt.pt").is_file():
            return "checkpoint", str(Path(s) / "ckpt.pt"), {}
        raise ModelSpecError(f"--model {spec!r} is a folder without a ckpt.pt: pass a checkpoint file, a timm/torchvision name or simplecnn.")
    if s.startswith(("hf-hub:", "timm:hf-hub:")):
        name = s.removeprefix("timm:")
        repo = name.removeprefix("hf-hub:")
        if not repo.strip() or repo.count("/") != 1 or any(not part.strip() for part in repo.split("/")):
            raise ModelSpecError(f"model spec {spec!r}: use hf-hub:ORG/NAME (e.g. hf-hub:timm/resnet18.a1_in1k).")
        return "timm", name, {}
    kind, _, name = s.partition(":") if ":" in s else ("", "", s)
    if kind == "" and name.startswith("simplecnn"):
        kind = "simplecnn"
    if kind == "simplecnn" or s.startswith("simplecnn"):
        if s != "simplecnn" and not s.startswith("simplecnn:"):
            raise ModelSpecError(f"unknown model spec {spec!r}: use simplecnn or simplecnn:width=32,depth=3.")
        raw: dict[str, Any] = {}
        opts = s.partition(":")[2]
        for part in filter(None, (p.strip() for p in opts.split(","))):
            k, eq, v = part.partition("=")
            k = k.strip()
            if not eq or k not in SIMPLECNN_KWARGS:
                raise ModelSpecError(f"bad simplecnn option {part!r}: use simplecnn:width=32,depth=3 (options: {', '.join(SIMPLECNN_KWARGS)}).")
            if k in raw:
                raise ModelSpecError(f"simplecnn option {k} is given twice in {spec!r}.")
            try:
                raw[k] = float(v) if k == "dropout" else int(v)
            except ValueError:
                raise ModelSpecError(f"simplecnn option {k} needs {'a number' if k == 'dropout' else 'an integer'}, got {v!r}.") from None
        return "simplecnn", "simplecnn", limits.check_simplecnn_kwargs(raw, ModelSpecError, "simplecnn")
    if kind in ("", "timm"):
        if not name.strip():
            raise ModelSpecError(f"model spec {spec!r} names no model: use e.g. timm:efficientnet_lite0.")
        return "timm", name, {}
    if kind == "torchvision":
        if not name.strip():
            raise ModelSpecError(f"model spec {spec!r} names no model: use e.g. torchvision:resnet18.")
        return "torchvision", name, {}
    raise ModelSpecError(f"unknown model spec prefix {kind!r} in {spec!r}: use a checkpoint path, timm:NAME, torchvision:NAME, hf-hub:ORG/NAME or simplecnn.")


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
    from cnnviz import limits

    kind, name, kw = parse_spec(arch)
    if kind == "checkpoint":
        raise ModelSpecError(f"build_model() takes an architecture, not a checkpoint path ({arch!r}); use load_model().")
    if num_classes is not None:
        num_classes = limits.check_int("num_classes", num_classes, limits.NUM_CLASSES)
    in_chans = limits.check_int("in_chans", in_chans, limits.IN_CHANS)
    if input_size is not None:
        if not isinstance(input_size, (tuple, list)) or len(input_size) != 2:
            raise ModelSpecError(f"input_size must be (H, W), got {input_size!r}.")
        input_size = tuple(limits.check_int("input size", v, limits.IMAGE_SIDE) for v in input_size)  # type: ignore[assignment]
    if arch_kwargs and "probe_layer" in arch_kwargs:  # `cnnviz train --probe-layer`: cut after that layer, new head
        from cnnviz.truncate import truncate_at

        rest = {k: v for k, v in arch_kwargs.items() if k != "probe_layer"}
        layer = str(arch_kwargs["probe_layer"])
        model, info = build_model(arch, num_classes=num_classes, in_chans=in_chans, pretrained=pretrained,
                                  input_size=input_size, arch_kwargs=rest or None)
        truncate_at(model, layer, info.num_classes, info.input_size, head_name(model))
        info.arch_kwargs = {**info.arch_kwargs, "probe_layer": layer}
        return model, info
    if arch_kwargs and kind != "simplecnn":
        raise ModelSpecError(f"{arch}: unknown option(s) {sorted(arch_kwargs)}; only simplecnn takes {', '.join(SIMPLECNN_KWARGS)}.")
    kw = limits.check_simplecnn_kwargs({**kw, **(arch_kwargs or {})}, ModelSpecError) if kind == "simplecnn" else {}
    if kind == "simplecnn":
        from cnnviz.simplecnn import SimpleCNN

        if pretrained:
            raise WeightsUnavailableError("simplecnn has no pretrained weights: use --weights random (or train it with `cnnviz train`).")
        n = num_classes or 10
        hw = input_size or (64, 64)
        depth = kw.get("depth", 3)
        if min(hw) < 2**depth:
            raise ModelSpecError(f"simplecnn depth={depth} halves the image {depth} times: it needs inputs of at least "
                                 f"{2**depth}x{2**depth} pixels, got {hw[0]}x{hw[1]}. Use a smaller depth or a larger image size.")
        model = SimpleCNN(num_classes=n, in_chans=in_chans, **kw)
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

    if name.startswith("hf-hub:"):
        model = _create_hf_hub(name, num_classes, pretrained)
    elif not timm.is_model(name):
        known = timm.list_models()
        raise ModelSpecError(f"unknown timm model {name!r}.{suggestion(name, known)} (see timm.list_models()).")
    elif pretrained and weights.is_bundled(name):
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


def _create_hf_hub(name: str, num_classes: int | None, pretrained: bool) -> "torch.nn.Module":  # noqa: F821
    """``timm.create_model("hf-hub:ORG/NAME")``: its config (and, pretrained, its weights) come from the
    Hugging Face Hub or its local cache. Offline, huggingface_hub is put in offline mode first, so a
    model that is not cached fails in a second with one line instead of a minute of retries."""
    import timm

    from cnnviz import weights

    kw = {} if pretrained or num_classes is None else {"num_classes": num_classes}
    try:
        with weights.hub_offline_context():
            return timm.create_model(name, pretrained=pretrained, **kw)
    except Exception as e:  # hub errors come in many types (OSError, HF errors, URLError, HTTPError)
        log.debug("timm hf-hub load failed: %r", e)
        what = "its config and weights" if pretrained else "its config"
        kind = type(e).__name__
        if "LocalEntryNotFound" in kind or "OfflineMode" in kind:
            why = "not in the local cache, and the Hub is unreachable"
        elif "RepositoryNotFound" in kind or "GatedRepo" in kind:
            why = "no such (public) repository on the Hub"
        else:
            text = str(e).strip()
            why = f"{kind}: {text.splitlines()[0][:120]}" if text else kind
        raise WeightsUnavailableError(
            f"model {name!r} could not be loaded: it needs {what} from the Hugging Face Hub or its local cache ({why}). "
            f"Check the name, connect once to cache it, or use a bundled model: {', '.join(sorted(weights.BUNDLED))}.") from None


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
    """``ModelInfo`` from a checkpoint dict (see cnnviz.checkpoint); ``CheckpointError`` naming the wrong field."""
    from cnnviz.checkpoint import validate_checkpoint

    data = validate_checkpoint(data, source, check_tensors=False)
    n = data["num_classes"]
    names = list(data.get("class_names") or default_class_names(n, str(data["arch"])))
    return ModelInfo(
        arch=str(data["arch"]), num_classes=n, class_names=names,
        input_size=tuple(data["input_size"]),  # type: ignore[arg-type]
        mean=tuple(data["mean"]), std=tuple(data["std"]),
        arch_kwargs=dict(data["arch_kwargs"]), weights="checkpoint", mode=data.get("mode"),
        metrics=dict(data.get("metrics") or {}), config=dict(data.get("config") or {}), source=source,
        pixel_mean=tuple(data["pixel_mean"]) if data.get("pixel_mean") is not None else None,
        mean_image=data["mean_image"].numpy() if data.get("mean_image") is not None else None,
    )


def load_state(model: "torch.nn.Module", state: dict[str, Any], source: str, arch: str) -> None:  # noqa: F821
    """``model.load_state_dict(state)`` with one clear line when the weights do not fit.

    Names the missing and unexpected keys and the first tensors whose shapes differ, instead of
    torch's multi-line report (``CheckpointError``).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} is {tuple(state[k].shape)} in the file but {tuple(v.shape)} in the model"
              for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]

    def few(keys: list[str]) -> str:
        return "; ".join(keys[:3]) + (f"; and {len(keys) - 3} more" if len(keys) > 3 else "")

    parts = ([f"{len(missing)} missing ({few(missing)})"] if missing else []) + (
        [f"{len(unexpected)} unexpected ({few(unexpected)})"] if unexpected else []) + (
        [f"{len(shapes)} of another shape ({few(shapes)})"] if shapes else [])
    if parts:
        raise CheckpointError(f"'{source}': its weights do not fit architecture {arch}: {'; '.join(parts)}.")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1].strip()[:200]
        raise CheckpointError(f"'{source}': its weights do not fit architecture {arch} ({first}).") from None


def checkpoint_payload(model: "torch.nn.Module", info: ModelInfo, **extra: Any) -> dict[str, Any]:  # noqa: F821
    """The plain dict ``save_checkpoint`` writes for ``model`` + ``info`` (tensors on CPU)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "arch": info.arch, "arch_kwargs": dict(info.arch_kwargs), "num_classes": info.num_classes,
        "class_names": list(info.class_names), "input_size": list(info.input_size), "in_chans": info.in_chans,
        "mean": list(info.mean), "std": list(info.std), "mode": info.mode, "metrics": dict(info.metrics),
        "config": dict(info.config), "state_dict": state,
    }
    if info.pixel_mean is not None:
        payload["pixel_mean"] = list(info.pixel_mean)
    if info.mean_image is not None:
        import numpy as np
        import torch

        payload["mean_image"] = torch.as_tensor(np.asarray(info.mean_image, dtype=np.float32))
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
        try:
            model, _ = build_model(info.arch, num_classes=info.num_classes, in_chans=info.in_chans,
                                   arch_kwargs=info.arch_kwargs, pretrained=False, input_size=info.input_size[1:])
        except (ModelSpecError, WeightsUnavailableError) as e:
            raise CheckpointError(f"'{name}': its architecture {info.arch!r} cannot be built: {e}") from None
        load_state(model, data["state_dict"], name, info.arch)
        model.eval()
        return model.to(device), info
    pretrained = weights == "pretrained" and kind != "simplecnn"
    model, info = build_model(spec, num_classes=num_classes, in_chans=in_chans or 3, pretrained=pretrained)
    return model.to(device), info
