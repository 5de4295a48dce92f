"""Fold a ``Transpose`` that follows a minifloat weight quantizer into the quantizer's initializers."""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from brevitas_minifloat.qonnx_contract.quant_nodes import is_minifloat_quant


__all__ = ["FoldTransposeIntoMinifloatWeights"]


class FoldTransposeIntoMinifloatWeights(Transformation):
    """Pattern: ``W (init) -> FloatQuant|MinifloatQuant(W, scale) -> Transpose -> consumer``.

    Replacement: ``W^T -> quantizer(W^T, scale^T) -> consumer``. Elementwise quantization commutes
    with transposition, so this is exact. Brevitas exports bias-free linear layers as
    ``quantizer -> Transpose -> MatMul``; after this pass every weight quantizer feeds its
    MatMul/Conv directly (as qonnx's ``FoldTransposeIntoQuantInit`` does for integer ``Quant``),
    so a constant-folded weight keeps the tensor name its recorded format is attached to.
    Initializers shared with other nodes are copied before they are transposed.
    """

    def apply(self, model: ModelWrapper):
        modified = False
        for node in list(model.graph.node):
            if node.op_type != "Transpose":
                continue
            producer = model.find_producer(node.input[0])
            if producer is None or not is_minifloat_quant(producer) or model.get_initializer(producer.input[0]) is None:
                continue
            if len(model.find_consumers(producer.output[0]) or []) != 1:
                continue
            perm_attr = get_by_name(node.attribute, "perm")
            perm = list(perm_attr.ints) if perm_attr is not None else None
            for idx, name in enumerate(producer.input[:2]):  # weight and scale; format scalars stay
                tensor = model.get_initializer(name)
                if tensor.ndim == 0 or (perm is not None and len(perm) != tensor.ndim):
                    continue
                if len(model.find_consumers(name) or []) > 1:
                    # The exporter deduplicates equal constants (e.g. equal per-channel scales of two
                    # layers): transpose a private copy, not the tensor the other layer reads.
                    name = model.make_new_valueinfo_name()
                    producer.input[idx] = name
                model.set_initializer(name, tensor.transpose(perm))
            producer.output[0] = node.output[0]
            model.graph.node.remove(node)
            modified = True
        return model, modified
