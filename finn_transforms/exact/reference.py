"""The exact reference: evaluate a QONNX / FINN-ONNX graph in exact rational arithmetic.

`evaluate` walks the graph in topological order; every tensor is an `Exact` (integer array times
a rational scale). Linear ops (MatMul, Gemm, Conv, Add, Sub, Mul, pooling sums, BatchNorm's affine
form) are exact integer arithmetic; quantizers (``Quant``, ``BipolarQuant``, ``FloatQuant``,
``MinifloatQuant``, ``MultiThreshold``: `finn_transforms.exact.quantizers`) compare the exact
pre-activation with the boundaries their float32 definition sets. Nothing here runs torch,
onnxruntime or the lowering passes. Op implementations live in a registry (`register_op`): the HW
executor (`finn_transforms.exact.hw_executor`) and other packages add theirs there. An op without
an implementation raises `ExactError` naming the node.

``abs_mode`` evaluates the same graph on magnitudes (``Sub`` adds, affine ops use ``|a|``,
``|b|``): with inputs ``|x|`` it yields an upper bound of the sum of absolute terms behind every
value, which `finn_transforms.exact.explain` turns into float32 error bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.modelwrapper import ModelWrapper

from finn_transforms.exact.tensor import Exact, ExactError, exact_matmul, fraction_gcd
from finn_transforms.model_io import bind_graph_inputs

__all__ = ["Context", "ExactError", "OpFn", "concat", "evaluate", "node_label", "op_registry", "register_op"]


def node_label(node: NodeProto) -> str:
    return f"{node.op_type} node {node.name or '<unnamed>'!r} (output {node.output[0]!r})"


@dataclass
class Context:
    """What an op implementation sees besides its input values."""

    model: ModelWrapper
    node: NodeProto
    abs_mode: bool = False
    cache: dict = field(default_factory=dict)  # per-evaluation memo shared by all nodes (e.g. boundaries)
    observer: Callable[..., None] | None = None  # quantizers report (node, pre-activation, boundaries, groups)

    def attr(self, name: str, default: Any = None) -> Any:
        for a in self.node.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def const(self, index: int) -> np.ndarray | None:
        """The raw constant (initializer) at input ``index``, else ``None``."""
        if index >= len(self.node.input) or not self.node.input[index]:
            return None
        value = self.model.get_initializer(self.node.input[index])
        return None if value is None else np.asarray(value)

    def fail(self, reason: str) -> ExactError:
        return ExactError(f"cannot evaluate {node_label(self.node)} exactly: {reason}")


OpFn = Callable[[list, Context], list]
_REGISTRY: dict[str, OpFn] = {}


def register_op(*op_types: str) -> Callable[[OpFn], OpFn]:
    """Decorator: ``fn(inputs: list[Exact | None], ctx) -> list[Exact]`` executes ``op_types``."""

    def deco(fn: OpFn) -> OpFn:
        for op in op_types:
            _REGISTRY[op] = fn
        return fn

    return deco


def op_registry() -> dict[str, OpFn]:
    """The registered op implementations (a copy)."""
    _load_builtin_ops()
    return dict(_REGISTRY)


def _load_builtin_ops() -> None:
    from finn_transforms.exact import native_ops, quantizers  # noqa: F401  (they register their ops)


def evaluate(
    model: ModelWrapper,
    inputs: Mapping[str, Any] | np.ndarray,
    *,
    overrides: Mapping[str, Exact] | Callable[[str, Exact], Exact] | None = None,
    abs_mode: bool = False,
    observer: Callable[..., None] | None = None,
    lookup: Callable[[NodeProto], OpFn | None] | None = None,
    return_all: bool = False,
    cache: dict | None = None,
) -> dict[str, Exact]:
    """Exact values of the graph outputs (or of every tensor, ``return_all``) for ``inputs``.

    ``inputs`` maps graph input names to finite float/int arrays (or `Exact`); a bare array is
    accepted for single-input graphs. ``overrides`` replaces computed tensors by given values (the
    node still runs, so an ``observer`` sees its exact result), or is a function
    ``(tensor name, computed value) -> value`` applied to every node output. ``lookup`` resolves a node to its
    implementation before the registry (the HW executor's hook). ``cache``: a dict kept by the caller
    across calls on the *same* model (converted initializers, quantizer boundaries). Raises `ExactError` for NaN/Inf
    inputs and for ops without an exact implementation, naming the node.
    """
    _load_builtin_ops()
    values: dict[str, Exact] = {}
    for name, value in bind_graph_inputs(model, inputs, ExactError).items():
        try:
            values[name] = value if isinstance(value, Exact) else Exact.from_array(np.asarray(value))
        except ExactError as err:
            raise ExactError(f"graph input {name!r}: {err}") from None
        if abs_mode:
            values[name] = _abs(values[name])
    cache = {} if cache is None else cache
    for node in model.graph.node:
        fn = (lookup(node) if lookup else None) or _REGISTRY.get(node.op_type)
        if fn is None:
            raise ExactError(f"no exact implementation for {node_label(node)} (domain {node.domain or 'onnx'!r})")
        ins = []
        for name in node.input:
            if not name:
                ins.append(None)
            elif name in values:
                ins.append(values[name])
            else:
                ins.append(_initializer(model, name, node, abs_mode, cache))
        ctx = Context(model, node, abs_mode, cache, observer)
        outs = fn(ins, ctx)
        for name, value in zip(node.output, outs):
            if not name:
                continue
            if callable(overrides):
                value = overrides(name, value)
            elif overrides and name in overrides:
                value = overrides[name]
            values[name] = value
    if return_all:
        return values
    return {o.name: values[o.name] for o in model.graph.output}


def _initializer(model: ModelWrapper, name: str, node: NodeProto, abs_mode: bool, cache: dict) -> Exact:
    key = ("init", name, abs_mode)
    if key not in cache:
        value = model.get_initializer(name)
        if value is None:
            raise ExactError(f"{node_label(node)}: input {name!r} is neither computed nor an initializer")
        try:
            exact = Exact.from_array(np.asarray(value))
        except ExactError as err:
            raise ExactError(f"{node_label(node)}: initializer {name!r}: {err}") from None
        cache[key] = _abs(exact) if abs_mode else exact
    return cache[key]


def _abs(x: Exact) -> Exact:
    return x.with_num(np.abs(x.num))


def _value(x: Exact | None, ctx: Context, what: str) -> Exact:
    if x is None:
        raise ctx.fail(f"missing {what}")
    return x


def _ints(x: Exact | None, ctx: Context, what: str) -> list[int]:
    """A small integer vector operand (shapes, axes)."""
    if x is None:
        raise ctx.fail(f"missing {what}")
    try:
        return [int(v) for v in np.asarray(x.as_integers()).ravel()]
    except ExactError as err:
        raise ctx.fail(f"{what}: {err}") from None


# --------------------------------------------------------------------------- elementwise
@register_op("Add")
def _add(ins, ctx):
    return [ins[0] + ins[1]]


@register_op("Sub")
def _sub(ins, ctx):
    return [ins[0] + ins[1] if ctx.abs_mode else ins[0] - ins[1]]


@register_op("Mul")
def _mul(ins, ctx):
    return [ins[0] * ins[1]]


@register_op("Div")
def _div(ins, ctx):
    a, b = ins
    if ctx.const(1) is None:
        raise ctx.fail("division by a computed tensor (only division by a constant is exact here)")
    if np.any(b.num == 0):
        raise ctx.fail("division by zero")
    # 1/c over the constant's distinct values, brought to one common denominator
    uniq, inv = np.unique(b.num, return_inverse=True)
    recips = [Fraction(1) / (int(v) * b.scale) for v in uniq]
    if ctx.abs_mode:
        recips = [abs(r) for r in recips]
    den = math.lcm(*(r.denominator for r in recips))
    nums = np.array([int(r * den) for r in recips], dtype=object)[inv.reshape(b.num.shape)]
    return [a * Exact.from_ints(nums, Fraction(1, den))]


@register_op("Neg")
def _neg(ins, ctx):
    return [ins[0] if ctx.abs_mode else -ins[0]]


@register_op("Relu")
def _relu(ins, ctx):
    x = ins[0]
    return [x.with_num(np.maximum(x.num, 0))]


@register_op("Identity")
def _identity(ins, ctx):
    return [ins[0]]


# --------------------------------------------------------------------------- linear algebra
def _matmul(a: Exact, b: Exact) -> Exact:
    if b.ndim != 2:
        if a.ndim == b.ndim and b.ndim > 2:  # batched: loop over the leading dims of b
            out = np.stack([exact_matmul(a.num[i], b.num[i]) for i in range(b.shape[0])])
            return Exact(out, a.scale * b.scale).normalized()
        raise ExactError(f"MatMul of shapes {a.shape} x {b.shape} is not supported")
    if a.ndim == 1:
        return Exact(exact_matmul(a.num[None, :], b.num)[0], a.scale * b.scale).normalized()
    return Exact(exact_matmul(a.num, b.num), a.scale * b.scale).normalized()


@register_op("MatMul")
def _matmul_op(ins, ctx):
    try:
        return [_matmul(ins[0], ins[1])]
    except ExactError as err:
        raise ctx.fail(str(err)) from None


@register_op("Gemm")
def _gemm(ins, ctx):
    a, b, c = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    if ctx.attr("transA", 0):
        a = a.with_num(a.num.T)
    if ctx.attr("transB", 0):
        b = b.with_num(b.num.T)
    y = _matmul(a, b).times(Fraction(ctx.attr("alpha", 1.0)))
    if c is not None:
        y = y + c.times(Fraction(ctx.attr("beta", 1.0)))
    return [y]


def _pads(ctx: Context, spatial: int, in_shape, kernel, strides, dilations) -> list[int]:
    pads = list(ctx.attr("pads", [0] * (2 * spatial)))
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * spatial)
        for i in range(spatial):
            out = -(-in_shape[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_shape[i])
            small, big = total // 2, total - total // 2
            pads[i], pads[i + spatial] = (small, big) if auto == "SAME_UPPER" else (big, small)
    elif auto not in ("NOTSET", "VALID"):
        raise ctx.fail(f"auto_pad {auto!r}")
    return pads


def _windows(num: np.ndarray, kernel, strides, dilations, pads, fill=0) -> np.ndarray:
    """(N, C, *spatial) -> (N, C, *out_spatial, *kernel) windows (a view where possible)."""
    spatial = len(kernel)
    if any(pads):
        width = [(0, 0), (0, 0)] + [(pads[i], pads[i + spatial]) for i in range(spatial)]
        num = np.pad(num, width, constant_values=fill)
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    win = np.lib.stride_tricks.sliding_window_view(num, span, axis=tuple(range(2, 2 + spatial)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
    index += tuple(slice(None, None, d) for d in dilations)
    return win[index]


@register_op("Conv")
def _conv(ins, ctx):
    x, w, b = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    spatial = w.ndim - 2
    if x.ndim != w.ndim or spatial < 1:
        raise ctx.fail(f"input rank {x.ndim} / weight rank {w.ndim}")
    kernel = list(ctx.attr("kernel_shape", w.shape[2:]))
    strides = list(ctx.attr("strides", [1] * spatial))
    dilations = list(ctx.attr("dilations", [1] * spatial))
    groups = int(ctx.attr("group", 1))
    pads = _pads(ctx, spatial, x.shape[2:], kernel, strides, dilations)
    win = _windows(x.num, kernel, strides, dilations, pads)  # (N, C, *out, *k)
    n, c = x.shape[:2]
    out_sp = win.shape[2 : 2 + spatial]
    m = w.shape[0]
    cg, mg = c // groups, m // groups
    if cg * groups != c or w.shape[1] != cg:
        raise ctx.fail(f"{c} input channels, weight {w.shape}, group={groups}")
    outs = []
    for g in range(groups):
        part = win[:, g * cg : (g + 1) * cg]
        # (N, cg, *out, *k) -> (N, *out, cg * prod(k))
        perm = (0,) + tuple(range(2, 2 + spatial)) + (1,) + tuple(range(2 + spatial, 2 + 2 * spatial))
        cols = np.ascontiguousarray(part.transpose(perm)).reshape(n, *out_sp, -1)
        wg = w.num[g * mg : (g + 1) * mg].reshape(mg, -1).T
        outs.append(exact_matmul(cols, wg))
    y = np.concatenate(outs, axis=-1) if groups > 1 else outs[0]
    y = np.moveaxis(y, -1, 1)
    out = Exact(y, x.scale * w.scale).normalized()
    if b is not None:
        out = out + b.with_num(b.num.reshape((1, -1) + (1,) * spatial))
    return [out]


@register_op("BatchNormalization")
def _batchnorm(ins, ctx):
    """Affine form computed in float32 as FINN's BatchNormToAffine does: A = gamma / sqrt(var + eps),
    B = beta - mean * A; then y = A * x + B exactly. (The square root has no exact rational form;
    these float32 constants are the ones the lowered graph carries.)"""
    x = ins[0]
    consts = [ctx.const(i) for i in range(1, 5)]
    if any(c is None for c in consts):
        raise ctx.fail("scale, bias, mean and var must be constant initializers")
    gamma, beta, mean, var = (np.asarray(c, dtype=np.float32) for c in consts)
    eps = np.float32(ctx.attr("epsilon", 1e-5))
    a = (gamma / np.sqrt(var + eps)).astype(np.float32)
    b = (beta - mean * a).astype(np.float32)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    ea, eb = Exact.from_array(a.reshape(shape)), Exact.from_array(b.reshape(shape))
    if ctx.abs_mode:  # bound the unfused form (x - mean) / sqrt(var + eps) * gamma + beta as well
        ea = _abs(ea)
        eb = Exact.from_array((np.abs(beta) + np.abs(mean * a)).astype(np.float64).reshape(shape))
    return [x * ea + eb]


# --------------------------------------------------------------------------- pooling
def _pool_geometry(ctx: Context, x: Exact):
    spatial = x.ndim - 2
    kernel = list(ctx.attr("kernel_shape"))
    strides = list(ctx.attr("strides", [1] * spatial))
    dilations = list(ctx.attr("dilations", [1] * spatial))
    if ctx.attr("ceil_mode", 0):
        raise ctx.fail("ceil_mode=1")
    pads = _pads(ctx, spatial, x.shape[2:], kernel, strides, dilations)
    return spatial, kernel, strides, dilations, pads


@register_op("MaxPool")
def _maxpool(ins, ctx):
    x = ins[0]
    spatial, kernel, strides, dilations, pads = _pool_geometry(ctx, x)
    low = int(x.num.min()) - 1 if x.num.size else 0
    win = _windows(x.num, kernel, strides, dilations, pads, fill=low)
    return [x.with_num(win.max(axis=tuple(range(-spatial, 0))))]


@register_op("AveragePool")
def _avgpool(ins, ctx):
    x = ins[0]
    spatial, kernel, strides, dilations, pads = _pool_geometry(ctx, x)
    win = Exact(_windows(x.num, kernel, strides, dilations, pads), x.scale)
    total = win.sum(axis=tuple(range(-spatial, 0)))
    if not any(pads) or ctx.attr("count_include_pad", 0):
        return [total.times(Fraction(1, int(np.prod(kernel))))]
    ones = Exact(_windows(np.ones((1, 1) + x.shape[2:], dtype=np.int64), kernel, strides, dilations, pads))
    counts = ones.sum(axis=tuple(range(-spatial, 0))).num  # valid cells per window
    lcm = int(np.lcm.reduce(np.unique(counts)))
    return [total * Exact.from_ints(lcm // counts, Fraction(1, lcm))]


@register_op("GlobalAveragePool")
def _gap(ins, ctx):
    x = ins[0]
    axes = tuple(range(2, x.ndim))
    n = int(np.prod([x.shape[a] for a in axes]))
    return [x.sum(axis=axes, keepdims=True).times(Fraction(1, n))]


@register_op("ReduceSum")
def _reduce_sum(ins, ctx):
    x = ins[0]
    axes = ctx.attr("axes")
    if axes is None and len(ins) > 1 and ins[1] is not None:
        axes = _ints(ins[1], ctx, "axes")
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.ndim))
    return [x.sum(axis=tuple(a % x.ndim for a in axes), keepdims=bool(ctx.attr("keepdims", 1)))]


@register_op("GlobalMaxPool")
def _gmp(ins, ctx):
    x = ins[0]
    return [x.with_num(x.num.max(axis=tuple(range(2, x.ndim)), keepdims=True))]


# --------------------------------------------------------------------------- data movement
@register_op("Reshape")
def _reshape(ins, ctx):
    x, shape = ins[0], _ints(ins[1], ctx, "shape")
    if not ctx.attr("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.with_num(x.num.reshape(shape))]


@register_op("Flatten")
def _flatten(ins, ctx):
    x = ins[0]
    axis = int(ctx.attr("axis", 1)) % max(x.ndim, 1)
    lead = int(np.prod(x.shape[:axis]))
    return [x.with_num(x.num.reshape(lead, -1))]


@register_op("Transpose")
def _transpose(ins, ctx):
    x = ins[0]
    perm = ctx.attr("perm", list(reversed(range(x.ndim))))
    return [x.with_num(x.num.transpose(perm))]


def _axes(ins, ctx, x_ndim_out: int) -> list[int]:
    axes = ctx.attr("axes")
    if axes is None and len(ins) > 1 and ins[1] is not None:
        axes = _ints(ins[1], ctx, "axes")
    return [a % x_ndim_out for a in axes] if axes is not None else None


@register_op("Squeeze")
def _squeeze(ins, ctx):
    x = ins[0]
    axes = _axes(ins, ctx, x.ndim)
    return [x.with_num(np.squeeze(x.num, axis=tuple(axes) if axes is not None else None))]


@register_op("Unsqueeze")
def _unsqueeze(ins, ctx):
    x = ins[0]
    axes = ctx.attr("axes")
    if axes is None:
        axes = _ints(ins[1], ctx, "axes")
    rank = x.ndim + len(axes)
    num = x.num
    for a in sorted(a % rank for a in axes):
        num = np.expand_dims(num, a)
    return [x.with_num(num)]


@register_op("Concat")
def _concat(ins, ctx):
    return [concat([p for p in ins if p is not None], int(ctx.attr("axis")))]


def concat(parts: list[Exact], axis: int) -> Exact:
    """Exact concatenation (parts brought to a common scale)."""
    g = fraction_gcd([p.scale for p in parts])
    nums = [p.times(1 / g).as_integers() for p in parts]
    if any(n.dtype == object for n in nums):
        nums = [n.astype(object) for n in nums]
    return Exact.from_ints(np.concatenate(nums, axis=axis), g)


@register_op("Im2Col")
def _im2col(ins, ctx):
    """qonnx's Im2Col (NHWC in, (N, OH, OW, KH*KW*C) out, patch order kh, kw, c), exactly."""
    x = ins[0]
    kernel = list(ctx.attr("kernel_size"))
    strides = list(ctx.attr("stride", [1, 1]))
    dilations = list(ctx.attr("dilations", [1, 1]))
    pads = list(ctx.attr("pad_amount", [0, 0, 0, 0]))  # top, left, bottom, right
    pad_value = int(ctx.attr("pad_value", 0))
    if pad_value != 0:
        raise ctx.fail(f"pad_value {pad_value}")
    nchw = x.num.transpose(0, 3, 1, 2)
    win = _windows(nchw, kernel, strides, dilations, [pads[0], pads[1], pads[2], pads[3]])  # (N, C, OH, OW, KH, KW)
    n, c, oh, ow = win.shape[:4]
    cols = win.transpose(0, 2, 3, 4, 5, 1).reshape(n, oh, ow, -1)
    return [x.with_num(np.ascontiguousarray(cols))]


@register_op("MaxPoolNHWC")
def _maxpool_nhwc(ins, ctx):
    x = ins[0]
    nchw = x.with_num(x.num.transpose(0, 3, 1, 2))
    (y,) = _maxpool([nchw], ctx)
    return [y.with_num(y.num.transpose(0, 2, 3, 1))]


@register_op("XnorPopcountMatMul")
def _xnor_popcount(ins, ctx):
    """Binary (0/1) operands: popcount of XNOR = (bipolar dot + K) / 2."""
    a, b = ins
    try:
        ai, bi = a.as_integers(), b.as_integers()
    except ExactError as err:
        raise ctx.fail(str(err)) from None
    if ctx.abs_mode:
        return [Exact.from_ints(exact_matmul(np.ones_like(ai), np.ones_like(bi)))]
    k = ai.shape[-1]
    dot = exact_matmul(2 * ai - 1, 2 * bi - 1)
    return [Exact.from_ints((dot + k) // 2)]
