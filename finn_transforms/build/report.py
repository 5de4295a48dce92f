"""Parsed FINN estimate reports: :class:`EstimateReport` and its per-layer :class:`LayerEstimate`.

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

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from finn_transforms.build.corrections import layer_corrections
from finn_transforms.build.parts import part_capacity
from finn_transforms.finn_defaults import is_hw_node

__all__ = ["FINN_REPORTS", "OUR_REPORT", "EstimateReport", "LayerEstimate", "read_json", "write_json"]

#: Our own report beside FINN's: build options, step order and times.
OUR_REPORT = "build_estimates.json"
#: Every report file a build writes (deleted before a rebuild into the same folder).
FINN_REPORTS = (
    "estimate_layer_resources.json",
    "estimate_layer_cycles.json",
    "estimate_network_performance.json",
    "op_and_param_counts.json",
    "estimate_layer_config_alternatives.json",
    "time_per_step.json",
    "metadata_builder.json",
    OUR_REPORT,
)


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
    #: Our corrections of FINN's numbers where its models miss or over-count threshold memory
    #: (`finn_transforms.build.corrections`); None: FINN's number stands.
    lut_corrected: float | None = None
    bram_18k_corrected: float | None = None
    uram_corrected: float | None = None
    correction: str | None = None  # the formula, with this layer's numbers


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
    #: Totals with our per-layer corrections (equal to FINN's totals when no layer needs one).
    total_lut_corrected: float | None = None
    total_bram_18k_corrected: float | None = None
    total_uram_corrected: float | None = None
    #: Capacity of ``fpga_part`` (`finn_transforms.build.parts`), None when the part is not in our table.
    capacity: dict[str, Any] | None = None
    #: Resources the design needs beyond the part's capacity, e.g. ``"LUT 201133 > 70560 (285%)"``.
    exceeds: tuple[str, ...] = ()

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
        corrected = any(r.correction for r in self.layers)
        extra = f"{'LUT*':>10}{'BRAM18*':>9}" if corrected else ""
        lines = [f"{'layer':<34}{'LUT':>10}{'BRAM18':>8}{'URAM':>6}{'DSP':>6}{'cycles':>10}{extra}"]
        for r in self.layers:
            cycles = "" if r.cycles is None else str(r.cycles)
            fixed = ""
            if corrected:
                fixed = (f"{r.lut_corrected:>10g}{r.bram_18k_corrected:>9g}" if r.correction
                         else f"{'':>10}{'':>9}")
            lines.append(
                f"{r.name:<34}{r.lut:>10g}{r.bram_18k:>8g}{r.uram:>6g}{r.dsp:>6g}{cycles:>10}{fixed}"
            )
        total_fixed = f"{self.total_lut_corrected:>10g}{self.total_bram_18k_corrected:>9g}" if corrected else ""
        lines.append(
            f"{'total':<34}{self.total_lut:>10g}{self.total_bram_18k:>8g}{self.total_uram:>6g}"
            f"{self.total_dsp:>6g}{self.total_cycles:>10}{total_fixed}"
        )
        if corrected:
            lines.append("* corrected (FINN's own number where blank):")
            lines.extend(f"  {r.name}: {r.correction}" for r in self.layers if r.correction)
        if self.capacity is not None:
            cap = self.capacity
            fits = ("DOES NOT FIT: " + ", ".join(self.exceeds)) if self.exceeds else "fits"
            lines.append(f"{self.fpga_part} ({cap['boards']}): {cap['lut']} LUT, {cap['bram_18k']} BRAM18, "
                         f"{cap['uram']} URAM, {cap['dsp']} DSP; this design {fits}")
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
        resources = read_json(res_path)
        cycles = read_json(report_dir / "estimate_layer_cycles.json", {})
        perf = read_json(report_dir / "estimate_network_performance.json", {})
        counts = read_json(report_dir / "op_and_param_counts.json", {})
        ours = read_json(report_dir / OUR_REPORT, {})
        finn_times = read_json(report_dir / "time_per_step.json", {})

        step_names = list(ours.get("steps") or [k for k in finn_times if k != "total_build_time"])
        hw_graph = _final_graph_path(out, step_names)
        parent = out / "intermediate_models" / "dataflow_parent.onnx"
        parent = parent if parent.is_file() else None
        node_info = _node_info(hw_graph)

        fpga_part = ours.get("fpga_part")
        fixes = layer_corrections(hw_graph, fpga_part)
        layers = []
        for name, res in resources.items():
            if name == "total":
                continue
            op_type, pe, simd, mw = node_info.get(name, (re.sub(r"_\d+$", "", name), None, None, None))
            layer_cycles = cycles.get(name)
            fix = fixes.get(name)
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
                    **({} if fix is None else {"lut_corrected": fix.lut, "bram_18k_corrected": fix.bram_18k,
                                               "uram_corrected": fix.uram, "correction": fix.reason}),
                )
            )
        total = resources.get("total") or {}

        def _total(key: str, attr: str) -> float:
            if key in total:
                return float(total[key])
            return float(sum(getattr(layer, attr) for layer in layers))

        software = tuple(_software_nodes(parent)) if parent is not None else ()
        notes = []
        if any(layer.op_type in ("Thresholding_rtl", "WideThresholding_rtl") for layer in layers):
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
        totals = {attr: _total(key, attr) for key, attr in
                  (("LUT", "lut"), ("BRAM_18K", "bram_18k"), ("URAM", "uram"), ("DSP", "dsp"))}
        fixed = {attr: totals[attr] + sum(getattr(r, f"{attr}_corrected") - getattr(r, attr)
                                          for r in layers if r.correction)
                 for attr in ("lut", "bram_18k", "uram")}
        capacity, exceeds = _capacity_check(fpga_part, totals, fixed)
        return cls(
            layers=tuple(layers),
            total_lut=totals["lut"],
            total_bram_18k=totals["bram_18k"],
            total_uram=totals["uram"],
            total_dsp=totals["dsp"],
            total_lut_corrected=fixed["lut"],
            total_bram_18k_corrected=fixed["bram_18k"],
            total_uram_corrected=fixed["uram"],
            capacity=capacity,
            exceeds=exceeds,
            max_cycles=None if perf.get("max_cycles") is None else int(perf["max_cycles"]),
            bottleneck_layer=perf.get("max_cycles_node_name"),
            latency_cycles=None if latency_cycles is None else int(latency_cycles),
            latency_ns=perf.get("estimated_latency_ns"),
            throughput_fps=perf.get("estimated_throughput_fps"),
            clock_ns=clock_ns,
            fpga_part=fpga_part,
            output_dir=out,
            hw_graph_path=hw_graph,
            parent_graph_path=parent,
            software_nodes=software,
            op_and_param_counts=counts,
            step_times_s=dict(ours.get("step_times_s") or {}),
            build_time_s=ours.get("build_time_s"),
            notes=tuple(notes),
        )


def _capacity_check(fpga_part: str | None, raw: dict[str, float], fixed: dict[str, float]
                    ) -> tuple[dict | None, tuple[str, ...]]:
    """The part's capacity (as a dict) and every resource FINN's estimate or our corrected one puts
    beyond it, e.g. ``"LUT 201133 > 70560 (285%; corrected 9153: fits)"``."""
    cap = part_capacity(fpga_part)
    if cap is None:
        return None, ()
    over = []
    for attr, label in (("lut", "LUT"), ("bram_18k", "BRAM18"), ("uram", "URAM"), ("dsp", "DSP")):
        have, need, need_fixed = getattr(cap, attr), raw[attr], fixed.get(attr, raw[attr])
        if max(need, need_fixed) <= have:
            continue
        share = f"{100 * need / have:.0f}%" if have else "the part has none"  # e.g. URAM on a Zynq-7000 / xczu3eg
        text = f"{label} {need:g} {'>' if need > have else '<='} {have} ({share}"
        if need_fixed != need:
            text += f"; corrected {need_fixed:g}: {'over' if need_fixed > have else 'fits'}"
        over.append(text + ")")
    return dataclasses.asdict(cap), tuple(over)


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
        if n.op_type != "StreamingDataflowPartition" and not is_hw_node(n)
    ]


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON file at ``path``; ``default`` if it is missing (``FileNotFoundError`` without one)."""
    if not path.is_file():
        if default is None:
            raise FileNotFoundError(path)
        return default
    with path.open() as f:
        return json.load(f)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
