"""Ordinal activations: a minifloat quantizer as a MultiThreshold over its *distinct* thresholds.

The integer embedding (`finn_transforms.thresholds`) repeats the threshold between two grid values
``k_{i+1} - k_i`` times so that a MultiThreshold outputs the embedded integer ``k``: E4M3 needs
491,520 thresholds per channel. The ordinal form keeps each distinct threshold once, so the
MultiThreshold outputs the value's *ordinal*, its index in ``fmt.values()`` (E4M3: 254 thresholds,
an 8-bit output, like INT8). The thresholds are the embedding's own (`pair_thresholds`), so ties,
saturation, flush-to-zero and unsigned clamping are exact by the same construction.

`OrdinalDecode` (QONNX op of the ``finn_transforms.custom_op`` domain, numpy execution) maps an
ordinal back to the embedded integer ``k = value / delta``; the lowering follows it with the same
``Mul(scale * delta)`` as the embedding, so a lowered graph still runs under ``execute_onnx`` and
scales never pass through the (non-linear) decode. A native minifloat MVAU consumes the ordinals
directly (`finn_transforms.native.spec`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.base import CustomOp

from brevitas_minifloat.formats import MinifloatFormat, as_format
from finn_transforms.native.spec import ordinal_bits, ordinal_embedded
from finn_transforms.thresholds import pair_thresholds

__all__ = ["OrdinalDecode", "decode_ordinals", "nonnegative_part", "ordinal_datatype", "ordinal_thresholds"]


def ordinal_thresholds(fmt: MinifloatFormat | str, scale) -> np.ndarray:
    """Distinct thresholds ``(C, len(fmt.values()) - 1)`` float32: with ``out_bias = 0`` a
    MultiThreshold over them outputs the ordinal of ``fmt.quantize(fl(x / s_c))`` for every float32
    ``x`` of channel ``c`` (NaN excepted)."""
    return pair_thresholds(fmt, scale)[0]


def ordinal_datatype(fmt: MinifloatFormat) -> DataType:
    """FINN datatype of an ordinal stream: ``UINT<ordinal_bits>`` (UINT8 for E4M3)."""
    return DataType[f"UINT{ordinal_bits(fmt)}"]


def nonnegative_part(fmt: MinifloatFormat) -> MinifloatFormat | None:
    """The format whose values are exactly ``fmt``'s non-negative values (``fmt`` itself when
    unsigned), or None when no format has them (e.g. fnuz: no unsigned fnuz). A quantizer that
    absorbs a preceding Relu outputs only these."""
    if not fmt.signed:
        return fmt
    try:
        unsigned = dataclasses.replace(fmt, signed=False)
    except ValueError:
        return None
    values = fmt.values()
    return unsigned if np.array_equal(unsigned.values(), values[values >= 0]) else None


def decode_ordinals(fmt: MinifloatFormat, ordinals, where: str) -> np.ndarray:
    """``value / delta`` (float32, exact: a minifloat value times a power of two) of integer ordinals
    of ``fmt``; ``ValueError`` naming ``where`` for anything else."""
    table = np.asarray(ordinal_embedded(fmt), dtype=np.float32)
    o = np.asarray(ordinals)
    idx = o.astype(np.int64)
    if o.size and (not np.array_equal(idx, o) or idx.min() < 0 or idx.max() >= len(table)):
        raise ValueError(
            f"{where}: OrdinalDecode({fmt.name}) takes integer ordinals in [0, {len(table) - 1}], got values in "
            f"[{o.min()}, {o.max()}]"
        )
    return table[idx]


class OrdinalDecode(CustomOp):
    """``OrdinalDecode(ordinal[, scale]) -> value / delta [* scale]`` of the minifloat format named
    by ``format``.

    Input: ordinals (float32 container, integers in ``[0, len(values()) - 1]``). Output: the embedded
    integers (float32: each is a minifloat value times a power of two, so float32 holds it exactly),
    FINN datatype ``fmt.integer_datatype``. With the optional constant ``scale`` (the output scale a
    host-side decode absorbs, `AbsorbMulIntoOrdinalDecode`) the output is ``fl32(k * scale)``, the
    float32 product the absorbed ``Mul`` computed. Ordinals outside the range raise ``ValueError``.
    """

    #: The op's ONNX domain: `finn_transforms.custom_op` lists this class, so qonnx finds it.
    DOMAIN = "finn_transforms.custom_op"

    def get_nodeattr_types(self):
        return {"format": ("s", True, "")}

    @property
    def minifloat_format(self) -> MinifloatFormat:
        return as_format(self.get_nodeattr("format"))

    def make_shape_compatible_op(self, model):
        node = self.onnx_node
        return helper.make_node("Identity", [node.input[0]], [node.output[0]])

    def infer_node_datatype(self, model):
        scaled = len(self.onnx_node.input) > 1
        dt = DataType["FLOAT32"] if scaled else DataType[self.minifloat_format.integer_datatype]
        model.set_tensor_datatype(self.onnx_node.output[0], dt)

    def execute_node(self, context, graph):
        node = self.onnx_node
        k = decode_ordinals(self.minifloat_format, context[node.input[0]], node.name)
        if len(node.input) > 1:
            k = (k * np.asarray(context[node.input[1]], dtype=np.float32)).astype(np.float32)
        context[node.output[0]] = k

    def verify_node(self):
        try:
            fmt = self.minifloat_format
        except ValueError as err:
            return [f"{self.onnx_node.name}: invalid minifloat format: {err}"]
        return [f"{self.onnx_node.name}: OrdinalDecode {fmt.name}"]
