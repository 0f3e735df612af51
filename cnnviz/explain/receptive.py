"""Analytic receptive fields of every layer, derived from the graph the model really executes.

Araujo et al. (Distill 2019): along one axis, after layers with kernel ``k_l``, stride ``s_l``,
padding ``p_l`` and dilation ``d_l``::

    r = 1 + sum_l (d_l (k_l - 1)) * prod_{i<l} s_i      (size)
    S = prod_l s_l                                      (stride, input pixels per output step)
    P = sum_l p_l * prod_{i<l} s_i                      (effective padding)

and output unit ``u`` sees input pixels ``[u*S - P, u*S - P + r - 1]``. VGG16 pool5: 212 / 32 / 90.

How the graph is read: one forward pass under a ``TorchFunctionMode`` that sees every torch call
the model makes (convs, pools, ``F.pad``, ``+``, ``cat``, ``mean``...), with the real shapes and the
real control flow, so branches are exact without a symbolic trace (which fails on data-dependent
Python) and without assuming a sequential chain (what torchscan and pytorch-receptive-field do).
Each tensor carries the interval of input pixels its units see; merges (``+``, ``*``, ``cat``)
take the *union* of their inputs' intervals, which is the largest-RF path when the branches are
centred and stays exact when they are not (asymmetric "same" padding in one branch only).
Reductions over space (global pooling, squeeze-excitation gates), attention products, spatial
norms and BatchNorm in train mode make the field ``"global"``. Module outputs are matched to
tensors through ``LayerProbe``, the one place hooks live.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnviz.errors import LayerError

log = logging.getLogger(__name__)

Pair = tuple[float, float]


@dataclass(frozen=True)
class _State:
    """The input interval seen by the units of one tensor (per axis h, w)."""

    r: Pair  # size in input pixels
    s: Pair  # stride in input pixels
    start: Pair  # first input pixel seen by unit 0 (= -effective padding)
    axes: tuple[int, int] = (-2, -1)  # where H and W sit in the tensor (negative indices)
    glob: bool = False  # every unit sees the whole input


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else round(float(v), 4)


@dataclass
class ReceptiveField:
    """Receptive field of one layer's output units (height, width), in input pixels."""

    layer: str
    type: str
    rf: tuple[float, float] | str  # (h, w) or "global"
    stride: tuple[float, float]
    padding: tuple[float, float]  # effective padding P: unit (y, x) starts at (y*S_h - P_h, x*S_w - P_w)
    output_shape: tuple[int, ...] | None = None  # without batch

    @property
    def is_global(self) -> bool:
        return self.rf == "global"

    def region(self, y: int, x: int, clip_to: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
        """Input box ``(y0, x0, y1, x1)`` (end exclusive) seen by output unit ``(y, x)``; clipped to ``clip_to=(H, W)``."""
        if self.is_global:
            if clip_to is None:
                raise ValueError("a global receptive field needs clip_to=(H, W)")
            return 0, 0, int(clip_to[0]), int(clip_to[1])
        (rh, rw), (sh, sw), (ph, pw) = self.rf, self.stride, self.padding  # type: ignore[misc]
        y0, x0 = math.floor(y * sh - ph), math.floor(x * sw - pw)
        y1, x1 = y0 + math.ceil(rh), x0 + math.ceil(rw)
        if clip_to is not None:
            y0, x0 = max(0, y0), max(0, x0)
            y1, x1 = min(int(clip_to[0]), y1), min(int(clip_to[1]), x1)
        return int(y0), int(x0), int(y1), int(x1)

    def to_dict(self) -> dict[str, Any]:
        rf = self.rf if isinstance(self.rf, str) else [_num(v) for v in self.rf]
        return {"layer": self.layer, "type": self.type, "rf": rf, "stride": [_num(v) for v in self.stride],
                "padding": [_num(v) for v in self.padding]}


# -- the op rules -------------------------------------------------------------------------------

_POINTWISE = {
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "sigmoid", "sigmoid_", "tanh", "tanh_", "silu", "silu_", "gelu",
    "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu",
    "celu", "mish", "softplus", "prelu", "rrelu", "threshold", "clamp", "clamp_", "clip", "clamp_min", "clamp_max",
    "add", "add_", "__add__", "__radd__", "__iadd__", "sub", "sub_", "__sub__", "__rsub__", "__isub__", "mul", "mul_",
    "__mul__", "__rmul__", "__imul__", "div", "div_", "__truediv__", "__rtruediv__", "__itruediv__", "true_divide",
    "neg", "__neg__", "abs", "exp", "log", "sqrt", "rsqrt", "pow", "__pow__", "square", "reciprocal", "erf", "where",
    "maximum", "minimum", "addcmul", "lerp", "dropout", "dropout_", "dropout1d", "dropout2d", "dropout3d",
    "alpha_dropout", "feature_alpha_dropout", "contiguous", "to", "float", "double", "half", "bfloat16", "type",
    "type_as", "clone", "detach", "detach_", "requires_grad_", "cat", "concat", "concatenate", "channel_shuffle",
    "native_channel_shuffle", "identity", "softmax", "log_softmax", "normalize", "cpu", "cuda", "expand_as",
}
_SPATIAL_MIXERS = {"matmul", "bmm", "mm", "einsum", "baddbmm", "addmm", "scaled_dot_product_attention", "interpolate",
                   "upsample", "upsample_bilinear", "upsample_nearest", "grid_sample", "fft_fft2", "fft_rfft2",
                   "instance_norm", "group_norm", "local_response_norm", "conv_transpose2d", "fold", "unfold",
                   "pixel_shuffle", "pixel_unshuffle", "roll", "flip"}
_REDUCTIONS = {"mean", "sum", "amax", "amin", "std", "var", "logsumexp", "prod", "norm", "max", "min", "median", "nansum",
               "nanmean"}
_CONV = {"conv2d", "_conv_forward"}
_NORMS = {"batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm"}
_POOLS = {"max_pool2d", "avg_pool2d", "lp_pool2d", "max_pool2d_with_indices", "_max_pool2d", "fractional_max_pool2d"}
_ADAPTIVE = {"adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices", "_adaptive_max_pool2d"}
_VIEWS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "permute", "transpose", "unflatten", "chunk", "split",
          "unbind", "expand", "__getitem__", "narrow", "repeat", "squeeze_", "unsqueeze_", "transpose_", "t"}


