"""QONNX export of SYQ weights with standard qonnx ops, and reading the codebook back.

A SYQ weight is ``Q = a_g * c`` with codes ``c`` in {-1, 0, +1} (ternary) or {-1, +1} (binary).
Thresholding is not rounding, so the float weight ``W`` cannot be re-quantized by a ``Quant`` node
into ``Q``. The export therefore stores the *quantized* weight ``Q`` as the initializer and lets a
standard node re-apply the (now idempotent) codebook:

- ternary: ``Quant(Q, scale=a, zero_point=0, bit_width=2, signed=1, narrow=1, rounding_mode=ROUND)``
- binary: ``BipolarQuant(Q, scale=a)``

``Q / a`` is checked to be exactly +-1 / 0 in float32 at export, so qonnx's execution of those nodes
returns ``Q`` bit for bit. The scale initializer has the weight's rank and keeps the size of the
group axes only (``layer`` all ones, ``channel`` ``(out, 1, ...)``, ``row`` ``(1, 1, kh, 1)``,
``pixel`` ``(1, 1, kh, kw)`` or ``(1, 1, k)``): `brevitas_minifloat.qonnx_contract.syq_nodes.syq_codebook`
reads levels, group axes, scales and codes back from the graph. qonnx's constant folding spares ``Quant``/``BipolarQuant``, so these
nodes survive ``cleanup_model`` for the lowering passes.
"""

from __future__ import annotations

import torch
from brevitas.export.onnx.handler import ONNXBaseHandler
from brevitas.export.onnx.qonnx.function import BrevitasBinaryQuantOp, BrevitasQuantOp

from brevitas_minifloat.export.handlers import ExportRefused
from brevitas_minifloat.qonnx_contract.syq_nodes import SyqCodebook, syq_codebook
from brevitas_minifloat.quant.syq import SyqWeightQuantProxy

__all__ = ["SyqCodebook", "SyqWeightHandler", "check_codes", "syq_codebook"]


def check_codes(q: torch.Tensor, scale: torch.Tensor, ternary: bool, where: str = "layer") -> None:
    """Raise `ExportRefused` unless ``q / scale`` is exactly the code set in float32."""
    ratio = (q.detach().float() / scale.detach().float()).abs()
    ok = (ratio == 1) | (ratio == 0) if ternary else ratio == 1
    if not bool(ok.all()):
        bad = ratio[~ok].flatten()[:4].tolist()
        raise ExportRefused(
            f"{where}: SYQ weight / scale is not exactly {'+-1 or 0' if ternary else '+-1'} in float32 "
            f"(e.g. {bad}); the QONNX node would not reproduce the weight"
        )


class SyqWeightHandler(ONNXBaseHandler):
    """Claims `SyqWeightQuantProxy`: emits ``Quant`` (ternary) / ``BipolarQuant`` (binary) on ``Q``."""

    handled_layer = SyqWeightQuantProxy

    def __init__(self):
        super().__init__()
        self.quant_weights = {}
        self.symbolic_kwargs = None

    def prepare_for_export(self, module: SyqWeightQuantProxy) -> None:
        if not module.is_quant_enabled:
            self.symbolic_kwargs = None
            return
        ternary = module.levels == "ternary"
        self.quant_weights = {}
        scale = None
        for layer in module.tracked_module_list:
            qt = layer.quant_weight()
            q, scale = qt.value.detach(), qt.scale.detach()
            check_codes(q, scale, ternary, type(layer).__name__)
            self.quant_weights[layer.weight.data_ptr()] = q
        self.first_weight = q
        self.symbolic_kwargs = {
            "scale": scale,
            "zero_point": torch.zeros((), dtype=scale.dtype),
            "bit_width": torch.tensor(2.0 if ternary else 1.0, dtype=scale.dtype),
            "narrow_range": True,
            "signed": True,
            "rounding_mode": "ROUND",
        }
        self.quant_op = BrevitasQuantOp if ternary else BrevitasBinaryQuantOp

    def symbolic_execution(self, x: torch.Tensor):
        if self.symbolic_kwargs is None:
            raise RuntimeError("SYQ export handler used with quantization disabled")
        # The float weight x is replaced by the quantized weight (a constant of the traced graph).
        try:
            q = self.quant_weights.get(x.data_ptr(), self.first_weight)
        except RuntimeError:  # FakeTensor under dynamo: one layer per SYQ proxy anyway
            q = self.first_weight
        kw = self.symbolic_kwargs
        y = self.export_op(self.quant_op, q, *kw.values())
        return y, kw["scale"], kw["zero_point"], kw["bit_width"]
