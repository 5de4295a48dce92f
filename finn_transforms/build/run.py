"""The estimate-only FINN+ build: :func:`build_estimates` runs FINN's ``estimate_only_dataflow_steps``
through the Python builder API (``finn.builder.build_dataflow.build_dataflow_cfg``; the ``finn build``
CLI refuses to run without Vivado) and parses the JSON reports FINN writes into an
:class:`~finn_transforms.build.report.EstimateReport`. Neither Vivado nor Vitis HLS is needed; see
:mod:`finn_transforms.finn_env` for the workarounds involved.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx
from qonnx.core.modelwrapper import ModelWrapper

from finn_transforms.build.mapping import DEFAULT_SOFTWARE_OPS, UnmappedNodes, make_mapping_check, unmapped_before
from finn_transforms.build.report import FINN_REPORTS, OUR_REPORT, EstimateReport, write_json
from finn_transforms.build.step_list import (
    BuildStep,
    StepRecorder,
    resolve_step,
    splice_steps,
    step_label,
    unique_step_name,
)
from finn_transforms.finn_defaults import DEFAULT_CLOCK_NS, DEFAULT_FPGA_PART
from finn_transforms.finn_env import builder_io, finn_session, import_builder, require_finn
from finn_transforms.model_io import ModelLike, load_onnx_model
from finn_transforms.native.mapping import DEFAULT_MAPPING, check_mapping

__all__ = ["FinnBuildError", "build_estimates", "step_qonnx_cleanup"]


class FinnBuildError(RuntimeError):
    """A FINN build failed. ``step`` names the builder step (``None``: outside any step)."""

    def __init__(
        self,
        message: str,
        *,
        step: str | None = None,
        output_dir: Path | None = None,
        unmapped_nodes: Sequence[str] = (),
    ):
        super().__init__(message)
        self.step = step
        self.output_dir = output_dir
        self.unmapped_nodes = tuple(unmapped_nodes)

    @property
    def log_path(self) -> Path | None:
        return None if self.output_dir is None else self.output_dir / "build_dataflow.log"


def step_qonnx_cleanup(model: ModelWrapper, cfg: Any) -> ModelWrapper:
    """Builder step: qonnx ``cleanup_model`` (shape/datatype inference, constant folding, names).

    Useful first entry of ``extra_steps_before`` when later hook steps want a tidy graph (FINN's
    own ``step_qonnx_to_finn`` runs the same cleanup, but only if ``Quant`` nodes are present).
    Note that it constant-folds weight ``FloatQuant``/``MinifloatQuant`` nodes
    (see :mod:`brevitas_minifloat.qonnx_contract.annotations`).
    """
    from qonnx.util.cleanup import cleanup_model

    return cleanup_model(model)


def build_estimates(
    model_or_path: ModelLike,
    output_dir: str | os.PathLike,
    *,
    fpga_part: str = DEFAULT_FPGA_PART,
    clock_ns: float = DEFAULT_CLOCK_NS,
    target_fps: float | None = None,
    folding_config: Mapping[str, Any] | str | os.PathLike | None = None,
    mvau_wwidth_max: int = 36,
    extra_steps_before: Sequence[BuildStep] = (),
    steps: Sequence[BuildStep] | None = None,
    allowed_software_ops: Collection[str] | None = DEFAULT_SOFTWARE_OPS,
    config_overrides: Mapping[str, Any] | None = None,
    quiet: bool = True,
    lower: bool = True,
    mapping: str = DEFAULT_MAPPING,
) -> EstimateReport:
    """Run FINN's estimate-only dataflow build on a QONNX model and return its estimates.

    Args:
        model_or_path: QONNX ``ModelWrapper``, ``onnx.ModelProto`` or ONNX file (e.g. from
            ``brevitas.export.export_qonnx``). The caller's object is never modified; a copy is
            saved as ``output_dir/input_model.onnx`` and built from there.
        output_dir: FINN's output dir (created; reused if present, report files of an earlier
            build are deleted first). Holds ``report/*.json``, ``intermediate_models/*.onnx``
            (one per step), ``build_dataflow.log`` and ``finn_build_dir/`` (FINN's scratch space,
            unless ``FINN_BUILD_DIR`` is exported).
        fpga_part: Xilinx part the resource models are evaluated for (default: the Ultra96's
            Zynq UltraScale+ ``xczu3eg-sbva484-1-e``).
        clock_ns: target clock period; converts cycles into fps and ns.
        target_fps: ``None`` (default) skips FINN's ``SetFolding``: every layer stays fully
            folded (PE = SIMD = 1, FINN's defaults), the smallest and slowest design, unless
            ``folding_config`` sets parallelism. A number lets ``SetFolding`` pick PE/SIMD to reach
            that many frames per second (rounded down to an int, as FINN wants).
        folding_config: FINN folding config (dict or JSON file) applied after ``SetFolding``,
            keyed by the node names of the *specialized* graph (``"MVAU_hls_0"``, ...) plus an
            optional ``"Defaults"`` entry, e.g. ``{"MVAU_hls_0": {"PE": 4, "SIMD": 16}}``.
        mvau_wwidth_max: FINN's cap on an MVAU's per-PE weight stream width while ``SetFolding``
            searches (FINN default 36; use e.g. 10000 to allow full unfolding).
        extra_steps_before: builder steps run before FINN's ``step_qonnx_to_finn`` (prepended if
            ``steps`` has no such step): callables ``(model, cfg) -> model`` or
            ``"package.module.function"`` strings, in order. This is the hook for our lowering
            passes (minifloat -> integer weights + MultiThreshold). They receive the model as
            given (not cleaned up; prepend :func:`step_qonnx_cleanup` if needed) and ``cfg``, the
            ``DataflowBuildConfig``.
        steps: replaces FINN's ``estimate_only_dataflow_steps`` (same forms as above; FINN step
            names like ``"step_tidy_up"`` are resolved by FINN's registry). Must end with (or
            contain) ``step_generate_estimate_reports`` to produce a report.
        allowed_software_ops: op types that may remain outside the accelerator at the graph's
            start/end (see :data:`DEFAULT_SOFTWARE_OPS`); any other node FINN did not convert to
            a HW layer fails the build *before* ``step_create_dataflow_partition``, naming the
            nodes (FINN itself only warns and silently leaves them out of the estimate). ``None``
            disables the check.
        config_overrides: further ``DataflowBuildConfig`` fields, e.g.
            ``{"standalone_thresholds": True}`` or ``{"specialize_layers_config_file": path}``.
        quiet: keep FINN's console output out of the terminal (it is always in the build log).
        lower: run our lowering step (``finn_transforms.steps.step_lower_minifloat``: minifloat and
            SYQ quantizers -> integer weights + MultiThreshold) after ``extra_steps_before``, unless
            ``extra_steps_before`` or ``steps`` already hold a step of that name (e.g.
            ``make_step_lower_minifloat(...)`` with other limits). ``False``: FINN's flow only.
        mapping: which minifloat layers our lowering step builds as native layers (``"auto"``,
            ``"native"``, ``"embedding"``; `finn_transforms.native.mapping`), for steps that do not
            fix it themselves (``MINIFLOAT_STEP``, ``make_step_lower_minifloat()``).

    Returns:
        The parsed :class:`EstimateReport`.

    Raises:
        FileNotFoundError / ValueError / TypeError: unusable input model or arguments.
        FinnBuildError: a build step failed; ``.step`` names it, the message gives the cause,
            ``.unmapped_nodes`` lists nodes FINN could not map to HW layers (if that was the cause).
        FinnNotAvailableError: FINN+ is not installed.
    """
    require_finn()
    check_mapping(mapping)
    if not clock_ns > 0:
        raise ValueError(f"clock_ns must be positive, got {clock_ns}")
    if target_fps is not None and not target_fps >= 1:
        raise ValueError(f"target_fps must be >= 1 frame per second or None, got {target_fps}")
    proto = load_onnx_model(model_or_path)
    out = Path(output_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    report_dir = out / "report"
    for name in FINN_REPORTS:
        (report_dir / name).unlink(missing_ok=True)
    input_path = out / "input_model.onnx"
    onnx.save(proto, str(input_path))
    folding_path = _folding_config_file(folding_config, out)

    build_dir = None if os.environ.get("FINN_BUILD_DIR") else out / "finn_build_dir"
    recorder = StepRecorder()
    raised: BaseException | None = None
    rc = None
    start = time.perf_counter()
    with finn_session(build_dir), builder_io(quiet=quiet):
        finn = import_builder()
        step_fns = _assemble_steps(finn, steps, extra_steps_before, allowed_software_ops, recorder, lower)
        cfg_kwargs = dict(
            output_dir=str(out),
            synth_clk_period_ns=float(clock_ns),
            fpga_part=fpga_part,
            target_fps=None if target_fps is None else int(target_fps),
            folding_config_file=folding_path,
            mvau_wwidth_max=int(mvau_wwidth_max),
            steps=step_fns,
            generate_outputs=[finn.config.DataflowOutputType.ESTIMATE_REPORTS],
            save_intermediate_models=True,
            console_log_level=finn.config.LogLevel.NONE if quiet else finn.config.LogLevel.ERROR,
        )
        _apply_overrides(cfg_kwargs, config_overrides, finn.config.DataflowBuildConfig)
        cfg = finn.config.DataflowBuildConfig(**cfg_kwargs)
        cfg.minifloat_mapping = mapping  # read by our lowering step (finn_transforms.steps)
        try:
            # Inside a pytest run FINN re-raises step exceptions; otherwise it logs them and
            # returns -1. Both end up in the same FinnBuildError below.
            rc = finn.build_dataflow.build_dataflow_cfg(str(input_path), cfg)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, with the failing step
            raised = exc
    build_time = time.perf_counter() - start

    if recorder.failed is not None:
        step, exc = recorder.failed
        if isinstance(exc, KeyboardInterrupt):  # FINN swallows it and returns -1
            raise exc
        if isinstance(exc, UnmappedNodes):
            raise FinnBuildError(
                f"FINN could not map {len(exc.nodes)} node(s) to HW layers (checked before "
                f"step_create_dataflow_partition): {', '.join(exc.nodes)}. Lower them to ops FINN "
                f"supports (e.g. with a step in extra_steps_before) or, if they may run on the "
                f"host at the graph's start/end, add their op types to allowed_software_ops.",
                step=step,
                output_dir=out,
                unmapped_nodes=exc.nodes,
            ) from exc
        unmapped = unmapped_before(out, step, recorder.order)
        detail = f" Nodes not mapped to HW layers: {', '.join(unmapped)}." if unmapped else ""
        raise FinnBuildError(
            f"FINN build step {step!r} failed: {type(exc).__name__}: {exc}.{detail} "
            f"Build log: {out / 'build_dataflow.log'}",
            step=step,
            output_dir=out,
            unmapped_nodes=unmapped,
        ) from exc
    if raised is not None:
        if isinstance(raised, KeyboardInterrupt):
            raise raised
        raise FinnBuildError(
            f"FINN build failed outside its steps: {type(raised).__name__}: {raised}",
            output_dir=out,
        ) from raised
    if rc != 0:
        raise FinnBuildError(
            f"FINN build returned {rc}; see {out / 'build_dataflow.log'}", output_dir=out
        )

    write_json(
        report_dir / OUR_REPORT,
        {
            "fpga_part": fpga_part,
            "clock_ns": float(clock_ns),
            "target_fps": target_fps,
            "folding_config_file": None if folding_path is None else str(folding_path),
            "mvau_wwidth_max": int(mvau_wwidth_max),
            "steps": list(recorder.order),
            "step_times_s": recorder.times,
            "build_time_s": build_time,
        },
    )
    return EstimateReport.from_build_dir(out)



def _assemble_steps(finn, steps, extra_steps_before, allowed_software_ops, recorder: StepRecorder,
                    lower: bool = True) -> list:
    """FINN's (or the given) steps spliced with ours (our lowering last unless given or ``lower=False``),
    resolved, checked before partitioning, timed."""
    from finn_transforms.steps import MINIFLOAT_STEP

    lookup = finn.steps.build_dataflow_step_lookup
    if isinstance(extra_steps_before, (str, bytes)) or callable(extra_steps_before):
        extra_steps_before = [extra_steps_before]
    base = list(finn.config.estimate_only_dataflow_steps if steps is None else steps)
    lowering = MINIFLOAT_STEP.rpartition(".")[2]
    if lower and lowering not in {step_label(s).rpartition(".")[2] for s in [*extra_steps_before, *base]}:
        extra_steps_before = [*extra_steps_before, MINIFLOAT_STEP]
    spliced = splice_steps(base, list(extra_steps_before), finn_lookup=lookup)
    resolved = [resolve_step(s, lookup) for s in spliced]
    names = [step_label(fn) for fn in resolved]
    if allowed_software_ops is not None and "step_create_dataflow_partition" in names:
        at = names.index("step_create_dataflow_partition")
        resolved.insert(at, make_mapping_check(frozenset(allowed_software_ops)))
    used: set[str] = set()
    return [recorder.wrap(fn, unique_step_name(fn, used)) for fn in resolved]


def _apply_overrides(kwargs: dict, overrides: Mapping[str, Any] | None, cfg_cls: type) -> None:
    if not overrides:
        return
    known = {f.name for f in dataclasses.fields(cfg_cls)}
    for key, value in overrides.items():
        if key in kwargs:
            raise ValueError(
                f"config_overrides may not set {key!r}: build_estimates sets it "
                f"(use its keyword argument if there is one)"
            )
        if key not in known:
            raise ValueError(f"config_overrides: DataflowBuildConfig has no field {key!r}")
        kwargs[key] = value


def _folding_config_file(folding_config, out: Path) -> Path | None:
    if folding_config is None:
        return None
    if isinstance(folding_config, Mapping):
        path = out / "folding_config.json"
        write_json(path, dict(folding_config))
        return path
    path = Path(folding_config).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"folding config not found: {path}")
    return path


