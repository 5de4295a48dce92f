"""FINN builder steps for the topologies FPGA users build: residual blocks, pooling heads, Conv1d.

- ``step_streamline`` replaces FINN's step of the same name (same name, so intermediate models and
  `finn_transforms.verify` find it): 3D (Conv1d) graphs become 4D (`Change3DTo4DTensorsWithPools`;
  FINN+'s ``LowerConvsToMatMul`` raises ``IndexError`` on 3D convolutions), then
  `StreamlineTopologies` (residual blocks, average pooling heads).
- ``step_check_topology`` runs before FINN's first step and refuses, with a `TopologyError` naming the
  node, the pattern and what to change, the patterns FINN cannot build exactly and would otherwise
  fail on deep inside (or build with float layers): see `check_topology`.

``build_estimates`` and ``minifloat_estimate_steps`` use both (`finn_transforms.build.splice_steps`).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import get_by_name

from finn_transforms.transformation.change_3d_to_4d_with_pools import Change3DTo4DTensorsWithPools
from finn_transforms.transformation.streamline_topologies import StreamlineTopologies

__all__ = ["CHECK_STEP", "TOPOLOGY_STEPS", "TopologyError", "check_topology", "step_check_topology", "step_streamline"]

CHECK_STEP = "finn_transforms.topology.step_check_topology"

#: Ops that pass values through unchanged in value (layout, padding with 0, max selection).
_TRANSPARENT = frozenset({"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "MaxPool", "Pad"})
_MATMULS = frozenset({"Conv", "MatMul", "Gemm"})
_QUANTIZERS = frozenset({"Quant", "BipolarQuant", "BinaryQuant", "FloatQuant", "MinifloatQuant", "MultiThreshold", "Trunc"})


class TopologyError(ValueError):
    """A pattern FINN cannot build exactly; the message names the node, the pattern and the fix."""


def _name(node: NodeProto) -> str:
    return f"{node.op_type} node {node.name or '<unnamed>'!r}"


def _attr(node: NodeProto, name: str, default):
    attr = get_by_name(node.attribute, name)
    return default if attr is None else helper.get_attribute_value(attr)


def _source(model: ModelWrapper, tensor: str) -> NodeProto | None:
    """The producer of ``tensor``, looking through value-preserving ops."""
    node = model.find_producer(tensor)
    while node is not None and node.op_type in _TRANSPARENT:
        node = model.find_producer(node.input[0])
    return node


def _const(model: ModelWrapper, node: NodeProto, index: int) -> np.ndarray | None:
    return model.get_initializer(node.input[index]) if len(node.input) > index and node.input[index] else None


def _activation_scale(model: ModelWrapper, node: NodeProto | None) -> np.ndarray | None:
    """The output scale of an activation quantizer: ``Mul(c)`` after a MultiThreshold, or a Quant's scale."""
    if node is None:
        return None
    if node.op_type == "Mul" and model.get_initializer(node.input[0]) is None:
        inner = _source(model, node.input[0])
        if inner is not None and inner.op_type in _QUANTIZERS:
            return _const(model, node, 1)
    if node.op_type in ("Quant", "FloatQuant", "MinifloatQuant") and model.get_initializer(node.input[0]) is None:
        return _const(model, node, 1)
    return None


def _check_channel_scales(model: ModelWrapper) -> None:
    for node in model.graph.node:
        if node.op_type not in _MATMULS or model.get_initializer(node.input[0]) is not None:
            continue
        producer = _source(model, node.input[0])
        scale = _activation_scale(model, producer)
        if scale is None or np.unique(scale).size == 1:  # equal channels: ScalarizeUniformScales
            continue
        raise TopologyError(
            f"{_name(producer)} applies a per-channel activation scale ({scale.size} values) in front of "
            f"{_name(node)}: the scale lies along the reduction axis of the integer matmul, so FINN cannot fold "
            "it into weights or thresholds. Use a per-tensor quantizer for this activation (per_channel=False)."
        )


