"""``verify``: every stage from a Brevitas model to FINN HW layers against the exact reference.

The truth is the exact reference (`finn_transforms.exact.evaluate` of the exported QONNX model:
integer codes times scales, exact dot products, quantizers deciding on the exact pre-activation with
the boundaries their float32 definition sets). The report has two parts:

1. **exact stages** (``kind="exact"``): the lowered graph (our passes, evaluated exactly), FINN's
   streamlined graph and the final HW graph (`finn_transforms.exact.execute_exact_hw`). These must
   equal the reference on every output: any mismatch is a bug in a transformation.
   ``hw_float32`` (FINN's own float32 numpy execution of the HW graph) is shown as well
   (``kind="informational"``): it rounds accumulators beyond 2^24 and never fails the verdict.
2. **float32 stages** (``kind="float32"``): torch (the Brevitas model) and QONNX ``execute_onnx``.
   Their float32 arithmetic may round a pre-activation across a quantizer boundary; every differing
   output is checked to depend on an exact pre-activation within the float32 error bound of a
   boundary (`finn_transforms.exact.explain`) and counted as *explained*; unexplained ones fail.

Outputs are compared as integer codes of the output quantizer (when the graph output comes from a
per-tensor quantizer), exactly; else as values within ``float_rtol`` (FINN folds the float scales
after the last quantizer into float32 constants, so unquantized outputs cannot match bit for bit).
NaN and Inf inputs are refused: the stages define them differently (torch keeps NaN, the thresholds
give the lowest code, qonnx 1.0's FloatQuant turns +-Inf into NaN).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from brevitas_minifloat.export import export_qonnx
from brevitas_minifloat.qonnx_contract import is_minifloat_quant, minifloat_format_of
from finn_transforms.exact import Exact, evaluate
from finn_transforms.exact.explain import near_boundaries
from finn_transforms.exact.reference import concat
from finn_transforms.native.mapping import DEFAULT_MAPPING, DEFAULT_MAX_ACC_BITS
from finn_transforms.steps import lower_minifloat, make_step_lower_minifloat
from finn_transforms.transformation import DEFAULT_MAX_THRESHOLDS, DEFAULT_MAX_WEIGHT_BITS
from finn_transforms.transformation.exact_absorbed_thresholds import INEXACT_THRESHOLDS_KEY
from finn_transforms.wide_thresholds import count_wide

__all__ = ["Stage", "StageResult", "VerificationError", "VerifyReport", "per_sample", "verify"]

STREAMLINE_STEP = "step_streamline"
EXACT, FLOAT32, INFO = "exact", "float32", "informational"


class VerificationError(AssertionError):
    """A stage disagreed with the exact reference; ``.report`` holds every stage's comparison."""

    def __init__(self, message: str, report: VerifyReport):
        super().__init__(message)
        self.report = report


@dataclass
class StageResult:
    stage: str
    max_abs_diff: float
    mismatches: int  # outputs whose code (or value) differs from the exact reference
    total: int
    kind: str = EXACT  # "exact" | "float32" | "informational"
    explained: int = 0  # float32 stages: mismatches depending on a near-boundary pre-activation

    @property
    def unexplained(self) -> int:
        return self.mismatches - self.explained if self.kind != EXACT else self.mismatches

    @property
    def agrees(self) -> bool:
        return self.kind == INFO or self.unexplained == 0


@dataclass
class Stage:
    """A stage to compare: ``run(x)`` maps the input batch (float32) to one graph output per sample
    (a batch of 1 each), as float32 arrays (``kind="float32"`` / ``"informational"``) or `Exact`
    (``"exact"``); `per_sample` turns a one-sample runner into one."""

    name: str
    kind: str
    run: Callable[[np.ndarray], list]


def per_sample(run: Callable[[np.ndarray], np.ndarray | Exact]) -> Callable[[np.ndarray], list]:
    """A batch runner calling ``run`` on each sample (FINN graphs have batch-1 shapes)."""
    return lambda x: [run(x[i : i + 1]) for i in range(len(x))]


