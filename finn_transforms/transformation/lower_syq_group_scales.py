"""`LowerSyqGroupScales`: SYQ codebook weights whose scales vary along the reduction axis
(per kernel row / per kernel pixel) -> small integer weights + one Mul.

A SYQ weight (`brevitas_minifloat.quant.syq`) is exported as ``Quant(Q, a, 0, 2, signed, narrow)``
(ternary) or ``BipolarQuant(Q, a)`` (binary) with one scale ``a_g`` per group. Per-layer and
per-output-channel scales factor out of the dot product and FINN's own ``ConvertQONNXtoFINN``
folds them (INT2 / BIPOLAR weights + a Mul that streamlining absorbs), so this pass leaves them
alone. Per-row and per-pixel scales lie along the reduction axis: ``sum_i x_i c_i a_g(i)`` has no
common factor, and FINN refuses them (``Can't fold scale beyond per-out-channel granularity``).

They are still exact in integer hardware when the scales share a fixed-point grid,
``a_g = s * k_g`` with integers ``k_g``: then ``sum_i x_i c_i a_g(i) = s * sum_i x_i (c_i k_g(i))``,
an integer dot product with the weights ``c * k_g`` followed by one ``Mul(s)``. The grid is
detected from the float32 scale values alone: every float32 is ``m * 2^e`` with an integer ``m``,
so the scales are integer multiples of ``2^min(e)``; dividing out the greatest common divisor of
those integers gives the coarsest exact grid ``s = gcd * 2^min(e)`` (a power of two for SYQ's
``scale_bits`` quantizer, any float for e.g. scales ``3 * 2^-8 * k_g``) and the smallest integers
``k_g``. This is exact in real arithmetic, no tolerance. The grid is accepted when the integer
weights fit ``INTn`` with ``n <= max_weight_bits``; learned float scales (``scale_bits=None``)
only share the float32 grid with ~24-bit integers and are refused with a `LoweringError` that
names the node, says why, and how to retrain (``syq_weight_quant(..., scale_bits=n)``).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import NodeProto
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from brevitas_minifloat.qonnx_contract.syq_nodes import syq_codebook
from finn_transforms.transformation._common import (
    DEFAULT_MAX_WEIGHT_BITS,
    LoweringError,
    label,
    remove_if_orphaned,
    scale_output,
)
from finn_transforms.transformation.lower_minifloat_weights import weight_datatype

__all__ = ["LowerSyqGroupScales", "SyqGrid", "fixed_point_grid", "syq_group_name"]

# consumer op type -> axis of its weight input holding the output channels
_OUT_AXIS = {"Conv": 0, "MatMul": -1}
_FLOAT32_MANTISSA = 24


class SyqGrid:
    """``scales == unit * k`` exactly (real arithmetic), ``k`` positive integers (int64 array)."""

    def __init__(self, unit: float, k: np.ndarray):
        self.unit = unit
        self.k = k

    @property
    def k_max(self) -> int:
        return int(self.k.max(initial=0))

    def describe_unit(self) -> str:
        """``2^e`` for a power of two, else ``m * 2^e`` with odd ``m``."""
        m, e = float(self.unit).as_integer_ratio()
        exp = -(e.bit_length() - 1)  # the denominator is a power of two
        while m % 2 == 0 and m > 1:
            m //= 2
            exp += 1
        return f"2^{exp}" if m == 1 else f"{m} * 2^{exp}"


def fixed_point_grid(scales: np.ndarray, max_bits: int = 62) -> SyqGrid | None:
    """The coarsest grid ``unit`` with ``scales == unit * k`` exactly, integers ``k >= 1``.

    ``scales``: positive finite float32 values. Returns ``None`` when no such grid has all ``k``
    below ``2^max_bits`` (scales spanning more than ``max_bits`` binades, or long mantissas).
    ``unit`` is a float32-representable Python float.
    """
    a = np.asarray(scales, dtype=np.float32).astype(np.float64)
    if a.size == 0 or not np.all(np.isfinite(a)) or not np.all(a > 0):
        raise ValueError("scales must be positive and finite")
    frac, exp = np.frexp(a)  # a = frac * 2^exp, 0.5 <= frac < 1; frac has <= 24 significant bits
    mant = (frac * 2.0**_FLOAT32_MANTISSA).astype(np.int64)  # exact: a = mant * 2^(exp - 24)
    exp = exp.astype(np.int64) - _FLOAT32_MANTISSA
    e_min = int(exp.min())
    if int(exp.max()) - e_min + _FLOAT32_MANTISSA > max_bits + 8:
        return None  # the integers would be astronomically wide anyway
    ints = [int(m) << int(e - e_min) for m, e in zip(mant.ravel().tolist(), exp.ravel().tolist())]
    g = 0
    for v in ints:
        g = math.gcd(g, v)
    k = [v // g for v in ints]
    if max(k) >= 2**max_bits:
        return None
    unit = math.ldexp(g, e_min)  # g <= min(ints) <= 2^24 * 2^(e - e_min) of the smallest element: float32-exact
    if float(np.float32(unit)) != unit:  # pragma: no cover - only at the subnormal edge
        return None
    return SyqGrid(unit, np.asarray(k, dtype=np.int64).reshape(a.shape))


def syq_group_name(group_axes: tuple[int, ...], ndim: int, out_axis: int) -> str:
    """``layer`` / ``channel`` / ``row`` / ``pixel`` for PyTorch-layout conv weights, else the axes."""
    axes = tuple(sorted(group_axes))
    if not axes:
        return "layer"
    if axes == (out_axis,):
        return "channel"
    if ndim == 4 and axes == (2,):
        return "row"
    if (ndim == 4 and axes == (2, 3)) or (ndim == 3 and axes == (2,)):
        return "pixel"
    return f"axes {axes}"


class LowerSyqGroupScales(Transformation):
    """Lower SYQ ``Quant``/``BipolarQuant`` weights with per-row / per-pixel scales to integers.

    Matched: ``Conv(X, W'[, B])`` or ``MatMul(X, W')`` whose weight ``W'`` is produced directly by a
    ``Quant`` (2-bit signed narrow, zero point 0) or ``BipolarQuant`` node of a constant weight and a
    constant scale (what `brevitas_minifloat.export.syq_handlers` writes; read with
    `syq_codebook`), where the scale varies along a reduction axis of the consumer (any weight
    axis other than the output-channel axis). Scales per layer or per output channel are not
    matched: FINN's ``ConvertQONNXtoFINN`` lowers those itself.

    Replaced by: ``Conv/MatMul(X, c * k) -> Mul(s) [-> Add(B)]`` with codes ``c`` (the quantizer's
    own output divided by its scale, checked to be exactly -1/0/+1) and the grid ``a = s * k`` of
    `fixed_point_grid`. The integer weight is a float32 initializer annotated with the smallest
    FINN ``INTn`` holding it (``INT(b+1)`` for ``k < 2^b``; ``BIPOLAR`` for binary codes when all
    ``k == 1``). ``s * sum(x * c * k)`` equals ``sum(x * c * a)`` in real arithmetic, so FINN's
    integer accumulation reproduces the quantized layer exactly. A Conv bias moves to an Add after
    the Mul.

    Refused with `LoweringError` (message names the node, says why, and how to retrain): scales
    that share no fixed-point grid with integer weights of at most ``max_weight_bits`` bits (e.g.
    learned float scales, ``scale_bits=None``). Quantizers with a non-constant weight or scale are
    not SYQ codebooks (`syq_codebook` returns None) and are left alone.
    """

    def __init__(self, max_weight_bits: int = DEFAULT_MAX_WEIGHT_BITS):
        super().__init__()
        if not 2 <= int(max_weight_bits) <= 24:
            raise ValueError(
                f"max_weight_bits must be in 2..24 (float32 holds integers exactly up to 2^24), got {max_weight_bits}"
            )
        self.max_weight_bits = int(max_weight_bits)

    def apply(self, model: ModelWrapper):
        for node in list(model.graph.node):
            if node.op_type not in _OUT_AXIS or len(node.input) < 2:
                continue
            quant = model.find_producer(node.input[1])
            if quant is None or quant.op_type not in ("Quant", "BipolarQuant"):
                continue
            book = syq_codebook(model, quant)
            if book is None:
                continue
            ndim = book.codes.ndim
            out_axis = _OUT_AXIS[node.op_type] % ndim
            if not set(book.group_axes) - {out_axis}:
                continue  # per layer / per output channel: FINN folds it
            self._lower(model, node, quant, book, out_axis)
            return model, True
        return model, False

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _quantized_weight(model: ModelWrapper, quant: NodeProto) -> np.ndarray:
        """Execute the weight quantizer itself (its rounding mode etc. decide, not our reading)."""
        ctx = {name: np.asarray(model.get_initializer(name)) for name in quant.input if name}
        ctx[quant.output[0]] = None
        getCustomOp(quant).execute_node(ctx, model.graph)
        return np.asarray(ctx[quant.output[0]], dtype=np.float32)

    def _refuse(self, quant, node, book, why: str, out_axis: int) -> LoweringError:
        groups = syq_group_name(book.group_axes, book.codes.ndim, out_axis)
        bits = max(2, self.max_weight_bits - 1)
        return LoweringError(
            f"cannot lower {label(quant)} feeding {label(node)}: its SYQ {book.levels} scales per {groups} "
            f"({book.scale.size} scales) vary along the reduction axis of the {node.op_type}, so they do not factor "
            f"out of the dot product, and {why}. Integer hardware computes such a layer exactly only when "
            "a_g = s * k_g with one scale unit s and small integers k_g. Retrain (or fine-tune) it with fixed-point "
            f"scales, syq_weight_quant({book.levels!r}, {groups!r}, scale_bits=n) with n <= {bits} (e.g. n = 4: "
            "INT5 weights), or use groups='layer' / 'channel'"
        )

    def _lower(self, model: ModelWrapper, node: NodeProto, quant: NodeProto, book, out_axis: int) -> None:
        scale = book.scale
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise LoweringError(f"cannot lower {label(quant)}: its scale must be finite and positive")
        q = self._quantized_weight(model, quant)
        codes = q / np.broadcast_to(scale, q.shape)
        allowed = (-1.0, 1.0) if book.levels == "binary" else (-1.0, 0.0, 1.0)
        if q.shape != book.codes.shape or not np.all(np.isin(codes, allowed)):
            raise LoweringError(
                f"cannot lower {label(quant)}: its output divided by its scale is not exactly "
                f"{'+-1' if book.levels == 'binary' else '-1/0/+1'} (not a symmetric {book.levels} codebook)"
            )
        grid = fixed_point_grid(scale)
        if grid is None:
            raise self._refuse(quant, node, book, "its scales span so many binades that no fixed-point grid holds them "
                               "with integers below 2^62", out_axis)
        k = np.broadcast_to(grid.k, codes.shape)
        weights = codes.astype(np.int64) * k
        if book.levels == "binary" and grid.k_max == 1:
            dtype = DataType["BIPOLAR"]
        else:
            dtype = weight_datatype(weights, True)
        if dtype.bitwidth() > self.max_weight_bits:
            raise self._refuse(
                quant, node, book,
                f"the exact grid of its scales (unit s = {grid.describe_unit()}, k_g up to {grid.k_max}) needs {dtype.name} "
                f"weights, wider than max_weight_bits={self.max_weight_bits}", out_axis)
        if node.op_type == "MatMul" and weights.ndim != 2:
            raise LoweringError(f"cannot lower {label(quant)}: MatMul weights must be 2-D [in, out], got {weights.shape}")

        kname = model.make_new_valueinfo_name()
        model.set_initializer(kname, weights.astype(np.float32))
        model.set_tensor_datatype(kname, dtype)
        node.input[1] = kname

        scale_output(model, node, np.asarray(grid.unit, dtype=np.float32), "syq_scale_unit", label(quant),
                     weights.ndim)
        remove_if_orphaned(model, quant)  # with its weight and scale initializers, unless shared
