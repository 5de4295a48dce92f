"""`LowerMinifloatActivations`: minifloat activation quantizers -> MultiThreshold + Mul."""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.qonnx_contract import is_minifloat_quant
from finn_transforms.native.mapping import check_mapping, ordinal_blockers
from finn_transforms.native.ordinal import OrdinalDecode, nonnegative_part, ordinal_datatype
from finn_transforms.thresholds import pair_thresholds, threshold_count
from finn_transforms.transformation._common import (
    DEFAULT_MAX_THRESHOLDS,
    LoweringError,
    absorbable_relu,
    activation_channel_axis,
    format_of,
    label,
    make_multithreshold,
    replace_quantizer,
    scale_of,
    scale_times_delta,
    threshold_layout,
)


class LowerMinifloatActivations(Transformation):
    """Lower minifloat activation quantizers to thresholds.

    Matched: ``FloatQuant`` / ``MinifloatQuant`` ``(X, scale, ...)`` with ``X`` a dynamic tensor (not an
    initializer) and a constant scale, per tensor or per channel (one non-unit axis of the scale,
    right-aligned against X: axis 1 or the last axis).
    Replaced by: ``MultiThreshold(X, T) -> Mul(scale * delta)`` where the MultiThreshold (qonnx
    general domain) outputs the embedded integer ``k = q / delta``: ``out_bias = integer_min``,
    ``out_dtype`` the embedding's FINN datatype (`MinifloatFormat.integer_datatype`), ``data_layout``
    from the scale's channel axis (NC/NCW/NCHW, NWC/NHWC; per tensor: the tensor's layout annotation,
    else channels-first by rank), thresholds of shape (C or 1, integer_max - integer_min) from
    `finn_transforms.thresholds` (exact for every float32 input, ties included). The Mul constant keeps
    the scale's shape (a scalar when per tensor), so ``fl32(k * fl32(s * delta)) == fl32(q * s)``.

    ``Relu -> quantizer`` where the Relu feeds only the quantizer: the Relu is absorbed, exactly
    (negative inputs give k = 0 either way): only the thresholds above zero are kept, ``out_bias = 0``
    and ``out_dtype`` becomes ``UINTn``.

    Refused with `LoweringError`: non-saturating quantizers, ``max_val`` matching no special-value
    convention, non-constant or non-positive scales, scales varying along more than one axis or along
    an axis MultiThreshold cannot address, inputs of rank < 2, and more than ``max_thresholds``
    thresholds per channel (the threshold memory grows with the integer range: E4M3 needs 491520).

    ``mapping`` (`finn_transforms.native.mapping`): where it picks ordinals, the MultiThreshold keeps
    only the distinct thresholds and outputs the ordinal (``out_bias = 0``, ``UINT<ordinal bits>``),
    followed by ``OrdinalDecode`` (ordinal -> ``k``) and the same ``Mul(scale * delta)``.
    """

    def __init__(self, max_thresholds: int = DEFAULT_MAX_THRESHOLDS, mapping: str = "embedding"):
        super().__init__()
        if int(max_thresholds) < 1:
            raise ValueError(f"max_thresholds must be positive, got {max_thresholds}")
        self.max_thresholds = int(max_thresholds)
        self.mapping = check_mapping(mapping)

    def apply(self, model: ModelWrapper):
        for node in list(model.graph.node):
            if is_minifloat_quant(node) and model.get_initializer(node.input[0]) is None:
                self._lower(model, node)
                return model, True
        return model, False

    def _ordinal(self, model: ModelWrapper, node: NodeProto, fmt: MinifloatFormat, out_fmt, count: int) -> bool:
        """Whether this quantizer lowers to ordinal thresholds (the mapping rule, module docstring of
        `finn_transforms.native.mapping`)."""
        if self.mapping == "embedding" or (self.mapping == "auto" and count <= self.max_thresholds):
            return False
        if out_fmt is None:
            blockers = [f"no minifloat format holds exactly the non-negative values of {fmt.name}"]
        else:
            blockers = ordinal_blockers(model, node.output[0], zero_is_first=out_fmt.values()[0] == 0)
        if not blockers:
            return True
        if count <= self.max_thresholds:
            return False
        if out_fmt is None:
            raise LoweringError(
                f"cannot lower {label(node)}: {fmt.name} needs {count} thresholds per channel as integers (more "
                f"than max_thresholds={self.max_thresholds}), and as ordinals: {blockers[0]}"
            )
        # Ordinals anyway: the decode of the consumers that cannot take ordinals becomes a hardware
        # lookup layer (`finn_transforms.native.decode_layer.OrdinalDecode_hw`) after streamlining.
        return True

    def _lower(self, model: ModelWrapper, node: NodeProto) -> None:
        fmt = format_of(model, node)
        count = threshold_count(fmt)
        x = node.input[0]
        relu = absorbable_relu(model, x)
        out_fmt = nonnegative_part(fmt) if relu is not None else fmt
        ordinal = self._ordinal(model, node, fmt, out_fmt, count)
        if not ordinal and count > self.max_thresholds:
            raise LoweringError(
                f"cannot lower {label(node)}: {fmt.name} needs {count} thresholds per channel (integer range "
                f"[{fmt.integer_min}, {fmt.integer_max}]), more than max_thresholds={self.max_thresholds}"
                + ("" if self.mapping == "native" else "; mapping='native' needs one per distinct value")
            )
        scale = scale_of(model, node)
        shape = model.get_tensor_shape(x)
        rank = len(shape) if shape is not None else None
        if rank is not None and rank < 2:
            raise LoweringError(f"cannot lower {label(node)}: MultiThreshold needs an input of rank >= 2, got {rank}")
        axis = activation_channel_axis(node, scale.shape, rank)
        try:
            T, jumps = pair_thresholds(fmt, scale)
        except ValueError as err:
            raise LoweringError(f"cannot lower {label(node)}: {err}") from err

        out_bias, out_dtype = fmt.integer_min, DataType[fmt.integer_datatype]
        if relu is not None:
            keep = fmt.values()[1:] > 0  # only these thresholds can count once inputs are >= 0
            T, jumps = T[:, keep], jumps[keep]
            out_bias, out_dtype = 0, DataType[f"UINT{max(1, fmt.integer_max.bit_length())}"]
            x = relu.input[0]
            model.graph.node.remove(relu)
        if ordinal:
            thresholds, out_bias, out_dtype = T.astype(np.float32), 0, ordinal_datatype(out_fmt)
        else:
            thresholds = np.repeat(T, jumps, axis=1).astype(np.float32)

        layout = threshold_layout(model, x, axis, rank)
        sd = scale_times_delta(scale, fmt, node)
        if sd.size == 1 and (rank is None or sd.ndim <= rank):
            sd = np.asarray(sd.reshape(-1)[0], dtype=np.float32)

        base = node.name or node.output[0]
        mt, k_name = make_multithreshold(model, x, thresholds, out_bias, out_dtype, layout, shape, f"{base}_thresholds")
        new_nodes = [mt]
        if ordinal:
            o_name, k_name = k_name, model.make_new_valueinfo_name()
            if shape is not None:
                model.set_tensor_shape(k_name, shape)
            model.set_tensor_datatype(k_name, DataType[out_fmt.integer_datatype])
            new_nodes.append(
                helper.make_node(
                    "OrdinalDecode", [o_name], [k_name], domain=OrdinalDecode.DOMAIN, name=f"{base}_decode",
                    format=out_fmt.name,
                )
            )
        sd_name = model.make_new_valueinfo_name()
        model.set_initializer(sd_name, sd)
        new_nodes.append(helper.make_node("Mul", [k_name, sd_name], [node.output[0]], name=f"{base}_scale"))
        replace_quantizer(model, node, new_nodes)