@dataclass
class VerifyReport:
    stages: list[StageResult]
    output_quantum: float | None  # None: the model output is not quantized per tensor, compared as values
    output_dir: Path
    estimates: object | None = None  # finn_transforms.build.EstimateReport of the build
    outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    near_boundary: int = 0  # quantizer pre-activations within float32 error of a boundary (reference)
    rtl_cycles: dict[str, tuple[int, int]] = field(default_factory=dict)  # native layer: (simulated, expected)
    rtl_not_simulated: list[str] = field(default_factory=list)  # native layers without RTL (exact execution)
    # thresholds no float32 or float64 tensor holds exactly (beyond 2^53; {"count": n, "first": node}; None: all exact)
    inexact_thresholds: dict | None = None
    # thresholds beyond 2^53 held exactly by WideThresholding layers ({"count": n, "layers": m}; None: no such layer)
    wide_thresholds: dict | None = None

    @property
    def ok(self) -> bool:
        return all(s.agrees for s in self.stages)

    def summary(self) -> str:
        unit = f"integer codes of quantum {self.output_quantum:g}" if self.output_quantum else "output values"
        lines = [
            f"against the exact reference, {unit} ({self.near_boundary} pre-activations within float32 "
            "error of a rounding boundary):",
            f"{'stage':<13}{'kind':<15}{'max |diff|':>12}{'mismatches':>18}  verdict",
        ]
        for s in self.stages:
            if s.kind == EXACT:
                verdict = "exact" if s.agrees else "WRONG"
            elif s.kind == FLOAT32:
                verdict = (f"{s.explained} explained (float32 rounds near a boundary)" if s.mismatches else "equal")
                if s.unexplained:
                    verdict = f"{s.unexplained} UNEXPLAINED, " + verdict
            else:
                verdict = f"info only ({s.explained} near a boundary)" if s.mismatches else "equal (info only)"
            lines.append(f"{s.stage:<13}{s.kind:<15}{s.max_abs_diff:>12.3g}{s.mismatches:>10d} / {s.total:<6}  {verdict}")
        if self.inexact_thresholds:
            lines.append(
                f"warning: {self.inexact_thresholds['count']:,} thresholds of the build (first in "
                f"{self.inexact_thresholds['first']}) lie beyond 2^53 with no exact float64 value: the build decides "
                "differently from the exact model for some inputs, even where these stages agree"
            )
        if self.wide_thresholds:
            lines.append(f"{self.wide_thresholds['count']:,} thresholds beyond 2^53 held exactly (float64 + int64 residual) "
                         f"in {self.wide_thresholds['layers']} WideThresholding layer(s)")
        if self.rtl_not_simulated:
            lines.append(f"rtl stage: no RTL for {len(self.rtl_not_simulated)} native layer(s), executed exactly instead: "
                         + ", ".join(self.rtl_not_simulated))
        return "\n".join(lines)


def _output_quantum(model: ModelWrapper) -> Fraction | None:
    """Scale x delta of the quantizer producing the graph output, if it has one constant scale."""
    producer = model.find_producer(model.graph.output[0].name)
    if producer is None or len(producer.input) < 2 or model.get_initializer(producer.input[1]) is None:
        return None
    scale = np.asarray(model.get_initializer(producer.input[1])).reshape(-1)
    if scale.size != 1:
        return None
    if is_minifloat_quant(producer):
        return Fraction(float(scale[0])) * Fraction(minifloat_format_of(model, producer).delta)
    if producer.op_type in ("Quant", "BipolarQuant"):
        return Fraction(float(scale[0]))
    return None


def _onnx_runner(model: ModelWrapper) -> Callable[[np.ndarray], np.ndarray]:
    inp, out = model.graph.input[0].name, model.graph.output[0].name
    return lambda x: np.asarray(execute_onnx(model, {inp: x})[out], dtype=np.float32)


def _exact_runner(model: ModelWrapper, hw: bool = False) -> Callable[[np.ndarray], Exact]:
    from finn_transforms.exact import execute_exact_hw

    run, cache = (execute_exact_hw if hw else evaluate), {}
    shape = model.get_tensor_shape(model.graph.input[0].name)
    return lambda x: next(iter(run(model, _conv1d_as_2d(x, shape), cache=cache).values()))


def _conv1d_as_2d(x: np.ndarray, graph_shape) -> np.ndarray:
    """``x`` reshaped to the graph's ``[N, C, L, 1]`` when FINN made a 3D (Conv1d) graph 4D."""
    if graph_shape is not None and x.ndim == 3 and len(graph_shape) == 4 and graph_shape[3] == 1:
        return x.reshape(*x.shape, 1)
    return x


