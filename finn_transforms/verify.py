"""``verify``: the exactness chain from a Brevitas model to FINN HW layers, stage by stage.

Stages: torch (the Brevitas model) -> QONNX (``execute_onnx`` of our export) -> lowered FINN-ONNX
(our passes) -> FINN's streamlined graph -> FINN HW layers (folded, specialized, executed in Python
by mapping them back to FINN's generic HW ops). Every stage is compared with torch. When the model's
output comes from a quantizer, outputs are compared as integers in units of the output quantum
(exact agreement required); otherwise within float32 rounding of the matmuls (``float_rtol``).
"""

from __future__ import annotations

import inspect
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from brevitas_minifloat.export import export_qonnx
from brevitas_minifloat.qonnx_contract import is_minifloat_quant, minifloat_format_of
from finn_transforms.native.mapping import DEFAULT_MAPPING, DEFAULT_MAX_ACC_BITS
from finn_transforms.steps import lower_minifloat, make_step_lower_minifloat
from finn_transforms.transformation import DEFAULT_MAX_THRESHOLDS, DEFAULT_MAX_WEIGHT_BITS

STREAMLINE_STEP = "step_streamline"


class VerificationError(AssertionError):
    """A stage disagreed with torch; ``.report`` holds every stage's comparison."""

    def __init__(self, message: str, report: VerifyReport):
        super().__init__(message)
        self.report = report


@dataclass
class StageResult:
    stage: str
    max_abs_diff: float
    mismatches: int  # outputs whose integer code (or float value, beyond tolerance) differs from torch
    total: int

    @property
    def agrees(self) -> bool:
        return self.mismatches == 0


@dataclass
class VerifyReport:
    stages: list[StageResult]
    output_quantum: float | None  # None: the model output is not quantized, compared as floats
    output_dir: Path
    estimates: object | None = None  # finn_transforms.build.EstimateReport of the build
    outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    rtl_cycles: dict[str, tuple[int, int]] = field(default_factory=dict)  # native layer: (simulated, NF*SF)

    @property
    def ok(self) -> bool:
        return all(s.agrees for s in self.stages)

    def summary(self) -> str:
        unit = f"integer codes of quantum {self.output_quantum:g}" if self.output_quantum else "float outputs"
        lines = [f"exactness chain, {unit}:", f"{'stage':<14}{'max |diff|':>14}{'mismatches':>14}"]
        for s in self.stages:
            lines.append(f"{s.stage:<14}{s.max_abs_diff:>14.3g}{s.mismatches:>8d} / {s.total}")
        return "\n".join(lines)


def _output_quantum(model: ModelWrapper) -> float | None:
    """Scale x delta of the quantizer producing the graph output, if it has one constant scale."""
    producer = model.find_producer(model.graph.output[0].name)
    if producer is None or model.get_initializer(producer.input[1]) is None:
        return None
    scale = np.asarray(model.get_initializer(producer.input[1]))
    if scale.size != 1:
        return None
    if is_minifloat_quant(producer):
        return float(scale) * minifloat_format_of(model, producer).delta
    if producer.op_type == "Quant":
        return float(scale)
    return None


def _run_per_sample(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(run(x[i : i + 1]), dtype=np.float32) for i in range(len(x))])


def _onnx_runner(model: ModelWrapper) -> Callable[[np.ndarray], np.ndarray]:
    inp, out = model.graph.input[0].name, model.graph.output[0].name
    return lambda x: execute_onnx(model, {inp: x})[out]


def _conv1d_as_2d(x: np.ndarray, graph_shape) -> np.ndarray:
    """``x`` reshaped to the graph's ``[N, C, L, 1]`` when FINN made a 3D (Conv1d) graph 4D."""
    if graph_shape is not None and x.ndim == 3 and len(graph_shape) == 4 and graph_shape[3] == 1:
        return x.reshape(*x.shape, 1)
    return x


def _compare(stage: str, got: np.ndarray, want: np.ndarray, quantum: float | None, float_rtol: float) -> StageResult:
    got = got.reshape(want.shape)
    diff = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    if quantum:
        mismatches = int(np.count_nonzero(np.rint(got / quantum) != np.rint(want / quantum)))
    else:
        tol = float_rtol * max(float(np.max(np.abs(want))), 1e-30)
        mismatches = int(np.count_nonzero(np.abs(got - want) > tol))
    return StageResult(stage, diff, mismatches, int(want.size))