def _check_pools(model: ModelWrapper) -> None:
    for node in model.graph.node:
        if node.op_type == "AveragePool":
            pads = list(_attr(node, "pads", []))
            if _attr(node, "ceil_mode", 0) or any(d != 1 for d in _attr(node, "dilations", [1])):
                raise TopologyError(
                    f"{_name(node)}: average pooling with ceil_mode or dilation has windows of varying size, "
                    "which the exact sum-and-threshold lowering does not cover. Use ceil_mode=False, no dilation."
                )
            if any(pads) and not _attr(node, "count_include_pad", 0):
                raise TopologyError(
                    f"{_name(node)}: padded average pooling with count_include_pad=False divides border windows "
                    "by fewer elements. Use count_include_pad=True (torch's default) or no padding."
                )
        if node.op_type not in ("AveragePool", "GlobalAveragePool"):
            continue
        consumer = _first_non_transparent_consumer(model, node.output[0])
        if consumer is not None and consumer.op_type in _MATMULS:
            raise TopologyError(
                f"{_name(node)} feeds {_name(consumer)} without a quantizer: the average is not an integer, so "
                "FINN cannot map the matmul. Quantize the pooled values (e.g. a QuantIdentity after the pool)."
            )


def _first_non_transparent_consumer(model: ModelWrapper, tensor: str) -> NodeProto | None:
    consumers = model.find_consumers(tensor)
    while len(consumers) == 1 and consumers[0].op_type in _TRANSPARENT:
        consumers = model.find_consumers(consumers[0].output[0])
    return consumers[0] if len(consumers) == 1 else None


def _check_residual_scales(model: ModelWrapper) -> None:
    for node in model.graph.node:
        if node.op_type != "Add" or any(model.get_initializer(i) is not None for i in node.input):
            continue
        scales = [_activation_scale(model, _source(model, name)) for name in node.input]
        if any(s is None or s.size != 1 for s in scales):
            continue
        ratio = Fraction(float(scales[0].reshape(()))) / Fraction(float(scales[1].reshape(())))
        if ratio.numerator == 1 or ratio.denominator == 1:  # equal, or one an integer multiple of the other
            continue
        raise TopologyError(
            f"{_name(node)} adds two quantized tensors with scales {float(scales[0].reshape(())):g} and "
            f"{float(scales[1].reshape(())):g} (ratio {float(ratio):g}, not an integer): FINN's integer add needs "
            "one scale to be an integer multiple of the other. Share one quantizer for both inputs of the add, "
            "or use power-of-two scales."
        )


def check_topology(model: ModelWrapper) -> None:
    """Raise `TopologyError` for patterns FINN cannot build exactly (checked on the QONNX / lowered graph):

    - a per-channel activation scale in front of a Conv / MatMul / Gemm (along the reduction axis);
    - ``AveragePool`` with ``ceil_mode``, dilation, or padding with ``count_include_pad=0``;
    - an average pool whose output reaches a Conv / MatMul / Gemm without a quantizer;
    - a residual ``Add`` of two quantized tensors whose scales have a non-integer ratio.
    """
    _check_channel_scales(model)
    _check_pools(model)
    _check_residual_scales(model)


def step_check_topology(model: ModelWrapper, cfg: Any) -> ModelWrapper:
    """Builder step: `check_topology`, before FINN's ``step_qonnx_to_finn`` (and after our lowering)."""
    check_topology(model)
    return model


def step_streamline(model: ModelWrapper, cfg: Any) -> ModelWrapper:
    """FINN's ``step_streamline`` for residual, pooling-head and Conv1d graphs (module docstring)."""
    model = model.transform(Change3DTo4DTensorsWithPools())
    return model.transform(StreamlineTopologies())


#: FINN step name -> ours (same name).
TOPOLOGY_STEPS: dict[str, Callable[[ModelWrapper, Any], ModelWrapper]] = {"step_streamline": step_streamline}
