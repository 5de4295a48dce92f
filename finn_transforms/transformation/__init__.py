"""Exact lowering passes (qonnx transformations, one per file) from minifloat / SYQ QONNX to FINN-ONNX,
and the topology passes (residual blocks, pooling heads, Conv1d) our streamlining step adds to FINN's."""

from finn_transforms.transformation._common import DEFAULT_MAX_THRESHOLDS, DEFAULT_MAX_WEIGHT_BITS, LoweringError
from finn_transforms.transformation.align_residual_scales import AlignResidualScales
from finn_transforms.transformation.change_3d_to_4d_with_pools import Change3DTo4DTensorsWithPools
from finn_transforms.transformation.clip_thresholds_on_unsigned_inputs import ClipThresholdsOnUnsignedInputs
from finn_transforms.transformation.clamp_xnor_popcount_thresholds import ClampXnorPopcountThresholds
from finn_transforms.transformation.exact_absorbed_thresholds import ExactAbsorbedThresholds
from finn_transforms.transformation.lower_average_pools import LowerAveragePoolsToSums
from finn_transforms.transformation.lower_integer_activations import LowerIntegerActivations
from finn_transforms.transformation.lower_minifloat_activations import LowerMinifloatActivations
from finn_transforms.transformation.lower_minifloat_weights import LowerMinifloatWeights
from finn_transforms.transformation.lower_syq_group_scales import LowerSyqGroupScales
from finn_transforms.transformation.move_flatten_past_multithreshold import MoveFlattenPastMultiThreshold
from finn_transforms.transformation.remove_flat_transpose import RemoveFlatTransposeBeforeFlatten
from finn_transforms.transformation.round_and_clip_float64_thresholds import RoundAndClipFloat64Thresholds
from finn_transforms.transformation.scalarize_uniform_scales import ScalarizeUniformScales
from finn_transforms.transformation.streamline_topologies import StreamlineTopologies

__all__ = [
    "AlignResidualScales",
    "Change3DTo4DTensorsWithPools",
    "ClampXnorPopcountThresholds",
    "ClipThresholdsOnUnsignedInputs",
    "DEFAULT_MAX_THRESHOLDS",
    "DEFAULT_MAX_WEIGHT_BITS",
    "ExactAbsorbedThresholds",
    "LowerAveragePoolsToSums",
    "LowerIntegerActivations",
    "LowerMinifloatActivations",
    "LowerMinifloatWeights",
    "LowerSyqGroupScales",
    "LoweringError",
    "MoveFlattenPastMultiThreshold",
    "RemoveFlatTransposeBeforeFlatten",
    "RoundAndClipFloat64Thresholds",
    "ScalarizeUniformScales",
    "StreamlineTopologies",
]
