"""`ScalarizeUniformScales`: a per-channel scale whose channels are all equal, as a scalar.

Upstream problem (FINN+ 1.6.1): FINN's scale-moving passes (``MoveScalarMulPastConv``,
``MoveScalarMulPastMatMul``, ``MoveScalarLinearPastInvariants``, ...) only move ``Mul`` s whose
constant has one element. A per-channel activation quantizer whose channels calibrated to the same
scale (common with power-of-two scales) exports a ``(1, C, 1, 1)`` constant, which then stays in front
of the next convolution: "could not map Im2Col/MatMul".

Matched: ``Mul(x, c)`` with ``x`` dynamic and ``c`` a constant of more than one element, all equal,
whose broadcast does not change the shape of ``x``.
Replaced: the same ``Mul`` with the scalar ``c.flat[0]`` (same values, same output shape).
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

__all__ = ["ScalarizeUniformScales"]


class ScalarizeUniformScales(Transformation):
    """Mul by a constant tensor of identical elements -> Mul by a scalar."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for node in model.graph.node:
            if node.op_type != "Mul" or model.get_initializer(node.input[0]) is not None:
                continue
            const = model.get_initializer(node.input[1])
            x_shape, out_shape = model.get_tensor_shape(node.input[0]), model.get_tensor_shape(node.output[0])
            if const is None or const.size < 2 or x_shape is None or list(x_shape) != list(out_shape or []):
                continue
            if np.all(const == const.flat[0]):
                scalar = model.make_new_valueinfo_name()
                model.set_initializer(scalar, np.asarray(const.flat[0], dtype=const.dtype))
                node.input[1] = scalar
                changed = True
        return model, changed
