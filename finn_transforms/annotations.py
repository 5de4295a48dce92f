"""Old import path of the weight-format records; they live in `brevitas_minifloat.qonnx_contract.annotations`."""

from brevitas_minifloat.qonnx_contract import annotations as _contract
from brevitas_minifloat.qonnx_contract.annotations import *  # noqa: F403

__all__ = _contract.__all__
