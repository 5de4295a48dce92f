"""Exact evaluation: the reference every stage of the toolchain is measured against.

- `evaluate` (`finn_transforms.exact.reference`): a QONNX / FINN-ONNX graph in exact rationals;
- `execute_exact_hw` (`finn_transforms.exact.hw_executor`): FINN HW graphs with exact integers;
- `register_op` / `register_hw_op`: add exact implementations of further ops.
"""

from finn_transforms.exact.hw_executor import execute_exact_hw, register_hw_op
from finn_transforms.exact.reference import evaluate, register_op
from finn_transforms.exact.tensor import Exact, ExactError

__all__ = ["Exact", "ExactError", "evaluate", "execute_exact_hw", "register_hw_op", "register_op"]
