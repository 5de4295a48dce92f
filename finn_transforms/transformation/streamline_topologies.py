"""`StreamlineTopologies`: FINN's streamlining, extended to residual blocks and average-pooling heads.

Upstream problems (FINN+ 1.6.1, default ``step_streamline``):

- Residual blocks: the quantizer scale ``Mul`` in front of a fork (the block input feeding both
  the convolution and the shortcut) and the two ``Mul`` s meeting at the residual ``Add`` are never
  moved, so ``MatMul`` s keep float inputs and the build stops at "could not map Im2Col/MatMul".
  FINN's ResNet recipe (``MoveLinearPastEltwiseAdd`` then ``MoveLinearPastFork``) has an ordering
  bug: when ``MoveLinearPastEltwiseAdd`` meets an ``Add`` whose two inputs come from one forked
  ``Mul`` it removes that ``Mul`` without rewiring its other consumers, leaving a dangling tensor
  (silently). Running ``MoveLinearPastFork`` first gives every consumer its own copy. FINN+'s
  exhaustive ``StreamlinePlus`` loops forever on such graphs (measured: no fixed point in 15 min on a
  4-channel block), so the rounds here are bounded.
- Average pooling heads: see `LowerAveragePoolsToSums`, run after the scales have moved.
- Layout: after ``LowerConvsToMatMul`` the shortcut keeps NCHW<->NHWC ``Transpose`` pairs around
  the ``Add``, which FINN would map to ``Shuffle`` layers; ``MoveTransposePastFork`` /
  ``MoveTransposePastJoinAdd`` let them cancel.

Matched: any FINN-ONNX graph (the input of FINN's ``step_streamline``).
Replaced: FINN's streamlining sequence (``step_streamline``: ``Streamline``, ``LowerConvsToMatMul``,
``MakeMaxPoolNHWC``, transposes absorbed, ``ConvertBipolarMatMulToXnorPopcount``) with, in addition,
`ScalarizeUniformScales` and ``AbsorbScalarBiasIntoMultiThreshold`` first (so a signed quantizer's output bias is absorbed before a
fork copies it), rounds of ``MoveLinearPastFork`` -> ``Streamline`` -> `AlignResidualScales` ->
``MoveLinearPastEltwiseAdd``
-> ``MoveScalarLinearPastInvariants`` until the graph stops changing (at most ``max_rounds``),
`LowerAveragePoolsToSums`, and rounds of transpose motion after the convolutions are lowered.
Last, `ClipThresholdsOnUnsignedInputs` (a signed quantizer reading an unsigned one otherwise keeps
negative thresholds, on which FINN's ``Thresholding`` asserts).
Linear graphs without forks get FINN's own sequence plus these steps.
Refused: nothing here; what FINN cannot map afterwards is named by the build's mapping check.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames, RemoveUnusedTensors
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from finn_transforms.transformation.align_residual_scales import AlignResidualScales
from finn_transforms.transformation.clip_thresholds_on_unsigned_inputs import ClipThresholdsOnUnsignedInputs
from finn_transforms.transformation.lower_average_pools import LowerAveragePoolsToSums
from finn_transforms.transformation.move_flatten_past_multithreshold import MoveFlattenPastMultiThreshold
from finn_transforms.transformation.remove_flat_transpose import RemoveFlatTransposeBeforeFlatten
from finn_transforms.transformation.scalarize_uniform_scales import ScalarizeUniformScales

__all__ = ["StreamlineTopologies"]


def _signature(model: ModelWrapper) -> list[tuple]:
    return [(n.op_type, tuple(n.input), tuple(n.output)) for n in model.graph.node]


def _tidy(model: ModelWrapper) -> ModelWrapper:
    for t in (GiveUniqueNodeNames(), GiveReadableTensorNames(), InferShapes(), InferDataTypes(), InferDataLayouts()):
        model = model.transform(t)
    return model


def _rounds(model: ModelWrapper, transforms: list, max_rounds: int) -> ModelWrapper:
    for _ in range(max_rounds):
        before = _signature(model)
        for make in transforms:
            model = _tidy(model.transform(make()))
        if _signature(model) == before:
            break
    return model


def _has_fork(model: ModelWrapper) -> bool:
    return any(len(model.find_consumers(o)) > 1 for n in model.graph.node for o in n.output)


class StreamlineTopologies(Transformation):
    """FINN's ``step_streamline`` sequence plus residual-block and pooling-head handling (module docstring)."""

    def __init__(self, max_rounds: int = 6):
        super().__init__()
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
        self.max_rounds = int(max_rounds)

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        import finn.transformation.streamline.absorb as absorb
        from finn.transformation.streamline import Streamline
        from finn.transformation.streamline.reorder import (
            MakeMaxPoolNHWC,
            MoveLinearPastEltwiseAdd,
            MoveLinearPastFork,
            MoveScalarLinearPastInvariants,
            MoveTransposePastFork,
            MoveTransposePastJoinAdd,
        )
        from finn.transformation.streamline.remove import RemoveIdentityTranspose
        from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
        from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

        residual = _has_fork(model)
        model = _tidy(model.transform(ScalarizeUniformScales()).transform(absorb.AbsorbScalarBiasIntoMultiThreshold()))
        if residual:
            # MoveLinearPastFork strictly before MoveLinearPastEltwiseAdd (module docstring).
            model = _rounds(
                model,
                [MoveLinearPastFork, Streamline, AlignResidualScales, MoveLinearPastEltwiseAdd, MoveScalarLinearPastInvariants],
                self.max_rounds,
            )
        else:
            model = model.transform(Streamline())
        model = _rounds(model, [LowerAveragePoolsToSums, Streamline], self.max_rounds)
        model = model.transform(LowerConvsToMatMul())
        model = model.transform(MakeMaxPoolNHWC())
        model = model.transform(absorb.AbsorbTransposeIntoMultiThreshold())
        model = model.transform(MakeMaxPoolNHWC())
        model = model.transform(absorb.AbsorbConsecutiveTransposes())
        if residual:
            model = _rounds(
                model,
                [
                    MoveTransposePastFork,
                    MoveTransposePastJoinAdd,
                    absorb.AbsorbTransposeIntoMultiThreshold,
                    absorb.AbsorbConsecutiveTransposes,
                    RemoveIdentityTranspose,
                    MoveLinearPastFork,
                    Streamline,
                    MoveLinearPastEltwiseAdd,
                ],
                self.max_rounds,
            )
        model = _tidy(model.transform(RemoveFlatTransposeBeforeFlatten()))
        model = _tidy(model.transform(MoveFlattenPastMultiThreshold()))
        model = _tidy(model.transform(absorb.AbsorbTransposeIntoMultiThreshold()))
        model = _tidy(model.transform(absorb.AbsorbConsecutiveTransposes()))
        model = model.transform(ConvertBipolarMatMulToXnorPopcount())
        model = model.transform(Streamline())
        model = model.transform(absorb.AbsorbScalarMulAddIntoTopK())
        model = model.transform(ClipThresholdsOnUnsignedInputs())
        model = model.transform(InferDataLayouts())
        model = model.transform(RemoveUnusedTensors())
        return model, False
