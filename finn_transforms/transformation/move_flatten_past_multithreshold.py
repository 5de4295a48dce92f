"""`MoveFlattenPastMultiThreshold`: a per-tensor quantizer after a pooling head, in front of the Flatten.

Upstream problem (FINN+ 1.6.1): ``pool -> Flatten -> quantizer -> Linear`` (a quantizer between the
pooled feature map and the classifier, e.g. ``nn.AvgPool2d`` followed by ``QuantIdentity``) leaves
``Transpose(NHWC -> NCHW) -> Flatten -> MultiThreshold`` after streamlining. FINN's
``RemoveCNVtoFCFlatten`` only absorbs ``Transpose -> Flatten`` when an MVAU follows directly, and
``AbsorbTransposeIntoMultiThreshold`` only when a MultiThreshold does, so the build stops with
"Unsupported/unmapped layer(s) ... Transpose_0, Flatten_0".

Matched: a ``Flatten`` (or ``Reshape`` to 2D) that is not a fork, whose only consumer is a
``MultiThreshold`` with one row of thresholds (a per-tensor quantizer: the same thresholds for
every element, so the comparison does not care about the layout).
Replaced: ``MultiThreshold`` on the Flatten's input (``data_layout`` from its layout annotation, else
channels-first by rank), then the Flatten.
Then ``Transpose -> MultiThreshold`` and ``Transpose -> Flatten -> MatMul`` are patterns FINN's own
passes handle.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

__all__ = ["MoveFlattenPastMultiThreshold"]

_LAYOUT = {2: "NC", 3: "NCW", 4: "NCHW"}


class MoveFlattenPastMultiThreshold(Transformation):
    """Flatten -> per-tensor MultiThreshold  =>  MultiThreshold -> Flatten."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for flat in list(model.graph.node):
            if flat.op_type not in ("Flatten", "Reshape"):
                continue
            in_shape = model.get_tensor_shape(flat.input[0])
            out_shape = model.get_tensor_shape(flat.output[0])
            consumers = model.find_consumers(flat.output[0])
            if in_shape is None or out_shape is None or len(out_shape) != 2 or len(in_shape) not in _LAYOUT:
                continue
            if len(consumers) != 1 or consumers[0].op_type != "MultiThreshold":
                continue
            mt = consumers[0]
            thresholds = model.get_initializer(mt.input[1])
            if thresholds is None or thresholds.shape[0] != 1:
                continue
            mt_out = mt.output[0]
            inner = model.make_new_valueinfo_name()
            model.set_tensor_shape(inner, list(in_shape))
            model.set_tensor_datatype(inner, model.get_tensor_datatype(mt_out))
            mt.input[0], mt.output[0] = flat.input[0], inner
            flat.input[0], flat.output[0] = inner, mt_out
            layout = model.get_tensor_layout(mt.input[0])
            layout = "".join(layout) if layout and len(layout) == len(in_shape) else _LAYOUT[len(in_shape)]
            getCustomOp(mt).set_nodeattr("data_layout", layout)
            model.set_tensor_layout(inner, list(layout))
            nodes = list(model.graph.node)
            model.graph.node.remove(mt)
            model.graph.node.insert(nodes.index(flat), mt)
            changed = True
        if changed:
            model = model.transform(InferShapes()).transform(InferDataTypes())
        return model, changed
