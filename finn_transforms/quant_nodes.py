"""Old import path of the quantizer-node helpers; they live in `brevitas_minifloat.qonnx_contract.quant_nodes`."""

from brevitas_minifloat.qonnx_contract.quant_nodes import (
    MINIFLOAT_QUANT_OPS,
    UnsupportedQuantNodeError,
    is_minifloat_quant,
    minifloat_format_of,
)

__all__ = ["MINIFLOAT_QUANT_OPS", "UnsupportedQuantNodeError", "is_minifloat_quant", "minifloat_format_of"]
