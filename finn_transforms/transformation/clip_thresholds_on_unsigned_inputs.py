"""`ClipThresholdsOnUnsignedInputs`: no negative thresholds on a quantizer that reads an unsigned quantizer.

Upstream problem (FINN+ 1.6.1): a signed quantizer reading an unsigned tensor (a residual shortcut
requantized after a ReLU, a signed quantizer after a pooled ReLU output) keeps its negative
thresholds after streamlining, and ``Thresholding``'s bit-width minimisation dies with a bare
``AssertionError`` (``assert (orig_thres_matrix >= 0).all()`` in ``thresholding.py``, during
``step_minimize_bit_width_initial``). FINN's ``RoundAndClipThresholds`` would clip them, but it trusts
every integer datatype annotation, which is not safe before ``step_convert_to_hw`` (e.g. a MatMul over
native minifloat weight codes is annotated INT32 but does not compute integers yet).

Matched: a ``MultiThreshold`` whose input is produced, directly or through shape-only ops, by another
``MultiThreshold`` or a ``GlobalAccPool`` (genuinely integer-valued), with max pooling allowed in between,
and has an unsigned integer datatype.
Replaced: its thresholds below 0 by 0 (``x >= T`` holds for every ``x >= 0`` when ``T <= 0``: exact).
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from finn_transforms.transformation.lower_average_pools import SHAPE_ONLY_OPS

__all__ = ["ClipThresholdsOnUnsignedInputs"]

_INTEGER_PRODUCERS = frozenset({"MultiThreshold", "GlobalAccPool"})
_VALUE_PRESERVING = SHAPE_ONLY_OPS | {"MaxPool", "MaxPoolNHWC"}


class ClipThresholdsOnUnsignedInputs(Transformation):
    """Negative thresholds on an unsigned quantizer's output -> 0."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for node in model.get_nodes_by_op_type("MultiThreshold"):
            thresholds = model.get_initializer(node.input[1])
            dt = model.get_tensor_datatype(node.input[0])
            if thresholds is None or dt is None or not dt.is_integer() or dt.signed() or not np.any(thresholds < 0):
                continue
            producer = model.find_producer(node.input[0])
            while producer is not None and producer.op_type in _VALUE_PRESERVING:
                producer = model.find_producer(producer.input[0])
            if producer is None or producer.op_type not in _INTEGER_PRODUCERS:
                continue
            model.set_initializer(node.input[1], np.maximum(thresholds, 0).astype(np.float32))
            changed = True
        return model, changed
