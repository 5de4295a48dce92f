"""Records of a weight's minifloat format in the ONNX graph's tensor annotations.

qonnx's ``cleanup_model`` constant-folds weight ``FloatQuant`` / ``MinifloatQuant`` nodes (its
``FoldConstants`` only spares ``Quant``/``BipolarQuant``), which would erase the weight format the
lowering needs. Export therefore also records the format and scale on the quantizer's output tensor
(``graph.quantization_annotation``, the same place qonnx keeps ``finn_datatype``); folding keeps the
tensor name, so the record survives and the lowering can recover the quantizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import onnx
from qonnx.core.modelwrapper import ModelWrapper

from brevitas_minifloat.formats import MinifloatFormat

__all__ = [
    "FORMAT_KEY",
    "SCALE_KEY",
    "WeightFormatRecord",
    "get_tensor_annotation",
    "read_weight_format",
    "record_weight_format",
    "set_tensor_annotation",
]

FORMAT_KEY = "minifloat_format"
SCALE_KEY = "minifloat_scale"


def _annotation(model: ModelWrapper, tensor: str, create: bool) -> onnx.TensorAnnotation | None:
    for ann in model.graph.quantization_annotation:
        if ann.tensor_name == tensor:
            return ann
    if not create:
        return None
    ann = model.graph.quantization_annotation.add()
    ann.tensor_name = tensor
    return ann


def set_tensor_annotation(model: ModelWrapper, tensor: str, key: str, value: str) -> None:
    ann = _annotation(model, tensor, create=True)
    for entry in ann.quant_parameter_tensor_names:
        if entry.key == key:
            entry.value = value
            return
    ann.quant_parameter_tensor_names.add(key=key, value=value)


def get_tensor_annotation(model: ModelWrapper, tensor: str, key: str) -> str | None:
    ann = _annotation(model, tensor, create=False)
    if ann is None:
        return None
    for entry in ann.quant_parameter_tensor_names:
        if entry.key == key:
            return entry.value
    return None


@dataclass(frozen=True)
class WeightFormatRecord:
    """A weight tensor's format and (float32) scale, as recorded at export."""

    fmt: MinifloatFormat
    scale: np.ndarray


def record_weight_format(model: ModelWrapper, tensor: str, fmt: MinifloatFormat, scale: np.ndarray) -> None:
    scale = np.asarray(scale, dtype=np.float32)
    # float32 -> Python float -> repr round-trips exactly.
    payload = {"shape": list(scale.shape), "values": [float(v) for v in scale.ravel()]}
    set_tensor_annotation(model, tensor, FORMAT_KEY, fmt.name)
    set_tensor_annotation(model, tensor, SCALE_KEY, json.dumps(payload))


def read_weight_format(model: ModelWrapper, tensor: str) -> WeightFormatRecord | None:
    name = get_tensor_annotation(model, tensor, FORMAT_KEY)
    if name is None:
        return None
    payload = json.loads(get_tensor_annotation(model, tensor, SCALE_KEY) or "null")
    if payload is None:
        raise ValueError(f"tensor {tensor!r} records minifloat format {name} but no scale")
    scale = np.asarray(payload["values"], dtype=np.float32).reshape(payload["shape"])
    return WeightFormatRecord(MinifloatFormat.parse(name), scale)
