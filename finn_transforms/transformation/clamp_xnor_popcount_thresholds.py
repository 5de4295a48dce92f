"""`ClampXnorPopcountThresholds`: thresholds after FINN's XNOR-popcount layers, in the popcount's
true range [0, MW], with the popcount's true accumulator type.

FINN computes a binary x binary (+-1) dot product of length MW as an XNOR popcount ``p`` (the number
of matching bits, ``0 <= p <= MW``; the dot product is ``2p - MW``). qonnx's
``ConvertBipolarMatMulToXnorPopcount`` rewrites the following MultiThreshold into that domain,
``T' = (T + MW) / 2``, and FINN's ``InferBinaryMatrixVectorActivation`` fuses it into an MVAU with
``binaryXnorMode=1``. A sign activation that switches below the dot product's range (a large
BatchNorm shift: the channel is always +1) gets ``T' < 0``; one that switches above it (always -1)
gets ``T' > MW``.

Upstream problem (FINN+ 1.6.1, same code in Xilinx/finn ``dev``): ``MVAU.minimize_accumulator_width``
sizes the accumulator of an XNOR MVAU as if it computed ``x . (2W - 1)`` with ``x`` in {0, 1}, i.e.
the range ``[-(number of -1 weights), number of +1 weights]`` of the widest column, a signed
``INTb``, instead of the popcount's ``[0, MW]``. ``RoundAndClipThresholds`` then clips the thresholds
to ``[-2^(b-1), 2^(b-1)]``, which

- keeps negative thresholds, and ``MVAU.get_hw_compatible_threshold_tensor`` asserts
  ``thresholds >= 0`` for XNOR layers: ``step_minimize_bit_width`` dies with a bare
  ``AssertionError`` (``MVAU_hls.minimize_weight_bit_width``), and
- lowers thresholds above ``2^(b-1)`` although the popcount reaches ``MW`` (up to ``2^b``): a
  channel that should be off (or switch at 17 of 18 matching bits) turns on at ``2^(b-1)``
  matching bits, silently (MW=18: INT5 accumulator, threshold 37 clipped to 16).

This pass restores exactness: a popcount is an integer in [0, MW], so ``p >= T`` equals
``p >= clip(ceil(T), 0, MW + 1)`` for every reachable ``p`` (a threshold at or below 0 is always
passed, one above MW never). On ``MVAU*`` nodes with ``binaryXnorMode=1`` it also sets
``accDataType`` to ``UINTb``, ``b = bit length of MW`` (the popcount's range; ``outputDataType`` too
when the node has no activation), and the threshold tensor's datatype to the smallest UINT holding the
clamped thresholds, at least as wide as the accumulator (finn-hlslib compares in the threshold type).
It also clamps MultiThresholds that read an ``XnorPopcountMatMul`` directly (the streamlined graph).
Because FINN recomputes the accumulator and re-clips inside its own ``step_minimize_bit_width[_initial]``,
`finn_transforms.steps.xnor_exact_step` runs this pass around those steps and restores the thresholds
FINN clipped; ``build_estimates`` and ``minifloat_estimate_steps`` use the wrapped steps.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes

__all__ = [
    "ClampXnorPopcountThresholds",
    "clamp_popcount_thresholds",
    "popcount_datatype",
    "xnor_threshold_inputs",
]


def popcount_datatype(mw: int) -> DataType:
    """``UINTb`` holding every popcount 0..mw."""
    return DataType[f"UINT{max(int(mw).bit_length(), 1)}"]


def clamp_popcount_thresholds(thresholds: np.ndarray, mw: int) -> np.ndarray:
    """``clip(ceil(T), 0, mw + 1)`` as float32: the same decisions as ``T`` for integer inputs 0..mw."""
    t = np.asarray(thresholds, dtype=np.float64)
    if np.any(np.isnan(t)):
        raise ValueError("popcount thresholds must not be NaN")
    return np.clip(np.ceil(t), 0, int(mw) + 1).astype(np.float32)


def _is_xnor_mvau(node: NodeProto) -> bool:
    if not node.op_type.startswith("MVAU"):
        return False
    try:
        return getCustomOp(node).get_nodeattr("binaryXnorMode") == 1
    except Exception:  # noqa: BLE001 - not a FINN MVAU we can read
        return False


def xnor_threshold_inputs(model: ModelWrapper) -> list[tuple[NodeProto, str, int]]:
    """``(node, threshold tensor, MW)`` for every threshold input in the popcount domain."""
    found = []
    for node in model.graph.node:
        if node.op_type == "MultiThreshold":
            producer = model.find_producer(node.input[0])
            if producer is not None and producer.op_type == "XnorPopcountMatMul":
                w = model.get_initializer(producer.input[1])
                if w is not None and model.get_initializer(node.input[1]) is not None:
                    found.append((node, node.input[1], int(w.shape[0])))
        elif _is_xnor_mvau(node):
            inst = getCustomOp(node)
            if inst.get_nodeattr("noActivation") == 0 and len(node.input) > 2:
                if model.get_initializer(node.input[2]) is not None:
                    found.append((node, node.input[2], int(inst.get_nodeattr("MW"))))
    return found


class ClampXnorPopcountThresholds(Transformation):
    """Pattern: thresholds of an ``MVAU*`` with ``binaryXnorMode=1``, or of a MultiThreshold fed by
    ``XnorPopcountMatMul``. Replacement: the same thresholds rounded up and clamped to
    ``[0, MW + 1]`` (exact for popcounts 0..MW); XNOR MVAUs get the popcount's ``UINT``
    accumulator type and a matching unsigned threshold type. See the module docstring for the
    FINN+ bug this works around."""

    def apply(self, model: ModelWrapper):
        modified = False
        for node, name, mw in xnor_threshold_inputs(model):
            old = model.get_initializer(name)
            new = clamp_popcount_thresholds(old, mw)
            if not np.array_equal(new, old):
                model.set_initializer(name, new)
                modified = True
        for node in model.graph.node:
            if _is_xnor_mvau(node):
                modified |= _set_popcount_types(model, node)
        if modified:
            model = model.transform(InferDataTypes())
        return model, False  # one pass reaches the fixed point


def _set_popcount_types(model: ModelWrapper, node: NodeProto) -> bool:
    inst = getCustomOp(node)
    acc = popcount_datatype(inst.get_nodeattr("MW"))
    changed = inst.get_nodeattr("accDataType") != acc.name
    inst.set_nodeattr("accDataType", acc.name)
    if inst.get_nodeattr("noActivation") == 1:
        out = acc
        if not model.find_consumers(node.output[0]):  # FINN's rule for a graph output: whole bytes
            out = DataType[f"UINT{-(-acc.bitwidth() // 8) * 8}"]
        changed |= inst.get_nodeattr("outputDataType") != out.name
        inst.set_nodeattr("outputDataType", out.name)
        model.set_tensor_datatype(node.output[0], out)
    elif len(node.input) > 2 and model.get_initializer(node.input[2]) is not None:
        t = model.get_initializer(node.input[2])
        tdt = DataType.get_smallest_possible(float(np.max(t, initial=0)))  # thresholds are 0..MW+1
        if not tdt.is_integer() or tdt.signed() or tdt.bitwidth() < acc.bitwidth():
            tdt = acc  # finn-hlslib compares in the threshold type: never narrower than the popcount
        changed |= model.get_tensor_datatype(node.input[2]) != tdt
        model.set_tensor_datatype(node.input[2], tdt)
    return changed
