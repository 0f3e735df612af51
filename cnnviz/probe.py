"""Model state and tracing: the ONE place cnnviz freezes a model, registers hooks and reads shapes.

* ``frozen(model)`` -- the guard. Inside: eval mode, every parameter frozen. On exit, success or
  not: each module's ``training`` flag, each parameter's ``requires_grad`` and ``.grad`` are put
  back as found, and any hook registered inside the block (by cnnviz or by a library such as
  pytorch-grad-cam or captum) is removed. Every explainer runs inside it.
* ``LayerProbe`` -- captures layer outputs (and gradients) inside ``frozen``; its hooks exist only
  inside the ``with`` block.
* ``model_device(model)`` -- where the model lives (first parameter, else first buffer, else CPU).
* Tracing: ``trace_shapes`` (one zero image through every layer: forward order and output shapes),
  ``describe_layers`` (what ``cnnviz layers`` prints), ``spatial_layers`` and ``output_layout``
  (``NCHW`` conv maps vs timm Swin's channels-last ``NHWC`` maps vs ViT tokens) with ``to_nchw``.

Gradients go through ``torch.autograd.grad`` on the captured activations, never ``.backward()``:
parameters are frozen inside the probe (``freeze_params=True``), so nothing accumulates in
``.grad`` and autograd walks back only from the output to the earliest probed layer. When the
activation at that layer has no graph (frozen params, plain input) the probe re-roots it as a
leaf that requires grad: the backward then stops right there, which is the cost floor for CAMs.

Example::

    with LayerProbe(model, ["features.3"]) as probe:
        logits = probe.run(x)                       # (B, num_classes)
        acts = probe.activations["features.3"]      # (B, C, H, W)

    with LayerProbe(model, ["conv_head"], grad=True) as probe:
        logits = probe.run(x)
        grads = probe.gradients(logits[:, 281].sum())["conv_head"]   # (B, C, H, W)

    with frozen(model):                             # any library call; the model comes back as found
        maps = some_library_cam(model, x)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnviz.errors import LayerError
from cnnviz.layers import layer_names, resolve_layer

log = logging.getLogger(__name__)

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
# side tables torch keeps per hook id (kwargs / always-called flags): cleaned with the hook itself
_HOOK_SIDE = ("_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")
_MISSING = object()


# -- where the model lives ------------------------------------------------------------------------
def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (else first buffer; CPU for a stateless model)."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of ``model``'s first floating-point parameter (float32 for a stateless model)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


# -- the guard ------------------------------------------------------------------------------------
def hook_count(model: nn.Module) -> int:
    """Forward/backward hooks currently registered on any module of ``model`` (0 when nothing leaked)."""
    return sum(len(getattr(m, d, {})) for m in model.modules() for d in _HOOK_DICTS)


@contextlib.contextmanager
def frozen(model: nn.Module, *, eval_mode: bool = True, freeze_params: bool = True) -> Iterator[nn.Module]:
    """Run a block on ``model`` and get it back exactly as found.

    Inside: ``model.eval()`` (BN/dropout deterministic, running statistics untouched) and
    ``requires_grad=False`` on every parameter (nothing accumulates in ``.grad``; a backward stops
    at the earliest tensor that needs grad). On exit, also on an exception: per-module ``training``
    flags, per-parameter ``requires_grad`` and ``.grad`` restored, every hook registered on any
    module during the block removed, and every submodule / parameter / buffer slot put back --
    libraries that forget their hooks (pytorch-grad-cam's ``with`` block, captum on an error) or
    swap a layer in and fail before swapping it back (pytorch-grad-cam's AblationCAM) cannot
    leave that in the caller's model.
    """
    # one traversal, plain tuples: this runs around every explainer call, so it is kept to a few
    # hundred microseconds even for a 300-module network (Module.__setattr__ is avoided on exit)
    mods = list(model.modules())
    training = [m.training for m in mods]
    params = [(p, p.requires_grad, p.grad) for m in mods for p in m._parameters.values() if p is not None]
    slots = [(m._modules.copy(), m._parameters.copy(), m._buffers.copy()) for m in mods]
    hooks = [tuple(tuple(getattr(m, d, None) or ()) for d in _HOOK_DICTS) for m in mods]
    try:
        if eval_mode and any(training):  # most models arrive in eval mode already
            model.eval()
        if freeze_params:
            for p, flag, _ in params:
                if flag:
                    p.requires_grad_(False)
        yield model
    finally:
        for m, saved in zip(mods, slots):
            for table, before in zip((m._modules, m._parameters, m._buffers), saved):
                if len(table) != len(before) or any(table.get(k, _MISSING) is not v for k, v in before.items()):
                    log.debug("restored a submodule/parameter/buffer slot of %s that changed inside", type(m).__name__)
                    table.clear()
                    table.update(before)
        leaked = 0
        for m, before in zip(mods, hooks):
            for d, keys in zip(_HOOK_DICTS, before):
                table = getattr(m, d, None)
                if table and (len(table) != len(keys) or any(k not in keys for k in table)):
                    for k in [k for k in table if k not in keys]:
                        del table[k]
                        for side in _HOOK_SIDE:
                            getattr(m, side, {}).pop(k, None)
                        leaked += 1
        for p, flag, grad in params:
            if p.requires_grad != flag:
                p.requires_grad_(flag)
            if p.grad is not grad:
                p.grad = grad
        for m, flag in zip(mods, training):
            if m.training != flag:
                m.training = flag
        if leaked:
            log.debug("removed %d hook(s) left on %s", leaked, type(model).__name__)


# -- hooks ----------------------------------------------------------------------------------------
class _StopForward(Exception):
    """Raised from a hook to skip the rest of the forward pass once every probed layer has fired."""


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def _replace_first(output: Any, new: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        return new
    return type(output)([new, *output[1:]]) if isinstance(output, (tuple, list)) else output


class LayerProbe:
    """Capture the outputs (and gradients) of named layers during forward passes.

    Args:
        model: the network; left exactly as found when the context exits (see ``frozen``).
        layers: dotted names as ``named_modules()`` prints them (validated with close-match hints).
        grad: keep the graph so ``gradients()`` works; otherwise ``run`` uses ``torch.no_grad``.
        eval_mode: put the model in eval mode inside the context (BN/dropout deterministic).
        freeze_params: set ``requires_grad=False`` on all parameters inside the context.
        stop_after: end the forward pass as soon as every probed layer has produced its output
            (``run`` then returns None) -- for activation extraction that needs no logits.
        keep: store activation tensors (False records only shapes and order).
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        *,
        grad: bool = False,
        eval_mode: bool = True,
        freeze_params: bool = True,
        stop_after: bool = False,
        keep: bool = True,
    ) -> None:
        self.model = model
        self.layer_names = list(dict.fromkeys(layers))
        self.grad = grad
        self.eval_mode = eval_mode
        self.freeze_params = freeze_params
        self.stop_after = stop_after
        self.keep = keep
        self.activations: dict[str, torch.Tensor] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.order: list[str] = []  # layers in the order they fired in the last forward
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._guard: contextlib.AbstractContextManager | None = None
        named = dict(model.named_modules())  # once: resolve_layer per name would be O(layers^2)
        self.modules = {name: named[name] if name and name in named else resolve_layer(model, name) for name in self.layer_names}

    # -- context -----------------------------------------------------------------------------
    def __enter__(self) -> LayerProbe:
        self._guard = frozen(self.model, eval_mode=self.eval_mode, freeze_params=self.freeze_params)
        self._guard.__enter__()
        try:
            for name, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._make_hook(name)))
        except BaseException:
            self._restore(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore(*exc)

    def _restore(self, *exc: Any) -> None:
        try:
            for h in self._handles:
                h.remove()
        finally:
            self._handles.clear()
            guard, self._guard = self._guard, None
            if guard is not None:
                guard.__exit__(*exc)

    # -- hooks -------------------------------------------------------------------------------
    def _make_hook(self, name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            t = _first_tensor(output)
            if t is None:
                return None
            if name not in self.order:
                self.order.append(name)
            self.shapes[name] = tuple(t.shape)
            replaced = None
            if self.grad and torch.is_grad_enabled():
                # Re-root as a leaf when nothing upstream needs grad, so backward stops here.
                stored = t if t.requires_grad else t.detach().requires_grad_(True)
                # Downstream gets a copy: an in-place op after this layer (ReLU(inplace=True))
                # must not overwrite what we stored, nor trip autograd's version check.
                replaced = _replace_first(output, stored.clone())
            elif self.keep:
                stored = t.detach().clone()  # clone: an in-place op downstream would rewrite it
            else:
                stored = t
            if self.keep:
                self.activations[name] = stored
            if self.stop_after and all(n in self.shapes for n in self.layer_names):
                raise _StopForward
            return replaced

        return hook

    # -- use ---------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget captured activations (call between batches to keep memory flat)."""
        self.activations.clear()
        self.shapes.clear()
        self.order.clear()

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Forward ``model(*args)`` with fresh captures; no_grad unless ``grad``; None if stopped early."""
        self.clear()
        ctx = contextlib.nullcontext() if self.grad else torch.no_grad()
        with ctx:
            try:
                return self.model(*args, **kwargs)
            except _StopForward:
                return None

    def gradients(self, scalar: torch.Tensor, layers: Sequence[str] | None = None, retain_graph: bool = False) -> dict[str, torch.Tensor]:
        """d scalar / d activation for each probed layer (same shapes as the activations)."""
        if not self.grad:
            raise RuntimeError("LayerProbe(grad=True) is needed for gradients()")
        names = list(layers or self.layer_names)
        acts = [self.activations[n] for n in names]
        grads = torch.autograd.grad(scalar, acts, retain_graph=retain_graph, allow_unused=True)
        return {n: (g if g is not None else torch.zeros_like(a)) for n, a, g in zip(names, acts, grads)}

    @property
    def active(self) -> bool:
        """True while hooks are registered (inside the context)."""
        return bool(self._handles)


class InputTap:
    """Call ``fn(module, x)`` with the first input tensor ``x`` of each of ``modules`` on every forward.

    Forward pre-hooks, registered in ``__enter__`` and removed in ``__exit__`` (also after an exception);
    the tap changes nothing it sees. The BatchNorm prior of ``cnnviz.explain.bnprior`` reads the inputs
    of every BatchNorm through one.
    """

    def __init__(self, modules: Sequence[nn.Module], fn: Callable[[nn.Module, torch.Tensor], None]) -> None:
        self.modules = list(modules)
        self.fn = fn
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> InputTap:
        try:
            for m in self.modules:
                self._handles.append(m.register_forward_pre_hook(self._hook))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        t = _first_tensor(inputs)
        if t is not None:
            self.fn(module, t)


# -- layouts: NCHW conv maps, NHWC (timm Swin, ConvNeXt-style blocks), ViT tokens ----------------------
def _grid_error(p: int, q: int, hw: tuple[int, int]) -> float | None:
    """How far ``(p, q)`` is from a grid downsampled from an input of size ``hw`` by one stride
    on both axes (0 = exact; None = impossible: larger than the input or off by more than rounding)."""
    h, w = hw
    if not (1 <= p <= h and 1 <= q <= w):
        return None
    expected = h * q / w  # the same stride on both axes, up to a pixel of rounding on either
    if abs(p - expected) > 1 + max(1.0, h / w) + 0.1 * expected:
        return None
    fy, fx = p / h, q / w
    return abs(fy - fx) / max(fy, fx)


def output_layout(shape: Sequence[int], input_hw: Sequence[int], module: nn.Module | None = None) -> str | None:
    """How a layer's output ``shape`` (with batch) holds space, for an input of ``input_hw``.

    ``"NCHW"`` (conv maps), ``"NHWC"`` (channels last: timm's Swin stages and norms), ``"tokens"``
    (``(B, N, D)``), or None (a vector or anything else). 4-D outputs are told apart by which
    pair of axes has the input's aspect ratio (the closer fit wins); on a tie (``(B, 8, 8, 8)``)
    the module decides: a ``LayerNorm`` over the last axis means NHWC, anything else NCHW.
    """
    hw = (int(input_hw[0]), int(input_hw[1]))
    if len(shape) == 3:
        return "tokens"
    if len(shape) != 4:
        return None
    _, a, b, c = (int(v) for v in shape)
    e_nchw, e_nhwc = _grid_error(b, c, hw), _grid_error(a, b, hw)
    if e_nhwc is not None and (e_nchw is None or e_nhwc < e_nchw - 1e-9):
        return "NHWC"
    if e_nhwc is not None and e_nchw is not None and abs(e_nhwc - e_nchw) <= 1e-9:
        if isinstance(module, nn.LayerNorm) and tuple(module.normalized_shape) == (c,):
            return "NHWC"
    return "NCHW"  # conv maps, and odd grids (adaptive pools, 1 on one axis): the PyTorch convention


def to_nchw(t: torch.Tensor, layout: str | None) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B, C, H, W)`` for ``layout == "NHWC"``; anything else unchanged."""
    return t.permute(0, 3, 1, 2) if layout == "NHWC" and t.dim() == 4 else t


# -- tracing --------------------------------------------------------------------------------------
@dataclass
class LayerSummary:
    """One row of ``cnnviz layers``."""

    name: str
    type: str
    output_shape: list[int] | None  # (C, H, W) / (H, W, C) / (N, D) without batch; None if it did not run
    params: int  # parameters including children
    trainable: bool = True
    layout: str | None = None  # see output_layout: NCHW | NHWC | tokens | None

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "output_shape": self.output_shape, "params": self.params,
                "layout": self.layout}


@dataclass
class Trace:
    """One zero image through the model: layers in forward order, their output shapes (with batch)."""

    order: list[str]
    shapes: dict[str, tuple[int, ...]]
    input_size: tuple[int, int, int]  # (C, H, W)

    def layout(self, name: str, model: nn.Module | None = None) -> str | None:
        """``output_layout`` of layer ``name`` (None if it did not run)."""
        if name not in self.shapes:
            return None
        module = dict(model.named_modules()).get(name) if model is not None else None
        return output_layout(self.shapes[name], self.input_size[1:], module)


def trace_shapes(model: nn.Module, input_size: Sequence[int], layers: Sequence[str] | None = None) -> Trace:
    """Every layer's (or ``layers``') output shape for one zero input ``(1, *input_size)``.

    With ``layers`` the forward stops as soon as they have all run (a layer check costs a partial pass).
    """
    size = tuple(int(v) for v in input_size)
    names = list(layers) if layers is not None else layer_names(model)
    with LayerProbe(model, names, keep=False, stop_after=layers is not None) as probe:
        probe.run(torch.zeros(1, *size, device=model_device(model), dtype=model_dtype(model)))
        return Trace(list(probe.order), dict(probe.shapes), size)  # type: ignore[arg-type]


def check_input_size(model: nn.Module, input_size: Sequence[int]) -> None:
    """One zero image of ``input_size`` = (C, H, W) through ``model``; a ``CnnvizError`` in one line
    if the model cannot take it (a ViT or Swin built for 224 px given ``--image-size 64``)."""
    from cnnviz.errors import CnnvizError

    size = tuple(int(v) for v in input_size)
    try:
        with frozen(model), torch.no_grad():
            model(torch.zeros(1, *size, device=model_device(model), dtype=model_dtype(model)))
    except (RuntimeError, AssertionError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(".")
        raise CnnvizError(f"{type(model).__name__} does not run on a {size[1]}x{size[2]} input ({first}); "
                          "use its own input size (drop --image-size) or one it supports.") from None


def forward_shapes(model: nn.Module, input_size: Sequence[int]) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """``(forward order, output shapes)`` of every module for one zero input ``(1, *input_size)``."""
    t = trace_shapes(model, input_size)
    return t.order, t.shapes


def describe_layers(model: nn.Module, input_size: Sequence[int]) -> list[LayerSummary]:
    """Name, type, output shape (one zero image at ``input_size`` = (C, H, W)), layout and params of every layer."""
    t = trace_shapes(model, input_size)
    modules = dict(model.named_modules())
    rows = []
    for n in layer_names(model):
        m = modules[n]
        shape = t.shapes.get(n)
        layout = output_layout(shape, t.input_size[1:], m) if shape else None
        rows.append(LayerSummary(n, type(m).__name__, list(shape[1:]) if shape else None,
                                 sum(p.numel() for p in m.parameters()), layout=layout))
    return rows


def spatial_layers(model: nn.Module, input_size: Sequence[int], layouts: Sequence[str] = ("NCHW",)) -> list[str]:
    """Layers whose output is a spatial map with h*w > 1 in one of ``layouts``, in forward order.

    The default, ``("NCHW",)``, is what code that reads ``(B, C, H, W)`` can use; pass
    ``("NCHW", "NHWC")`` to include channels-last maps (Swin), and convert them with ``to_nchw``.
    """
    t = trace_shapes(model, input_size)
    modules = dict(model.named_modules())
    out = []
    for n in t.order:
        s = t.shapes[n]
        lay = output_layout(s, t.input_size[1:], modules.get(n))
        if lay in layouts:
            h, w = (s[2], s[3]) if lay == "NCHW" else (s[1], s[2])
            if h * w > 1:
                out.append(n)
    return out


def check_spatial_layer(model: nn.Module, layer: str, input_size: Sequence[int], *, tokens_ok: bool = False) -> str:
    """The layout of ``layer``'s output if it is a spatial map (``LayerError`` in one line otherwise).

    Used before any work starts, so ``--layer classifier`` is refused at once. ``tokens_ok``
    accepts ``(B, N, D)`` token outputs (ViT layers, reshaped to a grid by the caller).
    """
    resolve_layer(model, layer)
    t = trace_shapes(model, input_size, [layer])
    if layer not in t.shapes:
        raise LayerError(f"layer {layer!r} did not run in the forward pass; pick another (see `cnnviz layers`).")
    s = t.shapes[layer]
    lay = output_layout(s, t.input_size[1:], model.get_submodule(layer))
    if lay == "tokens" and tokens_ok:
        return lay
    if lay in ("NCHW", "NHWC"):
        h, w = (s[2], s[3]) if lay == "NCHW" else (s[1], s[2])
        if h * w > 1:
            return lay
        raise LayerError(f"layer {layer!r} outputs a 1x1 map {tuple(s[1:])} at input size {tuple(t.input_size[1:])}: "
                         "a map there is one number; pick an earlier layer (see `cnnviz layers`).")
    raise LayerError(f"layer {layer!r} outputs shape {tuple(s[1:])}, not a spatial map (C, H, W); "
                     "pick a convolutional layer (see `cnnviz layers`).")
