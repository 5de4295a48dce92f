"""Conversion of streamlined graphs to native minifloat layers (run after FINN's streamlining).

`MoveOrdinalDecodeForward` moves each ``OrdinalDecode`` past the data movement between it and its
MatMul (transposes, reshapes, max pooling, im2col): the decode is an increasing elementwise map,
so these ops give the same result on ordinals. `InferMVAU_minifloat` then replaces
``[OrdinalDecode ->] MatMul`` with a `MVAU_minifloat` reading the ordinals (or integers) directly,
and `InferVVAU_minifloat` a depthwise one (FINN's VVAU path) with a `VVAU_minifloat`.
The MatMul computed ``k_a . k_w`` in embedded units, the native layer computes the same integers,
so the scales FINN's streamlining moved behind the MatMul and absorbed into the next thresholds
stay valid: no scale ever passes through the decode.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.hw.operands import IntegerFormat, embedded_table, signed_bits
from finn_transforms.finn_defaults import HW_DOMAIN
from finn_transforms.native import vvau as _vvau  # noqa: F401  (registers VVAU_minifloat with qonnx and FINN)
from finn_transforms.native.hw_op import accumulator_range
from finn_transforms.native.mapping import DEFAULT_MAX_ACC_BITS, ORDINAL_TRANSPARENT_OPS, native_weight_format
from finn_transforms.native.ordinal import OrdinalDecode, ordinal_datatype
from finn_transforms.native.spec import NativeMvauSpec
from finn_transforms.transformation._common import LoweringError, label

__all__ = [
    "SplitForkedOrdinalDecode",
    "AbsorbMulIntoOrdinalDecode",
    "InferOrdinalLUT",
    "InferMVAU_minifloat",
    "InferVVAU_minifloat",
    "MoveOrdinalDecodeForward",
    "check_no_inner_decode",
    "weight_codes",
]

_FORWARD_OPS = ORDINAL_TRANSPARENT_OPS | {"MaxPoolNHWC", "Im2Col"}


def _zero_ordinal(fmt: MinifloatFormat) -> int:
    return int(np.flatnonzero(fmt.values() == 0)[0])


def _feeds_native_layer(model: ModelWrapper, node: NodeProto) -> bool:
    """``node``'s only consumer is a MatMul whose weight is marked for a native layer."""
    consumers = model.find_consumers(node.output[0]) or []
    return (
        len(consumers) == 1 and consumers[0].op_type == "MatMul"
        and native_weight_format(model, consumers[0].input[1]) is not None
    )


class MoveOrdinalDecodeForward(Transformation):
    """``OrdinalDecode -> X`` becomes ``X -> OrdinalDecode`` for X a data-movement op or max pooling
    that is the decode's only consumer. An ``Im2Col`` is moved past only when it feeds a native
    layer (a decode that stays, `InferOrdinalLUT`, belongs before the sliding window, which FINN's
    depthwise layers need right before them), and, if it pads, only when the ordinal of 0.0 is 0
    (unsigned / Relu-absorbed formats), since it pads with 0."""

    def apply(self, model: ModelWrapper):
        outputs = {o.name for o in model.graph.output}
        for od in model.get_nodes_by_op_type("OrdinalDecode"):
            consumers = model.find_consumers(od.output[0]) or []
            if len(consumers) != 1 or od.output[0] in outputs or consumers[0].op_type not in _FORWARD_OPS:
                continue
            x = consumers[0]
            if x.op_type == "Im2Col" and not _feeds_native_layer(model, x):
                continue  # FINN's depthwise layers need their sliding window right before them
            if x.op_type == "Im2Col" and _zero_ordinal(getCustomOp(od).minifloat_format) != 0:
                pads = get_by_name(x.attribute, "pad_amount")
                if pads is not None and any(pads.ints):
                    continue
            ordinals, decoded, moved = od.input[0], od.output[0], model.make_new_valueinfo_name()
            model.set_tensor_shape(moved, model.get_tensor_shape(x.output[0]))
            x.input[0] = ordinals
            x_out = x.output[0]
            x.output[0] = moved
            od.input[0], od.output[0] = moved, x_out
            model.set_tensor_datatype(moved, model.get_tensor_datatype(ordinals))
            model.graph.value_info.remove(next(v for v in model.graph.value_info if v.name == decoded))
            model.graph.node.remove(od)
            model.graph.node.insert(list(model.graph.node).index(x) + 1, od)
            return model, True
        return model, False


