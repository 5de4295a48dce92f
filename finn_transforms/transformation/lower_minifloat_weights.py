"""`LowerMinifloatWeights`: minifloat weights -> integer weights + a per-output-channel Mul."""

from __future__ import annotations

import numpy as np
from onnx import NodeProto
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.qonnx_contract import is_minifloat_quant, read_weight_format
from finn_transforms.native.mapping import check_mapping, has_native_form, mark_native_weight, upstream_quantizer
from finn_transforms.thresholds import quantize_scaled, threshold_count
from finn_transforms.transformation._common import (
    DEFAULT_MAX_THRESHOLDS,
    DEFAULT_MAX_WEIGHT_BITS,
    LoweringError,
    checked_scale,
    drop_weight_record,
    format_of,
    label,
    remove_if_orphaned,
    scale_of,
    scale_output,
    scale_times_delta,
)

# consumer op type -> axis of the weight holding the output channels
_OUT_AXIS = {"MatMul": -1, "Conv": 0}
_MAX_EXACT_INT = 2**24  # integers a float32 initializer holds exactly


def weight_datatype(k: np.ndarray, signed: bool) -> DataType:
    """Smallest ``INTn`` (signed formats) or ``UINTn`` (unsigned formats) holding every ``k``, n >= 2."""
    lo, hi = int(k.min(initial=0)), int(k.max(initial=0))
    if signed:
        bits = max(2, (hi.bit_length() if hi >= 0 else 0) + 1, (-lo - 1).bit_length() + 1 if lo < 0 else 0)
        return DataType[f"INT{bits}"]
    return DataType[f"UINT{max(2, hi.bit_length())}"]


