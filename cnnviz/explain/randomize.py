"""Which layers a randomization test re-initializes, in which order, and how.

**The cascade** (Adebayo et al. 2018) is derived from the module tree, so it works for timm,
torchvision and cnnviz's simplecnn alike:

* the model's top-level children that hold parameters are the units; a container of stages
  (``nn.Sequential``/``ModuleList`` whose children are themselves blocks: timm's ``blocks``,
  torchvision's ``features`` and ResNet's ``layerN``) is opened one level, one unit per stage/block;
  a container of plain layers (simplecnn's ``features``, VGG's) is opened into one unit per
  weight layer;
* a normalization layer joins the weight layer before it (``conv_stem+bn1``, ``conv_head+bn2``,
  ``features.0+features.1``): a BatchNorm belongs to the convolution whose outputs it normalizes;
* parameters owned by the root itself (a ViT's ``pos_embed``, ``cls_token``) join the bottom unit;
* units are ordered by when they run in a forward pass (registration order can differ), and
  the cascade is that order reversed: logits first, the stem last. Units that never run are left out.

For EfficientNet-Lite this gives ``classifier``, ``conv_head+bn2``, ``blocks.6`` ... ``blocks.0``,
``conv_stem+bn1``; for a ResNet ``fc``, ``layer4.1``, ``layer4.0``, ..., ``conv1+bn1``.

**Re-initialization** (``FreshWeights``, ``reinitialize``): a unit gets the weights its architecture
has *before training* -- the model is rebuilt untrained through ``cnnviz.models.build_model`` (timm's,
torchvision's or simplecnn's own initializer: He-normal convolutions for EfficientNet and ResNet) under
a private generator seeded with ``seed``, and the unit's parameters *and buffers* are copied from it.
So a re-initialized BatchNorm gets ``weight=1, bias=0`` and running statistics mean 0, variance 1: the
trained statistics describe the distribution of the *trained* convolution's outputs; kept beside
random weights they normalize random features with trained constants (measured on Lite0, by
``benchmarks/bench_sanity.py --bn-check``: the fully random network then gives two photos nearly the
same logits), and re-estimating them on the explained
images would leak those images into the "random" model. A fully randomized model is then exactly an
untrained one. PyTorch's per-layer default (``reset_parameters()``, what Quantus's PyTorch MPRT calls)
is not used where the architecture's initializer is known: its Kaiming-uniform(a=sqrt 5) draws shrink
the signal at every convolution, and Lite0's activations vanish to 1e-8 by the stem, a degenerate
network whose output ignores the input. Models cnnviz cannot rebuild (a bare ``nn.Module``
without ``ModelInfo``) get a generic version of the same: He-normal (fan-out) convolutions, zero conv
biases, ``reset_parameters()`` for the other layers, and a normal draw with the trained tensor's std
for parameters no layer initializes (layer scales, position embeddings), seeded per unit.
The draw happens on the CPU: the same seed gives the same random weights on CPU and CUDA, in cascading
and independent mode, and the global RNG is left as found.
"""

from __future__ import annotations

import copy
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnviz.errors import LayerError

log = logging.getLogger(__name__)

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


@dataclass(frozen=True)
class Unit:
    """One step of a randomization cascade: the modules re-initialized together."""

    name: str  # display name: "blocks.6", "conv_stem+bn1"
    modules: tuple[str, ...]  # dotted module names (named_modules() spelling)
    root_params: tuple[str, ...] = ()  # parameters owned by the model itself (pos_embed, cls_token)


def _has_params(m: nn.Module) -> bool:
    return next(m.parameters(), None) is not None


def _composite(m: nn.Module) -> bool:
    """A block built of layers (it has a child holding parameters), not a single layer."""
    return any(_has_params(c) for c in m.children())


def _scan(items: Sequence[tuple[str, nn.Module]]) -> list[list[str]]:
    """Group siblings into units: a block or a weight layer opens a unit, a norm joins the one before."""
    units: list[list[str]] = []
    open_for_norm = False
    for name, m in items:
        if not _has_params(m):
            continue
        if isinstance(m, _NORMS) and not _composite(m) and open_for_norm:
            units[-1].append(name)
            open_for_norm = False
            continue
        units.append([name])
        open_for_norm = not _composite(m) and not isinstance(m, _NORMS)
    return units


def _expand(name: str, m: nn.Module) -> list[list[str]]:
    """A top-level child -> its units (one level deep for containers)."""
    if not isinstance(m, _CONTAINERS):
        return [[name]]
    kids = [(f"{name}.{n}", c) for n, c in m.named_children() if _has_params(c)]
    units = _scan(kids)
    return units if len(units) >= 2 else [[name]]


def discover_units(model: nn.Module, x: torch.Tensor | None = None) -> list[Unit]:
    """The model's units bottom-up (stem first, logits last); see the module docstring.

    ``x`` ``(B, C, H, W)``: one image of it is run to order the units by when they fire (None: keep
    registration order).
    """
    groups: list[list[str]] = []
    pending: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if isinstance(child, _CONTAINERS) and _has_params(child):
            groups += _scan(pending)
            pending = []
            groups += _expand(name, child)
        else:
            pending.append((name, child))
    groups += _scan(pending)
    units = [Unit("+".join(g), tuple(g)) for g in groups]
    if x is not None and units:
        units = _forward_order(model, units, x[:1])
    root = tuple(n for n, p in model.named_parameters(recurse=False) if p is not None)
    if root and units:
        units[0] = Unit(units[0].name, units[0].modules, root)
    return units