def weight_codes(fmt: MinifloatFormat, k: np.ndarray, where: str) -> np.ndarray:
    """Embedded weight integers -> the format's codes (same shape; 0.0 -> the +0 code)."""
    code_of = {}
    for code, value in sorted(embedded_table(fmt).items(), reverse=True):
        code_of[value] = code  # ascending codes win: +0 (code 0) over -0
    flat = np.asarray(k, dtype=np.float64).ravel()
    missing = sorted({float(v) for v in flat} - {float(v) for v in code_of})
    if missing:
        raise LoweringError(f"cannot convert {where}: weights {missing[:3]} are not {fmt.name} values (changed after lowering?)")
    return np.array([code_of[int(v)] for v in flat], dtype=np.int64).reshape(np.shape(k))


def native_input(model: ModelWrapper, node: NodeProto):
    """``(stream tensor, input format, stream datatype, decode node or None)`` of a layer becoming
    native: the ordinals before its ``OrdinalDecode``, else its integer input (`LoweringError` otherwise)."""
    producer = model.find_producer(node.input[0])
    if producer is not None and producer.op_type == "OrdinalDecode":
        fmt = getCustomOp(producer).minifloat_format
        return producer.input[0], fmt, ordinal_datatype(fmt), producer
    dt = model.get_tensor_datatype(node.input[0])
    if not dt.is_integer() or dt.bitwidth() > 32 or dt == DataType["BIPOLAR"]:
        raise LoweringError(
            f"cannot convert {label(node)} to a native minifloat layer: its input is {dt.name}, not ordinals "
            "or an integer of at most 32 bits (quantize the input of every native layer)"
        )
    return node.input[0], IntegerFormat(dt.bitwidth(), signed=dt.signed()), dt, None


def exact_accumulator(spec: NativeMvauSpec, codes: np.ndarray, node: NodeProto, max_acc_bits: int) -> DataType:
    """``INT<bits>`` of the exact accumulator of weight codes ``(mh, mw)``, or `LoweringError` naming
    ``node`` when it needs more than ``max_acc_bits``."""
    bits = signed_bits(*accumulator_range(spec, codes))
    if bits > max_acc_bits:
        raise LoweringError(
            f"cannot convert {label(node)}: its exact accumulator ({spec.weight_format.name} weights x "
            f"{spec.input_format.name} inputs, dot products of length {spec.mw}) needs {bits} bits, more than "
            f"max_acc_bits={max_acc_bits}; use narrower formats or raise max_acc_bits"
        )
    return DataType[f"INT{bits}"]


def check_max_acc_bits(max_acc_bits: int) -> int:
    if int(max_acc_bits) < 2:
        raise ValueError(f"max_acc_bits must be >= 2, got {max_acc_bits}")
    return int(max_acc_bits)


def replace_with_native(
    model: ModelWrapper, node: NodeProto, decode: NodeProto | None, op_type: str, codes: np.ndarray,
    wfmt: MinifloatFormat, stream: str, ifmt, idt: DataType, adt: DataType, **attrs,
) -> None:
    """Put a native ``op_type`` layer (weight initializer ``codes``, ``UINT<bits>``) where ``node`` was;
    drop ``node``, its orphaned weight and the absorbed decode."""
    wname = model.make_new_valueinfo_name()
    model.set_initializer(wname, codes.astype(np.float32))
    wdt = DataType[f"UINT{wfmt.bit_width}"]
    model.set_tensor_datatype(wname, wdt)
    native = helper.make_node(
        op_type, [stream, wname], [node.output[0]], domain=HW_DOMAIN, backend="fpgadataflow",
        name=f"{op_type}_{node.name or node.output[0]}", resType="lut", inputDataType=idt.name,
        weightDataType=wdt.name, outputDataType=adt.name, accDataType=adt.name, noActivation=1,
        weightFormat=wfmt.name, inputFormat=ifmt.name, **attrs,
    )
    model.set_tensor_datatype(node.output[0], adt)
    model.graph.node.insert(list(model.graph.node).index(node), native)
    old_w = node.input[1]
    model.graph.node.remove(node)
    if not model.find_consumers(old_w):
        model.del_initializer(old_w)
    if decode is not None and not model.find_consumers(decode.output[0]):
        model.graph.node.remove(decode)


class _InferNative(Transformation):
    """Shared by the native-layer conversions: the accumulator width limit."""

    def __init__(self, max_acc_bits: int = DEFAULT_MAX_ACC_BITS):
        super().__init__()
        self.max_acc_bits = check_max_acc_bits(max_acc_bits)


