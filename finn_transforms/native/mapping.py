"""Which minifloat layers become native layers: the ``mapping`` option and its rule.

``mapping`` is accepted wherever the lowering is chosen (`finn_transforms.steps.lower_minifloat`,
`make_step_lower_minifloat`, `build_estimates`, `verify`, the CLI's ``--mapping``, the DSE):

- ``"embedding"``: every minifloat tensor becomes the integers that contain it (integer weights +
  Mul, MultiThreshold outputting ``k = value / delta``); FINN's own MVAU computes. Wide formats are
  refused (E4M3 activations need 491,520 thresholds per channel, E4M3 weights INT19).
- ``"native"``: every minifloat weight of a dense MatMul/Conv becomes a native layer
  (`finn_transforms.native.hw_op.MVAU_minifloat`: weights as codes, exact accumulator), of a
  depthwise Conv a `finn_transforms.native.vvau.VVAU_minifloat`, and every
  minifloat activation quantizer whose consumers are all such layers (or the graph output) lowers
  to ordinal thresholds (`finn_transforms.native.ordinal`); other activations keep the embedding.
- ``"auto"`` (the default): the embedding where it fits the limits (``max_weight_bits``,
  ``max_thresholds``), native where the embedding would be refused; a layer whose input is an
  ordinal activation is native too. So INT and narrow minifloat models build exactly as before and
  E4M3 / E5M2 models build with no override.

Integer layers (QONNX ``Quant`` weights) always keep FINN's MVAU; an ordinal activation cannot feed
them, so such a model is refused with an error naming both nodes.
"""

from __future__ import annotations

from collections.abc import Iterator

from onnx import NodeProto
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import get_by_name

from brevitas_minifloat.qonnx_contract import is_minifloat_quant, read_weight_format
from brevitas_minifloat.qonnx_contract.annotations import get_tensor_annotation, set_tensor_annotation

MAPPINGS = ("auto", "native", "embedding")
DEFAULT_MAPPING = "auto"

#: Widest exact accumulator a native layer may get by default: E5M2 x E5M2 products span 2^64, so
#: a fan-in of 1024 needs 75 bits (wider than 64 needs `finn_transforms.native.steps.wide_accumulator_step`).
DEFAULT_MAX_ACC_BITS = 96

#: Annotation key marking an integer-embedded weight that a native layer will take as codes.
NATIVE_WEIGHT_KEY = "native_minifloat_weight"

#: Ops an ordinal stream passes through unchanged in meaning: data movement, and MaxPool (the
#: decode is increasing, so the max of ordinals is the ordinal of the max).
ORDINAL_TRANSPARENT_OPS = frozenset({"MaxPool", "Reshape", "Flatten", "Transpose", "Identity", "Squeeze", "Unsqueeze"})


def check_mapping(mapping: str) -> str:
    """The mapping name, or ``ValueError`` listing the valid ones."""
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {', '.join(map(repr, MAPPINGS))}, got {mapping!r}")
    return mapping


def mark_native_weight(model: ModelWrapper, tensor: str, fmt_name: str) -> None:
    set_tensor_annotation(model, tensor, NATIVE_WEIGHT_KEY, fmt_name)


def native_weight_format(model: ModelWrapper, tensor: str) -> str | None:
    """The minifloat format name a lowered weight was marked with for a native layer, if any."""
    return get_tensor_annotation(model, tensor, NATIVE_WEIGHT_KEY)


def compute_consumers(model: ModelWrapper, tensor: str) -> Iterator[tuple[NodeProto | None, str]]:
    """``(consumer, its input tensor)`` reached from ``tensor`` through `ORDINAL_TRANSPARENT_OPS`;
    ``(None, name)`` for a graph output reached that way."""
    outputs = {o.name for o in model.graph.output}
    stack = [tensor]
    while stack:
        t = stack.pop()
        if t in outputs:
            yield None, t
        for node in model.find_consumers(t) or []:
            if node.op_type in ORDINAL_TRANSPARENT_OPS:
                stack.append(node.output[0])
            else:
                yield node, t


def is_dense_weighted(node: NodeProto) -> bool:
    """A MatMul, or a Conv with ``group == 1`` (FINN's MVAU after im2col)."""
    if node.op_type == "MatMul":
        return True
    if node.op_type == "Conv":
        group = get_by_name(node.attribute, "group")
        return group is None or group.i == 1
    return False


def is_depthwise(model: ModelWrapper, node: NodeProto) -> bool:
    """A Conv with ``group`` = input channels = output channels (qonnx lowers it to a sparse MatMul,
    FINN's VVAU)."""
    group = get_by_name(node.attribute, "group")
    if node.op_type != "Conv" or group is None or group.i == 1:
        return False
    ins, outs = model.get_tensor_shape(node.input[0]), model.get_tensor_shape(node.output[0])
    return ins is not None and outs is not None and len(ins) > 1 and ins[1] == outs[1] == group.i


def has_native_form(model: ModelWrapper, node: NodeProto) -> bool:
    """A layer a native unit implements: dense (`MVAU_minifloat`) or depthwise (`VVAU_minifloat`)."""
    return is_dense_weighted(node) or is_depthwise(model, node)


def conv_pads(node: NodeProto) -> bool:
    pads = get_by_name(node.attribute, "pads")
    return node.op_type == "Conv" and pads is not None and any(pads.ints)


def has_minifloat_weight(model: ModelWrapper, node: NodeProto) -> bool:
    """``node``'s weight (input 1) is a minifloat quantizer of a constant (directly or through a
    Transpose), a recorded minifloat weight, or already marked for a native layer."""
    if len(node.input) < 2:
        return False
    w = node.input[1]
    if native_weight_format(model, w) is not None:
        return True
    producer = model.find_producer(w)
    if producer is not None and producer.op_type == "Transpose":
        producer = model.find_producer(producer.input[0])
    if producer is not None:
        return is_minifloat_quant(producer) and model.get_initializer(producer.input[0]) is not None
    return model.get_initializer(w) is not None and read_weight_format(model, w) is not None


def upstream_quantizer(model: ModelWrapper, tensor: str) -> NodeProto | None:
    """The minifloat activation quantizer producing ``tensor`` through `ORDINAL_TRANSPARENT_OPS`."""
    producer = model.find_producer(tensor)
    while producer is not None and producer.op_type in ORDINAL_TRANSPARENT_OPS:
        producer = model.find_producer(producer.input[0])
    if producer is not None and is_minifloat_quant(producer) and model.get_initializer(producer.input[0]) is None:
        return producer
    return None


def ordinal_blockers(model: ModelWrapper, tensor: str, zero_is_first: bool) -> list[str]:
    """Why the activation ``tensor`` cannot travel as ordinals: consumers that are not dense or
    depthwise MatMul/Conv layers with minifloat weights (or Convs that pad, when the ordinal of zero is not 0:
    FINN pads with 0). Empty when every consumer can take ordinals."""
    from finn_transforms.transformation._common import label  # the lowering passes import this module

    bad = []
    for node, _ in compute_consumers(model, tensor):
        if node is None:
            continue
        if not (has_native_form(model, node) and has_minifloat_weight(model, node)):
            bad.append(f"{label(node)} is not a dense or depthwise MatMul/Conv with minifloat weights")
        elif conv_pads(node) and not zero_is_first:
            bad.append(f"{label(node)} pads its input, and FINN pads with 0, which is not the ordinal of 0.0 here")
    return bad
