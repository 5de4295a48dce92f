"""Helpers shared by the minifloat lowering passes (no transformation lives here)."""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.modelwrapper import ModelWrapper

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.qonnx_contract import (
    FORMAT_KEY,
    SCALE_KEY,
    UnsupportedQuantNodeError,
    minifloat_format_of,
)

DEFAULT_MAX_WEIGHT_BITS = 16
DEFAULT_MAX_THRESHOLDS = 4096


class LoweringError(ValueError):
    """A minifloat quantizer that cannot be lowered exactly (the message names the node and why)."""


def label(node: NodeProto) -> str:
    return f"{node.op_type} node {node.name or '<unnamed>'!r} (output {node.output[0]!r})"


def format_of(model: ModelWrapper, node: NodeProto) -> MinifloatFormat:
    """The node's exact format; every reason not to lower (non-saturating, unknown specials) -> LoweringError."""
    try:
        return minifloat_format_of(model, node)
    except (UnsupportedQuantNodeError, ValueError) as err:
        raise LoweringError(f"cannot lower {label(node)}: {err}") from err


def scale_of(model: ModelWrapper, node: NodeProto) -> np.ndarray:
    """The quantizer's constant scale as float32 (finite, positive), else LoweringError."""
    scale = model.get_initializer(node.input[1])
    if scale is None:
        raise LoweringError(f"cannot lower {label(node)}: its scale {node.input[1]!r} is not a constant initializer")
    return checked_scale(np.asarray(scale, dtype=np.float32), node)


def checked_scale(scale: np.ndarray, node: NodeProto) -> np.ndarray:
    if scale.size == 0 or not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        raise LoweringError(f"cannot lower {label(node)}: the scale must be finite and positive")
    return scale


def scale_times_delta(scale: np.ndarray, fmt: MinifloatFormat, node: NodeProto) -> np.ndarray:
    """``fl32(scale * delta)``; refuses when float32 cannot hold it exactly (under/overflow), since then
    ``k * (scale*delta)`` would no longer equal the quantizer's ``q * scale`` bit for bit."""
    exact = scale.astype(np.float64) * fmt.delta
    with np.errstate(over="ignore", under="ignore"):
        sd = exact.astype(np.float32)
    if not np.array_equal(sd.astype(np.float64), exact) or np.any(np.abs(sd) < np.finfo(np.float32).tiny):
        raise LoweringError(
            f"cannot lower {label(node)}: scale * delta (delta = 2^{int(np.log2(fmt.delta))}) leaves float32's "
            "normal range, so the integer form would not be exact"
        )
    return sd


def drop_weight_record(model: ModelWrapper, tensor: str) -> None:
    """Forget a folded weight's format record (the tensor is replaced by its integer form)."""
    for ann in model.graph.quantization_annotation:
        if ann.tensor_name != tensor:
            continue
        keep = [(e.key, e.value) for e in ann.quant_parameter_tensor_names if e.key not in (FORMAT_KEY, SCALE_KEY)]
        del ann.quant_parameter_tensor_names[:]
        for key, value in keep:
            ann.quant_parameter_tensor_names.add(key=key, value=value)


def remove_if_orphaned(model: ModelWrapper, node: NodeProto) -> None:
    """Remove ``node`` if nothing consumes its outputs, then the constant inputs only it used, recursively
    for producers that become orphaned (e.g. the quantizer behind a Transpose)."""
    graph_outputs = {o.name for o in model.graph.output}
    if any(model.find_consumers(o) or o in graph_outputs for o in node.output):
        return
    model.graph.node.remove(node)
    for name in node.input:
        if not name or model.find_consumers(name) or name in graph_outputs:
            continue
        producer = model.find_producer(name)
        if producer is not None:
            remove_if_orphaned(model, producer)
        elif model.get_initializer(name) is not None:
            model.del_initializer(name)
            drop_weight_record(model, name)


