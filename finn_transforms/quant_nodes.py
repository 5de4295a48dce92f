"""Old import path of the quantizer-node helpers; they live in `brevitas_minifloat.qonnx_contract.quant_nodes`."""

from brevitas_minifloat.qonnx_contract import quant_nodes as _contract
from brevitas_minifloat.qonnx_contract.quant_nodes import *  # noqa: F403

__all__ = _contract.__all__
