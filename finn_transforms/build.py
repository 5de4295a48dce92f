"""Estimate-only FINN+ builds: QONNX model in, per-layer resource and performance estimates out.

:func:`build_estimates` runs FINN's ``estimate_only_dataflow_steps`` through the Python builder
API (``finn.builder.build_dataflow.build_dataflow_cfg``; the ``finn build`` CLI refuses to run
without Vivado) and parses the JSON reports FINN writes into an :class:`EstimateReport`. Neither
Vivado nor Vitis HLS is needed; see :mod:`finn_transforms.finn_env` for the workarounds involved.

What the numbers are (read them critically):

- They are FINN's *analytic* per-layer models (``*_estimation`` methods of each HW op), not
  synthesis results. Totals are FINN's sum over the layers; FIFOs, data width converters and the
  shell are not part of an estimate-only build.
- ``Thresholding_rtl`` LUTs are FINN's LUTRAM estimate of the threshold memory counted for *every*
  channel, even when all channels share one set of thresholds (a per-tensor input quantizer):
  about 100k LUTs for an 8-bit quantizer on a 784-wide input. Treat it as an upper bound.
- ``MVAU_rtl`` reports 0 LUT (it maps the dot product onto DSPs).
- Nodes FINN leaves outside the dataflow partition (e.g. a leading ``Transpose``) are not
  estimated at all; they are listed in :attr:`EstimateReport.software_nodes`.
- Throughput is ``1e9 / clock_ns / max_cycles`` (the slowest layer's initiation interval) and
  latency is the critical path through the per-layer cycle estimates, both at ``clock_ns``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import json
import os
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import onnx
from google.protobuf.message import DecodeError
from qonnx.core.modelwrapper import ModelWrapper

from finn_transforms.finn_env import builder_io, finn_session, import_builder, require_finn

__all__ = [
    "DEFAULT_SOFTWARE_OPS",
    "EstimateReport",
    "FinnBuildError",
    "LayerEstimate",
    "build_estimates",
    "load_onnx_model",
    "step_qonnx_cleanup",
]

BuildStep = Union[Callable[[ModelWrapper, Any], ModelWrapper], str]

#: Op types that may stay outside the accelerator, at the start or end of the graph, without
#: failing the build: layout changes and the final float scale/bias/arg-max that usually run on
#: the host. Any other node FINN did not convert to a HW layer (a leftover ``Quant``,
#: ``FloatQuant``, ``MultiThreshold``, float ``Conv``, ...) makes :func:`build_estimates` fail.
DEFAULT_SOFTWARE_OPS = frozenset(
    {
        "Transpose",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Identity",
        "Mul",
        "Div",
        "Add",
        "Sub",
        "TopK",
        "ArgMax",
        "Softmax",
    }
)

#: FINN+ 1.6.1's ``estimate_only_dataflow_steps`` (kept here so it can be read without FINN).
_FINN_ESTIMATE_STEPS = (
    "step_qonnx_to_finn",
    "step_tidy_up",
    "step_streamline",
    "step_convert_to_hw",
    "step_minimize_bit_width_initial",
    "step_create_dataflow_partition",
    "step_specialize_layers",
    "step_target_fps_parallelization",
    "step_apply_folding_config",
    "step_minimize_bit_width",
    "step_generate_estimate_reports",
)

_HW_DOMAIN = "finn.custom_op.fpgadataflow"
_OUR_REPORT = "build_estimates.json"
_FINN_REPORTS = (
    "estimate_layer_resources.json",
    "estimate_layer_cycles.json",
    "estimate_network_performance.json",
    "op_and_param_counts.json",
    "estimate_layer_config_alternatives.json",
    "time_per_step.json",
    "metadata_builder.json",
    _OUR_REPORT,
)


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


class _UnmappedNodes(Exception):
    def __init__(self, nodes: Sequence[str]):
        super().__init__(", ".join(nodes))
        self.nodes = tuple(nodes)


@dataclass(frozen=True)
class LayerEstimate:
    """FINN's estimate for one HW layer (a node of the final HW graph)."""

    name: str
    op_type: str
    lut: float
    bram_18k: float
    uram: float
    dsp: float
    cycles: int | None
    pe: int | None = None
    simd: int | None = None
    mw: int | None = None  # fan-in (MW) of an MVAU, None for other layers


