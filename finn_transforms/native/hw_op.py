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
``native_layer_cost(spec)`` (`finn_transforms.native.cost`), a cached Yosys synthesis of exactly this
layer or the model fitted to synthesized layers, with the weights counted as the RTL stores them
(embedded ROM: LUTRAM up to 128 words deep, else RAMB18, whatever ``mem_mode`` says); no DSPs (the
shift datapath is LUT logic), no URAM. FINN's estimate reports and ``target_fps`` folding use them.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.custom_op.registry import add_op_to_domain

from brevitas_minifloat.hw.operands import as_operand, integer_range, is_minifloat, signed_bits
from finn_transforms.finn_defaults import HW_DOMAIN, RTL_DOMAIN
from finn_transforms.native.cost import native_layer_cost
from finn_transforms.native.spec import NativeMvauSpec, ordinal_embedded, reference_mvau

from finn.custom_op.fpgadataflow.matrixvectoractivation import MVAU
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

__all__ = ["MVAU_minifloat", "MVAU_minifloat_rtl", "accumulator_range", "store_output"]

_FLOAT32_EXACT = 2**24


def _input_range(fmt) -> tuple[int, int]:
    """Range of the embedded input integers (minifloat: its values / delta)."""
    if is_minifloat(fmt):
        table = ordinal_embedded(fmt)
        return table[0], table[-1]
    return integer_range(fmt)


def accumulator_range(spec: NativeMvauSpec, weight_codes: np.ndarray) -> tuple[int, int]:
    """Exact ``(min, max)`` of any dot product of these weights (codes ``(mh, mw)``) with inputs of
    ``spec.input_format``: per output, the sum of each weight's extreme products."""
    w = spec.weight_embedded(weight_codes)
    lo, hi = _input_range(spec.input_format)
    a, b = w * lo, w * hi
    low = np.minimum(a, b).sum(axis=1)
    high = np.maximum(a, b).sum(axis=1)
    return int(min(low.flat, default=0)), int(max(high.flat, default=0))


def store_output(context: dict, node, y: np.ndarray) -> None:
    """Put exact dot products ``y`` (Python ints) into the execution context: float32 when float32
    holds them all exactly, else float64 (module docstring)."""
    container = np.float32 if max((abs(int(v)) for v in y.flat), default=0) <= _FLOAT32_EXACT else np.float64
    context[node.output[0]] = y.astype(container).reshape(context[node.output[0]].shape)


class MVAU_minifloat(MVAU):  # noqa: N801 - qonnx names the op type after the class
    """Native minifloat matrix-vector unit (see the module docstring for the stream contract)."""

    def get_nodeattr_types(self):
        attrs = super().get_nodeattr_types()
        attrs.update(
            {
                "weightFormat": ("s", True, ""),  # minifloat format name of the weight codes
                "inputFormat": ("s", True, ""),  # minifloat (ordinal stream) or INTn / UINTn
            }
        )
        return attrs

    def spec(self) -> NativeMvauSpec:
        """The layer as the shared contract (accumulator width from ``accDataType``)."""
        return NativeMvauSpec(
            self.get_nodeattr("weightFormat"),
            as_operand(self.get_nodeattr("inputFormat")),
            self.get_nodeattr("MW"),
            self.get_nodeattr("MH"),
            self.get_nodeattr("PE"),
            self.get_nodeattr("SIMD"),
            acc_bits=self.get_accumulator_datatype().bitwidth(),
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

    def minimize_weight_bit_width(self, model, datatype_only=False):
        """Weights are codes of a fixed width: nothing to minimize."""
        return DataType[self.get_nodeattr("weightDataType")]

    def minimize_accumulator_width(self, model, datatype_only=False):
        """Exact accumulator for these weights (`accumulator_range`), ``INT<bits>``; a graph-final
        layer rounds up to a multiple of 8 bits, as FINN's MVAU does."""
        spec = NativeMvauSpec(
            self.get_nodeattr("weightFormat"), as_operand(self.get_nodeattr("inputFormat")),
            self.get_nodeattr("MW"), self.get_nodeattr("MH"),
        )
        bits = signed_bits(*accumulator_range(spec, self.weight_codes(model)))
        if model.find_direct_successors(self.onnx_node) is None:
            bits = -(-bits // 8) * 8
        adt = DataType[f"INT{bits}"]
        self.set_nodeattr("accDataType", adt.name)
        self.set_nodeattr("outputDataType", adt.name)
        return adt

    def get_hw_compatible_weight_tensor(self, orig_weight_matrix):
        return super().get_hw_compatible_weight_tensor(np.asarray(orig_weight_matrix, dtype=np.int64))

    # Resource estimates: the layer's RTL (module docstring).
    def lut_estimation(self, fpgapart):
        return native_layer_cost(self.spec())["lut"]

    def bram_estimation(self, fpgapart):
        return native_layer_cost(self.spec())["bram"]

    def uram_estimation(self, fpgapart):
        return 0

    def dsp_estimation(self, fpgapart):
        return native_layer_cost(self.spec())["dsp"]

    def verify_node(self):
        messages = super().verify_node()
        try:
            self.spec()
            messages.append(f"MVAU_minifloat {self.get_nodeattr('weightFormat')} x {self.get_nodeattr('inputFormat')}")
        except ValueError as err:
            messages.append(f"invalid MVAU_minifloat attributes: {err}")
        return messages


class MVAU_minifloat_rtl(MVAU_minifloat, RTLBackend):  # noqa: N801 - FINN's naming of specializations
    """``MVAU_minifloat`` specialized to RTL (FINN's ``SpecializeLayers`` picks it). Executes in
    Python like the generic op; HDL generation belongs to the RTL generator
    (``finn_transforms.native.rtl``), not to FINN's IP flow."""

    def get_nodeattr_types(self):
        attrs = MVAU_minifloat.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        MVAU_minifloat.execute_node(self, context, graph)

    def _no_ip_flow(self, *args, **kwargs):
        raise NotImplementedError(
            f"{self.onnx_node.name}: FINN's IP generation does not cover MVAU_minifloat; generate its Verilog with "
            "finn_transforms.native.rtl"
        )

    generate_hdl = get_rtl_file_list = code_generation_ipi = _no_ip_flow


def _register() -> None:
    """Make both op types known to qonnx (``getCustomOp``) and to FINN's ``SpecializeLayers``
    (which looks up ``<op>_rtl`` in FINN's RTL variant table)."""
    import finn.custom_op.fpgadataflow.rtl as finn_rtl

    add_op_to_domain(HW_DOMAIN, MVAU_minifloat)
    add_op_to_domain(RTL_DOMAIN, MVAU_minifloat_rtl)
    finn_rtl.custom_op.setdefault("MVAU_minifloat_rtl", MVAU_minifloat_rtl)


_register()