class LowerMinifloatWeights(Transformation):
    """Lower minifloat weights of ``MatMul`` and ``Conv`` to integers.

    Matched: a ``MatMul(X, W')`` (``W'`` of shape [in, out]) or ``Conv(X, W'[, B])`` (``W'`` of shape
    [out, in/group, k...]) whose weight ``W'`` is
      (a) ``FloatQuant`` / ``MinifloatQuant`` of an initializer ``W`` with a constant scale, directly or
          through one ``Transpose`` (what qonnx's ``GemmToMatMul`` leaves), or
      (b) an initializer carrying a weight-format record (`brevitas_minifloat.qonnx_contract.annotations`): the quantizer
          was constant-folded by qonnx ``cleanup_model``; the values must lie exactly on the recorded grid.
    Replaced by: ``MatMul/Conv(X, K) -> Mul(scale * delta) [-> Add(B)]``, where ``K = q / delta`` is the
    integer embedding (float32 initializer annotated with the smallest FINN ``INTn``, ``UINTn`` for
    unsigned formats) and the Mul constant holds one value per output channel (a scalar when all are
    equal; shape [out] after MatMul, [1, out, 1, ...] after Conv). ``fl32(k * fl32(s * delta))`` equals the
    quantizer's ``fl32(q * s)`` bit for bit. A Conv bias moves to an Add after the Mul.

    Refused with `LoweringError`: scales that vary along the reduction axis (they do not factor out
    of the dot product), non-saturating quantizers, ``max_val`` matching no special-value convention,
    weights needing more than ``max_weight_bits`` bits, non-constant scales.
    ``mapping`` (`finn_transforms.native.mapping`): weights picked for a native layer are lowered the
    same way, but without the width limit, and marked (tensor annotation) for conversion to codes.
    Quantized constants feeding anything else are left alone (constant folding handles them exactly).
    """

    def __init__(
        self,
        max_weight_bits: int = DEFAULT_MAX_WEIGHT_BITS,
        mapping: str = "embedding",
        max_thresholds: int = DEFAULT_MAX_THRESHOLDS,
    ):
        super().__init__()
        if not 2 <= int(max_weight_bits) <= 24:
            raise ValueError(f"max_weight_bits must be in 2..24 (float32 holds integers exactly up to 2^24), got {max_weight_bits}")
        self.max_weight_bits = int(max_weight_bits)
        self.mapping = check_mapping(mapping)
        self.max_thresholds = int(max_thresholds)

    def _native(self, model: ModelWrapper, node: NodeProto, bits: int) -> bool:
        """Whether this weight goes to a native layer (`finn_transforms.native.mapping`): always with
        ``"native"``; with ``"auto"`` when its embedding is too wide or its input will be ordinals
        (an activation quantizer whose embedding needs more than ``max_thresholds``)."""
        if self.mapping == "embedding" or not has_native_form(model, node):
            return False
        if self.mapping == "native" or bits > self.max_weight_bits:
            return True
        quant = upstream_quantizer(model, node.input[0])
        return quant is not None and threshold_count(format_of(model, quant)) > self.max_thresholds

    # ------------------------------------------------------------------ matching
    def _match(self, model: ModelWrapper, node: NodeProto):
        """``(fmt, k, scale_b, quant_node_or_None, source_tensor)`` in the consumer's weight frame, or None."""
        wname = node.input[1]
        producer = model.find_producer(wname)
        perm, via_transpose = None, False
        if producer is not None and producer.op_type == "Transpose" and is_minifloat_quant(
            model.find_producer(producer.input[0])
        ):
            attr = get_by_name(producer.attribute, "perm")
            perm = list(attr.ints) if attr is not None else None
            via_transpose = True
            producer = model.find_producer(producer.input[0])
        if is_minifloat_quant(producer):
            w = model.get_initializer(producer.input[0])
            if w is None:
                return None  # a dynamic weight: not ours to fold into integers
            fmt = format_of(model, producer)
            scale = scale_of(model, producer)
            w = np.asarray(w, dtype=np.float32)
            q = quantize_scaled(fmt, w, scale)
            shape = np.broadcast_shapes(w.shape, scale.shape)
            if shape != w.shape:
                raise LoweringError(f"cannot lower {label(producer)}: scale shape {scale.shape} does not broadcast to the weight {w.shape}")
            k = q.astype(np.float64) / fmt.delta
            scale_b = np.broadcast_to(scale, w.shape)
            if via_transpose:
                k, scale_b = np.transpose(k, perm), np.transpose(scale_b, perm)
            return fmt, k, scale_b, producer
        if producer is None and model.get_initializer(wname) is not None:
            record = read_weight_format(model, wname)
            if record is None:
                return None
            w = np.asarray(model.get_initializer(wname), dtype=np.float32)
            fmt = record.fmt
            scale = checked_scale(record.scale, node)
            try:
                scale_b = np.broadcast_to(scale, w.shape)
            except ValueError as err:
                raise LoweringError(f"cannot lower the weight of {label(node)}: recorded scale {scale.shape} vs weight {w.shape}") from err
            k = np.rint(w.astype(np.float64) / (scale_b.astype(np.float64) * fmt.delta))
            on_grid = np.isin(k, fmt.integer_values())
            back = (k * fmt.delta * scale_b.astype(np.float64)).astype(np.float32)
            if not (on_grid.all() and np.array_equal(back, w)):
                raise LoweringError(
                    f"cannot lower the weight {wname!r} of {label(node)}: its values are not {fmt.name} values times the "
                    "recorded scale (was the initializer changed after export?)"
                )
            return fmt, k, scale_b, None
        return None

    # ------------------------------------------------------------------ rewriting
    def apply(self, model: ModelWrapper):
        for node in list(model.graph.node):
            if node.op_type not in _OUT_AXIS or len(node.input) < 2:
                continue
            match = self._match(model, node)
            if match is None:
                continue
            self._lower(model, node, *match)
            return model, True
        return model, False

    def _lower(self, model: ModelWrapper, node: NodeProto, fmt: MinifloatFormat, k, scale_b, quant):
        where = label(quant) if quant is not None else f"the folded weight {node.input[1]!r} of {label(node)}"
        if node.op_type == "MatMul" and k.ndim != 2:
            raise LoweringError(f"cannot lower {where}: MatMul weights must be 2-D [in, out], got shape {k.shape}")
        axis = _OUT_AXIS[node.op_type] % k.ndim
        per_out = np.moveaxis(scale_b, axis, 0).reshape(k.shape[axis], -1)
        if np.any(per_out != per_out[:, :1]):
            raise LoweringError(
                f"cannot lower {where}: its scale varies along the reduction axis of {label(node)}, so it does not "
                "factor out of the dot product (only per-output-channel or per-tensor scales lower exactly)"
            )
        dtype = weight_datatype(k, fmt.signed)
        native = self._native(model, node, dtype.bitwidth())
        if not native and dtype.bitwidth() > self.max_weight_bits:
            raise LoweringError(
                f"cannot lower {where}: {fmt.name} weights need {dtype.name} (k in [{int(k.min())}, {int(k.max())}]), "
                f"wider than max_weight_bits={self.max_weight_bits}"
                + (
                    "; mapping='auto' or 'native' stores its codes in a native layer instead"
                    if self.mapping == "embedding"
                    else f"; native layers are dense or depthwise (this is a {node.op_type} with groups)"
                )
            )
        # float32 holds every k exactly: a minifloat value times a power of two (checked, not assumed)
        assert native or np.abs(k).max(initial=0) < _MAX_EXACT_INT
        assert np.array_equal(k.astype(np.float32).astype(np.float64), k)
        sd = scale_times_delta(np.ascontiguousarray(per_out[:, 0]), fmt, quant if quant is not None else node)
        if np.all(sd == sd[0]):
            sd = np.asarray(sd[0], dtype=np.float32)
        elif node.op_type == "Conv":
            sd = sd.reshape((1, -1) + (1,) * (k.ndim - 2))

        old_w = node.input[1]
        kname = model.make_new_valueinfo_name()
        model.set_initializer(kname, k.astype(np.float32))
        model.set_tensor_datatype(kname, dtype)
        node.input[1] = kname
        if native:
            mark_native_weight(model, kname, fmt.name)

        scale_output(model, node, sd, "minifloat_scale", where, k.ndim)

        # Tidy up what the integer weight replaced.
        if quant is None:
            if not model.find_consumers(old_w):
                model.del_initializer(old_w)
                drop_weight_record(model, old_w)
        else:
            producer = model.find_producer(old_w)
            if producer is not None:
                remove_if_orphaned(model, producer)
