"""`AlignResidualScales`: a residual Add of two quantized tensors with different scales, as an integer add.

Upstream problem (FINN+ 1.6.1): ``MoveLinearPastEltwiseAdd`` moves the two scale ``Mul`` s in front of
a residual ``Add`` past it only when their constants are identical. With separate quantizers at the
add (the shortcut and the block output quantized independently) the scales differ, both ``Mul`` s
stay, and FINN builds the add as float ``ElementwiseMul`` / ``ElementwiseAdd`` layers.

Matched: ``Add(Mul(a, s1), Mul(b, s2))`` with scalar constants, ``s1 != s2`` and ``s2 / s1`` an
integer ``r`` (exactly, as rationals of the float32 values; e.g. power-of-two scales), each ``Mul``
feeding only the ``Add``.
Replaced: ``Add(Mul(a, s1), Mul(Mul(b, r), s1))``: ``a*s1 + b*s2 == (a + r*b) * s1`` exactly, and
``MoveLinearPastEltwiseAdd`` then moves the common ``Mul(s1)`` past the add, which becomes an integer
add of ``a`` and ``r*b`` (an integer ``Mul`` by ``r``). Non-integer ratios are refused before the
build by `finn_transforms.topology.check_topology`.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

__all__ = ["AlignResidualScales"]


class AlignResidualScales(Transformation):
    """Different scalar scales at a residual Add with an integer ratio -> one common scale."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for add in list(model.graph.node):
            if add.op_type != "Add" or len(add.input) != 2:
                continue
            muls = [model.find_producer(name) for name in add.input]
            if any(m is None or m.op_type != "Mul" or len(model.find_consumers(m.output[0])) != 1 for m in muls):
                continue
            consts = [model.get_initializer(m.input[1]) for m in muls]
            if any(c is None or c.size != 1 or model.get_initializer(m.input[0]) is not None for c, m in zip(consts, muls)):
                continue
            s = [Fraction(float(np.float32(c.reshape(())))) for c in consts]
            if s[0] == s[1] or s[0] <= 0 or s[1] <= 0:
                continue
            small, large = (0, 1) if s[0] < s[1] else (1, 0)
            ratio = s[large] / s[small]
            if ratio.denominator != 1:
                continue
            mul = muls[large]
            scaled = model.make_new_valueinfo_name()
            factor = model.make_new_valueinfo_name()
            model.set_initializer(factor, np.asarray(float(ratio), dtype=np.float32))
            model.graph.node.insert(
                list(model.graph.node).index(mul),
                helper.make_node("Mul", [mul.input[0], factor], [scaled], name=f"{mul.name}_ratio"),
            )
            mul.input[0] = scaled
            common = model.make_new_valueinfo_name()  # a new tensor: the old constant may be shared
            model.set_initializer(common, np.asarray(consts[small], dtype=np.float32).reshape(consts[large].shape))
            mul.input[1] = common
            return model.transform(InferShapes()).transform(InferDataTypes()), True
        return model, False
