"""FINN builder steps of the native minifloat flow (same names as the FINN steps they extend).

``step_convert_to_hw``: the conversion to native layers (`finn_transforms.native.conversion`),
then FINN's conversion of the rest to HW layers (a ``Thresholding`` whose thresholds carry a residual
becomes ``WideThresholding``, `finn_transforms.native.wide_thresholding`). The conversion: decodes moved to their MatMuls
(after FINN's streamlining, which the intermediate ``step_streamline`` model shows untouched and
executable in float32), FINN's transpose clean-up
re-run (a decode between two transposes, or a transpose and a flatten, kept them from merging), ``[OrdinalDecode ->] MatMul``
-> ``MVAU_minifloat`` (``VVAU_minifloat`` for depthwise MatMuls). ``step_target_fps_parallelization``: `SetNativeFolding` for the native layers, then
FINN's folding of the others. Both are no-ops on graphs without native layers, so the build uses them in
place of FINN's unconditionally (`finn_transforms.steps.REPLACED_FINN_STEPS`).

The lowering step records the user's accumulator limit in the model's metadata
(`record_max_acc_bits`), so the conversion, which runs much later in the build, honours it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from finn_transforms.native.folding import NATIVE_OP_TYPES, SetNativeFolding
from finn_transforms.native.mapping import DEFAULT_MAX_ACC_BITS, native_weight_format
from finn_transforms.wide_thresholds import restore_residuals, saved_residuals

_MAX_ACC_KEY = "minifloat_max_acc_bits"


def record_max_acc_bits(model: ModelWrapper, max_acc_bits: int) -> None:
    model.set_metadata_prop(_MAX_ACC_KEY, str(int(max_acc_bits)))


def convert_to_native(model: ModelWrapper) -> ModelWrapper:
    """The conversion half of ``step_convert_to_hw`` (see the module docstring)."""
    if not model.get_nodes_by_op_type("OrdinalDecode") and not _has_native_weights(model):
        return model
    from finn.transformation.streamline.absorb import (
        AbsorbConsecutiveTransposes,
        AbsorbTransposeIntoFlatten,
        AbsorbTransposeIntoMultiThreshold,
    )
    from finn.transformation.streamline.reorder import MakeMaxPoolNHWC

    from finn_transforms.native.conversion import (
        AbsorbMulIntoOrdinalDecode,
        InferMVAU_minifloat,
        InferOrdinalLUT,
        InferVVAU_minifloat,
        MoveOrdinalDecodeForward,
        SplitForkedOrdinalDecode,
        check_no_inner_decode,
    )

    model = model.transform(SplitForkedOrdinalDecode())

    for _ in range(4):  # each round can expose another cancelling transpose pair
        before = len(model.graph.node)
        model = model.transform(MoveOrdinalDecodeForward()).transform(InferDataLayouts())
        model = model.transform(AbsorbTransposeIntoMultiThreshold())
        model = model.transform(MakeMaxPoolNHWC())
        model = model.transform(AbsorbConsecutiveTransposes())
        model = model.transform(AbsorbTransposeIntoFlatten())
        model = model.transform(InferShapes()).transform(InferDataTypes())
        if len(model.graph.node) == before:
            break
    model = model.transform(MoveOrdinalDecodeForward())
    max_acc = int(model.get_metadata_prop(_MAX_ACC_KEY) or DEFAULT_MAX_ACC_BITS)
    model = model.transform(InferMVAU_minifloat(max_acc_bits=max_acc))
    model = model.transform(InferVVAU_minifloat(max_acc_bits=max_acc))
    model = model.transform(AbsorbMulIntoOrdinalDecode())
    model = model.transform(InferOrdinalLUT())
    check_no_inner_decode(model)
    return model.transform(InferShapes()).transform(InferDataTypes()).transform(InferDataLayouts())


def _has_native_weights(model: ModelWrapper) -> bool:
    return any(len(n.input) > 1 and native_weight_format(model, n.input[1]) for n in model.get_nodes_by_op_type("MatMul"))


def _finn_step(name: str):
    from finn_transforms.finn_env import import_builder

    return getattr(import_builder().steps, name)


def step_convert_to_hw(model: ModelWrapper, cfg: Any) -> ModelWrapper:
    """The conversion to native minifloat layers, then FINN's ``step_convert_to_hw``; thresholds held
    exactly beyond 2^53 (`finn_transforms.wide_thresholds`) make their ``Thresholding`` a ``WideThresholding``."""
    import finn_transforms.native.wide_thresholding  # noqa: F401  (registers WideThresholding with qonnx and FINN)

    model = convert_to_native(model)
    saved = saved_residuals(model)
    return restore_residuals(_finn_step("step_convert_to_hw")(model, cfg), saved, "FINN's step_convert_to_hw")


def step_target_fps_parallelization(model: ModelWrapper, cfg: Any) -> ModelWrapper:
    """`SetNativeFolding` at the build's cycle target, then FINN's ``step_target_fps_parallelization``.

    In this order because FINN's ``SetFolding`` relaxes its target to the slowest layer it sees when
    a layer misses it (``two_pass_relaxation``): native layers left unfolded would slow every other
    layer down to them (measured: the CNV-shaped CNN at 10000 fps ended at 17888 cycles).
    """
    target = cfg._resolve_cycles_per_frame()
    if target is not None:
        model = model.transform(SetNativeFolding(target, mvau_wwidth_max=cfg.mvau_wwidth_max))
    return _finn_step("step_target_fps_parallelization")(model, cfg)


_QONNX_MAX_INT_BITS = 64
_FLOAT64_EXACT_BITS = 53  # float64 holds every integer of magnitude <= 2^53


@contextmanager
def wide_integer_datatypes(model: ModelWrapper) -> Iterator[None]:
    """Let qonnx and FINN size integers as wide as the widest native accumulator (+1 for its thresholds).

    Two upstream workarounds, active only while a wrapped FINN step runs on a graph whose native
    accumulators are wider than float64's 53-bit significand:

    - qonnx 1.0: ``DataType.get_smallest_possible`` only tries integer types up to 64 bits, so FINN's
      ``RoundAndClipThresholds`` raises ("Could not find a suitable int datatype") on the thresholds
      after a wider exact accumulator (E5M2 x E5M2: 69 bits for a 3x3 kernel). The candidate list is
      extended (accumulators of 64 bits or more).
    - FINN+ 1.6.1: ``Thresholding.minimize_weight_bit_width`` sizes the threshold type from the float64
      ``-max - 1``, which rounds to ``-max`` beyond 2^53. ``RoundAndClipThresholds`` clips unreachable
      thresholds of an ``INT<n>`` input to its ``max + 1 = 2^(n-1)``, which then gets ``INT<n>``, and
      the step raises "Thresholds can't be expressed with type INT<n>" (E5M2 fashion_cnv: INT70).
      Thresholds beyond 2^53 are typed by the same rule in exact integers (`_exact_threshold_width`).
    """
    widest = max(
        (getCustomOp(n).get_accumulator_datatype().bitwidth() for n in model.graph.node if n.op_type in NATIVE_OP_TYPES),
        default=0,
    )
    if widest <= _FLOAT64_EXACT_BITS:
        yield
        return
    from finn.custom_op.fpgadataflow.thresholding import Thresholding

    original_cands, original_width = DataType.get_accumulator_dt_cands, Thresholding.minimize_weight_bit_width
    extra = range(_QONNX_MAX_INT_BITS + 1, widest + 2)
    DataType.get_accumulator_dt_cands = staticmethod(
        lambda: original_cands() + [f"UINT{n}" for n in extra] + [f"INT{n}" for n in extra]
    )
    Thresholding.minimize_weight_bit_width = _exact_threshold_width(original_width)
    try:
        yield
    finally:
        DataType.get_accumulator_dt_cands = staticmethod(original_cands)
        Thresholding.minimize_weight_bit_width = original_width


def _exact_threshold_width(original: Callable) -> Callable:
    """FINN's ``Thresholding.minimize_weight_bit_width`` with integer thresholds beyond 2^53 typed in
    exact integers: the smallest type holding ``[min, max]``, signed (and holding ``-max - 1``, as
    FINN's rule) when a threshold is negative or the input is signed, else unsigned. Below 2^53
    FINN's float64 arithmetic is exact and FINN's own method runs."""

    @functools.wraps(original)
    def minimize_weight_bit_width(self, model: ModelWrapper, datatype_only: bool = False) -> DataType:
        thresholds = model.get_initializer(self.onnx_node.input[1])
        if (
            datatype_only
            or thresholds is None
            or thresholds.size == 0
            or self.get_nodeattr("runtime_writeable_weights")
            or self.get_nodeattr("mlo_max_iter")
            or not (self.get_input_datatype(0).is_integer() and self.get_input_datatype(1).is_integer())
            or np.abs(thresholds.astype(np.float64)).max() <= 2**_FLOAT64_EXACT_BITS
        ):
            return original(self, model, datatype_only)
        from finn_transforms.native.wide_thresholding import finn_threshold_rule

        lo, hi = int(thresholds.min()), int(thresholds.max())  # integer-valued floats: exact
        tdt = finn_threshold_rule(lo, hi, self.get_input_datatype(0).signed())
        self.set_nodeattr("weightDataType", tdt.name)
        model.set_tensor_datatype(self.onnx_node.input[1], tdt)
        return tdt

    return minimize_weight_bit_width


def wide_accumulator_step(finn_step: Callable[[ModelWrapper, Any], ModelWrapper]) -> Callable[[ModelWrapper, Any], ModelWrapper]:
    """``finn_step`` under `wide_integer_datatypes` (keeps the step's name)."""

    @functools.wraps(finn_step)
    def step(model: ModelWrapper, cfg: Any) -> ModelWrapper:
        with wide_integer_datatypes(model):
            return finn_step(model, cfg)

    return step