def _codes(values: Exact | np.ndarray, quantum: Fraction | None) -> np.ndarray:
    """Integer codes (quantum given) or float64 values."""
    if isinstance(values, Exact):
        if quantum is None:
            return values.to_float64()
        codes = values.times(1 / quantum)
        return codes.as_integers() if codes.is_integer() else codes.to_float64()
    values = np.asarray(values, dtype=np.float64)
    return np.rint(values / float(quantum)) if quantum is not None else values


def _compare(stage: Stage, got: list, ref: Exact, tainted: np.ndarray, quantum, float_rtol: float) -> StageResult:
    want = _codes(ref, quantum)
    if stage.kind == EXACT:
        got_exact = concat(got, 0)
        diff = (got_exact.with_num(got_exact.num.reshape(ref.shape)) - ref)
        bad = np.asarray(diff.num != 0)
        max_diff = float(np.max(np.abs(diff.to_float64()))) if bad.any() else 0.0
        if quantum is None:  # unquantized outputs: FINN folds the final float scales in float32
            bad = np.abs(diff.to_float64()) > float_rtol * max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-30)
        return StageResult(stage.name, max_diff, int(bad.sum()), int(ref.num.size), EXACT)
    values = np.concatenate([np.asarray(g, dtype=np.float32) for g in got]).reshape(ref.shape)
    got_codes = _codes(values, quantum)
    if quantum is not None:
        bad = got_codes != np.asarray(want, dtype=np.float64)
    else:
        tol = float_rtol * max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-30)
        bad = np.abs(got_codes - want) > tol
    max_diff = float(np.max(np.abs(values.astype(np.float64) - ref.to_float64()))) if values.size else 0.0
    explained = int(np.count_nonzero(bad & tainted.reshape(bad.shape)))
    return StageResult(stage.name, max_diff, int(bad.sum()), int(ref.num.size), stage.kind, explained)


