"""The QONNX contract between export and lowering: what our QONNX files contain and how to read it.

One home that both sides import (export in ``brevitas_minifloat.export``, lowering in
``finn_transforms``): the ``MinifloatQuant`` op (:mod:`.op`: schema, numpy execution, its domain
``finn_transforms.custom_op``), reading a format off a ``FloatQuant`` / ``MinifloatQuant`` node
(:mod:`.quant_nodes`), the weight-format records that survive qonnx's constant folding
(:mod:`.annotations`), SYQ codebooks behind standard ``Quant`` / ``BipolarQuant`` nodes (:mod:`.syq_nodes`)
and the export-time graph fix :class:`FoldTransposeIntoMinifloatWeights`.
Nothing here imports ``finn_transforms``.
"""

from brevitas_minifloat.qonnx_contract.annotations import (
    FORMAT_KEY,
    SCALE_KEY,
    WeightFormatRecord,
    read_weight_format,
    record_weight_format,
)
from brevitas_minifloat.qonnx_contract.fold_transpose import FoldTransposeIntoMinifloatWeights
from brevitas_minifloat.qonnx_contract.op import DOMAIN, MinifloatQuant
from brevitas_minifloat.qonnx_contract.syq_nodes import SyqCodebook, syq_codebook
from brevitas_minifloat.qonnx_contract.quant_nodes import (
    MINIFLOAT_QUANT_OPS,
    UnsupportedQuantNodeError,
    is_minifloat_quant,
    minifloat_format_of,
)

__all__ = [
    "DOMAIN",
    "FORMAT_KEY",
    "MINIFLOAT_QUANT_OPS",
    "SCALE_KEY",
    "FoldTransposeIntoMinifloatWeights",
    "MinifloatQuant",
    "SyqCodebook",
    "UnsupportedQuantNodeError",
    "WeightFormatRecord",
    "is_minifloat_quant",
    "minifloat_format_of",
    "read_weight_format",
    "record_weight_format",
    "syq_codebook",
]
