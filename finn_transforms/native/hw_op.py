"""``MVAU_minifloat``: FINN's matrix-vector unit with minifloat weight codes and an exact accumulator.

A subclass of FINN's ``MVAU`` HW op, so FINN's folding conventions (PE/SIMD, folded shapes, stream
widths, ``get_exp_cycles``, weight memory and its BRAM/URAM estimates) apply unchanged; what
differs follows the contract in `finn_transforms.native.spec`:

- input 0: ordinals of ``inputFormat`` (a minifloat, from an ordinal-threshold layer) or integers
  (``inputFormat`` ``INTn``/``UINTn``); ``inputDataType`` is the stream's FINN datatype;
- input 1: the weight codes of ``weightFormat`` as an ``(MW, MH)`` initializer (FINN's weight
  orientation), ``weightDataType`` ``UINT<code bits>``;
- output: the exact dot products in units of ``delta_w * delta_a``, ``INT<acc bits>``
  (``noActivation`` only: the next layer's thresholds are FINN's standalone Thresholding).

``execute_node`` computes in Python integers through `spec.reference_mvau` (any accumulator
width, no float32) and stores them as float32 when float32 holds them all exactly, else as
float64, exact up to 2^53 (qonnx's ``execute_onnx`` checks
integer tensors with numpy rounding, which Python-int object arrays do not support); FINN's
Thresholding then compares them exactly with its float32 thresholds. Wider accumulators (E5M2 x
E5M2 needs ~70 bits) are exact only through the exact HW executor (`finn_transforms.exact`). Registered in FINN's HW domain (generic ``MVAU_minifloat`` and its ``_rtl``
specialization) so FINN's partitioning, specialization, estimate reports and data-layout passes see
it; `finn_transforms.native.folding` adds it to ``target_fps`` folding.

Resource estimates are those of the layer's own RTL (`finn_transforms.native.rtl`):
``native_layer_cost(spec)`` (`finn_transforms.native.cost`), the model fitted to synthesized layers
(never the local synthesis cache, so every machine estimates the same), with the weights counted as the RTL stores them
(embedded ROM: LUTRAM up to 128 words deep, else RAMB18, whatever ``mem_mode`` says); no DSPs (the
shift datapath is LUT logic), no URAM. FINN's estimate reports and ``target_fps`` folding use them.
"""

from __future__ import annotations

import numpy as np

from brevitas_minifloat.hw.operands import as_operand
from finn_transforms.native.hw_common import NativeUnit, accumulator_range, register_hw_ops, rtl_variant, store_output
from finn_transforms.native.spec import NativeMvauSpec, reference_mvau

from finn.custom_op.fpgadataflow.matrixvectoractivation import MVAU

__all__ = ["MVAU_minifloat", "MVAU_minifloat_rtl", "accumulator_range", "store_output"]


class MVAU_minifloat(NativeUnit, MVAU):  # noqa: N801 - qonnx names the op type after the class
    """Native minifloat matrix-vector unit (see the module docstring for the stream contract)."""

    def spec(self, acc_bits: int | None = -1) -> NativeMvauSpec:
        """The layer as the shared contract (accumulator width from ``accDataType`` unless
        ``acc_bits`` is given; None: exact for any weights)."""
        return NativeMvauSpec(
            self.get_nodeattr("weightFormat"),
            as_operand(self.get_nodeattr("inputFormat")),
            self.get_nodeattr("MW"),
            self.get_nodeattr("MH"),
            self.get_nodeattr("PE"),
            self.get_nodeattr("SIMD"),
            acc_bits=self.get_accumulator_datatype().bitwidth() if acc_bits == -1 else acc_bits,
        )

    def weight_codes(self, model) -> np.ndarray:
        """Weight codes ``(MH, MW)`` (the spec's orientation) from the ``(MW, MH)`` initializer."""
        return np.asarray(model.get_initializer(self.onnx_node.input[1])).T.astype(np.int64)

    def execute_node(self, context, graph):
        node = self.onnx_node
        spec = self.spec()
        x = np.asarray(context[node.input[0]]).reshape(-1, spec.mw)
        codes = np.asarray(context[node.input[1]]).T.astype(np.int64)
        store_output(context, node, reference_mvau(spec, codes, x.astype(np.int64)))


MVAU_minifloat_rtl = rtl_variant(
    MVAU_minifloat, "FINN's IP generation does not cover MVAU_minifloat; generate its Verilog with finn_transforms.native.rtl"
)
register_hw_ops(MVAU_minifloat, MVAU_minifloat_rtl)