def _forward_order(model: nn.Module, units: list[Unit], x: torch.Tensor) -> list[Unit]:
    from cnnviz.probe import LayerProbe

    names = [n for u in units for n in u.modules]
    dev = next((p.device for p in model.parameters()), x.device)
    with LayerProbe(model, names, keep=False) as probe:
        probe.run(x.to(dev))
        fired = {n: i for i, n in enumerate(probe.order)}
    keep = [u for u in units if any(n in fired for n in u.modules)]
    for u in units:
        if u not in keep:
            log.info("unit %s did not run in the forward pass; it is left out of the cascade", u.name)
    return sorted(keep, key=lambda u: min(fired[n] for n in u.modules if n in fired))


def parse_cascade(model: nn.Module, spec: str | Sequence[str]) -> list[Unit]:
    """``"classifier,conv_head+bn2,blocks.6"`` (top first, ``+`` joins modules into one step) -> units
    in the order given. Unknown names raise ``LayerError`` with close matches."""
    from cnnviz.layers import resolve_layer

    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    if not items:
        raise LayerError("--cascade is empty: name the layers to randomize, top first (e.g. classifier,conv_head+bn2,blocks.6).")
    units = []
    for item in items:
        mods = tuple(m.strip() for m in item.split("+") if m.strip())
        for m in mods:
            resolve_layer(model, m)
        units.append(Unit("+".join(mods), mods))
    return units


class FreshWeights:
    """Untrained weights for ``model``: its architecture's own initializer when ``info`` names an
    architecture cnnviz can rebuild with the same state-dict layout, else the generic per-layer draw."""

    def __init__(self, model: nn.Module, info: "ModelInfo | None" = None, seed: int = 0) -> None:  # noqa: F821
        self.seed = int(seed)
        self.state = _rebuilt_state(model, info, self.seed)
        self.source = "architecture" if self.state is not None else "generic"

    def for_module(self, model: nn.Module, name: str, unit: Unit, k: int) -> dict[str, torch.Tensor]:
        """The fresh state dict of ``model``'s submodule ``name`` (keys relative to it)."""
        if self.state is not None:
            pre = f"{name}."
            return {key[len(pre):]: v for key, v in self.state.items() if key.startswith(pre)}
        return _generic_fresh(model.get_submodule(name), unit_seed(self.seed, unit) + k)

    def for_root(self, model: nn.Module, name: str, unit: Unit) -> torch.Tensor:
        if self.state is not None and name in self.state:
            return self.state[name]
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.random.default_generator.manual_seed(unit_seed(self.seed, unit) + 7919)
            fresh = getattr(model, name).detach().cpu().clone()
            _redraw(fresh)
        return fresh


def _rebuilt_state(model: nn.Module, info: "ModelInfo | None", seed: int) -> dict[str, torch.Tensor] | None:  # noqa: F821
    if info is None or not getattr(info, "arch", None):
        return None
    from cnnviz.errors import CnnvizError
    from cnnviz.models import build_model

    try:
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            fresh, _ = build_model(info.arch, num_classes=info.num_classes, in_chans=info.in_chans, arch_kwargs=info.arch_kwargs,
                                   pretrained=False, input_size=tuple(info.input_size[1:]))
    except (CnnvizError, RuntimeError, ValueError, TypeError) as e:
        log.info("cannot rebuild %s untrained (%s); using the generic initializer", info.arch, e)
        return None
    state = {k: v.detach().cpu() for k, v in fresh.state_dict().items()}
    mine = model.state_dict()
    if set(state) != set(mine) or any(state[k].shape != mine[k].shape for k in state):
        log.info("the rebuilt %s does not match the model's layout; using the generic initializer", info.arch)
        return None
    return state


def unit_seed(seed: int, unit: Unit) -> int:
    """The seed of one unit's generic random weights: depends on the run's seed and the unit's name only."""
    return zlib.crc32(f"{int(seed)}:{unit.name}".encode())


def _generic_fresh(module: nn.Module, gen_seed: int) -> dict[str, torch.Tensor]:
    """A freshly initialized state of ``module`` without its architecture's initializer (CPU copy)."""
    cpu = copy.deepcopy(module).cpu()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.random.default_generator.manual_seed(gen_seed)
        covered: set[int] = set()
        for sub in cpu.modules():
            if isinstance(sub, nn.modules.conv._ConvNd):
                nn.init.kaiming_normal_(sub.weight, mode="fan_out", nonlinearity="relu")
                if sub.bias is not None:
                    nn.init.zeros_(sub.bias)
                covered.update(id(p) for p in sub.parameters(recurse=False))
                continue
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()
                covered.update(id(p) for p in sub.parameters(recurse=False))
        for sub in cpu.modules():
            for p in sub.parameters(recurse=False):
                if id(p) not in covered:
                    _redraw(p)
                    covered.add(id(p))
    return cpu.state_dict()


def _redraw(p: torch.Tensor) -> None:
    std = float(p.detach().float().std()) if p.numel() > 1 else 0.02
    p.normal_(0.0, std if std > 0 else 0.02)


def reinitialize(model: nn.Module, unit: Unit, fresh: FreshWeights) -> None:
    """Give ``unit``'s modules of ``model`` their untrained weights and buffers, in place."""
    for k, name in enumerate(unit.modules):
        module = model.get_submodule(name)
        module.load_state_dict(fresh.for_module(model, name, unit, k))
    with torch.no_grad():
        for name in unit.root_params:
            p = getattr(model, name)
            p.copy_(fresh.for_root(model, name, unit).to(p.device))


def unit_parameters(model: nn.Module, unit: Unit) -> list[torch.Tensor]:
    """The parameter tensors a unit covers (to count what share of the model is random)."""
    seen: dict[int, torch.Tensor] = {}
    for name in unit.modules:
        for p in model.get_submodule(name).parameters():
            seen[id(p)] = p
    for name in unit.root_params:
        p = getattr(model, name)
        seen[id(p)] = p
    return list(seen.values())
