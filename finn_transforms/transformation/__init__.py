"""Exact lowering passes (qonnx transformations, one per file) from minifloat / SYQ QONNX to FINN-ONNX."""

from finn_transforms.transformation._common import DEFAULT_MAX_THRESHOLDS, DEFAULT_MAX_WEIGHT_BITS, LoweringError
from finn_transforms.transformation.clamp_xnor_popcount_thresholds import ClampXnorPopcountThresholds
from finn_transforms.transformation.exact_absorbed_thresholds import ExactAbsorbedThresholds
from finn_transforms.transformation.lower_minifloat_activations import LowerMinifloatActivations
from finn_transforms.transformation.lower_minifloat_weights import LowerMinifloatWeights
from finn_transforms.transformation.lower_syq_group_scales import LowerSyqGroupScales

__all__ = [
    "ClampXnorPopcountThresholds",
    "DEFAULT_MAX_THRESHOLDS",
    "DEFAULT_MAX_WEIGHT_BITS",
    "ExactAbsorbedThresholds",
    "LowerMinifloatActivations",
    "LowerMinifloatWeights",
    "LowerSyqGroupScales",
    "LoweringError",
]
