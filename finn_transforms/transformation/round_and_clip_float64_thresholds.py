"""`RoundAndClipFloat64Thresholds`: FINN's threshold rounding and clipping, keeping float64 thresholds.

`finn_transforms.transformation.exact_absorbed_thresholds` stores a node's integer thresholds as
float64 when some of them lie beyond 2^24 with no float32 deciding like them (native minifloat
accumulators after a BatchNorm). Upstream problem: FINN+ 1.6.1's ``RoundAndClipThresholds`` (the
last transformation of ``step_minimize_bit_width[_initial]``) casts every threshold tensor back to
float32, rounding those thresholds to the nearest float32 (``np.float32(16777217) == 16777216``), so
their channels switch at the wrong accumulator value. `float64_thresholds` records the float64 tensors
before FINN's step; this pass, run after it, puts them back rounded up and clipped as FINN does
(``[min, max + 1]`` of the integer input type, or of ``accDataType`` for an MVAU/VVAU with
thresholds), still float64. `finn_transforms.steps.float64_threshold_step` wraps the FINN steps.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

__all__ = ["RoundAndClipFloat64Thresholds", "float64_thresholds"]


def _threshold_input(model: ModelWrapper, node: NodeProto) -> tuple[str, DataType] | None:
    """(threshold tensor, integer type bounding the compared values) of a thresholding node, or None."""
    op = node.op_type
    if op == "MultiThreshold" or op.startswith("Thresholding"):
        index, dt = 1, model.get_tensor_datatype(node.input[0])
    elif op.startswith(("MVAU", "VVAU")) and len(node.input) > 2:
        inst = getCustomOp(node)
        if inst.get_nodeattr("noActivation") != 0:
            return None
        index, dt = 2, DataType[inst.get_nodeattr("accDataType")]
    else:
        return None
    return (node.input[index], dt) if dt.is_integer() else None


def float64_thresholds(model: ModelWrapper) -> dict[str, np.ndarray]:
    """Copies of the float64 threshold initializers of the model's thresholding nodes, by tensor name."""
    out = {}
    for node in model.graph.node:
        found = _threshold_input(model, node)
        if found is not None:
            t = model.get_initializer(found[0])
            if t is not None and t.dtype == np.float64:
                out[found[0]] = t.copy()
    return out


class RoundAndClipFloat64Thresholds(Transformation):
    """Put ``saved`` float64 thresholds back, ceiled and clipped to their node's integer range (module docstring)."""

    def __init__(self, saved: dict[str, np.ndarray]):
        super().__init__()
        self.saved = saved

    def apply(self, model: ModelWrapper):
        for node in model.graph.node:
            found = _threshold_input(model, node)
            if found is None or found[0] not in self.saved:
                continue
            name, dt = found  # the bounds are powers of two (or 0): exact float64
            model.set_initializer(name, np.clip(np.ceil(self.saved[name]), float(dt.min()), float(dt.max() + 1)))
        return model, False
