"""Brevitas export handlers for our minifloat proxies (Brevitas dispatches on the exact proxy class)."""

from __future__ import annotations

import torch
from brevitas.export.onnx.handler import ONNXBaseHandler

from brevitas_minifloat.export.ops import MinifloatQuantOp
from brevitas_minifloat.quant.minifloat import MinifloatActQuantProxy, MinifloatWeightQuantProxy


class ExportRefused(ValueError):
    """Raised when a layer's quantization cannot be represented exactly in QONNX."""


class _MinifloatHandler(ONNXBaseHandler):
    def _prepare(self, module, quant_tensor) -> None:
        if getattr(module, "is_groupwise", False):
            raise ExportRefused(f"{module.__class__.__name__}: groupwise minifloat scales cannot be exported to QONNX")
        self.fmt = module.minifloat_format
        self.scale = quant_tensor.scale.detach()
        zp = torch.zeros_like(self.scale)
        fmt = self.fmt
        self.return_args = (
            self.scale, zp, torch.tensor(float(fmt.exponent_bits)), torch.tensor(float(fmt.mantissa_bits)),
            torch.tensor(float(fmt.bias)), True, quant_tensor.inf_values, quant_tensor.nan_values,
        )

    def symbolic_execution(self, x: torch.Tensor, *args):
        y = self.export_op(MinifloatQuantOp, x, self.scale, self.fmt)
        return (y, *self.return_args)


class MinifloatWeightHandler(_MinifloatHandler):
    handled_layer = MinifloatWeightQuantProxy

    def prepare_for_export(self, module) -> None:
        if module.is_quant_enabled:
            self._prepare(module, module.tracked_module_list[0].quant_weight())


class MinifloatActHandler(_MinifloatHandler):
    handled_layer = MinifloatActQuantProxy

    def prepare_for_export(self, module) -> None:
        if module.is_quant_enabled:
            self._prepare(module, _ScaleOnly(module))


class _ScaleOnly:
    """The parts of an activation quant tensor the handler needs, read from the proxy's cache."""

    def __init__(self, proxy):
        self.scale = proxy.scale()
        self.inf_values = proxy.inf_values()
        self.nan_values = proxy.nan_values()
