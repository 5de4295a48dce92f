"""Exact executor of FINN HW graphs: integer arithmetic of any width for FINN's HW layers.

FINN's Python execution of HW layers is float32 numpy: accumulators beyond 2^24 round. Here each
HW op (generic ``X`` or specialized ``X_hls`` / ``X_rtl``: the arithmetic is the same) has an exact
implementation in a registry (`register_hw_op`); nodes outside the ``finn.custom_op.fpgadataflow``
domains (host-side Transpose, Mul, MultiThreshold, ...) use the reference evaluator's ops, and
``StreamingDataflowPartition`` nodes run their child graph.

Exact ops: MVAU (matmul, XNOR-popcount / bipolar modes, embedded thresholds), VVAU, Thresholding,
Pool (MaxPool / AccPool / AvgPool / QuantAvgPool), GlobalAccPool, LabelSelect, DuplicateStreams,
StreamingConcat, StreamingSplit, ElementwiseAdd / Sub / Mul / Max / Min / AbsDiff. MVAU / VVAU inputs are checked
against their declared datatypes and accumulators against ``accDataType`` (a value outside it would
wrap in hardware): violations raise `ExactError` naming the node.

Pure data-movement ops (``ConvolutionInputGenerator``, ``FMPadding``, ``FMPadding_Pixel``, ``Crop``,
``Shuffle`` / ``InnerShuffle`` / ``OuterShuffle``, ``Reshape`` / ``Squeeze`` / ``Unsqueeze``,
``StreamingDataWidthConverter``, ``StreamingFIFO``, ``UpsampleNearestNeighbour``) run FINN's own
``execute_node``: it only copies, pads with zeros or reorders values, which float32 does exactly for
integers below 2^24; wider values are split into 23-bit limbs moved separately (exact because
moving and zero-padding commute with the split).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

import numpy as np
from onnx import NodeProto
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from finn_transforms.exact.reference import Context, OpFn, concat, evaluate, node_label
from finn_transforms.finn_defaults import HW_DOMAIN, is_hw_node
from finn_transforms.exact.tensor import Exact, ExactError, bound, exact_matmul, int_binary
from finn_transforms.exact.thresholding import count_reached, threshold_container
from finn_transforms.wide_thresholds import exact_thresholds

__all__ = ["execute_exact_hw", "generic_op_type", "hw_op_registry", "register_hw_op"]

_HW_REGISTRY: dict[str, OpFn] = {}
_LIMB = 23


def register_hw_op(*op_types: str) -> Callable[[OpFn], OpFn]:
    """Decorator: exact implementation of generic HW op types (``_hls`` / ``_rtl`` variants map to
    them). Other packages (e.g. native minifloat layers) register their ops here."""

    def deco(fn: OpFn) -> OpFn:
        for op in op_types:
            _HW_REGISTRY[op] = fn
        return fn

    return deco


def hw_op_registry() -> dict[str, OpFn]:
    return dict(_HW_REGISTRY)


def generic_op_type(node: NodeProto) -> str:
    for backend in ("hls", "rtl"):
        if node.domain == f"{HW_DOMAIN}.{backend}" and node.op_type.endswith(f"_{backend}"):
            return node.op_type[: -len(backend) - 1]
    return node.op_type


def _lookup_in(ops: Mapping[str, OpFn]) -> Callable[[NodeProto], OpFn | None]:
    """Resolve HW nodes by generic op type, ``ops`` before the registry; partitions pass ``ops`` on."""

    def lookup(node: NodeProto) -> OpFn | None:
        if not is_hw_node(node):
            return None
        op_type = generic_op_type(node)
        fn = ops.get(op_type) or _HW_REGISTRY.get(op_type)
        if fn is None:
            raise ExactError(f"no exact HW implementation for {node_label(node)}")
        return functools.partial(_partition, ops=ops) if fn is _partition else fn

    return lookup


def execute_exact_hw(
    model: ModelWrapper,
    inputs: Mapping[str, Any] | np.ndarray,
    *,
    return_all: bool = False,
    cache: dict | None = None,
    ops: Mapping[str, OpFn] | None = None,
) -> dict[str, Exact]:
    """Exact outputs of a FINN graph (HW layers, partitions, host nodes) for ``inputs``
    (``cache``: as for `finn_transforms.exact.evaluate`, per model). ``ops`` replaces the
    implementation of generic HW op types for this call, in partitions too (e.g. ``verify``'s
    ``rtl`` stage runs native layers by RTL simulation and everything else exactly here)."""
    return evaluate(model, inputs, lookup=_lookup_in(dict(ops or {})), return_all=return_all, cache=cache)


def _inst(ctx: Context):
    """FINN's CustomOp of the node's generic form (attributes and shapes only; never executed
    except for pure data movement)."""
    from qonnx.custom_op.registry import getCustomOp

    node = copy.deepcopy(ctx.node)
    node.op_type, node.domain = generic_op_type(ctx.node), HW_DOMAIN
    return getCustomOp(node), node


def _integers(x: Exact, ctx: Context, dtype_attr: str | None = None, inst=None) -> np.ndarray:
    try:
        vals = x.as_integers()
    except ExactError as err:
        raise ctx.fail(f"non-integer input ({err})") from None
    if dtype_attr and inst is not None:
        dt = DataType[inst.get_nodeattr(dtype_attr)]
        if vals.size and (int(vals.min()) < dt.min() or int(vals.max()) > dt.max()):
            raise ctx.fail(f"input values [{int(vals.min())}, {int(vals.max())}] outside {dtype_attr} {dt.name}")
    return vals


def _check_acc(acc: np.ndarray, ctx: Context, inst) -> None:
    name = inst.get_nodeattr("accDataType") if "accDataType" in inst.get_nodeattr_types() else ""
    if not name or acc.size == 0:
        return
    dt = DataType[name]
    lo, hi = int(acc.min()), int(acc.max())
    if lo < dt.min() or hi > dt.max():
        raise ctx.fail(f"accumulator values [{lo}, {hi}] exceed accDataType {dt.name}: the hardware would wrap")


def _thresholds(acc: np.ndarray, thresholds: np.ndarray, inst, ctx: Context, act_attr: str = "ActVal") -> Exact:
    """Channels-last MultiThreshold of an integer accumulator, as FINN's MVAU/VVAU/Thresholding."""
    thr = np.sort(threshold_container(thresholds).reshape(thresholds.shape[0], -1), axis=1)
    groups = None
    if thr.shape[0] > 1:
        if acc.shape[-1] != thr.shape[0]:
            raise ctx.fail(f"{thr.shape[0]} threshold rows for {acc.shape[-1]} channels")
        groups = np.broadcast_to(np.arange(thr.shape[0]), acc.shape)
    count = count_reached(Exact.from_ints(acc), thr, groups)
    if inst.get_nodeattr("outputDataType") == "BIPOLAR":
        return Exact.from_ints(2 * count - 1)
    return Exact.from_ints(count + int(inst.get_nodeattr(act_attr)))


