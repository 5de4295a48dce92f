"""``OrdinalLUT``: the ordinal -> embedded-integer decode of a minifloat activation as a FINN HW layer.

A minifloat activation whose integer embedding would be refused (E4M3: 491,520 thresholds per
channel) lowers to ordinal thresholds (255 for E4M3) followed by `OrdinalDecode`. Where the decode
cannot move into a native layer (its consumer is a residual add, a pool, a concat, an integer or
padding layer), this layer implements it in hardware: one ROM of ``len(fmt.values())`` entries per PE
holding ``value / delta`` of every ordinal, so the add / pool works on the embedded integers as it
would after the embedding's thresholds, and the thresholds after it keep their meaning.

Stream contract (FINN's elementwise layers, e.g. ``Thresholding``): channels last, ``numInputVectors``
leading dimensions, ``NumChannels / PE`` beats of ``PE`` elements; input ``UINT<ordinal bits>``,
output the format's embedding datatype (`MinifloatFormat.integer_datatype`).

Execution: the table lookup (float32 holds every ``value / delta`` exactly: a minifloat value times
a power of two); the exact HW executor (`finn_transforms.exact.native_ops`) looks the same table
up exactly. RTL: `finn_transforms.native.decode_rtl` (one LUT ROM per PE, registered output;
``verify``'s ``rtl`` stage simulates it). Resources: `finn_transforms.native.decode_cost` (a count
of the LUT6 its table needs, fitted to Yosys syntheses of the layer), no BRAM or DSP.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType

from brevitas_minifloat.formats import MinifloatFormat, as_format
from finn_transforms.native.decode_cost import ordinal_lut_cost
from finn_transforms.native.hw_common import register_hw_ops, rtl_variant
from finn_transforms.native.ordinal import decode_ordinals

from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp

__all__ = ["OrdinalLUT", "OrdinalLUT_rtl"]


class OrdinalLUT(HWCustomOp):
    """Ordinal -> ``value / delta`` lookup of the minifloat ``format`` (module docstring)."""

    def get_nodeattr_types(self):
        attrs = super().get_nodeattr_types()
        attrs.update(
            {
                "format": ("s", True, ""),
                "NumChannels": ("i", True, 0),
                "PE": ("i", False, 1),
                "numInputVectors": ("ints", False, [1]),
                "inputDataType": ("s", True, ""),
                "outputDataType": ("s", True, ""),
            }
        )
        return attrs

    @property
    def minifloat_format(self) -> MinifloatFormat:
        return as_format(self.get_nodeattr("format"))

    def get_input_datatype(self, ind=0):
        return DataType[self.get_nodeattr("inputDataType")]

    def get_output_datatype(self, ind=0):
        return DataType[self.get_nodeattr("outputDataType")]

    def get_normal_input_shape(self, ind=0):
        return tuple(self.get_nodeattr("numInputVectors")) + (self.get_nodeattr("NumChannels"),)

    def get_normal_output_shape(self, ind=0):
        return self.get_normal_input_shape()

    def get_folded_input_shape(self, ind=0):
        pe = self.get_nodeattr("PE")
        return tuple(self.get_nodeattr("numInputVectors")) + (self.get_nodeattr("NumChannels") // pe, pe)

    def get_folded_output_shape(self, ind=0):
        return self.get_folded_input_shape()

    def get_instream_width(self, ind=0):
        return self.get_input_datatype().bitwidth() * self.get_nodeattr("PE")

    def get_outstream_width(self, ind=0):
        return self.get_output_datatype().bitwidth() * self.get_nodeattr("PE")

    def get_number_output_values(self):
        return int(np.prod(self.get_folded_output_shape()[:-1]))

    def get_exp_cycles(self):
        return self.get_number_output_values()

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], self.get_output_datatype())

    def execute_node(self, context, graph):
        node = self.onnx_node
        context[node.output[0]] = decode_ordinals(self.minifloat_format, context[node.input[0]], node.name)

    # Resources: module docstring.
    def lut_estimation(self, fpgapart):
        return ordinal_lut_cost(self.minifloat_format, self.get_nodeattr("PE"))["lut"]

    def bram_estimation(self, fpgapart):
        return 0

    def uram_estimation(self, fpgapart):
        return 0

    def dsp_estimation(self, fpgapart):
        return 0

    def verify_node(self):
        messages = []
        try:
            fmt = self.minifloat_format
            channels, pe = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE")
            if pe < 1 or channels % pe:
                messages.append(f"PE ({pe}) must divide NumChannels ({channels})")
            messages.append(f"OrdinalLUT {fmt.name}")
        except ValueError as err:
            messages.append(f"invalid OrdinalLUT attributes: {err}")
        return messages


OrdinalLUT_rtl = rtl_variant(
    OrdinalLUT, "FINN's IP generation does not cover OrdinalLUT; generate its Verilog with finn_transforms.native.decode_rtl"
)
register_hw_ops(OrdinalLUT, OrdinalLUT_rtl)
