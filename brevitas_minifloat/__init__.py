"""Minifloat and learned-codebook quantizers for Brevitas, with exact QONNX export.

The names below are imported on first use (PEP 562), so ``import brevitas_minifloat`` and the
``brevitas-minifloat --help`` command do not pay for importing torch and Brevitas.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    "ExportRefused": "brevitas_minifloat.export",
    "export_qonnx": "brevitas_minifloat.export",
    "MinifloatFormat": "brevitas_minifloat.formats",
    "as_format": "brevitas_minifloat.formats",
    "minifloat_act_quant": "brevitas_minifloat.quant.minifloat",
    "minifloat_weight_quant": "brevitas_minifloat.quant.minifloat",
    "syq_weight_quant": "brevitas_minifloat.quant.syq",
    "quantize": "brevitas_minifloat.ptq",
    "output_mse": "brevitas_minifloat.ptq",
    "load_dataset": "brevitas_minifloat.data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'brevitas_minifloat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