class InferMVAU_minifloat(_InferNative):
    """``[OrdinalDecode ->] MatMul`` with a weight marked native (`finn_transforms.native.mapping`)
    -> `MVAU_minifloat` (``PE = SIMD = 1``; folding comes later). Input format: the decode's format
    (the MVAU takes the ordinals), else the input's integer FINN datatype. Refused with
    `LoweringError` naming the MatMul: non-integer inputs, accumulators wider than ``max_acc_bits``.
    """

    def apply(self, model: ModelWrapper):
        for node in model.get_nodes_by_op_type("MatMul"):
            fmt_name = native_weight_format(model, node.input[1])
            if fmt_name is not None and model.get_initializer(node.input[1]) is not None and (
                model.get_tensor_sparsity(node.input[1]) is None
            ):
                self._convert(model, node, MinifloatFormat.parse(fmt_name))
                return model, True
        return model, False

    def _convert(self, model: ModelWrapper, node: NodeProto, wfmt: MinifloatFormat) -> None:
        stream, ifmt, idt, decode = native_input(model, node)
        k = np.asarray(model.get_initializer(node.input[1]))
        if k.ndim != 2:
            raise LoweringError(f"cannot convert {label(node)}: native layers need a 2-D weight, got {k.shape}")
        mw, mh = k.shape
        codes = weight_codes(wfmt, k, label(node))
        adt = exact_accumulator(NativeMvauSpec(wfmt, ifmt, mw, mh), codes.T, node, self.max_acc_bits)
        in_shape = model.get_tensor_shape(node.input[0])
        if in_shape is None or in_shape[-1] != mw:
            raise LoweringError(f"cannot convert {label(node)}: unsupported input shape {in_shape} for MW={mw}")
        replace_with_native(model, node, decode, "MVAU_minifloat", codes, wfmt, stream, ifmt, idt, adt,
                            MW=mw, MH=mh, PE=1, SIMD=1, numInputVectors=list(in_shape[:-1]))


class InferVVAU_minifloat(_InferNative):
    """The depthwise counterpart of `InferMVAU_minifloat`: ``[OrdinalDecode ->] MatMul`` whose weight
    is marked native and carries qonnx's depthwise sparsity annotation (what ``LowerConvsToMatMul``
    makes of a depthwise conv) -> `VVAU_minifloat` with the ``(Channels, 1, k_h, k_w)`` codes,
    ``PE = Channels`` and ``SIMD = 1`` as FINN's ``InferVectorVectorActivation`` does. Refused as for
    the MVAU (non-integer inputs, accumulators wider than ``max_acc_bits``)."""

    def apply(self, model: ModelWrapper):
        for node in model.get_nodes_by_op_type("MatMul"):
            fmt_name = native_weight_format(model, node.input[1])
            sparsity = model.get_tensor_sparsity(node.input[1])
            if fmt_name is not None and sparsity is not None and model.get_initializer(node.input[1]) is not None:
                if "dw" not in sparsity:
                    raise LoweringError(f"cannot convert {label(node)}: weight sparsity {sparsity} is not depthwise")
                self._convert(model, node, MinifloatFormat.parse(fmt_name), sparsity["dw"]["kernel_shape"])
                return model, True
        return model, False

    def _convert(self, model: ModelWrapper, node: NodeProto, wfmt: MinifloatFormat, kernel) -> None:
        stream, ifmt, idt, decode = native_input(model, node)
        k_h, k_w = (int(v) for v in kernel)
        sparse = np.asarray(model.get_initializer(node.input[1]))  # (K * C, C), rows (kh, kw, c_in)
        channels = sparse.shape[1]
        if sparse.shape != (k_h * k_w * channels, channels):
            raise LoweringError(f"cannot convert {label(node)}: depthwise weight of shape {sparse.shape}, kernel {kernel}")
        blocks = sparse.reshape(k_h * k_w, channels, channels)
        k = np.stack([blocks[:, c, c] for c in range(channels)])  # (C, K): channel c's kernel
        off_diagonal = blocks.copy()
        off_diagonal[:, np.arange(channels), np.arange(channels)] = 0
        if np.any(off_diagonal):
            raise LoweringError(f"cannot convert {label(node)}: its weight is not depthwise (non-zero across channels)")
        codes = weight_codes(wfmt, k, label(node))
        adt = exact_accumulator(NativeMvauSpec(wfmt, ifmt, k_h * k_w, channels), codes, node, self.max_acc_bits)
        in_shape = model.get_tensor_shape(node.input[0])
        out_shape = model.get_tensor_shape(node.output[0])
        if in_shape is None or len(in_shape) != 4 or out_shape is None:
            raise LoweringError(f"cannot convert {label(node)}: unsupported input shape {in_shape} (NHWC windows expected)")
        replace_with_native(model, node, decode, "VVAU_minifloat", codes.reshape(channels, 1, k_h, k_w), wfmt, stream,
                            ifmt, idt, adt, PE=channels, SIMD=1, Dim=[in_shape[1], in_shape[2]], Channels=channels,
                            Kernel=[k_h, k_w])


