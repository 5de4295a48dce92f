"""`SetNativeFolding`: PE/SIMD of the native minifloat layers for a cycle target.

FINN's ``SetFolding`` chooses folding by op type and only knows its own layer names, so it leaves
our layers as they were converted. This pass applies FINN's documented rules to them:

- ``MVAU_minifloat`` (FINN's MVAU rule): raise SIMD through the divisors of MW until the target is
  met or the per-PE weight stream would exceed ``mvau_wwidth_max`` bits, then PE through the
  divisors of MH;
- ``VVAU_minifloat`` (FINN's VVAU rule): PE through the divisors of Channels, then SIMD through the
  divisors of ``k_h * k_w``; the depthwise sliding window feeding it gets ``SIMD = PE`` (raised
  further while the window generator misses the target) and, for FINN's RTL generator,
  ``parallel_window`` when ``SIMD > 1``;
- ``OrdinalLUT`` and ``WideThresholding`` (FINN's elementwise rule): PE through the divisors of NumChannels.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

MVAU_OP_TYPES = ("MVAU_minifloat", "MVAU_minifloat_rtl")
VVAU_OP_TYPES = ("VVAU_minifloat", "VVAU_minifloat_rtl")
LUT_OP_TYPES = ("OrdinalLUT", "OrdinalLUT_rtl")
WIDE_THRESHOLD_OP_TYPES = ("WideThresholding", "WideThresholding_rtl")
#: Native layers with an accumulator (FINN's bit-width steps size them).
NATIVE_OP_TYPES = MVAU_OP_TYPES + VVAU_OP_TYPES


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


class SetNativeFolding(Transformation):
    """Fold every native layer to at most ``target_cycles_per_frame`` cycles (see module docstring)."""

    def __init__(self, target_cycles_per_frame: int, mvau_wwidth_max: int = 36):
        super().__init__()
        self.target = int(target_cycles_per_frame)
        self.mvau_wwidth_max = int(mvau_wwidth_max)

    def _raise(self, op, attr: str, limit: int, also=None) -> None:
        """Set ``attr`` to the first divisor of ``limit`` meeting the target (or ``limit``)."""
        for val in _divisors(limit):
            op.set_nodeattr(attr, val)
            if also is not None:
                also(val)
            if op.get_exp_cycles() <= self.target:
                return

    def apply(self, model: ModelWrapper):
        for node in model.graph.node:
            if node.op_type in MVAU_OP_TYPES:
                self._mvau(getCustomOp(node))
            elif node.op_type in VVAU_OP_TYPES:
                self._vvau(model, node)
            elif node.op_type in LUT_OP_TYPES + WIDE_THRESHOLD_OP_TYPES:
                op = getCustomOp(node)
                self._raise(op, "PE", op.get_nodeattr("NumChannels"))
        return model, False

    def _mvau(self, op) -> None:
        wbits = op.get_input_datatype(1).bitwidth()
        op.set_nodeattr("PE", 1)
        op.set_nodeattr("SIMD", 1)
        for simd in _divisors(op.get_nodeattr("MW")):
            if simd * wbits > self.mvau_wwidth_max and simd > 1:
                break
            op.set_nodeattr("SIMD", simd)
            if op.get_exp_cycles() <= self.target:
                break
        self._raise(op, "PE", op.get_nodeattr("MH"))

    def _vvau(self, model: ModelWrapper, node) -> None:
        op = getCustomOp(node)
        channels = op.get_nodeattr("Channels")
        op.set_nodeattr("SIMD", 1)
        self._raise(op, "PE", channels)
        if op.get_nodeattr("PE") == channels and op.get_exp_cycles() > self.target:
            self._raise(op, "SIMD", op.kernel_elems)
        swg = model.find_producer(node.input[0])
        if swg is None or not swg.op_type.startswith("ConvolutionInputGenerator"):
            return
        window = getCustomOp(swg)
        pe = op.get_nodeattr("PE")
        window.set_nodeattr("SIMD", pe)
        if window.get_exp_cycles() > self.target:  # the window replays per channel fold
            for val in (d for d in _divisors(channels) if d > pe):
                op.set_nodeattr("PE", val)
                window.set_nodeattr("SIMD", val)
                if window.get_exp_cycles() <= self.target:
                    break
        if swg.op_type == "ConvolutionInputGenerator_rtl":
            window.set_nodeattr("parallel_window", int(op.get_nodeattr("SIMD") > 1))
