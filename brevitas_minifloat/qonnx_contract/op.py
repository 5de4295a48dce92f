"""``MinifloatQuant``: the QONNX op for minifloat formats that ``FloatQuant`` cannot express.

qonnx 1.0's ``FloatQuant`` always executes as a signed format and ignores ``has_subnormal``, so
unsigned formats and flush-to-zero formats would execute wrongly there. This op carries the full
format (as `MinifloatFormat` fields) and executes ``scale * round_fmt(X / scale)`` exactly.

Its domain, :data:`DOMAIN` = ``"finn_transforms.custom_op"``, is written into users' ONNX files and
never changes. qonnx finds an op by importing the module named after the node's domain, so that
module (``finn_transforms.custom_op``) re-exports this class; importing this module also registers
the class with qonnx directly (``add_op_to_domain``), so our own export and lowering never need to
import ``finn_transforms`` for it.
"""

from __future__ import annotations

import numpy as np
import torch
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.base import CustomOp
from qonnx.custom_op.registry import add_op_to_domain

from brevitas_minifloat.formats import MinifloatFormat

__all__ = ["DOMAIN", "MinifloatQuant"]

DOMAIN = "finn_transforms.custom_op"


class MinifloatQuant(CustomOp):
    """Inputs: ``X`` (float32), ``scale`` (float32, broadcastable to X). Output: quantized X."""

    def get_nodeattr_types(self):
        return {
            "exponent_bitwidth": ("i", True, 0),
            "mantissa_bitwidth": ("i", True, 0),
            "exponent_bias": ("i", True, 0),
            "signed": ("i", True, 1),
            "has_subnormal": ("i", True, 1),
            "specials": ("s", False, "none", {"none", "ieee", "fn", "fnuz"}),
        }

    @property
    def minifloat_format(self) -> MinifloatFormat:
        return MinifloatFormat(
            self.get_nodeattr("exponent_bitwidth"),
            self.get_nodeattr("mantissa_bitwidth"),
            bias=self.get_nodeattr("exponent_bias"),
            signed=bool(self.get_nodeattr("signed")),
            subnormals=bool(self.get_nodeattr("has_subnormal")),
            specials=self.get_nodeattr("specials"),
        )

    def make_shape_compatible_op(self, model):
        node = self.onnx_node
        return helper.make_node("Identity", [node.input[0]], [node.output[0]])

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], DataType["FLOAT32"])

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = np.asarray(context[node.input[0]], dtype=np.float32)
        scale = np.asarray(context[node.input[1]], dtype=np.float32)
        # Same float32 operations as the Brevitas fake-quant: x / scale, exact rounding, * scale.
        scaled = torch.from_numpy(np.ascontiguousarray(x / scale))
        q = self.minifloat_format.quantize(scaled).numpy()
        context[node.output[0]] = (q * scale).astype(np.float32)

    def verify_node(self):
        try:
            fmt = self.minifloat_format
        except ValueError as err:
            return [f"{self.onnx_node.name}: invalid minifloat format: {err}"]
        return [f"{self.onnx_node.name}: MinifloatQuant {fmt.name}"]


add_op_to_domain(DOMAIN, MinifloatQuant)
