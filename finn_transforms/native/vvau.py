"""``VVAU_minifloat``: FINN's depthwise vector-vector unit with minifloat weight codes, exact accumulator.

A subclass of FINN's ``VVAU`` HW op (PE over channels, SIMD over the ``k_h * k_w`` kernel elements,
folded shapes, stream widths, ``get_exp_cycles`` and weight-memory estimates are FINN's). The
arithmetic is that of `finn_transforms.native.spec` with one dot product of length ``K = k_h * k_w``
per channel, so the layer is described by the `NativeMvauSpec` ``(mw=K, mh=Channels, pe=PE,
simd=SIMD)``: weight ``(mh, mw)`` row ``c`` holds channel ``c``'s kernel.

- input 0: ordinals of ``inputFormat`` or integers, in FINN's VVAU input layout (the depthwise
  sliding window's interleaving, `depthwise_windows`);
- input 1: the weight codes of ``weightFormat``, ``(Channels, 1, k_h, k_w)`` (FINN's VVAU weight
  shape), ``weightDataType`` ``UINT<code bits>``;
- output: the exact per-channel dot products in units of ``delta_w * delta_a``, ``INT<acc bits>``,
  NHWC (``noActivation`` only: the next thresholds are FINN's standalone Thresholding).

RTL: `finn_transforms.native.vvau_rtl.NativeVvauRtl` (the native MVAU generator's layer with FINN's
VVAU stream: ``PE * SIMD`` distinct inputs per beat, no replay). It consumes the stream FINN's VVAU
consumes in hardware, the order of FINN's VVAU input with ``pe = PE`` (`depthwise_windows`): the
built graph's Python execution of the sliding window (im2col order, ``pe = Channels``, `window_pe`)
is untangled to windows first (`windows`), as FINN's own execution does. Resource estimates
(``cost_unit = "vvau"``): `native_layer_cost` of this RTL, the model fitted to synthesized depthwise
layers (`finn_transforms.native.cost_fit_vvau`; never the local synthesis cache, as for the MVAU),
its weight memory counted as FINN's VVAU counts it (docs/native_layer_cost.md states the model's
held-out error).
"""

from __future__ import annotations

import numpy as np

from brevitas_minifloat.hw.operands import as_operand
from finn_transforms.native.hw_common import NativeUnit, register_hw_ops, rtl_variant, store_output
from finn_transforms.native.spec import NativeMvauSpec, reference_vvau

from finn.custom_op.fpgadataflow.vectorvectoractivation import VVAU

__all__ = ["VVAU_minifloat", "VVAU_minifloat_rtl", "depthwise_windows", "window_pe"]

#: Producers after which FINN's VVAU execution assumes channel-major windows (``pe = Channels``).
_WINDOW_PRODUCERS = ("Im2Col", "ConvolutionInputGenerator")


def window_pe(producer_op_type: str | None, channels: int, pe: int) -> int:
    """The PE interleaving of a VVAU input as FINN's ``VVAU.execute_node`` reads it: ``Channels``
    after a generic ``Im2Col`` / ``ConvolutionInputGenerator``, else the node's ``PE``."""
    return channels if producer_op_type in _WINDOW_PRODUCERS else pe


def depthwise_windows(x: np.ndarray, kernel_elems: int, channels: int, pe: int) -> np.ndarray:
    """FINN's VVAU input ``(N, H, W, C * K)`` (``C / pe`` folds of ``K`` window elements of ``pe``
    channels) -> ``(N, H, W, K, C)``: element ``[.., k, c]`` is channel ``c``'s ``k``-th window value."""
    n, h, w, _ = x.shape
    return x.reshape(n, h, w, channels // pe, kernel_elems, pe).transpose(0, 1, 2, 4, 3, 5).reshape(
        n, h, w, kernel_elems, channels
    )


class VVAU_minifloat(NativeUnit, VVAU):  # noqa: N801 - qonnx names the op type after the class
    """Native minifloat depthwise unit (see the module docstring for the stream contract)."""

    cost_unit = "vvau"

    @property
    def kernel_elems(self) -> int:
        k_h, k_w = self.get_nodeattr("Kernel")
        return int(k_h * k_w)

    def spec(self, acc_bits: int | None = -1) -> NativeMvauSpec:
        """The layer's arithmetic as a `NativeMvauSpec` (``mw = K``, ``mh = Channels``); accumulator
        from ``accDataType`` unless ``acc_bits`` is given (None: exact for any weights)."""
        return NativeMvauSpec(
            self.get_nodeattr("weightFormat"),
            as_operand(self.get_nodeattr("inputFormat")),
            self.kernel_elems,
            self.get_nodeattr("Channels"),
            self.get_nodeattr("PE"),
            self.get_nodeattr("SIMD"),
            acc_bits=self.get_accumulator_datatype().bitwidth() if acc_bits == -1 else acc_bits,
        )

    def codes_of(self, weights: np.ndarray) -> np.ndarray:
        """Codes ``(Channels, K)`` (the spec's ``(mh, mw)``) of a ``(Channels, 1, k_h, k_w)`` weight tensor."""
        return np.asarray(weights).reshape(self.get_nodeattr("Channels"), self.kernel_elems).astype(np.int64)

    def weight_codes(self, model) -> np.ndarray:
        return self.codes_of(model.get_initializer(self.onnx_node.input[1]))

    def windows(self, x: np.ndarray, producer_op_type: str | None) -> np.ndarray:
        """Windows ``(N, H, W, K, Channels)`` of FINN-layout inputs ``x`` (interleaving by `window_pe`)."""
        channels = self.get_nodeattr("Channels")
        pe = window_pe(producer_op_type, channels, self.get_nodeattr("PE"))
        return depthwise_windows(np.asarray(x).astype(np.int64), self.kernel_elems, channels, pe)

    def exact_output(self, x: np.ndarray, weights: np.ndarray, producer_op_type: str | None) -> np.ndarray:
        """Exact ``(N, H, W, Channels)`` outputs (Python ints) of FINN-layout inputs ``x``."""
        spec = self.spec()
        win = self.windows(x, producer_op_type)
        y = reference_vvau(spec, self.codes_of(weights), win.reshape((-1,) + win.shape[-2:]))
        return y.reshape(win.shape[:-2] + (spec.mh,))

    def execute_node(self, context, graph):
        node = self.onnx_node
        producer = next((n for n in graph.node if node.input[0] in n.output), None)
        y = self.exact_output(context[node.input[0]], context[node.input[1]], producer.op_type if producer else None)
        store_output(context, node, y)


VVAU_minifloat_rtl = rtl_variant(
    VVAU_minifloat,
    "FINN's IP generation does not cover VVAU_minifloat; generate its Verilog with finn_transforms.native.vvau_rtl",
)
register_hw_ops(VVAU_minifloat, VVAU_minifloat_rtl)
