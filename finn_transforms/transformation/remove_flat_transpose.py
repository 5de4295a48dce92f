"""`RemoveFlatTransposeBeforeFlatten`: drop a layout Transpose that only feeds a Flatten of a vector.

Upstream problem (FINN+ 1.6.1): after a pooling head (``GlobalAccPool`` in NHWC), FINN's layout
handling leaves ``Transpose(NHWC -> NCHW) -> Flatten`` on a ``(1, 1, 1, C)`` tensor.
``step_convert_to_hw`` turns the Transpose into a ``Shuffle`` layer before its own
``RemoveCNVtoFCFlatten`` looks for the pattern, so the ``Flatten`` stays between HW layers and the
build stops ("Unsupported/unmapped layer(s) ... Flatten_0").

Matched: a ``Transpose`` whose input has at most one dimension larger than 1 and whose every
consumer is a ``Flatten`` or ``Reshape``.
Replaced: the consumers read the Transpose's input instead (with one non-trivial dimension the
element order is the same, so the flattened values are unchanged); the Transpose is removed.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

__all__ = ["RemoveFlatTransposeBeforeFlatten"]


class RemoveFlatTransposeBeforeFlatten(Transformation):
    """Transpose of a vector-shaped tensor -> Flatten/Reshape: bypass the Transpose."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph_outputs = {o.name for o in model.graph.output}
        changed = False
        for node in list(model.graph.node):
            if node.op_type != "Transpose" or node.output[0] in graph_outputs:
                continue
            shape = model.get_tensor_shape(node.input[0])
            consumers = model.find_consumers(node.output[0])
            if shape is None or sum(d > 1 for d in shape) > 1 or not consumers:
                continue
            if any(c.op_type not in ("Flatten", "Reshape") or c.input[0] != node.output[0] for c in consumers):
                continue
            for consumer in consumers:
                consumer.input[0] = node.input[0]
            model.graph.node.remove(node)
            changed = True
        return model, changed
