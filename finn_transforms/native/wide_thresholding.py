"""``WideThresholding``: FINN's ``Thresholding`` with integer thresholds held exactly beyond 2^53.

The node is FINN's ``Thresholding`` (same attributes, stream, folding, cycles) plus a third input,
the int64 residual of `finn_transforms.wide_thresholds`: its thresholds are ``int(hi) + residual``,
exact at any width (E5M2 native accumulators after a BatchNorm: ~72 significant bits). FINN's own
``Thresholding`` passes would read only the float64 ``hi``, so the node has its own op type
(FINN's ``RoundAndClipThresholds`` and its IP generation do not match it):

- ``minimize_weight_bit_width`` clips the exact thresholds to ``[min, max + 1]`` of the input type
  (what ``RoundAndClipThresholds`` does for FINN's layer; no decision changes) and types them by FINN's
  ``Thresholding_rtl`` rule in exact integers;
- execution compares the context's values (integers as FINN's execution stores them) with the exact
  thresholds (`finn_transforms.exact.thresholding.count_reached`);
- resources: FINN's ``Thresholding_rtl`` estimate for the same geometry (its binary-search memories,
  the structure our RTL, `finn_transforms.native.threshold_rtl`, implements).
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType

from finn_transforms.exact.tensor import Exact
from finn_transforms.exact.thresholding import count_reached
from finn_transforms.native.hw_common import register_hw_ops, rtl_variant
from finn_transforms.wide_thresholds import WIDE_OP_TYPE, attach_residual, join, split

from finn.custom_op.fpgadataflow.thresholding import Thresholding

__all__ = ["WideThresholding", "WideThresholding_rtl", "finn_threshold_rule", "threshold_type"]


def _signed_bits(v: int) -> int:
    return (v if v >= 0 else -v - 1).bit_length() + 1


def finn_threshold_rule(lo: int, hi: int, signed_input: bool) -> DataType:
    """FINN's ``Thresholding.minimize_weight_bit_width`` rule, in exact integers."""
    if lo == hi == 0:
        return DataType["INT2" if signed_input else "UINT1"]
    if lo < 0:
        return DataType[f"INT{max(_signed_bits(lo), _signed_bits(-hi - 1))}"]
    if signed_input:
        return DataType[f"INT{_signed_bits(-hi - 1)}"]
    return DataType[f"UINT{max(1, hi.bit_length())}"]


def threshold_type(lo: int, hi: int, input_dt: DataType) -> DataType:
    """FINN's ``Thresholding_rtl`` threshold type for thresholds in ``[lo, hi]``, in exact integers (FINN
    computes it in float64, which rounds beyond 2^53): FINN's rule, re-applied to ``[lo - 1, hi]`` when
    the type is narrower than the input (the RTL saturates inputs to it) and kept if wider."""
    tdt = finn_threshold_rule(lo, hi, input_dt.signed())
    if tdt.bitwidth() < input_dt.bitwidth():
        wider = finn_threshold_rule(lo - 1, hi, input_dt.signed())
        if wider.bitwidth() > tdt.bitwidth():
            return wider
    return tdt


class WideThresholding(Thresholding):
    """FINN's ``Thresholding`` whose thresholds are ``int(input 1) + input 2`` (module docstring)."""

    def exact_thresholds(self, model) -> np.ndarray:
        """(rows, steps) object array of the exact integer thresholds."""
        node = self.onnx_node
        return join(model.get_initializer(node.input[1]), model.get_initializer(node.input[2]))

    def minimize_weight_bit_width(self, model, datatype_only=False):
        if datatype_only or self.get_nodeattr("runtime_writeable_weights"):
            return DataType[self.get_nodeattr("weightDataType")]
        idt = self.get_input_datatype(0)
        t = np.minimum(np.maximum(self.exact_thresholds(model), int(idt.min())), int(idt.max()) + 1)
        hi, residual = split(t)
        node = self.onnx_node
        model.set_initializer(node.input[1], hi)
        attach_residual(model, node, residual)
        tdt = threshold_type(int(t.min()), int(t.max()), idt)
        self.set_nodeattr("weightDataType", tdt.name)
        model.set_tensor_datatype(node.input[1], tdt)
        return tdt

    def execute_node(self, context, graph):
        node = self.onnx_node
        thresholds = np.sort(join(context[node.input[1]], context[node.input[2]]), axis=1)
        x = np.asarray(context[node.input[0]])
        channels = x.reshape(-1, x.shape[-1])
        groups = None if thresholds.shape[0] == 1 else np.broadcast_to(np.arange(thresholds.shape[0]), channels.shape)
        out = count_reached(Exact.from_array(channels), thresholds, groups) + self.get_nodeattr("ActVal")
        if self.get_nodeattr("outputDataType") == "BIPOLAR":
            out = 2 * out - 1
        context[node.output[0]] = out.reshape(x.shape).astype(np.float32)

    def verify_node(self):
        messages = super().verify_node()
        if len(self.onnx_node.input) != 3:
            messages.append(f"{WIDE_OP_TYPE} needs 3 inputs (data, float64 thresholds, int64 residual)")
        return messages

    # Resources: FINN's Thresholding_rtl model for the same geometry (module docstring).
    def _finn_rtl(self):
        from finn.custom_op.fpgadataflow.rtl.thresholding_rtl import Thresholding_rtl

        return Thresholding_rtl(self.onnx_node)

    def lut_estimation(self, fpgapart):
        return self._finn_rtl().lut_estimation(fpgapart)

    def bram_estimation(self, fpgapart):
        return self._finn_rtl().bram_estimation(fpgapart)

    def uram_estimation(self, fpgapart):
        return self._finn_rtl().uram_estimation(fpgapart)

    def dsp_estimation(self, fpgapart):
        return 0


WideThresholding_rtl = rtl_variant(
    WideThresholding, "FINN's IP generation does not cover WideThresholding; generate its Verilog with finn_transforms.native.threshold_rtl"
)
register_hw_ops(WideThresholding, WideThresholding_rtl)