def _check_inputs(inputs) -> np.ndarray:
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 2 or len(inputs) == 0:
        raise ValueError("inputs must be a non-empty batch tensor [N, ...]")
    x = inputs.detach().cpu().numpy().astype(np.float32)
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(
            f"inputs hold {bad} NaN/Inf values: verify compares finite inputs only (torch keeps NaN, the "
            "lowered thresholds map it to the lowest code, qonnx 1.0's FloatQuant turns +-Inf into NaN)"
        )
    return x


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
    extra_stages: Sequence[Callable[[dict], Stage | None]] = (),
    **build_kwargs,
) -> VerifyReport:
    """Export, lower, build and compare every stage with the exact reference on ``inputs`` (a batch).

    ``build=False`` stops after the lowered graph (no FINN build). ``build_kwargs`` go to
    `finn_transforms.build.build_estimates` (e.g. ``fpga_part``, ``folding_config``).
    ``mapping`` / ``max_acc_bits``: which minifloat layers become native layers and their accumulator
    limit (`finn_transforms.native.mapping`). ``rtl=True`` adds the exact ``rtl`` stage: the HW graph
    in the exact HW executor with every native layer simulated as RTL (`finn_transforms.native.rtl_exec`;
    needs Icarus Verilog),
    its simulated cycles per layer in ``report.rtl_cycles``; a native layer without RTL
    (`rtl_exec.WITHOUT_RTL`, none today) would run exactly there, named in ``report.rtl_not_simulated``. Exact stages must match on every output; float32 stages
    (torch, QONNX) may differ only where float32 rounding near a boundary explains it, and
    ``max_mismatch_fraction`` tolerates that fraction of *unexplained* float32 differences (default
    none). Raises `VerificationError` (with the report) unless ``raise_on_mismatch=False``;
    ``ValueError`` for NaN/Inf or malformed inputs. ``extra_stages``: callables receiving
    ``{"exported", "lowered", "build_dir", "output_dir"}`` and returning a `Stage` (or None to skip).
    The model is evaluated in eval mode; its parameters are not changed.
    """
    x = _check_inputs(inputs)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            torch_out = model(inputs).detach().cpu().numpy().astype(np.float32)
        exported = export_qonnx(model, inputs[:1], out / "qonnx.onnx")
    finally:
        model.train(was_training)
    quantum = _output_quantum(exported)
    lowered = lower_minifloat(exported, max_weight_bits=max_weight_bits, max_thresholds=max_thresholds, mapping=mapping)
    lowered.save(str(out / "lowered.onnx"))

    stages = [
        Stage("torch", FLOAT32, lambda xs: list(torch_out[:, None])),
        Stage("qonnx", FLOAT32, per_sample(_onnx_runner(exported))),
        Stage("lowered", EXACT, per_sample(_exact_runner(lowered))),
    ]
    estimates, build_dir, rtl_cycles, not_simulated, inexact, wide = None, None, {}, set(), None, None
    if build:
        from finn_transforms.build import build_estimates
        from finn_transforms.hw_exec import load_full_graph

        step = make_step_lower_minifloat(
            max_weight_bits=max_weight_bits, max_thresholds=max_thresholds, mapping=mapping, max_acc_bits=max_acc_bits
        )
        build_dir = out / "finn_build"
        estimates = build_estimates(exported, build_dir, extra_steps_before=[step], **build_kwargs)
        streamlined = load_full_graph(build_dir, STREAMLINE_STEP)
        inexact = json.loads(streamlined.get_metadata_prop(INEXACT_THRESHOLDS_KEY) or "null")
        wide = count_wide(ModelWrapper(str(estimates.hw_graph_path))) if estimates.hw_graph_path else None
        stages += [
            Stage("streamlined", EXACT, per_sample(_exact_runner(streamlined, hw=True))),
            Stage("hw", EXACT, per_sample(_exact_runner(load_full_graph(build_dir), hw=True))),
        ]
        if rtl:
            stages.append(Stage("rtl", EXACT, per_sample(_rtl_runner(build_dir, rtl_cycles, not_simulated))))
        stages.append(Stage("hw_float32", INFO, per_sample(_finn_float_runner(build_dir))))
    context = {"exported": exported, "lowered": lowered, "build_dir": build_dir, "output_dir": out}
    stages += [s for s in (make(context) for make in extra_stages) if s is not None]

    refs, taints, near_total, cache = [], [], 0, {}
    for i in range(len(x)):
        nb = near_boundaries(exported, x[i : i + 1], cache=cache)
        refs.append(next(iter(nb.outputs.values())))
        taints.append(next(iter(nb.tainted.values())))
        near_total += sum(nb.near_counts.values())
    ref = concat(refs, 0)
    tainted = np.concatenate([np.asarray(t).reshape(1, -1) for t in taints])
    outputs: dict[str, np.ndarray] = {"reference": ref.to_float64()}
    results = []
    for stage in stages:
        got = stage.run(x)
        results.append(_compare(stage, got, ref, tainted, quantum, float_rtol))
        outputs[stage.name] = (concat(got, 0).to_float64() if stage.kind == EXACT
                               else np.concatenate([np.asarray(g, dtype=np.float32) for g in got]))
    report = VerifyReport(results, float(quantum) if quantum else None, out, estimates, outputs, near_total, rtl_cycles,
                          sorted(not_simulated), inexact, wide)
    bad = [s for s in results if not s.agrees and not (s.kind == FLOAT32 and s.unexplained <= max_mismatch_fraction * s.total)]
    if raise_on_mismatch and bad:
        names = ", ".join(f"{s.stage} ({s.unexplained}/{s.total})" for s in bad)
        raise VerificationError(f"stages disagree with the exact reference: {names}\n{report.summary()}", report)
    return report


def _finn_float_runner(build_dir: Path) -> Callable[[np.ndarray], np.ndarray]:
    from finn_transforms.hw_exec import execute_build, load_full_graph

    graph = load_full_graph(build_dir)
    shape = graph.get_tensor_shape(graph.graph.input[0].name)
    return lambda xs: np.asarray(next(iter(execute_build(build_dir, _conv1d_as_2d(xs, shape)).values())), dtype=np.float32)


def _rtl_runner(build_dir: Path, rtl_cycles: dict, not_simulated: set) -> Callable[[np.ndarray], Exact]:
    """The HW graph in the exact HW executor with native layers simulated as RTL, cycles accumulated,
    native layers without RTL collected in ``not_simulated``."""
    from finn_transforms.hw_exec import load_full_graph
    from finn_transforms.native.rtl_exec import execute_rtl

    model, cache = load_full_graph(build_dir), {}
    shape = model.get_tensor_shape(model.graph.input[0].name)

    def run(x):
        result = execute_rtl(model, _conv1d_as_2d(x, shape), cache=cache)
        for name, (simulated, expected) in result.cycles.items():
            before = rtl_cycles.get(name, (0, 0))
            rtl_cycles[name] = (before[0] + simulated, before[1] + expected)
        not_simulated.update(result.not_simulated)
        return next(iter(result.outputs.values()))

    return run


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