def _arg(args: Sequence[Any], kwargs: dict[str, Any], i: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


def _pair(v: Any, default: int) -> tuple[int, int]:
    if v is None:
        return default, default
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) else (default, default)
    return int(v), int(v)


def _globalize(st: _State) -> _State:
    return _State((math.inf, math.inf), st.s, st.start, st.axes, True)


def _window(st: _State, k: Pair, stride: Pair, pad_lo: Pair) -> _State:
    """Apply a sliding window of (dilated) size ``k`` / stride / low-side padding to the last two axes."""
    if st.glob:
        return st
    r = tuple(st.r[i] + (k[i] - 1) * st.s[i] for i in range(2))
    start = tuple(st.start[i] - pad_lo[i] * st.s[i] for i in range(2))
    s = tuple(st.s[i] * stride[i] for i in range(2))
    return _State(r, s, start, st.axes)  # type: ignore[arg-type]


def _union(states: list[_State], ndim: int) -> _State:
    """Units that merge several inputs see the union of their intervals."""
    axes = tuple(a if a < 0 else a - ndim for a in states[0].axes)
    if any(s.glob for s in states):
        g = next(s for s in states if s.glob)
        return _State(g.r, g.s, g.start, axes, True)  # type: ignore[arg-type]
    s = tuple(max(st.s[i] for st in states) for i in range(2))
    lo = tuple(min(st.start[i] for st in states) for i in range(2))
    hi = tuple(max(st.start[i] + st.r[i] for st in states) for i in range(2))
    return _State(tuple(hi[i] - lo[i] for i in range(2)), s, lo, axes)  # type: ignore[arg-type]


