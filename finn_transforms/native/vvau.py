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

Resource estimates: no VVAU RTL is generated (the native MVAU generator's schedule broadcasts one
SIMD input to every PE and replays it across output folds; a VVAU streams ``PE * SIMD`` distinct
inputs per beat and never replays). The estimate is `native_layer_cost` of the MVAU with the same
arithmetic and memory (``PE * SIMD`` MACs of these formats, ``PE`` accumulators, a ``K * C /
(PE * SIMD)``-deep weight ROM), an approximation stated in docs/native_minifloat.md.
"""

from __future__ import annotations

import numpy as np

from brevitas_minifloat.hw.operands import as_operand
from finn_transforms.native.hw_common import NativeUnit, register_hw_ops, rtl_variant, store_output
from finn_transforms.native.spec import NativeMvauSpec, check_accumulator

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

    def exact_output(self, x: np.ndarray, weights: np.ndarray, producer_op_type: str | None) -> np.ndarray:
        """Exact ``(N, H, W, Channels)`` outputs (Python ints) of FINN-layout inputs ``x``."""
        spec = self.spec()
        pe = window_pe(producer_op_type, spec.mh, self.get_nodeattr("PE"))
        win = depthwise_windows(np.asarray(x).astype(np.int64), spec.mw, spec.mh, pe)
        emb_w = spec.weight_embedded(self.codes_of(weights))  # (C, K)
        emb_x = spec.input_embedded(win)  # (N, H, W, K, C)
        return check_accumulator(spec, (emb_x * emb_w.T).sum(axis=-2))

    def execute_node(self, context, graph):
        node = self.onnx_node
        producer = next((n for n in graph.node if node.input[0] in n.output), None)
        y = self.exact_output(context[node.input[0]], context[node.input[1]], producer.op_type if producer else None)
        store_output(context, node, y)


VVAU_minifloat_rtl = rtl_variant(
    VVAU_minifloat, "no HDL is generated for VVAU_minifloat (native depthwise layers have a Python execution and a cost "
    "estimate only; see docs/native_minifloat.md)"
)
register_hw_ops(VVAU_minifloat, VVAU_minifloat_rtl)
