"""`LowerIntegerActivations`: integer activation ``Quant`` nodes -> tie-exact MultiThreshold + Mul.

Upstream problem: FINN+ 1.6.1's ``ConvertQONNXtoFINN`` (``QuantActBaseHandler``) puts the thresholds of
an integer activation at the half steps ``(k + 0.5) * s`` and compares ``x >= T``, so ties round up,
while QONNX's and Brevitas' ``Quant`` (``rounding_mode="ROUND"``) round half to even; it also ignores
every other rounding mode and refuses zero points. This pass lowers those quantizers itself, before
FINN's conversion, with thresholds found under the exact quantizer (`finn_transforms.thresholds`).
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from brevitas_minifloat.qonnx_contract.int_quant import ROUNDING_MODES, int_quant_code, int_quant_range
from finn_transforms.thresholds import int_quant_thresholds
from finn_transforms.transformation._common import (
    DEFAULT_MAX_THRESHOLDS,
    LoweringError,
    absorbable_relu,
    activation_channel_axis,
    checked_scale,
    label,
    make_multithreshold,
    replace_quantizer,
    threshold_layout,
)

__all__ = ["LowerIntegerActivations"]


def _attr(node: NodeProto, name: str, default):
    attr = get_by_name(node.attribute, name)
    value = default if attr is None else helper.get_attribute_value(attr)
    return value.decode() if isinstance(value, bytes) else value


def _datatype(lo: int, hi: int) -> DataType:
    """The narrowest FINN integer datatype holding ``[lo, hi]``."""
    if lo >= 0:
        return DataType[f"UINT{max(1, hi.bit_length())}"]
    bits = max((-lo - 1).bit_length(), hi.bit_length()) + 1
    return DataType[f"INT{bits}"]


class LowerIntegerActivations(Transformation):
    """Lower integer activation quantizers to thresholds, rounding exactly as the ``Quant`` node does.

    Matched: ``Quant(X, scale, zeropt, bitwidth)`` with ``X`` dynamic (not an initializer), as FINN's
    activation handlers match it. Replaced by ``MultiThreshold(X, T) [-> Add(-z)] [-> Mul(scale)]``:
    the MultiThreshold outputs ``code - z`` (``out_bias = lo - z`` for a per-tensor zero point; a
    per-channel one becomes the ``Add``), ``out_dtype`` the narrowest integer type of that range,
    ``data_layout`` from the parameters' channel axis (as in `LowerMinifloatActivations`), and ``T``
    row ``c`` from `finn_transforms.thresholds.int_quant_thresholds`: the smallest float32 ``x`` with
    ``clip(R(fl(fl(x / s_c) + z_c)), lo, hi) >= lo + j + 1``, for every rounding mode qonnx defines
    (ROUND = HALF_EVEN, HALF_UP, HALF_DOWN, FLOOR, CEIL, UP, DOWN), signed / unsigned / narrow, per
    tensor or per channel. So the MultiThreshold equals the quantizer on every float32 input, ties
    included, and ``fl32((code - z) * s)`` is exactly the ``Quant``'s value. The ``Mul`` is left out
    when every scale is 1 (as FINN does).

    ``Relu -> Quant`` where the Relu feeds only the quantizer and the code of 0 is the same in every
    channel: the Relu is absorbed exactly (negative inputs give the code of 0 either way): only the
    thresholds above zero are kept and ``out_bias`` is the code of 0 minus ``z``.

    Left to FINN's conversion, as before this pass: 1-bit signed ``Quant`` and ``BipolarQuant``
    (``x >= 0``: no ties to get wrong), quantizers after a ``Selu`` (FINN folds the Selu into the
    thresholds through ``log``; not a tie-exact lowering, and not one of ours), and quantizers needing
    more than ``max_thresholds`` thresholds per channel (``2^bits - 1``; FINN itself converts only up
    to ``max_multithreshold_bit_width``, 8 bits by default, and leaves wider ones unconverted).

    Refused with `LoweringError` naming the node: non-constant scale / zero point / bit width,
    non-positive or non-finite scales, non-integer zero points or bit widths, rounding modes qonnx does
    not define, parameters varying along several axes or along an axis MultiThreshold cannot address,
    inputs of rank < 2, and thresholds beyond float32's range.
    """

    def __init__(self, max_thresholds: int = DEFAULT_MAX_THRESHOLDS):
        super().__init__()
        if int(max_thresholds) < 1:
            raise ValueError(f"max_thresholds must be positive, got {max_thresholds}")
        self.max_thresholds = int(max_thresholds)

    def apply(self, model: ModelWrapper):
        for node in list(model.graph.node):
            if self._takes(model, node):
                self._lower(model, node)
                return model, True
        return model, False

    def _takes(self, model: ModelWrapper, node: NodeProto) -> bool:
        if node.op_type != "Quant" or len(node.input) < 4 or model.get_initializer(node.input[0]) is not None:
            return False
        producer = model.find_producer(node.input[0])
        if producer is not None and producer.op_type == "Selu":
            return False
        bits = self._const(model, node, 3, "bit width")
        if bits.size != 1 or not np.isfinite(bits).all() or float(bits) != int(bits) or int(bits) < 1:
            raise LoweringError(f"cannot lower {label(node)}: the bit width must be a positive integer, got {bits}")
        signed = bool(_attr(node, "signed", 1))
        if int(bits) == 1 and signed:
            return False
        lo, hi = int_quant_range(int(bits), signed, bool(_attr(node, "narrow", 0)))
        return hi - lo <= self.max_thresholds

    @staticmethod
    def _const(model: ModelWrapper, node: NodeProto, i: int, what: str) -> np.ndarray:
        value = model.get_initializer(node.input[i])
        if value is None:
            raise LoweringError(f"cannot lower {label(node)}: its {what} {node.input[i]!r} is not a constant initializer")
        return np.asarray(value, dtype=np.float32)

    def _lower(self, model: ModelWrapper, node: NodeProto) -> None:
        scale = checked_scale(self._const(model, node, 1, "scale"), node)
        zero = self._const(model, node, 2, "zero point")
        if not np.all(np.isfinite(zero)) or np.any(zero != np.round(zero)):
            raise LoweringError(f"cannot lower {label(node)}: non-integer zero points are not supported")
        mode = str(_attr(node, "rounding_mode", "ROUND")).upper()
        if mode not in ROUNDING_MODES:
            raise LoweringError(f"cannot lower {label(node)}: rounding mode {mode!r} is not one qonnx defines")
        bits, signed = int(self._const(model, node, 3, "bit width")), bool(_attr(node, "signed", 1))
        lo, hi = int_quant_range(bits, signed, bool(_attr(node, "narrow", 0)))
        x = node.input[0]
        shape = model.get_tensor_shape(x)
        rank = len(shape) if shape is not None else None
        if rank is not None and rank < 2:
            raise LoweringError(f"cannot lower {label(node)}: MultiThreshold needs an input of rank >= 2, got {rank}")
        try:
            params_shape = np.broadcast_shapes(scale.shape, zero.shape)
        except ValueError:
            raise LoweringError(f"cannot lower {label(node)}: scale {scale.shape} and zero point {zero.shape} do not broadcast") from None
        axis = activation_channel_axis(node, params_shape, rank)
        s, z = (np.broadcast_to(p, params_shape).reshape(-1) for p in (scale, zero))
        try:
            thresholds = int_quant_thresholds(lo, hi, s, z, mode)
        except ValueError as err:
            raise LoweringError(f"cannot lower {label(node)}: {err}") from err

        first = np.full(s.shape, lo)  # the lowest code each channel can output
        relu = absorbable_relu(model, x)
        if relu is not None:
            at_zero = int_quant_code(np.float32(0), s, z, lo, hi, mode).astype(np.int64)
            if np.all(at_zero == at_zero[0]):  # the same number of thresholds <= 0 in every row
                thresholds, first = thresholds[:, int(at_zero[0]) - lo :], at_zero
                x = relu.input[0]
                model.graph.node.remove(relu)
        zi = z.astype(np.int64)
        uniform_zero = bool(np.all(zi == zi[0]))
        out_dtype = _datatype(int((first - zi).min()), int(hi - zi.min()))
        mt_dtype = out_dtype if uniform_zero else _datatype(int(first.min()), hi)
        base = node.name or node.output[0]
        out_bias = int(first[0] - zi[0]) if uniform_zero else int(first[0])
        layout = threshold_layout(model, x, axis, rank)
        mt, k_name = make_multithreshold(model, x, thresholds, out_bias, mt_dtype, layout, shape, f"{base}_thresholds")
        new_nodes = [mt]
        tail = [] if uniform_zero else [("Add", -z, "zero_point", out_dtype)]
        if not np.all(s == 1):
            tail.append(("Mul", s, "scale", None))
        for i, (op, const, suffix, dtype) in enumerate(tail):
            c_name = model.make_new_valueinfo_name()
            model.set_initializer(c_name, self._shaped(const, params_shape, rank))
            out = node.output[0] if i == len(tail) - 1 else model.make_new_valueinfo_name()
            if out != node.output[0] and shape is not None:
                model.set_tensor_shape(out, shape)
            if dtype is not None:
                model.set_tensor_datatype(out, dtype)
            new_nodes.append(helper.make_node(op, [k_name, c_name], [out], name=f"{base}_{suffix}"))
            k_name = out
        if not tail:
            mt.output[0] = node.output[0]
            model.set_tensor_datatype(node.output[0], mt_dtype)
        replace_quantizer(model, node, new_nodes)

    @staticmethod
    def _shaped(const: np.ndarray, params_shape: tuple[int, ...], rank: int | None) -> np.ndarray:
        """A per-tensor constant as a scalar, a per-channel one in the parameters' broadcast shape."""
        const = np.asarray(const, dtype=np.float32)
        if const.size == 1 and (rank is None or len(params_shape) <= rank):
            return np.asarray(const.reshape(-1)[0], dtype=np.float32)
        return const.reshape(params_shape)
