"""`SetNativeFolding`: PE/SIMD of native minifloat layers for a cycle target.

FINN's ``SetFolding`` chooses folding by op type and only knows its own MVAU names, so it leaves
``MVAU_minifloat`` nodes fully folded. This pass applies FINN's documented MVAU rule to them: raise
SIMD through the divisors of MW until the target is met or the per-PE weight stream would exceed
``mvau_wwidth_max`` bits, then raise PE through the divisors of MH until the target is met.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

NATIVE_OP_TYPES = ("MVAU_minifloat", "MVAU_minifloat_rtl")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


class SetNativeFolding(Transformation):
    """Fold every `MVAU_minifloat` to at most ``target_cycles_per_frame`` cycles (see module docstring)."""

    def __init__(self, target_cycles_per_frame: int, mvau_wwidth_max: int = 36):
        super().__init__()
        self.target = int(target_cycles_per_frame)
        self.mvau_wwidth_max = int(mvau_wwidth_max)

    def apply(self, model: ModelWrapper):
        for node in model.graph.node:
            if node.op_type not in NATIVE_OP_TYPES:
                continue
            op = getCustomOp(node)
            wbits = op.get_input_datatype(1).bitwidth()
            op.set_nodeattr("PE", 1)
            op.set_nodeattr("SIMD", 1)
            for simd in _divisors(op.get_nodeattr("MW")):
                if simd * wbits > self.mvau_wwidth_max and simd > 1:
                    break
                op.set_nodeattr("SIMD", simd)
                if op.get_exp_cycles() <= self.target:
                    break
            for pe in _divisors(op.get_nodeattr("MH")):
                op.set_nodeattr("PE", pe)
                if op.get_exp_cycles() <= self.target:
                    break
        return model, False
