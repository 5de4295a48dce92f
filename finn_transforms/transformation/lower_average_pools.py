"""`LowerAveragePoolsToSums`: average pooling heads as exact integer sums with the 1/N in the thresholds.

Upstream problems (FINN+ 1.6.1):

- ``GlobalAveragePool``: ``InferGlobalAccPoolLayer`` (in ``step_convert_to_hw``) makes it a
  ``GlobalAccPool`` (a sum) followed by a float ``Mul(1/N)`` which nothing absorbs afterwards, so
  the build stops with "Unsupported/unmapped layer(s) found in between FINN operators, starting
  with node Mul_0". FINN's ``AbsorbMulIntoMultiThreshold`` would divide the thresholds by
  ``fl32(1/N)``, which flips exact ties when N is not a power of two (1/36: 17 of 256 measured).
- A signed quantizer after the pool keeps negative thresholds on the pool's unsigned sum, and
  ``Thresholding``'s bit-width minimisation dies with a bare ``AssertionError``
  (``assert (orig_thres_matrix >= 0).all()``).
- ``AveragePool`` (``nn.AvgPool2d``) is not converted at all (``InferPool`` handles only
  ``MaxPool`` and Brevitas' truncating ``QuantAvgPool2d``); the quantizer scale in front of it is
  not moved past it either.

Matched: ``GlobalAveragePool`` or ``AveragePool`` (no ``ceil_mode``; with padding only when
``count_include_pad=1``, torch's default) whose input is an integer tensor ``v``, optionally through
one scalar ``Mul(s)``, and whose output reaches only ``MultiThreshold`` nodes (directly or through
``Flatten`` / ``Reshape`` / ``Transpose`` / ``Squeeze`` / ``Unsqueeze``).

Replaced: ``GlobalAveragePool`` by FINN's ``GlobalAccPool`` sum (``InferGlobalAccPoolLayer``, its
``Mul(1/N)`` dropped); ``AveragePool`` by a depthwise ``Conv`` with all-ones weights (the window sum,
which FINN lowers to a VVAU); the ``Mul(s)`` bypassed; every threshold ``T`` of the consuming
MultiThresholds by ``clip(ceil(T * N / s), N*min(v), N*max(v) + 1)``, computed exactly
(`finn_transforms.transformation.exact_thresholds`). ``sum >= ceil(T*N/s)`` is ``sum*s/N >= T``
for every integer sum, so the thresholds decide exactly what torch's ``round(avg / scale)``
boundaries encoded in ``T`` decide, ties included. Pools that do not match are left alone (the
topology check names them before FINN runs).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

from finn_transforms.transformation._common import LoweringError, label
from finn_transforms.transformation.exact_thresholds import integer_thresholds

__all__ = ["LowerAveragePoolsToSums", "SHAPE_ONLY_OPS", "threshold_consumers"]

#: Ops that move values without changing them (a per-tensor or per-channel threshold stays valid).
SHAPE_ONLY_OPS = frozenset({"Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze"})


def threshold_consumers(model: ModelWrapper, tensor: str) -> list[NodeProto] | None:
    """The MultiThresholds that read ``tensor`` through shape-only ops, or None if anything else does."""
    graph_outputs = {o.name for o in model.graph.output}
    found: list[NodeProto] = []
    todo = [tensor]
    while todo:
        name = todo.pop()
        consumers = model.find_consumers(name)
        if name in graph_outputs or not consumers:
            return None
        for node in consumers:
            if node.op_type == "MultiThreshold" and node.input[0] == name:
                found.append(node)
            elif node.op_type in SHAPE_ONLY_OPS and node.input[0] == name:
                todo.append(node.output[0])
            else:
                return None
    return found


def _attr(node: NodeProto, name: str, default):
    attr = get_by_name(node.attribute, name)
    return default if attr is None else helper.get_attribute_value(attr)


def _scalar_mul_source(model: ModelWrapper, tensor: str) -> tuple[str, Fraction] | None:
    """``(v, s)`` when ``tensor`` is ``v`` (integer) or ``Mul(v, s)`` with a positive scalar ``s``."""
    dt = model.get_tensor_datatype(tensor)
    if dt is not None and dt.is_integer():
        return tensor, Fraction(1)
    mul = model.find_producer(tensor)
    if mul is None or mul.op_type != "Mul":
        return None
    scale = model.get_initializer(mul.input[1])
    if scale is None or scale.size != 1 or not float(scale.reshape(())) > 0:
        return None
    src_dt = model.get_tensor_datatype(mul.input[0])
    if src_dt is None or not src_dt.is_integer():
        return None
    return mul.input[0], Fraction(float(np.float32(scale.reshape(()))))


class LowerAveragePoolsToSums(Transformation):
    """Average pools over integer tensors -> integer sums; 1/N and the input scale -> exact thresholds."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in list(model.graph.node):
            if node.op_type not in ("GlobalAveragePool", "AveragePool"):
                continue
            window = self._window(model, node)
            source = _scalar_mul_source(model, node.input[0])
            consumers = threshold_consumers(model, node.output[0])
            if window is None or source is None or not consumers:
                continue
            v, s = source
            vt = model.get_tensor_datatype(v)
            lo, hi = window * int(vt.min()), window * int(vt.max())
            divisor = s / window
            for mt in consumers:
                thresholds = model.get_initializer(mt.input[1])
                try:
                    model.set_initializer(mt.input[1], integer_thresholds(thresholds, divisor, lo, hi))
                except ValueError as err:
                    raise LoweringError(
                        f"cannot lower {label(node)} to an integer sum (window {window}, {vt.name} inputs) before "
                        f"{label(mt)}: {err}; use a narrower activation format before the pool or a power-of-two window"
                    ) from err
            bypassed = model.find_producer(node.input[0]) if node.input[0] != v else None
            node.input[0] = v
            if bypassed is not None and not model.find_consumers(bypassed.output[0]):
                model.graph.node.remove(bypassed)
            if node.op_type == "AveragePool":
                self._to_depthwise_sum(model, node, vt)
            else:
                model = self._to_acc_pool(model, node)
            model = model.transform(InferShapes()).transform(InferDataTypes())
            return model, True  # one pool per round: the graph changed under the loop
        return model, False

    @staticmethod
    def _window(model: ModelWrapper, node: NodeProto) -> int | None:
        shape = model.get_tensor_shape(node.input[0])
        if shape is None or len(shape) != 4:
            return None
        if node.op_type == "GlobalAveragePool":
            return int(shape[2] * shape[3])
        kernel = list(_attr(node, "kernel_shape", []))
        pads = list(_attr(node, "pads", [0, 0, 0, 0]))
        if len(kernel) != 2 or _attr(node, "ceil_mode", 0) or (any(pads) and not _attr(node, "count_include_pad", 0)):
            return None
        if any(d != 1 for d in _attr(node, "dilations", [1, 1])):
            return None
        return int(kernel[0] * kernel[1])

    @staticmethod
    def _to_depthwise_sum(model: ModelWrapper, node: NodeProto, vt: DataType) -> None:
        channels = model.get_tensor_shape(node.input[0])[1]
        kernel = list(_attr(node, "kernel_shape", []))
        weights = model.make_new_valueinfo_name()
        model.set_initializer(weights, np.ones((channels, 1, *kernel), dtype=np.float32))
        model.set_tensor_datatype(weights, DataType["UINT2"])
        conv = helper.make_node(
            "Conv",
            [node.input[0], weights],
            list(node.output),
            name=f"{node.name}_sum",
            group=channels,
            kernel_shape=kernel,
            strides=list(_attr(node, "strides", kernel)),
            pads=list(_attr(node, "pads", [0, 0, 0, 0])),
            dilations=[1, 1],
        )
        model.graph.node.insert(list(model.graph.node).index(node), conv)
        model.graph.node.remove(node)

    @staticmethod
    def _to_acc_pool(model: ModelWrapper, node: NodeProto) -> ModelWrapper:
        from finn.transformation.fpgadataflow.convert_to_hw.global_acc_pool import InferGlobalAccPoolLayer

        out = node.output[0]
        model = model.transform(InferGlobalAccPoolLayer())
        mul = model.find_producer(out)
        while mul is not None and mul.op_type != "Mul":  # a Transpose back to NCHW may follow the Mul
            mul = model.find_producer(mul.input[0])
        if mul is None or model.find_producer(mul.input[0]).op_type != "GlobalAccPool":
            raise RuntimeError(f"InferGlobalAccPoolLayer did not produce GlobalAccPool -> Mul for {node.name}")
        for consumer in model.find_consumers(mul.output[0]):
            for i, name in enumerate(consumer.input):
                if name == mul.output[0]:
                    consumer.input[i] = mul.input[0]
        if mul.output[0] in {o.name for o in model.graph.output}:  # pragma: no cover - matched pools feed thresholds
            raise RuntimeError("a matched pool cannot feed the graph output")
        model.graph.node.remove(mul)
        return model
