"""FINN builder steps for minifloat and SYQ codebook models.

``step_lower_minifloat`` runs the exact lowering passes (`finn_transforms.transformation`: minifloat
weights and activations, integer activations (FINN's own conversion rounds their ties up), and SYQ
weights whose per-row / per-pixel scales share a fixed-point grid)
and goes before FINN's ``step_qonnx_to_finn`` (one step for both kinds of model; SYQ weights per layer
or output channel need no step, FINN folds them). Use it as the string
``"finn_transforms.steps.step_lower_minifloat"`` or the callable, e.g. with `finn_transforms.build.build_estimates`::

    build_estimates(model, out_dir, extra_steps_before=[MINIFLOAT_STEP])

or in a plain FINN ``DataflowBuildConfig(steps=minifloat_estimate_steps(), ...)``.
Limits (``max_weight_bits``, ``max_thresholds``) are set with `make_step_lower_minifloat` or, for the
string form, with attributes ``minifloat_max_weight_bits`` / ``minifloat_max_thresholds`` on the
build config object.

``step_streamline`` here is the topology-aware streamlining (`finn_transforms.topology`) with the
thresholds FINN absorbed in float32 recomputed exactly
(`finn_transforms.transformation.exact_absorbed_thresholds`).
``step_minimize_bit_width_initial`` / ``step_minimize_bit_width`` here are FINN's steps of the same
names made exact for XNOR-popcount layers (binary weights x bipolar activations; see
`xnor_exact_step`) and for float64 thresholds (`float64_threshold_step`). ``build_estimates`` and ``minifloat_estimate_steps`` use them in place of FINN's.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from brevitas_minifloat.qonnx_contract import FORMAT_KEY, is_minifloat_quant
from finn_transforms.build.step_list import splice_steps
from finn_transforms.native import steps as native_steps
from finn_transforms.native.mapping import DEFAULT_MAPPING, DEFAULT_MAX_ACC_BITS, check_mapping
from finn_transforms.native.steps import record_max_acc_bits
from finn_transforms import topology
from finn_transforms.topology import TOPOLOGY_STEPS
from finn_transforms.transformation import (
    DEFAULT_MAX_THRESHOLDS,
    DEFAULT_MAX_WEIGHT_BITS,
    ClampXnorPopcountThresholds,
    LowerIntegerActivations,
    LowerMinifloatActivations,
    LowerMinifloatWeights,
    LowerSyqGroupScales,
    LoweringError,
)
from finn_transforms.transformation.clamp_xnor_popcount_thresholds import xnor_threshold_inputs
from finn_transforms.transformation.round_and_clip_float64_thresholds import (
    RoundAndClipFloat64Thresholds,
    float64_thresholds,
)

__all__ = [
    "MINIFLOAT_STEP",
    "REPLACED_FINN_STEPS",
    "float64_threshold_step",
    "XNOR_EXACT_STEPS",
    "lower_minifloat",
    "make_step_lower_minifloat",
    "minifloat_estimate_steps",
    "step_lower_minifloat",
    "step_minimize_bit_width",
    "step_minimize_bit_width_initial",
    "step_streamline",
    "xnor_exact_step",
]

MINIFLOAT_STEP = "finn_transforms.steps.step_lower_minifloat"
_INTEGER_QONNX_OPS = ("Quant", "BipolarQuant", "BinaryQuant", "Trunc")


def lower_minifloat(
    model: ModelWrapper,
    *,
    max_weight_bits: int = DEFAULT_MAX_WEIGHT_BITS,
    max_thresholds: int = DEFAULT_MAX_THRESHOLDS,
    mapping: str = DEFAULT_MAPPING,
) -> ModelWrapper:
    """Lower every minifloat quantizer and every SYQ weight with reduction-axis scales of a QONNX model
    (returns a new model; the input is untouched).

    ``Gemm`` nodes first become ``MatMul`` (+ Transpose / Add), as FINN's ``ConvertQONNXtoFINN`` would
    do later, so Gemm weights lower too. Weight quantizers feeding MatMul/Conv become integer
    weights + Mul, activation quantizers become MultiThreshold + Mul. SYQ ``Quant``/``BipolarQuant``
    weights with per-row / per-pixel scales become integers ``c * k_g`` + ``Mul(s)`` when
    ``a_g = s * k_g`` (`LowerSyqGroupScales`; per-layer / per-channel SYQ scales are FINN's own
    business). Other quantizers of constants (e.g. of a bias) are left to constant folding. Integer
    activation ``Quant`` nodes become MultiThreshold + Mul with tie-exact thresholds
    (`LowerIntegerActivations`; FINN's own conversion rounds ties up); other integer ``Quant`` nodes
    are left for FINN. ``max_weight_bits`` bounds both kinds of integer weight.
    ``mapping`` (``"auto"``, ``"native"``, ``"embedding"``; `finn_transforms.native.mapping`) picks the
    minifloat layers that become native layers: their activations lower to ordinal thresholds +
    ``OrdinalDecode``, their weights are marked for the native MVAU (the limits do not apply to them).
    Raises `LoweringError` naming the node that cannot be lowered exactly.
    """
    check_mapping(mapping)
    model = model.transform(InferShapes())
    if model.get_nodes_by_op_type("Gemm"):
        from qonnx.transformation.gemm_to_matmul import GemmToMatMul

        try:  # FINN's fix for Gemms exported without a bias input (qonnx's GemmToMatMul needs one)
            from finn.transformation.qonnx.convert_qonnx_to_finn import InferMissingGemmBias

            model = model.transform(InferMissingGemmBias())
        except ImportError:  # pragma: no cover - FINN not installed
            pass
        with warnings.catch_warnings():  # "only offers explicit support for version 9 of the Gemm node"
            warnings.simplefilter("ignore")
            model = model.transform(GemmToMatMul()).transform(InferShapes())
    model = model.transform(LowerMinifloatWeights(max_weight_bits, mapping=mapping, max_thresholds=max_thresholds))
    model = model.transform(LowerSyqGroupScales(max_weight_bits=max_weight_bits))
    model = model.transform(LowerMinifloatActivations(max_thresholds=max_thresholds, mapping=mapping))
    model = model.transform(LowerIntegerActivations(max_thresholds=max_thresholds))
    left = [n for n in model.graph.node if is_minifloat_quant(n) and model.get_initializer(n.input[0]) is None]
    if left:  # pragma: no cover - the activation pass lowers or raises
        raise LoweringError(f"minifloat quantizers left after lowering: {[n.name for n in left]}")
    return model.transform(InferShapes()).transform(InferDataTypes())


def _finn_qonnx_to_finn(model: ModelWrapper, cfg: Any) -> ModelWrapper:
    """FINN's QONNX -> FINN-ONNX conversion, for graphs where FINN's own step would skip it."""
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
    from finn.transformation.qonnx.quant_act_to_multithreshold import default_filter_function_generator
    from qonnx.util.cleanup import cleanup_model

    bits = getattr(cfg, "max_multithreshold_bit_width", 8)
    model = cleanup_model(model)
    return model.transform(ConvertQONNXtoFINN(default_filter_function_generator(max_multithreshold_bit_width=bits)))


def _guard_requant(model: ModelWrapper, cfg: Any) -> None:
    """Keep FINN from turning our MultiThresholds into ``Requant`` layers, which would not be exact.

    FINN+ 1.6.1's ``step_convert_to_hw`` replaces a standalone MultiThreshold whose output has at
    least ``cfg.requant_bitwidth_threshold`` bits (default 9) and whose thresholds it judges
    uniform (``np.allclose(diffs, diffs[0], rtol=1e-2)``, default ``atol=1e-8``) by
    ``round(x * scale + bias)``. That is wrong for our thresholds in two cases (measured): grids
    that are uniform (E1 formats, e.g. E1M7 -> INT9) lose round-half-to-even at ties, and thresholds
    closer than 1e-8 (tiny scales) pass the test although they are not uniform at all. Integer
    activations of 9 bits or more have uniform thresholds too: kept as thresholds as well (a float32
    ``x * scale + bias`` is not the quantizer's ``fl(x / s)``). When a lowered MultiThreshold is at risk, raise
    ``cfg.requant_bitwidth_threshold`` above its width (this build only; quantizers left to FINN's
    conversion, e.g. integer ones wider than ``max_thresholds`` allows, may still become Requant).
    """
    limit = getattr(cfg, "requant_bitwidth_threshold", None)
    if limit is None and not hasattr(cfg, "requant_bitwidth_threshold"):
        return
    try:
        from finn.transformation.fpgadataflow.convert_to_hw.requant import _check_uniform_thresholds
    except ImportError:  # pragma: no cover - other FINN versions: be conservative
        _check_uniform_thresholds = None
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    widest = 0
    for node in model.get_nodes_by_op_type("MultiThreshold"):
        bits = DataType[getCustomOp(node).get_nodeattr("out_dtype")].bitwidth()
        if limit is not None and bits < limit:
            continue
        thresholds = model.get_initializer(node.input[1])
        if thresholds is None or thresholds.shape[1] < 2:
            continue
        if _check_uniform_thresholds is None or _check_uniform_thresholds(thresholds)[0]:
            widest = max(widest, bits)
    if widest:
        warnings.warn(
            f"raising cfg.requant_bitwidth_threshold to {widest + 1}: FINN's Requant conversion would "
            f"not reproduce the lowered thresholds of {widest}-bit MultiThresholds exactly"
        )
        cfg.requant_bitwidth_threshold = widest + 1


def _step(
    model: ModelWrapper, cfg: Any, max_weight_bits: int, max_thresholds: int, mapping: str, max_acc_bits: int
) -> ModelWrapper:
    had_minifloat = any(is_minifloat_quant(n) for n in model.graph.node) or any(
        e.key == FORMAT_KEY for a in model.graph.quantization_annotation for e in a.quant_parameter_tensor_names
    )
    had_quant = had_minifloat or any(model.get_nodes_by_op_type(op) for op in _INTEGER_QONNX_OPS)
    model = lower_minifloat(model, max_weight_bits=max_weight_bits, max_thresholds=max_thresholds, mapping=mapping)
    record_max_acc_bits(model, max_acc_bits)
    _guard_requant(model, cfg)
    # FINN's step_qonnx_to_finn only runs (cleanup + ConvertQONNXtoFINN: Gemm/Conv-bias handling,
    # constant folding of quantized constants, layouts) when integer QONNX quantizers remain.
    if had_quant and not any(model.get_nodes_by_op_type(op) for op in _INTEGER_QONNX_OPS):
        model = _finn_qonnx_to_finn(model, cfg)
    return model


def step_lower_minifloat(model: ModelWrapper, cfg: Any) -> ModelWrapper:
    """Builder step: exact lowering of minifloat quantizers, integer activations and SYQ row/pixel
    weights; put it before ``step_qonnx_to_finn``.

    Limits and the mapping come from ``cfg.minifloat_max_weight_bits`` /
    ``cfg.minifloat_max_thresholds`` / ``cfg.minifloat_mapping`` / ``cfg.minifloat_max_acc_bits``
    when the config object has them, else the defaults (16 bits, 4096 thresholds per channel,
    ``"auto"``, 96 accumulator bits).
    """
    return _step(
        model,
        cfg,
        int(getattr(cfg, "minifloat_max_weight_bits", DEFAULT_MAX_WEIGHT_BITS)),
        int(getattr(cfg, "minifloat_max_thresholds", DEFAULT_MAX_THRESHOLDS)),
        check_mapping(getattr(cfg, "minifloat_mapping", DEFAULT_MAPPING)),
        int(getattr(cfg, "minifloat_max_acc_bits", DEFAULT_MAX_ACC_BITS)),
    )


def make_step_lower_minifloat(
    *,
    max_weight_bits: int = DEFAULT_MAX_WEIGHT_BITS,
    max_thresholds: int = DEFAULT_MAX_THRESHOLDS,
    mapping: str | None = None,
    max_acc_bits: int = DEFAULT_MAX_ACC_BITS,
) -> Callable[[ModelWrapper, Any], ModelWrapper]:
    """``step_lower_minifloat`` with explicit limits and mapping (`finn_transforms.native.mapping`;
    ``None``: the build config's ``minifloat_mapping``, e.g. ``build_estimates(mapping=...)``, else
    ``"auto"``; ``max_acc_bits`` bounds the exact accumulator of native layers), a callable step
    named ``step_lower_minifloat``."""
    if mapping is not None:
        check_mapping(mapping)
    LowerMinifloatWeights(max_weight_bits)  # validate now, not in the middle of a build
    LowerSyqGroupScales(max_weight_bits)
    LowerMinifloatActivations(max_thresholds)
    LowerIntegerActivations(max_thresholds)
    if int(max_acc_bits) < 2:
        raise ValueError(f"max_acc_bits must be >= 2, got {max_acc_bits}")

    @functools.wraps(step_lower_minifloat)
    def step(model: ModelWrapper, cfg: Any) -> ModelWrapper:
        chosen = mapping if mapping is not None else check_mapping(getattr(cfg, "minifloat_mapping", DEFAULT_MAPPING))
        return _step(model, cfg, int(max_weight_bits), int(max_thresholds), chosen, int(max_acc_bits))

    return step


def xnor_exact_step(finn_step: Callable[[ModelWrapper, Any], ModelWrapper]) -> Callable[[ModelWrapper, Any], ModelWrapper]:
    """Wrap one of FINN's bit-width minimisation steps so XNOR-popcount MVAUs stay exact.

    Works around FINN+ 1.6.1's ``MVAU.minimize_accumulator_width``, which sizes an XNOR MVAU's
    accumulator as ``[-(#-1 weights), #+1 weights]`` instead of the popcount's ``[0, MW]``, after
    which ``RoundAndClipThresholds`` clips the thresholds to that range: a negative threshold then
    fails FINN's ``assert (orig_thres_matrix >= 0).all()`` (bare ``AssertionError`` in
    ``step_minimize_bit_width``) and thresholds above the clipped range silently switch channels on
    too early (`finn_transforms.transformation.clamp_xnor_popcount_thresholds`). Before the step:
    clamp the popcount thresholds to ``[0, MW + 1]`` (exact) and remember them; after it: put them
    back and give the MVAU the popcount's ``UINT`` accumulator and threshold types. A no-op for
    graphs without XNOR layers. The wrapper keeps the step's ``__name__`` (FINN names intermediate
    models after it).
    """

    @functools.wraps(finn_step)
    def step(model: ModelWrapper, cfg: Any) -> ModelWrapper:
        model = model.transform(ClampXnorPopcountThresholds())
        saved = {name: model.get_initializer(name).copy() for _, name, _ in xnor_threshold_inputs(model)}
        model = finn_step(model, cfg)
        for name, thresholds in saved.items():
            if model.get_initializer(name) is not None:
                model.set_initializer(name, thresholds)
        return model.transform(ClampXnorPopcountThresholds())

    return step


def float64_threshold_step(finn_step: Callable[[ModelWrapper, Any], ModelWrapper]) -> Callable[[ModelWrapper, Any], ModelWrapper]:
    """Wrap one of FINN's bit-width minimisation steps so float64 thresholds stay float64 (exact beyond
    2^24; `finn_transforms.transformation.round_and_clip_float64_thresholds`: FINN+ 1.6.1's
    ``RoundAndClipThresholds`` casts them to float32). After the step the float64 tensors are put back
    rounded and clipped as FINN does, and FINN's ``MinimizeWeightBitWidth`` re-sizes the threshold
    types from them. Keeps the step's ``__name__``."""

    @functools.wraps(finn_step)
    def step(model: ModelWrapper, cfg: Any) -> ModelWrapper:
        saved = float64_thresholds(model)
        model = finn_step(model, cfg)
        if not saved:
            return model
        model = model.transform(RoundAndClipFloat64Thresholds(saved))
        if getattr(cfg, "minimize_bit_width", True):
            from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth

            model = model.transform(MinimizeWeightBitWidth())
        return model.transform(InferDataTypes())

    return step


def _finn_step(name: str) -> Callable[[ModelWrapper, Any], ModelWrapper]:
    from finn_transforms.finn_env import import_builder  # needs FINN settings (inside a build they exist)

    return getattr(import_builder().steps, name)


def step_minimize_bit_width_initial(model: ModelWrapper, cfg: Any) -> ModelWrapper:
    """FINN's ``step_minimize_bit_width_initial``, exact for XNOR-popcount MVAUs (`xnor_exact_step`), for
    float64 thresholds (`float64_threshold_step`) and for native layers with accumulators over 64 bits (`finn_transforms.native.steps.wide_accumulator_step`)."""
    return xnor_exact_step(native_steps.wide_accumulator_step(float64_threshold_step(_finn_step("step_minimize_bit_width_initial"))))(model, cfg)


def step_minimize_bit_width(model: ModelWrapper, cfg: Any) -> ModelWrapper:
    """FINN's ``step_minimize_bit_width``, exact for XNOR-popcount MVAUs (`xnor_exact_step`), for float64
    thresholds (`float64_threshold_step`) and for native layers with accumulators over 64 bits (`finn_transforms.native.steps.wide_accumulator_step`)."""
    return xnor_exact_step(native_steps.wide_accumulator_step(float64_threshold_step(_finn_step("step_minimize_bit_width"))))(model, cfg)


def step_streamline(model: ModelWrapper, cfg: Any) -> ModelWrapper:
    """`finn_transforms.topology.step_streamline` (FINN's streamlining for residual, pooling-head and
    Conv1d graphs), then the thresholds it absorbed in float32 recomputed exactly
    (`finn_transforms.transformation.ExactAbsorbedThresholds`, against the graph before the step)."""
    from finn_transforms.transformation.exact_absorbed_thresholds import ExactAbsorbedThresholds

    before = ModelWrapper(copy.deepcopy(model.model))
    model = topology.step_streamline(model, cfg)
    return model.transform(ExactAbsorbedThresholds(before))


#: FINN step name -> our XNOR-exact replacement (same name, so intermediate models keep theirs).
XNOR_EXACT_STEPS: dict[str, Callable[[ModelWrapper, Any], ModelWrapper]] = {
    "step_minimize_bit_width_initial": step_minimize_bit_width_initial,
    "step_minimize_bit_width": step_minimize_bit_width,
}

#: Every FINN step our builds replace by a same-named extension: the XNOR-exact steps, the residual /
#: pooling-head / Conv1d streamlining (`finn_transforms.topology`) with exact threshold absorption
#: (`step_streamline`) and the native minifloat steps (`finn_transforms.native.steps`; no-ops without
#: native layers).
REPLACED_FINN_STEPS: dict[str, Callable[[ModelWrapper, Any], ModelWrapper]] = {
    **XNOR_EXACT_STEPS,
    **TOPOLOGY_STEPS,
    "step_streamline": step_streamline,
    "step_convert_to_hw": native_steps.step_convert_to_hw,
    "step_target_fps_parallelization": native_steps.step_target_fps_parallelization,
}


def minifloat_estimate_steps(
    base: Sequence[str | Callable] | None = None, *, step: str | Callable = MINIFLOAT_STEP
) -> list[str | Callable]:
    """FINN's ``estimate_only_dataflow_steps`` (or ``base``) with ``step`` and our topology check inserted
    before ``step_qonnx_to_finn`` (prepended when there is none) and the FINN steps we extend (given by
    name) replaced by ours (`REPLACED_FINN_STEPS`, as ``"package.module.step"`` strings; e.g.
    ``step_streamline`` by ``"finn_transforms.steps.step_streamline"``: residual blocks, pooling
    heads, Conv1d, exact threshold absorption)."""
    if base is None:
        from finn.builder.build_dataflow_config import estimate_only_dataflow_steps

        base = estimate_only_dataflow_steps
    return splice_steps(base, [step])
