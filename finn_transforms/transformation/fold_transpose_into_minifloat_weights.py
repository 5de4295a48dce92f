"""Old import path of ``FoldTransposeIntoMinifloatWeights``; export runs it, so it lives in
`brevitas_minifloat.qonnx_contract.fold_transpose`."""

from brevitas_minifloat.qonnx_contract.fold_transpose import FoldTransposeIntoMinifloatWeights

__all__ = ["FoldTransposeIntoMinifloatWeights"]