class SplitForkedOrdinalDecode(Transformation):
    """An ``OrdinalDecode`` whose output feeds several nodes becomes one decode per consumer, all
    reading the same ordinals (FINN duplicates the ordinal stream), so each branch's decode can move
    into its native layer (`MoveOrdinalDecodeForward` moves single-consumer decodes only) and the
    others become `InferOrdinalLUT` layers."""

    def apply(self, model: ModelWrapper):
        outputs = {o.name for o in model.graph.output}
        for od in model.get_nodes_by_op_type(OrdinalDecode.__name__):
            consumers = model.find_consumers(od.output[0]) or []
            if len(consumers) < 2 or od.output[0] in outputs:
                continue
            pos = list(model.graph.node).index(od)
            for i, consumer in enumerate(consumers[1:], start=1):
                copy_out = model.make_new_valueinfo_name()
                model.set_tensor_shape(copy_out, model.get_tensor_shape(od.output[0]))
                model.set_tensor_datatype(copy_out, model.get_tensor_datatype(od.output[0]))
                twin = helper.make_node(od.op_type, list(od.input), [copy_out], domain=od.domain,
                                        name=f"{od.name}_fork{i}")
                twin.attribute.extend(od.attribute)
                model.graph.node.insert(pos + i, twin)
                for j, name in enumerate(consumer.input):
                    if name == od.output[0]:
                        consumer.input[j] = copy_out
            return model, True
        return model, False


class AbsorbMulIntoOrdinalDecode(Transformation):
    """``OrdinalDecode -> Mul(constant)`` (the Mul its only consumer, leading only to host-side
    output ops) -> ``OrdinalDecode`` with that constant as its ``scale`` input, so an output quantizer's decode and scale run together on the
    host (FINN would otherwise turn the Mul into a HW layer behind the host-side decode)."""

    def apply(self, model: ModelWrapper):
        for od in model.get_nodes_by_op_type("OrdinalDecode"):
            consumers = model.find_consumers(od.output[0]) or []
            if len(od.input) > 1 or len(consumers) != 1 or consumers[0].op_type != "Mul":
                continue
            mul = consumers[0]
            const = [t for t in mul.input if model.get_initializer(t) is not None]
            if len(const) != 1 or od.output[0] not in mul.input or next(_downstream(model, mul.output[0]), None):
                continue  # only a decode on its way to the graph output runs on the host
            od.input.append(const[0])
            od.output[0] = mul.output[0]
            model.graph.node.remove(mul)
            return model, True
        return model, False


class InferOrdinalLUT(Transformation):
    """Every ``OrdinalDecode`` left feeding layers (not only the host-side output ops) ->
    `finn_transforms.native.decode_layer.OrdinalLUT`, the decode as a HW lookup layer: what follows
    (an add, a pool, an integer or padding layer) then works on the embedded integers. Channels are
    the last axis of the decoded tensor (``PE = 1``; folding comes later)."""

    def apply(self, model: ModelWrapper):
        from finn_transforms.native import decode_layer  # noqa: F401  (registers OrdinalLUT)

        for od in model.get_nodes_by_op_type(OrdinalDecode.__name__):
            if len(od.input) > 1 or next(_downstream(model, od.output[0]), None) is None:
                continue
            shape = model.get_tensor_shape(od.input[0])
            if not shape:
                raise LoweringError(f"cannot convert {label(od)} to a HW layer: unknown input shape")
            fmt = getCustomOp(od).minifloat_format
            lut = helper.make_node(
                "OrdinalLUT",
                [od.input[0]],
                [od.output[0]],
                domain=HW_DOMAIN,
                backend="fpgadataflow",
                name=f"OrdinalLUT_{od.name or od.output[0]}",
                format=fmt.name,
                NumChannels=int(shape[-1]),
                PE=1,
                numInputVectors=[int(d) for d in shape[:-1]],
                inputDataType=ordinal_datatype(fmt).name,
                outputDataType=fmt.integer_datatype,
            )
            model.graph.node.insert(list(model.graph.node).index(od), lut)
            model.graph.node.remove(od)
            return model, True
        return model, False


def check_no_inner_decode(model: ModelWrapper) -> None:
    """Every ``OrdinalDecode`` left must lead only to the graph output (it then runs on the host,
    like the output scale); one feeding other layers means a layer that could not become native."""
    for od in model.get_nodes_by_op_type(OrdinalDecode.__name__):
        for node in _downstream(model, od.output[0]):
            raise LoweringError(
                f"OrdinalDecode {od.name!r} ({getCustomOp(od).get_nodeattr('format')} ordinals) feeds {label(node)}, which "
                "did not become a native layer (only dense MatMul/Conv layers with minifloat weights take ordinals)"
            )


_HOST_OPS = frozenset({"Mul", "Add", "Identity", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"})


def _downstream(model: ModelWrapper, tensor: str):
    """Nodes after ``tensor`` that are not host-side output ops (scale, bias, reshapes)."""
    for node in model.find_consumers(tensor) or []:
        if node.op_type in _HOST_OPS:
            yield from _downstream(model, node.output[0])
        else:
            yield node