def scale_output(model: ModelWrapper, node: NodeProto, scale: np.ndarray, suffix: str, where: str,
                 weight_ndim: int) -> None:
    """Multiply the output of the MatMul/Conv ``node`` by ``scale`` with a Mul right after it
    (named ``<node>_<suffix>``); a Conv bias moves behind that Mul as an Add, so the integer
    product stays free of float terms. ``where`` names the lowered quantizer in errors."""
    out = node.output[0]
    out_shape = model.get_tensor_shape(out)
    raw = model.make_new_valueinfo_name()
    node.output[0] = raw
    if out_shape is not None:
        model.set_tensor_shape(raw, out_shape)
    base = node.name or out
    pos = list(model.graph.node).index(node) + 1
    scale_name = model.make_new_valueinfo_name()
    model.set_initializer(scale_name, scale)
    bias = node.input[2] if node.op_type == "Conv" and len(node.input) > 2 and node.input[2] else None
    mul_out = out
    if bias is not None:
        b = model.get_initializer(bias)
        if b is None:
            raise LoweringError(f"cannot lower {where}: the bias of {label(node)} is not a constant initializer")
        del node.input[2]
        mul_out = model.make_new_valueinfo_name()
        if out_shape is not None:
            model.set_tensor_shape(mul_out, out_shape)
    model.graph.node.insert(pos, helper.make_node("Mul", [raw, scale_name], [mul_out], name=f"{base}_{suffix}"))
    if bias is not None:
        bname = model.make_new_valueinfo_name()
        model.set_initializer(bname, np.asarray(b, dtype=np.float32).reshape((1, -1) + (1,) * (weight_ndim - 2)))
        model.graph.node.insert(pos + 1, helper.make_node("Add", [mul_out, bname], [out], name=f"{base}_bias"))
        if not model.find_consumers(bias) and model.get_initializer(bias) is not None:
            model.del_initializer(bias)


_CHANNELS_FIRST = {2: "NC", 3: "NCW", 4: "NCHW"}
_CHANNELS_LAST = {2: "NC", 3: "NWC", 4: "NHWC"}


def activation_channel_axis(node: NodeProto, scale_shape: tuple[int, ...], rank: int | None) -> int | None:
    """The one axis an activation quantizer's parameters vary along (right-aligned against its input,
    numpy broadcasting), ``None`` per tensor; LoweringError when MultiThreshold cannot address it."""
    if int(np.prod(scale_shape)) == 1:
        return None
    if rank is None:
        raise LoweringError(f"cannot lower {label(node)}: per-channel scale but the input shape is unknown (run InferShapes)")
    if len(scale_shape) > rank:
        raise LoweringError(f"cannot lower {label(node)}: scale of rank {len(scale_shape)} for an input of rank {rank}")
    padded = (1,) * (rank - len(scale_shape)) + tuple(scale_shape)
    axes = [i for i, d in enumerate(padded) if d != 1]
    if len(axes) != 1:
        raise LoweringError(f"cannot lower {label(node)}: the scale {tuple(scale_shape)} varies along several axes")
    if axes[0] not in (1, rank - 1):
        raise LoweringError(
            f"cannot lower {label(node)}: the scale varies along axis {axes[0]}; MultiThreshold only supports "
            "channels on axis 1 or the last axis"
        )
    return axes[0]


def absorbable_relu(model: ModelWrapper, x: str) -> NodeProto | None:
    """The ``Relu`` producing ``x`` when it feeds only the quantizer (so it can be absorbed), else None."""
    relu = model.find_producer(x)
    if relu is not None and relu.op_type == "Relu" and len(model.find_consumers(x)) == 1 and x not in {
        o.name for o in model.graph.output
    }:
        return relu
    return None


def threshold_layout(model: ModelWrapper, x: str, axis: int | None, rank: int | None) -> str | None:
    """MultiThreshold ``data_layout`` for input ``x``: from the channel axis, else the tensor's layout
    annotation, else channels-first by rank."""
    if axis is None:
        annotated = model.get_tensor_layout(x)
        return "".join(annotated) if annotated is not None else _CHANNELS_FIRST.get(rank)
    return (_CHANNELS_FIRST if axis == 1 else _CHANNELS_LAST)[rank]


def make_multithreshold(
    model: ModelWrapper, x: str, thresholds: np.ndarray, out_bias: float, out_dtype, layout: str | None,
    shape, name: str,
) -> tuple[NodeProto, str]:
    """A MultiThreshold node (qonnx general domain) on ``x`` and its new output tensor's name."""
    t_name = model.make_new_valueinfo_name()
    model.set_initializer(t_name, np.asarray(thresholds, dtype=np.float32))
    k_name = model.make_new_valueinfo_name()
    if shape is not None:
        model.set_tensor_shape(k_name, shape)
    model.set_tensor_datatype(k_name, out_dtype)
    attrs = dict(out_dtype=out_dtype.name, out_bias=float(out_bias))
    if layout:
        attrs["data_layout"] = layout
    node = helper.make_node("MultiThreshold", [x, t_name], [k_name], domain="qonnx.custom_op.general", name=name, **attrs)
    return node, k_name


def replace_quantizer(model: ModelWrapper, node: NodeProto, new_nodes: list[NodeProto]) -> None:
    """Put ``new_nodes`` where the quantizer ``node`` was, remove it and its now unused constants."""
    pos = list(model.graph.node).index(node)
    for new in reversed(new_nodes):
        model.graph.node.insert(pos, new)
    model.graph.node.remove(node)
    for name in node.input[1:]:
        if name and not model.find_consumers(name) and model.get_initializer(name) is not None:
            model.del_initializer(name)