def verify(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    output_dir: str | os.PathLike,
    *,
    build: bool = True,
    max_weight_bits: int = DEFAULT_MAX_WEIGHT_BITS,
    max_thresholds: int = DEFAULT_MAX_THRESHOLDS,
    mapping: str = DEFAULT_MAPPING,
    max_acc_bits: int = DEFAULT_MAX_ACC_BITS,
    float_rtol: float = 1e-5,
    max_mismatch_fraction: float = 0.0,
    raise_on_mismatch: bool = True,
    rtl: bool = False,
    **build_kwargs,
) -> VerifyReport:
    """Export, lower, build and compare every stage with torch on ``inputs`` (a batch).

    ``build=False`` stops after the lowered graph (no FINN build). ``build_kwargs`` go to
    `finn_transforms.build.build_estimates` (e.g. ``fpga_part``, ``folding_config``). Raises
    ``mapping`` / ``max_acc_bits``: which minifloat layers become native layers and their accumulator
    limit (`finn_transforms.native.mapping`). ``rtl=True`` adds the ``rtl`` stage: the HW graph with
    every native layer simulated as RTL (`finn_transforms.native.rtl_exec`; needs Icarus Verilog),
    its simulated cycles per layer in ``report.rtl_cycles``. Raises
    `VerificationError` (with the report) when a stage disagrees on more than
    ``max_mismatch_fraction`` of the outputs (default: on any), unless ``raise_on_mismatch=False``.
    The model is evaluated in eval mode; its parameters are not changed.

    Exactness holds whenever torch's own float32 arithmetic is exact (power-of-two scales and
    accumulators below 2^24): FINN then computes the same integers. With float scales torch's
    float32 matmuls round, so a downstream quantizer whose input lies within that rounding of a
    threshold can differ by one step; ``max_mismatch_fraction`` lets such models pass knowingly.
    """
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 2 or len(inputs) == 0:
        raise ValueError("inputs must be a non-empty batch tensor [N, ...]")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            reference = model(inputs).detach().numpy().astype(np.float32)
        exported = export_qonnx(model, inputs[:1], out / "qonnx.onnx")
    finally:
        model.train(was_training)
    x = inputs.detach().numpy().astype(np.float32)
    quantum = _output_quantum(exported)
    lowered = lower_minifloat(exported, max_weight_bits=max_weight_bits, max_thresholds=max_thresholds, mapping=mapping)
    lowered.save(str(out / "lowered.onnx"))
    outputs = {
        "qonnx": _run_per_sample(_onnx_runner(exported), x),
        "lowered": _run_per_sample(_onnx_runner(lowered), x),
    }
    estimates = None
    rtl_cycles: dict[str, tuple[int, int]] = {}
    if build:
        from finn_transforms.build import build_estimates
        from finn_transforms.hw_exec import execute_build

        step = make_step_lower_minifloat(
            max_weight_bits=max_weight_bits, max_thresholds=max_thresholds, mapping=mapping, max_acc_bits=max_acc_bits
        )
        build_dir = out / "finn_build"
        estimates = build_estimates(exported, build_dir, extra_steps_before=[step], **build_kwargs)

        def stage_runner(step_name: str | None):
            from finn_transforms.hw_exec import load_full_graph

            graph = load_full_graph(build_dir, step_name)
            shape = graph.get_tensor_shape(graph.graph.input[0].name)
            return lambda xs: next(iter(execute_build(build_dir, _conv1d_as_2d(xs, shape), step=step_name).values()))

        outputs["streamlined"] = _run_per_sample(stage_runner(STREAMLINE_STEP), x)
        outputs["hw"] = _run_per_sample(stage_runner(None), x)
        if rtl:
            from finn_transforms.native.rtl_exec import execute_build_rtl

            def rtl_runner(xs):
                run = execute_build_rtl(build_dir, xs)
                for name, (simulated, expected) in run.cycles.items():
                    before = rtl_cycles.get(name, (0, 0))
                    rtl_cycles[name] = (before[0] + simulated, before[1] + expected)
                return next(iter(run.outputs.values()))

            outputs["rtl"] = _run_per_sample(rtl_runner, x)
    stages = [_compare(name, got, reference, quantum, float_rtol) for name, got in outputs.items()]
    report = VerifyReport(stages, quantum, out, estimates, {"torch": reference, **outputs}, rtl_cycles)
    bad_stages = [s for s in stages if s.mismatches > max_mismatch_fraction * s.total]
    if raise_on_mismatch and bad_stages:
        bad = ", ".join(f"{s.stage} ({s.mismatches}/{s.total})" for s in bad_stages)
        raise VerificationError(f"stages disagree with torch: {bad}\n{report.summary()}", report)
    return report


class _CallableModule(types.ModuleType):
    """This module, callable as its `verify` function.

    ``import finn_transforms.verify`` makes the import system bind the package attribute
    ``finn_transforms.verify`` to this module, which would shadow the function of the same name that
    ``finn_transforms`` exports. Calling the module calls the function, so ``finn_transforms.verify(...)``,
    ``from finn_transforms import verify`` and ``from finn_transforms.verify import verify`` all work,
    in any import order.
    """

    def __call__(self, *args, **kwargs) -> VerifyReport:
        return verify(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
__signature__ = inspect.signature(verify)  # what inspect.signature / help show for the callable module