@dataclass(frozen=True)
class EstimateReport:
    """Parsed FINN estimate reports of one build (see the module docstring for caveats)."""

    layers: tuple[LayerEstimate, ...]
    total_lut: float
    total_bram_18k: float
    total_uram: float
    total_dsp: float
    #: Cycles per frame of the slowest layer (the pipeline's initiation interval).
    max_cycles: int | None
    bottleneck_layer: str | None
    #: Critical-path latency through the per-layer cycle estimates.
    latency_cycles: int | None
    latency_ns: float | None
    throughput_fps: float | None
    clock_ns: float | None
    fpga_part: str | None
    output_dir: Path
    #: Final HW graph of the build (the dataflow partition after the last step).
    hw_graph_path: Path | None
    #: Graph around the partition (``StreamingDataflowPartition`` + software nodes), if any.
    parent_graph_path: Path | None
    #: Nodes left outside the accelerator, as ``"name (op_type)"``; not part of the estimate.
    software_nodes: tuple[str, ...] = ()
    op_and_param_counts: dict[str, Any] = field(default_factory=dict)
    #: Wall time per builder step in seconds, in build order.
    step_times_s: dict[str, float] = field(default_factory=dict)
    build_time_s: float | None = None
    #: Known issues of FINN's estimates that apply to this build.
    notes: tuple[str, ...] = ()

    @property
    def total_cycles(self) -> int:
        """Sum of the per-layer cycle estimates (a frame's work, not its latency)."""
        return sum(layer.cycles or 0 for layer in self.layers)

    def layer(self, name: str) -> LayerEstimate:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def as_rows(self) -> list[dict[str, Any]]:
        """One dict per layer (e.g. for ``pandas.DataFrame``)."""
        return [dataclasses.asdict(layer) for layer in self.layers]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of the whole report."""
        out = dataclasses.asdict(self)
        for key in ("output_dir", "hw_graph_path", "parent_graph_path"):
            out[key] = None if out[key] is None else str(out[key])
        return out

    def summary(self) -> str:
        lines = [f"{'layer':<34}{'LUT':>10}{'BRAM18':>8}{'URAM':>6}{'DSP':>6}{'cycles':>10}"]
        for r in self.layers:
            cycles = "" if r.cycles is None else str(r.cycles)
            lines.append(
                f"{r.name:<34}{r.lut:>10g}{r.bram_18k:>8g}{r.uram:>6g}{r.dsp:>6g}{cycles:>10}"
            )
        lines.append(
            f"{'total':<34}{self.total_lut:>10g}{self.total_bram_18k:>8g}{self.total_uram:>6g}"
            f"{self.total_dsp:>6g}{self.total_cycles:>10}"
        )
        if self.throughput_fps is not None:
            lines.append(
                f"throughput {self.throughput_fps:.1f} fps (bottleneck {self.bottleneck_layer}, "
                f"{self.max_cycles} cycles), latency {self.latency_cycles} cycles = "
                f"{self.latency_ns} ns at {self.clock_ns} ns clock"
            )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    @classmethod
    def from_build_dir(cls, output_dir: str | os.PathLike) -> EstimateReport:
        """Parse the reports of a finished FINN build (ours or any estimate-producing build)."""
        out = Path(output_dir).resolve()
        report_dir = out / "report"
        res_path = report_dir / "estimate_layer_resources.json"
        if not res_path.is_file():
            raise FileNotFoundError(
                f"{res_path} does not exist: the build in {out} produced no estimate reports "
                f"(it needs step_generate_estimate_reports and generate_outputs=[ESTIMATE_REPORTS])"
            )
        resources = _read_json(res_path)
        cycles = _read_json(report_dir / "estimate_layer_cycles.json", {})
        perf = _read_json(report_dir / "estimate_network_performance.json", {})
        counts = _read_json(report_dir / "op_and_param_counts.json", {})
        ours = _read_json(report_dir / _OUR_REPORT, {})
        finn_times = _read_json(report_dir / "time_per_step.json", {})

        step_names = list(ours.get("steps") or [k for k in finn_times if k != "total_build_time"])
        hw_graph = _final_graph_path(out, step_names)
        parent = out / "intermediate_models" / "dataflow_parent.onnx"
        parent = parent if parent.is_file() else None
        node_info = _node_info(hw_graph)

        layers = []
        for name, res in resources.items():
            if name == "total":
                continue
            op_type, pe, simd, mw = node_info.get(name, (re.sub(r"_\d+$", "", name), None, None, None))
            layer_cycles = cycles.get(name)
            layers.append(
                LayerEstimate(
                    name=name,
                    op_type=op_type,
                    lut=float(res.get("LUT", 0)),
                    bram_18k=float(res.get("BRAM_18K", 0)),
                    uram=float(res.get("URAM", 0)),
                    dsp=float(res.get("DSP", 0)),
                    cycles=None if layer_cycles is None else int(layer_cycles),
                    pe=pe,
                    simd=simd,
                    mw=mw,
                )
            )
        total = resources.get("total") or {}

        def _total(key: str, attr: str) -> float:
            if key in total:
                return float(total[key])
            return float(sum(getattr(layer, attr) for layer in layers))

        software = tuple(_software_nodes(parent)) if parent is not None else ()
        notes = []
        if any(layer.op_type == "Thresholding_rtl" for layer in layers):
            notes.append(
                "Thresholding_rtl LUT estimates count the threshold memory of every channel, even "
                "when thresholds are shared across channels: treat them as upper bounds"
            )
        if software:
            notes.append(
                "not estimated (left outside the accelerator): " + ", ".join(software)
            )
        clock_ns = ours.get("clock_ns")
        latency_cycles = perf.get("critical_path_cycles")
        return cls(
            layers=tuple(layers),
            total_lut=_total("LUT", "lut"),
            total_bram_18k=_total("BRAM_18K", "bram_18k"),
            total_uram=_total("URAM", "uram"),
            total_dsp=_total("DSP", "dsp"),
            max_cycles=None if perf.get("max_cycles") is None else int(perf["max_cycles"]),
            bottleneck_layer=perf.get("max_cycles_node_name"),
            latency_cycles=None if latency_cycles is None else int(latency_cycles),
            latency_ns=perf.get("estimated_latency_ns"),
            throughput_fps=perf.get("estimated_throughput_fps"),
            clock_ns=clock_ns,
            fpga_part=ours.get("fpga_part"),
            output_dir=out,
            hw_graph_path=hw_graph,
            parent_graph_path=parent,
            software_nodes=software,
            op_and_param_counts=counts,
            step_times_s=dict(ours.get("step_times_s") or {}),
            build_time_s=ours.get("build_time_s"),
            notes=tuple(notes),
        )


def load_onnx_model(
    model_or_path: ModelWrapper | onnx.ModelProto | str | os.PathLike,
) -> onnx.ModelProto:
    """Return an independent ``ModelProto`` copy of a ModelWrapper, ModelProto or ONNX file.

    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` for a file that is not an
    ONNX model or has no nodes, ``TypeError`` for anything else.
    """
    if isinstance(model_or_path, ModelWrapper):
        proto = copy.deepcopy(model_or_path.model)
        source = "the given ModelWrapper"
    elif isinstance(model_or_path, onnx.ModelProto):
        proto = copy.deepcopy(model_or_path)
        source = "the given ModelProto"
    elif isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if not path.exists():
            raise FileNotFoundError(f"ONNX model file not found: {path}")
        if not path.is_file():
            raise ValueError(f"{path} is not a file")
        try:
            proto = onnx.load(str(path))
        except (DecodeError, ValueError, RuntimeError, TypeError) as exc:
            raise ValueError(
                f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}"
            ) from exc
        source = str(path)
    else:
        raise TypeError(
            "expected a qonnx ModelWrapper, an onnx ModelProto or a path, "
            f"got {type(model_or_path).__name__}"
        )
    if len(proto.graph.node) == 0:
        raise ValueError(f"{source} is not a usable ONNX model: its graph has no nodes")
    return proto


def step_qonnx_cleanup(model: ModelWrapper, cfg: Any) -> ModelWrapper:
    """Builder step: qonnx ``cleanup_model`` (shape/datatype inference, constant folding, names).

    Useful first entry of ``extra_steps_before`` when later hook steps want a tidy graph (FINN's
    own ``step_qonnx_to_finn`` runs the same cleanup, but only if ``Quant`` nodes are present).
    Note that it constant-folds weight ``FloatQuant``/``MinifloatQuant`` nodes
    (see :mod:`finn_transforms.annotations`).
    """
    from qonnx.util.cleanup import cleanup_model

    return cleanup_model(model)


def build_estimates(
    model_or_path: ModelWrapper | onnx.ModelProto | str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    fpga_part: str = "xczu3eg-sbva484-1-e",
    clock_ns: float = 10.0,
    target_fps: float | None = None,
    folding_config: Mapping[str, Any] | str | os.PathLike | None = None,
    mvau_wwidth_max: int = 36,
    extra_steps_before: Sequence[BuildStep] = (),
    steps: Sequence[BuildStep] | None = None,
    allowed_software_ops: Collection[str] | None = DEFAULT_SOFTWARE_OPS,
    config_overrides: Mapping[str, Any] | None = None,
    quiet: bool = True,
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

    Returns:
        The parsed :class:`EstimateReport`.

    Raises:
        FileNotFoundError / ValueError / TypeError: unusable input model or arguments.
        FinnBuildError: a build step failed; ``.step`` names it, the message gives the cause,
            ``.unmapped_nodes`` lists nodes FINN could not map to HW layers (if that was the cause).
        FinnNotAvailableError: FINN+ is not installed.
    """
    require_finn()
    if not clock_ns > 0:
        raise ValueError(f"clock_ns must be positive, got {clock_ns}")
    if target_fps is not None and not target_fps >= 1:
        raise ValueError(f"target_fps must be >= 1 frame per second or None, got {target_fps}")
    proto = load_onnx_model(model_or_path)
    out = Path(output_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    report_dir = out / "report"
    for name in _FINN_REPORTS:
        (report_dir / name).unlink(missing_ok=True)
    input_path = out / "input_model.onnx"
    onnx.save(proto, str(input_path))
    folding_path = _folding_config_file(folding_config, out)

    build_dir = None if os.environ.get("FINN_BUILD_DIR") else out / "finn_build_dir"
    recorder = _StepRecorder()
    raised: BaseException | None = None
    rc = None
    start = time.perf_counter()
    with finn_session(build_dir), builder_io(quiet=quiet):
        finn = import_builder()
        step_fns = _assemble_steps(finn, steps, extra_steps_before, allowed_software_ops, recorder)
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
        if isinstance(exc, _UnmappedNodes):
            raise FinnBuildError(
                f"FINN could not map {len(exc.nodes)} node(s) to HW layers (checked before "
                f"step_create_dataflow_partition): {', '.join(exc.nodes)}. Lower them to ops FINN "
                f"supports (e.g. with a step in extra_steps_before) or, if they may run on the "
                f"host at the graph's start/end, add their op types to allowed_software_ops.",
                step=step,
                output_dir=out,
                unmapped_nodes=exc.nodes,
            ) from exc
        unmapped = _unmapped_before(out, step, recorder.order)
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

    _write_json(
        report_dir / _OUR_REPORT,
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


# ----------------------------------------------------------------------------- helpers


class _StepRecorder:
    """Wraps builder steps to time them and to remember which one raised."""

    def __init__(self) -> None:
        self.failed: tuple[str, BaseException] | None = None
        self.times: dict[str, float] = {}
        self.order: list[str] = []

    def wrap(self, fn: Callable, name: str) -> Callable:
        @functools.wraps(fn)
        def step(model, cfg):
            start = time.perf_counter()
            try:
                result = fn(model, cfg)
                if not isinstance(result, ModelWrapper):
                    raise TypeError(
                        f"build step {name} returned {type(result).__name__}, not a ModelWrapper"
                    )
            except BaseException as exc:
                if self.failed is None:
                    self.failed = (name, exc)
                raise
            self.times[name] = round(time.perf_counter() - start, 4)
            return result

        # FINN names intermediate models after __name__ (it must exist and be a file name).
        step.__name__ = step.__qualname__ = name
        self.order.append(name)
        return step


def _resolve_step(step: BuildStep, lookup: Mapping[str, Callable]) -> Callable:
    if isinstance(step, str):
        if step in lookup:
            return lookup[step]
        module_name, _, attr = step.rpartition(".")
        if not module_name:
            raise ValueError(
                f"unknown build step {step!r}: not a FINN step and not 'package.module.function'"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"cannot import build step {step!r}: {exc}") from exc
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise ValueError(f"build step {step!r}: {module_name} has no callable {attr!r}")
        return fn
    if callable(step):
        return step
    raise TypeError(f"a build step must be a callable or a string, got {type(step).__name__}")


def _step_name(fn: Callable, used: set[str]) -> str:
    base = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", None)
    base = re.sub(r"[^A-Za-z0-9_]", "_", base or "custom_step").strip("_") or "custom_step"
    name, i = base, 1
    while name in used:
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name


def _assemble_steps(finn, steps, extra_steps_before, allowed_software_ops, recorder) -> list:
    lookup = finn.steps.build_dataflow_step_lookup
    if isinstance(extra_steps_before, (str, bytes)) or callable(extra_steps_before):
        extra_steps_before = [extra_steps_before]
    base = list(finn.config.estimate_only_dataflow_steps if steps is None else steps)
    resolved = [_resolve_step(s, lookup) for s in base]
    # FINN+'s bit-width minimisation breaks XNOR-popcount MVAUs (negative thresholds crash it,
    # large ones are clipped wrongly): use the exact wrappers of the same name instead.
    from finn_transforms.steps import XNOR_EXACT_STEPS

    for i, fn in enumerate(resolved):
        name = getattr(fn, "__name__", "")
        if name in XNOR_EXACT_STEPS and lookup.get(name) is fn:
            resolved[i] = XNOR_EXACT_STEPS[name]
    extra = [_resolve_step(s, lookup) for s in extra_steps_before]
    names = [getattr(fn, "__name__", None) for fn in resolved]
    at = names.index("step_qonnx_to_finn") if "step_qonnx_to_finn" in names else 0
    resolved[at:at] = extra
    if allowed_software_ops is not None and "step_create_dataflow_partition" in names:
        at = [getattr(fn, "__name__", None) for fn in resolved].index(
            "step_create_dataflow_partition"
        )
        resolved.insert(at, _make_mapping_check(frozenset(allowed_software_ops)))
    used: set[str] = set()
    return [recorder.wrap(fn, _step_name(fn, used)) for fn in resolved]


def _make_mapping_check(allowed: frozenset[str]) -> Callable:
    def step_check_hw_mapping(model: ModelWrapper, cfg: Any) -> ModelWrapper:
        """Fail on nodes FINN did not convert to HW layers, except host-side ops in ``allowed``."""
        bad = [
            f"{node.name or '<unnamed>'} ({node.op_type})"
            for node in model.graph.node
            if not node.domain.startswith(_HW_DOMAIN) and node.op_type not in allowed
        ]
        if bad:
            raise _UnmappedNodes(bad)
        return model

    return step_check_hw_mapping


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
        _write_json(path, dict(folding_config))
        return path
    path = Path(folding_config).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"folding config not found: {path}")
    return path


def _unmapped_before(out: Path, step: str, order: Sequence[str]) -> tuple[str, ...]:
    """Nodes outside the HW domain in the model that entered the failing partition step."""
    if step != "step_create_dataflow_partition" or step not in order:
        return ()
    idx = list(order).index(step)
    if idx == 0:
        return ()
    path = out / "intermediate_models" / f"{order[idx - 1]}.onnx"
    if not path.is_file():
        return ()
    model = onnx.load(str(path), load_external_data=False)
    return tuple(
        f"{n.name} ({n.op_type})" for n in model.graph.node if not n.domain.startswith(_HW_DOMAIN)
    )


def _final_graph_path(out: Path, step_names: Sequence[str]) -> Path | None:
    models = out / "intermediate_models"
    for name in reversed(list(step_names)):
        path = models / f"{name}.onnx"
        if path.is_file():
            return path
    return None


def _node_info(path: Path | None) -> dict[str, tuple[str, int | None, int | None, int | None]]:
    if path is None:
        return {}
    model = onnx.load(str(path), load_external_data=False)
    info = {}
    for node in model.graph.node:
        attrs = {a.name: a.i for a in node.attribute if a.name in ("PE", "SIMD", "MW")}
        info[node.name] = (node.op_type, attrs.get("PE"), attrs.get("SIMD"), attrs.get("MW"))
    return info


def _software_nodes(parent: Path) -> list[str]:
    model = onnx.load(str(parent), load_external_data=False)
    return [
        f"{n.name} ({n.op_type})"
        for n in model.graph.node
        if n.op_type != "StreamingDataflowPartition" and not n.domain.startswith(_HW_DOMAIN)
    ]


def _read_json(path: Path, default: Any = None) -> Any:
    if not path.is_file():
        if default is None:
            raise FileNotFoundError(path)
        return default
    with path.open() as f:
        return json.load(f)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