class _Tracer(TorchFunctionMode):
    """Propagates ``_State`` through every torch call (keeps the tensors alive so ids stay unique)."""

    def __init__(self, ignore_gates: bool = False) -> None:
        super().__init__()
        self.ignore_gates = ignore_gates
        self.states: dict[int, _State] = {}
        self._alive: list[torch.Tensor] = []
        self.unknown: set[str] = set()

    def set(self, t: torch.Tensor, st: _State) -> None:
        self.states[id(t)] = st
        self._alive.append(t)

    def get(self, t: Any) -> _State | None:
        return self.states.get(id(t)) if isinstance(t, torch.Tensor) else None

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        x0 = args[0] if args else None
        if name in _NORMS and isinstance(x0, torch.Tensor) and x0.is_meta:
            out = torch.empty_like(x0)  # meta norms run as slow Python decompositions; the shape is all we need
        else:
            out = func(*args, **kwargs)
        if name in ("__get__", "__set__", "size", "dim", "numel", "_set_grad_enabled", "is_floating_point", "__len__"):
            return out
        inputs = [a for a in list(args) + list(kwargs.values()) for a in (a if isinstance(a, (list, tuple)) else [a])]
        stated = [(a, self.states[id(a)]) for a in inputs if isinstance(a, torch.Tensor) and id(a) in self.states]
        if not stated:
            return out
        outs = [o for o in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(o, torch.Tensor)]
        if not outs:
            return out
        try:
            new = self._rule(name, args, kwargs, stated, outs)
        except Exception as e:  # a rule that cannot read an unusual call: stay safe, call it global
            log.debug("receptive field rule for %s failed: %r", name, e)
            new = _globalize(stated[0][1])
        for o in outs:
            self.set(o, new)
        return out

    def _rule(self, name: str, args: Sequence[Any], kwargs: dict[str, Any], stated, outs) -> _State:  # noqa: ANN001, C901
        x, st = stated[0]
        o = outs[0]
        spatial_last = st.axes == (-2, -1) or tuple(a - x.dim() for a in st.axes) == (-2, -1)
        if self.ignore_gates and name in _POINTWISE and len(stated) > 1:
            # x * gate(mean(x)): a 1x1 global gate rescales channels; keep the local field of x
            local = [(a, s_) for a, s_ in stated if not (s_.glob and a.dim() >= 2 and a.shape[-1] * a.shape[-2] == 1)]
            if local and len(local) < len(stated):
                stated = local
                x, st = stated[0]
        if st.glob:
            return _union([s for _, s in stated], o.dim())
        if name in _CONV:
            if len(stated) > 1 or not spatial_last:  # weights computed from the input (dynamic convs)
                return _globalize(st)
            w = _arg(args, kwargs, 1, "weight")
            kh, kw = w.shape[-2:]
            sh, sw = _pair(_arg(args, kwargs, 3, "stride", 1), 1)
            dh, dw = _pair(_arg(args, kwargs, 5, "dilation", 1), 1)
            pad = _arg(args, kwargs, 4, "padding", 0)
            keff = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
            if isinstance(pad, str):
                lo = ((keff[0] - 1) // 2, (keff[1] - 1) // 2) if pad == "same" else (0, 0)
            else:
                lo = _pair(pad, 0)
            return _window(st, keff, (sh, sw), lo)
        if name in _POOLS:
            k = _pair(_arg(args, kwargs, 1, "kernel_size"), 1)
            stride = _arg(args, kwargs, 2, "stride", None)
            s = _pair(stride, 0) if stride not in (None, (), []) else k
            p = _pair(_arg(args, kwargs, 3, "padding", 0), 0)
            d = _pair(kwargs.get("dilation", args[4] if "max" in name and len(args) > 4 else 1), 1)
            keff = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)
            return _window(st, keff, s, p)
        if name in _ADAPTIVE:
            hin, win = (x.shape[a] for a in st.axes)
            hout, wout = o.shape[-2], o.shape[-1]
            if (hin > 1 and hout == 1) or (win > 1 and wout == 1):
                return _globalize(st)
            k, s = [], []
            for i_, o_ in ((hin, hout), (win, wout)):
                k.append(i_ // o_ if i_ % o_ == 0 else math.ceil(i_ / o_) + 1)
                s.append(i_ / o_)
            return _window(st, tuple(k), tuple(s), (0, 0))  # type: ignore[arg-type]
        if name == "pad":
            p = list(_arg(args, kwargs, 1, "pad"))
            if not spatial_last or len(p) < 2:
                return _globalize(st)
            lo_w, lo_h = p[0], (p[2] if len(p) >= 4 else 0)
            return _window(st, (1, 1), (1, 1), (lo_h, lo_w))
        if name == "batch_norm":
            training = _arg(args, kwargs, 5, "training", False)
            return _globalize(st) if training else st
        if name in ("layer_norm", "rms_norm"):
            shape = _arg(args, kwargs, 1, "normalized_shape")
            n = len(shape) if isinstance(shape, (tuple, list)) else 1
            covered = {x.dim() - 1 - i for i in range(n)}
            return _globalize(st) if any((a % x.dim()) in covered for a in st.axes) else st
        if name == "linear":
            return _globalize(st) if any((a % x.dim()) == x.dim() - 1 for a in st.axes) else st
        if name in _REDUCTIONS:
            dim = _arg(args, kwargs, 1, "dim", None)
            if dim is None or (name in ("max", "min") and isinstance(dim, torch.Tensor)):
                return _globalize(st) if dim is None else _union([s for _, s in stated], o.dim())
            dims = {d % x.dim() for d in (dim if isinstance(dim, (tuple, list)) else [dim])}
            if any((a % x.dim()) in dims for a in st.axes):
                return _globalize(st)
            return self._reaxis(st, x, o)
        if name in _SPATIAL_MIXERS:
            return _globalize(st)
        if name in ("softmax", "log_softmax", "cumsum", "argmax", "argmin", "sort", "topk"):
            dim = _arg(args, kwargs, 1, "dim", None)
            if dim is None or (int(dim) % x.dim()) in {a % x.dim() for a in st.axes}:
                return _globalize(st)
            return st
        if name in _VIEWS:
            return self._reaxis(st, x, o)
        if name in _POINTWISE:
            return _union([s for _, s in stated], o.dim())
        # Unknown op: shape-preserving ones are almost always elementwise; anything else, be safe.
        self.unknown.add(name)
        if all(tuple(o.shape[-2:]) == tuple(a.shape[-2:]) for a, _ in stated if a.dim() >= 2):
            return _union([s for _, s in stated], o.dim())
        return _globalize(st)

    @staticmethod
    def _reaxis(st: _State, x: torch.Tensor, o: torch.Tensor) -> _State:
        """Find where H and W went after a view/permute/reduction over other axes (or give up: global)."""
        h, w = (x.shape[a] for a in st.axes)
        ha, wa = (a % x.dim() for a in st.axes)
        before = math.prod(x.shape[:ha])  # elements laid out before H (views keep this product)
        shape = list(o.shape)
        if (h, w) == (1, 1):  # a 1x1 map: nothing spatial left to track
            return _State(st.r, st.s, st.start, (-2, -1), st.glob)
        cands = [i for i in range(len(shape) - 1) if shape[i] == h and shape[i + 1] == w and wa == ha + 1]
        for i in cands:
            if math.prod(shape[:i]) == before or len(cands) == 1:
                return _State(st.r, st.s, st.start, (i - len(shape), i + 1 - len(shape)))
        # permutes: H and W both present once, not adjacent or swapped
        if shape.count(h) == 1 and shape.count(w) == 1 and h != w:
            return _State(st.r, st.s, st.start, (shape.index(h) - len(shape), shape.index(w) - len(shape)))
        return _globalize(st)


def _trace(model: nn.Module, input_size: Sequence[int], names: list[str], meta: bool, ignore_gates: bool = False):
    """One traced forward of a zero image -> (tracer, activations by layer, layer order)."""
    from torch.func import functional_call

    from cnnviz.probe import LayerProbe, model_device, model_dtype

    device, dtype = model_device(model), model_dtype(model)
    c, h, w = (int(v) for v in input_size)
    x = torch.zeros(1, c, h, w, device="meta" if meta else device, dtype=dtype)
    tracer = _Tracer(ignore_gates)
    tracer.set(x, _State((1, 1), (1, 1), (0, 0)))
    with LayerProbe(model, names) as probe:
        with tracer:
            if meta:
                state = {k: torch.empty_like(v, device="meta") for k, v in
                         list(model.named_parameters()) + list(model.named_buffers())}
                probe.clear()
                with torch.no_grad():
                    functional_call(model, state, (x,), strict=False)
            else:
                probe.run(x)
        return tracer, dict(probe.activations), list(probe.order)


def receptive_fields(model: nn.Module, input_size: Sequence[int], layers: Sequence[str] | None = None, *,
                     ignore_gates: bool = False) -> list[ReceptiveField]:
    """Receptive field of every layer (or of ``layers``) in forward order.

    Args:
        model: any ``nn.Module`` taking one ``(1, C, H, W)`` tensor; its mode and flags are restored
            (LayerProbe puts it in eval mode, so BatchNorm uses running statistics).
        input_size: ``(C, H, W)`` (``ModelInfo.input_size``); the field can depend on it (dynamic
            "same" padding, adaptive pooling).
        layers: dotted names; default every module that produced a tensor.
        ignore_gates: treat squeeze-excitation style gates (``x * f(global_pool(x))``) as channel
            rescaling, keeping the local field of ``x`` (strictly the gate makes it global; this is
            the field of the local evidence, what a patch should show).

    Returns:
        ``ReceptiveField`` per layer; ``rf`` is ``"global"`` where a unit sees the whole input.
    """
    from cnnviz import limits

    if not isinstance(input_size, Sequence) or isinstance(input_size, str) or len(input_size) != 3:
        raise limits.OptionError(f"input_size must be (C, H, W), got {input_size!r}.")
    input_size = (limits.check_int("input channels", input_size[0], limits.IN_CHANS),
                  *(limits.check_int("input size", v, limits.IMAGE_SIDE) for v in input_size[1:]))
    names = list(layers) if layers else [n for n, _ in model.named_modules() if n]
    try:
        # Shapes are all we need: on the meta device the forward costs no arithmetic at all.
        tracer, acts, order = _trace(model, input_size, names, meta=True, ignore_gates=ignore_gates)
    except Exception as e:  # data-dependent Python (x.item(), if x.mean() > 0 ...) needs real values
        log.debug("meta-device trace failed (%r); tracing with real tensors", e)
        tracer, acts, order = _trace(model, input_size, names, meta=False, ignore_gates=ignore_gates)
    if tracer.unknown:
        log.info("receptive field: treated unknown shape-preserving ops as elementwise: %s", ", ".join(sorted(tracer.unknown)))
    modules = dict(model.named_modules())
    out: list[ReceptiveField] = []
    for n in order:
        st = tracer.get(acts.get(n))
        if st is None:
            continue
        rf: tuple[float, float] | str = "global" if st.glob else st.r
        out.append(ReceptiveField(n, type(modules[n]).__name__, rf, st.s, (-st.start[0], -st.start[1]),
                                  tuple(acts[n].shape[1:])))
    if layers:
        missing = [n for n in layers if n not in {r.layer for r in out}]
        if missing:
            raise LayerError(f"layer {missing[0]!r} did not produce a tensor in the forward pass, so it has no receptive field.")
    return out


def receptive_field(model: nn.Module, input_size: Sequence[int], layer: str, *, ignore_gates: bool = False) -> ReceptiveField:
    """The receptive field of one layer (see ``receptive_fields``)."""
    return receptive_fields(model, input_size, [layer], ignore_gates=ignore_gates)[0]
