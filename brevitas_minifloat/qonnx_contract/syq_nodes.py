"""Reading a SYQ codebook back from the standard qonnx node that carries it.

SYQ weights export (`brevitas_minifloat.export.syq_handlers`) as the *quantized* weight ``Q = a_g * c``
behind a standard node that re-applies the codebook: ternary ``Quant(Q, scale=a, zero_point=0,
bit_width=2, signed=1, narrow=1)``, binary ``BipolarQuant(Q, scale=a)``. The scale initializer has the
weight's rank and keeps the size of the group axes only. :func:`syq_codebook` reads levels, group
axes, scales and codes from such a node; the lowering passes use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import NodeProto
from qonnx.core.modelwrapper import ModelWrapper

__all__ = ["SyqCodebook", "syq_codebook"]


@dataclass(frozen=True)
class SyqCodebook:
    """What a weight quantizer node in a QONNX graph says about a SYQ-style codebook."""

    levels: str  # "ternary" or "binary"
    group_axes: tuple[int, ...]  # weight axes along which the scale varies
    scale: np.ndarray  # float32, broadcastable to the weight
    codes: np.ndarray  # float32 in {-1, 0, +1}, weight shape

    @property
    def values(self) -> np.ndarray:
        return self.codes * self.scale


def syq_codebook(model: ModelWrapper, node: NodeProto) -> SyqCodebook | None:
    """The codebook of a weight ``Quant``/``BipolarQuant`` node, if it is a symmetric ternary/binary one.

    Returns ``None`` for nodes that are not symmetric ternary (2-bit signed narrow, zero point 0) or
    binary quantizers with constant input and scale.
    """
    if node.op_type not in ("Quant", "BipolarQuant"):
        return None
    w = model.get_initializer(node.input[0])
    scale = model.get_initializer(node.input[1])
    if w is None or scale is None:
        return None
    w = np.asarray(w, dtype=np.float32)
    scale = np.asarray(scale, dtype=np.float32)
    if node.op_type == "Quant":
        from qonnx.custom_op.registry import getCustomOp

        op = getCustomOp(node)
        zp = model.get_initializer(node.input[2])
        bw = model.get_initializer(node.input[3])
        if zp is None or bw is None or np.any(zp != 0) or float(bw) != 2.0:
            return None
        if not (op.get_nodeattr("signed") and op.get_nodeattr("narrow")):
            return None
        codes = np.clip(np.round(w / scale), -1, 1).astype(np.float32)
        levels = "ternary"
    else:
        codes = np.where(w >= 0, 1.0, -1.0).astype(np.float32)
        levels = "binary"
    full = np.broadcast_to(scale, w.shape) if scale.ndim <= w.ndim else None
    if full is None:
        return None
    pad = (1,) * (w.ndim - scale.ndim) + scale.shape
    group_axes = tuple(i for i, (n, m) in enumerate(zip(pad, w.shape)) if n == m and n > 1)
    return SyqCodebook(levels, group_axes, scale.reshape(pad), codes)
