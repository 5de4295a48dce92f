"""Old import path of the weight-format records; they live in `brevitas_minifloat.qonnx_contract.annotations`."""

from brevitas_minifloat.qonnx_contract.annotations import (
    FORMAT_KEY,
    SCALE_KEY,
    WeightFormatRecord,
    get_tensor_annotation,
    read_weight_format,
    record_weight_format,
    set_tensor_annotation,
)

__all__ = [
    "FORMAT_KEY",
    "SCALE_KEY",
    "WeightFormatRecord",
    "get_tensor_annotation",
    "read_weight_format",
    "record_weight_format",
    "set_tensor_annotation",
]
