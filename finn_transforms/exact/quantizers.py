"""Exact quantizer ops: ``Quant``, ``BipolarQuant``, ``FloatQuant``, ``MinifloatQuant``, ``MultiThreshold``.

Each quantizer is its float32 code function ``f(x)`` as QONNX (and Brevitas, in torch) computes it:

- ``Quant``: ``clip(round(fl(fl(x / s) + z)), lo, hi)``, value ``(code - z) * s``;
- ``BipolarQuant``: ``+1 if x >= 0 else -1``, value ``code * s``;
- ``FloatQuant`` / ``MinifloatQuant``: ``Q(fl(x / s)) / delta`` (``Q`` the format's round-half-to-even
  with saturation), value ``code * s * delta``.

Elements are grouped by their (scale, zero point); per group the float32 boundaries between
consecutive codes come from `float32_boundaries`, and the exact input is counted against them
(`count_reached`). ``MultiThreshold`` carries its boundaries as thresholds.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np
import torch

from brevitas_minifloat.qonnx_contract.int_quant import ROUNDING_MODES, int_quant_code, int_quant_range
from finn_transforms.exact.reference import Context, register_op
from finn_transforms.exact.tensor import Exact, ExactError, fraction_gcd
from finn_transforms.exact.thresholding import count_reached, float32_boundaries, group_index, threshold_container
from finn_transforms.wide_thresholds import exact_thresholds


def _params(ins: list, ctx: Context, indices: tuple[int, ...]) -> list[np.ndarray]:
    out = []
    for i in indices:
        value = ctx.const(i)
        if value is None:
            raise ctx.fail(f"input {i} ({ctx.node.input[i]!r}) must be a constant initializer")
        out.append(np.asarray(value, dtype=np.float32))
    return out


def _quantize(
    x: Exact,
    ctx: Context,
    params: list[np.ndarray],
    codes: np.ndarray,
    code_fn: Callable[..., np.ndarray],
    value_of: Callable[..., tuple[Fraction, int]],
) -> Exact:
    """Shared body: group by parameters, find boundaries (cached), count, map codes to values.

    ``code_fn(x_f32, *group_params)`` is the float32 code function (params broadcast as ``(G, 1)``);
    ``value_of(*param_values)`` gives a group's ``(unit, offset)``: value = ``(code - offset) * unit``.
    """
    if ctx.abs_mode:
        return x  # magnitudes only (callers override quantizer outputs with exact values)
    inv, uniq = group_index(x.shape, params)
    key = ("boundaries", ctx.node.name, ctx.node.output[0], tuple(u.tobytes() for u in uniq))
    if key not in ctx.cache:
        targets = np.broadcast_to(codes[1:], (len(uniq[0]), len(codes) - 1))
        cols = [u[:, None] for u in uniq]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            bounds = float32_boundaries(lambda v: code_fn(v, *cols), targets)
        ctx.cache[key] = bounds
    bounds = ctx.cache[key]
    if ctx.observer is not None:
        ctx.observer(ctx.node, x, bounds, inv, codes)
    idx = count_reached(x, bounds, inv)
    code = codes[idx]
    groups = [value_of(*[float(u[g]) for u in uniq]) for g in range(len(uniq[0]))]
    unit = fraction_gcd([u for u, _ in groups])
    mult = np.array([int(u / unit) for u, _ in groups], dtype=object)
    offset = np.array([o for _, o in groups], dtype=np.int64)
    num = (code - offset[inv]).astype(object) * mult[inv] if mult.max() > 1 else code - offset[inv]
    return Exact.from_ints(num, unit)


@register_op("Quant")
def _quant(ins, ctx):
    s, z, bits = _params(ins, ctx, (1, 2, 3))
    if bits.size != 1 or float(bits) != int(bits) or int(bits) < 1:
        raise ctx.fail(f"bit width must be a constant positive integer, got {bits}")
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ctx.fail("the scale must be finite and positive")
    if np.any(z != np.round(z)):
        raise ctx.fail("non-integer zero points are not supported")
    bits = int(bits)
    signed, narrow = int(ctx.attr("signed", 1)), int(ctx.attr("narrow", 0))
    mode = str(ctx.attr("rounding_mode", "ROUND")).upper()
    if mode not in ROUNDING_MODES:
        raise ctx.fail(f"rounding mode {mode!r}")
    if bits == 1 and signed:
        codes = np.array([-1, 1])

        def code_fn(v, sv, zv):
            return np.where(v / sv + zv >= 0, 1, -1)

    else:
        lo, hi = int_quant_range(bits, bool(signed), bool(narrow))
        codes = np.arange(lo, hi + 1)

        def code_fn(v, sv, zv):
            return int_quant_code(v, sv, zv, lo, hi, mode)

    return [_quantize(ins[0], ctx, [s, z], codes, code_fn, lambda sv, zv: (Fraction(sv), int(zv)))]


@register_op("BipolarQuant", "BinaryQuant")
def _bipolar(ins, ctx):
    (s,) = _params(ins, ctx, (1,))
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ctx.fail("the scale must be finite and positive")
    codes = np.array([-1, 1])
    return [_quantize(ins[0], ctx, [s], codes, lambda v, sv: np.where(v >= 0, 1, -1), lambda sv: (Fraction(sv), 0))]


@register_op("FloatQuant", "MinifloatQuant")
def _float_quant(ins, ctx):
    from brevitas_minifloat.qonnx_contract import UnsupportedQuantNodeError, minifloat_format_of

    try:
        fmt = minifloat_format_of(ctx.model, ctx.node)
    except (UnsupportedQuantNodeError, ValueError) as err:
        raise ctx.fail(str(err)) from None
    (s,) = _params(ins, ctx, (1,))
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ctx.fail("the scale must be finite and positive")
    codes = np.asarray(fmt.integer_values(), dtype=np.int64)
    delta = Fraction(fmt.delta)

    def code_fn(v, sv):
        scaled = np.ascontiguousarray(np.broadcast_to(v / sv, v.shape).astype(np.float32))
        q = fmt.quantize(torch.from_numpy(scaled)).numpy().astype(np.float64)
        return np.rint(q / float(delta)).astype(np.int64)

    return [_quantize(ins[0], ctx, [s], codes, code_fn, lambda sv: (Fraction(sv) * delta, 0))]


_RANK_LAYOUT = {2: "NC", 3: "NWC", 4: "NCHW"}


@register_op("MultiThreshold")
def _multithreshold(ins, ctx):
    x = ins[0]
    thresholds = ctx.const(1)
    if thresholds is None:
        raise ctx.fail("thresholds must be a constant initializer")
    thresholds = exact_thresholds(thresholds, ctx.const(2))  # input 2: a residual (exact beyond 2^53)
    thresholds = np.sort(threshold_container(thresholds).reshape(thresholds.shape[0], -1), axis=1)
    if thresholds.dtype != object and np.any(np.isnan(thresholds)):
        raise ctx.fail("NaN thresholds")
    layout = ctx.attr("data_layout", "") or _RANK_LAYOUT.get(x.ndim)
    cdim = layout.index("C") if layout and "C" in layout else 1
    groups = None
    if thresholds.shape[0] > 1:
        if x.ndim < 2 or x.shape[cdim] != thresholds.shape[0]:
            raise ctx.fail(f"{thresholds.shape[0]} threshold rows for input {x.shape} (channel axis {cdim})")
        shape = [1] * x.ndim
        shape[cdim] = -1
        groups = np.broadcast_to(np.arange(thresholds.shape[0]).reshape(shape), x.shape)
    if ctx.abs_mode:
        return [x]
    if ctx.observer is not None:
        ctx.observer(ctx.node, x, thresholds, groups, np.arange(thresholds.shape[1] + 1))
    count = count_reached(x, thresholds, groups)
    out_scale = Fraction(float(ctx.attr("out_scale", 1.0)))
    out_bias = Fraction(float(ctx.attr("out_bias", 0.0)))
    return [Exact.from_ints(count).times(out_scale) + Exact.from_array(np.array(float(out_bias)))]


__all__ = ["ExactError"]
