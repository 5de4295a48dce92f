"""Reading the minifloat format off a QONNX quantizer node (``FloatQuant`` or our ``MinifloatQuant``)."""

from __future__ import annotations

import numpy as np
from onnx import NodeProto
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

import brevitas_minifloat.qonnx_contract.op  # noqa: F401  (getCustomOp must find MinifloatQuant)
from brevitas_minifloat.formats import MinifloatFormat

__all__ = ["MINIFLOAT_QUANT_OPS", "UnsupportedQuantNodeError", "is_minifloat_quant", "minifloat_format_of"]

MINIFLOAT_QUANT_OPS = ("FloatQuant", "MinifloatQuant")


class UnsupportedQuantNodeError(ValueError):
    """A quantizer node whose semantics we cannot represent exactly."""


def is_minifloat_quant(node: NodeProto | None) -> bool:
    """True for a ``FloatQuant`` or ``MinifloatQuant`` node (False for ``None``: no producer)."""
    return node is not None and node.op_type in MINIFLOAT_QUANT_OPS


def _const_int(model: ModelWrapper, node: NodeProto, idx: int, what: str) -> int:
    value = model.get_initializer(node.input[idx])
    if value is None or np.asarray(value).size != 1 or float(value) != int(value):
        raise UnsupportedQuantNodeError(f"node {node.name!r}: {what} must be a constant integer, got {value!r}")
    return int(value)


def minifloat_format_of(model: ModelWrapper, node: NodeProto) -> MinifloatFormat:
    """The exact `MinifloatFormat` a ``FloatQuant``/``MinifloatQuant`` node applies.

    ``FloatQuant`` (qonnx 1.0) always executes as a signed format with subnormals and saturates to
    its ``max_val`` input; the special-value convention is the one whose largest finite value is
    ``max_val``. Non-saturating nodes are refused: their NaN/Inf outputs have no hardware mapping.
    """
    if node.op_type == "MinifloatQuant":
        return getCustomOp(node).minifloat_format
    if node.op_type != "FloatQuant":
        raise UnsupportedQuantNodeError(f"node {node.name!r} ({node.op_type}) is not a minifloat quantizer")
    op = getCustomOp(node)
    if not op.get_nodeattr("saturation"):
        raise UnsupportedQuantNodeError(
            f"node {node.name!r}: non-saturating FloatQuant produces Inf/NaN on overflow, which has no exact "
            "integer/threshold mapping; retrain or re-export with a saturating quantizer"
        )
    if op.get_nodeattr("rounding_mode").upper() not in ("ROUND", "ROUND_TO_EVEN"):
        raise UnsupportedQuantNodeError(f"node {node.name!r}: rounding mode {op.get_nodeattr('rounding_mode')!r} is not round-half-to-even")
    e = _const_int(model, node, 2, "exponent_bitwidth")
    m = _const_int(model, node, 3, "mantissa_bitwidth")
    bias = _const_int(model, node, 4, "exponent_bias")
    max_val = model.get_initializer(node.input[5]) if len(node.input) > 5 else None
    candidates = []
    for specials in ("none", "fn", "ieee"):
        try:
            candidates.append(MinifloatFormat(e, m, bias=bias, specials=specials))
        except ValueError:
            continue
    if max_val is None:
        return candidates[0]
    for fmt in candidates:
        if fmt.max_value == float(np.asarray(max_val)):
            return fmt
    raise UnsupportedQuantNodeError(
        f"node {node.name!r}: max_val {float(np.asarray(max_val))} of E{e}M{m} bias {bias} matches no special-value "
        f"convention ({', '.join(f'{f.specials}: {f.max_value}' for f in candidates)})"
    )
