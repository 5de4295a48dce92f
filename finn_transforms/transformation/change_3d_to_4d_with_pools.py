"""`Change3DTo4DTensorsWithPools`: Conv1d graphs as 4D graphs, average pools included.

Upstream problems: FINN+ 1.6.1's ``step_streamline`` runs qonnx's ``LowerConvsToMatMul``, which
reads ``kernel_shape[1]`` and dies with ``IndexError: list index out of range`` on a 1D ``Conv``
(``QuantConv1d``). qonnx's ``Change3DTo4DTensors`` (``[N, C, L] -> [N, C, L, 1]``, what FINN's own
Conv1d recipe uses) fixes that, but it refuses (with a warning, changing nothing) any graph holding
an op outside its list, which has ``MaxPool`` but no ``AveragePool`` / ``GlobalAveragePool``: a
Conv1d network with a pooling head stays 3D and fails the same way.

Matched: a graph whose input is 3D.
Replaced: qonnx's ``Change3DTo4DTensors``, with every ``AveragePool`` shown to it as a ``MaxPool``
(the two share the ``kernel_shape`` / ``pads`` / ``strides`` attributes it extends) and every
``GlobalAveragePool`` as an attribute-free ``Mul`` (rank-agnostic, nothing to extend), then given
back its own op type. Graphs holding other ops it does not know stay 3D (qonnx warns).
"""

from __future__ import annotations

import ast

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

__all__ = ["Change3DTo4DTensorsWithPools"]

_4D = {"NCW": "NCHW"}  # [N, C, L] -> [N, C, L, 1]
_STAND_INS = {"AveragePool": "MaxPool", "GlobalAveragePool": "Mul"}


class Change3DTo4DTensorsWithPools(Transformation):
    """qonnx ``Change3DTo4DTensors`` that also accepts (global) average pools."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from qonnx.transformation.change_3d_tensors_to_4d import Change3DTo4DTensors

        shape = model.get_tensor_shape(model.graph.input[0].name)
        if shape is None or len(shape) != 3:
            return model, False
        renamed = {}  # node position -> op type (Change3DTo4DTensors neither adds nor removes nodes)
        for i, node in enumerate(model.graph.node):
            if node.op_type in _STAND_INS:
                renamed[i] = node.op_type
                node.op_type = _STAND_INS[node.op_type]
        try:
            model = model.transform(Change3DTo4DTensors())
        finally:
            for i, op_type in renamed.items():
                model.graph.node[i].op_type = op_type
        _extend_layouts(model)
        return model, False


def _extend_layouts(model: ModelWrapper) -> None:
    """Drop the 3D tensor layout annotations of tensors that are now 4D and re-infer them, and give
    channels-first MultiThresholds the 4D form of their ``data_layout``: qonnx's pass leaves both 3D (and qonnx
    annotates 3D tensors as NWC although Conv1d graphs are channels-first), after which FINN's
    layout-driven passes (e.g. ``InferGlobalAccPoolLayer``) skip or mis-handle the tensors."""
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.infer_data_layouts import InferDataLayouts

    for ann in model.graph.quantization_annotation:
        shape = model.get_tensor_shape(ann.tensor_name)
        entries = list(ann.quant_parameter_tensor_names)
        keep = [e for e in entries if not (e.key == "tensor_layout" and len(ast.literal_eval(e.value)) == 3 and shape and len(shape) == 4)]
        if len(keep) != len(entries):
            del ann.quant_parameter_tensor_names[:]
            ann.quant_parameter_tensor_names.extend(keep)
    for node in model.get_nodes_by_op_type("MultiThreshold"):
        inst = getCustomOp(node)
        layout = inst.get_nodeattr("data_layout")
        if layout in _4D:
            inst.set_nodeattr("data_layout", _4D[layout])
    model.transform(InferDataLayouts(), make_deepcopy=False)