def _popcount(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """XNOR-popcount of 0/1 operands: (bipolar dot + K) / 2."""
    return (exact_matmul(2 * x - 1, 2 * w - 1) + x.shape[-1]) // 2


@register_hw_op("MVAU")
def _mvau(ins, ctx):
    inst, _ = _inst(ctx)
    x = _integers(ins[0], ctx, "inputDataType", inst)
    w = _integers(ins[1], ctx)
    mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
    if w.shape != (mw, mh):
        raise ctx.fail(f"weights of shape {w.shape}, expected (MW, MH) = ({mw}, {mh})")
    n = x.shape[0]
    x = x.reshape((n,) + tuple(inst.get_normal_input_shape()[1:]))  # as FINN: e.g. (N, 5, 5, 32) -> (N, 800)
    shape = x.shape[:-1]
    if inst.get_nodeattr("binaryXnorMode"):
        acc = _popcount(x.reshape(-1, mw), w)
    elif inst.get_nodeattr("inputDataType") == "BIPOLAR" and inst.get_nodeattr("weightDataType") == "BIPOLAR":
        acc = _popcount((x.reshape(-1, mw) + 1) // 2, (w + 1) // 2)
    else:
        acc = exact_matmul(x.reshape(-1, mw), w)
    acc = acc.reshape(*shape, mh)
    _check_acc(acc, ctx, inst)
    if inst.get_nodeattr("noActivation"):
        return [Exact.from_ints(acc)]
    return [_thresholds(acc, _const(ctx, 2), inst, ctx)]


def _const(ctx: Context, index: int) -> np.ndarray:
    value = ctx.const(index)
    if value is None:
        raise ctx.fail(f"input {index} must be a constant initializer")
    return value


def vvau_producer_type(ctx: Context) -> str | None:
    """Generic op type of the node feeding a VVAU (it decides FINN's input interleaving)."""
    producer = ctx.model.find_producer(ctx.node.input[0])
    return None if producer is None else generic_op_type(producer)


@register_hw_op("VVAU")
def _vvau(ins, ctx):
    """Depthwise: FINN's VVAU input layout (as its execute_node reorders it), exact products."""
    from finn_transforms.native.vvau import depthwise_windows, window_pe

    inst, _ = _inst(ctx)
    x = _integers(ins[0], ctx, "inputDataType", inst)
    n, dim_h, dim_w, _ = x.shape
    k_h, k_w = inst.get_nodeattr("Kernel")
    channels = inst.get_nodeattr("Channels")
    pe = window_pe(vvau_producer_type(ctx), channels, inst.get_nodeattr("PE"))
    x = depthwise_windows(x, k_h * k_w, channels, pe).reshape(n, dim_h, dim_w, channels * k_h * k_w)
    dense = inst._infer_sparse_weight_tensor(_const(ctx, 1), k_h, k_w, channels)  # FINN's layout helper
    w = Exact.from_array(dense).as_integers()
    if inst.get_nodeattr("inputDataType") == "BIPOLAR" and inst.get_nodeattr("weightDataType") == "BIPOLAR":
        acc = (exact_matmul(x, w) + k_h * k_w) // 2
    else:
        acc = exact_matmul(x, w)
    _check_acc(acc, ctx, inst)
    if inst.get_nodeattr("noActivation"):
        return [Exact.from_ints(acc)]
    return [_thresholds(acc, _const(ctx, 2), inst, ctx)]


@register_hw_op("Thresholding")
def _thresholding(ins, ctx):
    """FINN's ``Thresholding``; with input 2 (a residual: ``WideThresholding``, registered in
    `finn_transforms.exact.native_ops`) it compares with exact integers."""
    inst, _ = _inst(ctx)
    x = ins[0]
    residual = _const(ctx, 2) if len(ctx.node.input) > 2 else None
    thr = np.sort(threshold_container(exact_thresholds(_const(ctx, 1), residual)), axis=1)
    groups = None
    if thr.shape[0] > 1:
        groups = np.broadcast_to(np.arange(thr.shape[0]), x.shape)
    count = count_reached(x, thr, groups)  # exact comparison, integer or not
    if inst.get_nodeattr("outputDataType") == "BIPOLAR":
        return [Exact.from_ints(2 * (count + int(inst.get_nodeattr("ActVal"))) - 1)]
    return [Exact.from_ints(count + int(inst.get_nodeattr("ActVal")))]


@register_hw_op("Pool")
def _pool(ins, ctx):
    inst, _ = _inst(ctx)
    x = ins[0]
    fn = inst.get_nodeattr("Function")
    k = inst.get_nodeattr("KernelSize")
    ch = inst.get_nodeattr("Channels")
    k2 = int(k[0] * k[1])
    win = x.with_num(x.num.reshape(x.shape[:-1] + (k2, ch)))
    axis = win.ndim - 2
    if fn == "MaxPool":
        return [win.with_num(win.num.max(axis=axis))]
    if fn == "AccPool":
        return [win.sum(axis=axis)]
    if fn == "AvgPool":
        return [win.sum(axis=axis).times(Fraction(1, k2))]
    if fn == "QuantAvgPool":
        ibits = inst.get_input_datatype().bitwidth()
        obits = inst.get_output_datatype().bitwidth()
        shift = max(0, int((2**ibits - 1) * k2).bit_length() - obits)
        total = win.sum(axis=axis).as_integers()
        return [Exact.from_ints(total >> shift if total.dtype != object else np.vectorize(lambda v: v >> shift, otypes=[object])(total))]
    raise ctx.fail(f"Pool Function {fn!r}")


@register_hw_op("GlobalAccPool")
def _global_acc_pool(ins, ctx):
    return [ins[0].sum(axis=(1, 2), keepdims=True)]


@register_hw_op("LabelSelect")
def _label_select(ins, ctx):
    """Indices of the K largest values, larger first, equal values by lower index (ONNX TopK)."""
    inst, _ = _inst(ctx)
    x = ins[0]
    k = int(inst.get_nodeattr("K"))
    order = np.argsort(-x.num, axis=-1, kind="stable") if x.num.dtype != object else np.array(
        [sorted(range(row.size), key=lambda i: -row[i]) for row in x.num.reshape(-1, x.shape[-1])]
    ).reshape(x.shape)
    return [Exact.from_ints(np.ascontiguousarray(order[..., :k]))]


@register_hw_op("DuplicateStreams")
def _duplicate(ins, ctx):
    return [ins[0]] * len(ctx.node.output)


@register_hw_op("StreamingConcat")
def _concat(ins, ctx):
    return [concat(ins, -1)]


_ELEMENTWISE = {
    "ElementwiseAdd": lambda a, b: a + b,
    "ElementwiseSub": lambda a, b: a - b,
    "ElementwiseMul": lambda a, b: a * b,
    "ElementwiseMax": lambda a, b: a.maximum(b),
    "ElementwiseMin": lambda a, b: -((-a).maximum(-b)),
    "ElementwiseAbsDiff": lambda a, b: (a - b).maximum(b - a),
}


@register_hw_op(*_ELEMENTWISE)
def _elementwise(ins, ctx):
    return [_ELEMENTWISE[generic_op_type(ctx.node)](ins[0], ins[1])]


@register_hw_op("StreamingDataflowPartition")
def _partition(ins, ctx, ops: Mapping[str, OpFn] | None = None):
    from qonnx.custom_op.registry import getCustomOp

    path = getCustomOp(ctx.node).get_nodeattr("model")
    key = ("partition", ctx.node.name, path)
    if key not in ctx.cache:
        ctx.cache[key] = (ModelWrapper(path), {})
    child, child_cache = ctx.cache[key]
    names = [t.name for t in child.graph.input if child.get_initializer(t.name) is None]
    outs = execute_exact_hw(child, dict(zip(names, ins)), cache=child_cache, ops=ops)
    return [outs[o.name] for o in child.graph.output]


_DATA_MOVEMENT = (
    "ConvolutionInputGenerator",
    "Crop",
    "FMPadding",
    "FMPadding_Pixel",
    "InnerShuffle",
    "OuterShuffle",
    "Reshape",
    "Shuffle",
    "Squeeze",
    "StreamingDataWidthConverter",
    "StreamingFIFO",
    "Unsqueeze",
    "UpsampleNearestNeighbour",
)


@register_hw_op("StreamingSplit")
def _split(ins, ctx):
    inst, _ = _inst(ctx)
    x = ins[0]
    cuts = np.cumsum(inst.get_nodeattr("ChannelsPerStream"))[:-1]
    return [x.with_num(part) for part in np.split(x.num, cuts, axis=-1)]


@register_hw_op(*_DATA_MOVEMENT)
def _data_movement(ins, ctx):
    """FINN's own execute_node, one sample at a time, on float32 limbs (exact for data movement)."""
    inst, node = _inst(ctx)
    x = ins[0]
    num = x.num
    out_shape = tuple(inst.get_normal_output_shape())
    limbs, signs = [], None
    mag = num
    if bound(num) >= (1 << 24):
        signs = np.sign(num).astype(np.int64)
        mag = np.abs(num.astype(object))
    while True:
        limbs.append(np.vectorize(lambda v: int(v) & ((1 << _LIMB) - 1), otypes=[np.int64])(mag) if signs is not None else mag)
        if signs is None:
            break
        mag = np.vectorize(lambda v: int(v) >> _LIMB, otypes=[object])(mag)
        if not np.any(mag):
            break
    moved = []
    for limb in limbs:
        samples = []
        for i in range(limb.shape[0]):
            context = {node.input[0]: limb[i : i + 1].astype(np.float32), node.output[0]: np.zeros(out_shape, np.float32)}
            inst.execute_node(context, ctx.model.graph)
            samples.append(np.rint(np.asarray(context[node.output[0]], dtype=np.float64)).astype(np.int64))
        moved.append(np.concatenate(samples).reshape((limb.shape[0],) + out_shape[1:]))
    if signs is None:
        return [x.with_num(moved[0])]
    total = moved[-1].astype(object)
    for limb in reversed(moved[:-1]):
        total = total * (1 << _LIMB) + limb
    # signs move like the values: move them too (zero padding gives sign 0, value 0)
    sign_moved = _data_movement([Exact.from_ints(signs)], ctx)[0].as_integers()
    return [x.with_num(int_binary(np.asarray(total), sign_moved, "mul"))]
