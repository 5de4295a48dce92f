"""Old import path of ``MinifloatQuant``; it lives in `brevitas_minifloat.qonnx_contract.op`."""

from brevitas_minifloat.qonnx_contract.op import MinifloatQuant

__all__ = ["MinifloatQuant"]
