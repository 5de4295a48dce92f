"""Export of minifloat (and SYQ) Brevitas models to QONNX."""

from brevitas_minifloat.export.handlers import ExportRefused
from brevitas_minifloat.export.qonnx import MinifloatQONNXManager, export_qonnx

__all__ = ["ExportRefused", "MinifloatQONNXManager", "export_qonnx"]
