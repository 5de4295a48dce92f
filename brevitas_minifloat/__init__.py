"""Minifloat and learned-codebook quantizers for Brevitas, with exact QONNX export."""

from brevitas_minifloat.export import ExportRefused, export_qonnx
from brevitas_minifloat.formats import MinifloatFormat, as_format
from brevitas_minifloat.quant.minifloat import minifloat_act_quant, minifloat_weight_quant
from brevitas_minifloat.quant.syq import syq_weight_quant

__all__ = [
    "ExportRefused",
    "MinifloatFormat",
    "as_format",
    "export_qonnx",
    "minifloat_act_quant",
    "minifloat_weight_quant",
    "syq_weight_quant",
]
