"""Regenerate docs/native_minifloat.md: native minifloat layers vs the integer embedding vs FINN's INT flow.

For the TFC-shaped MLP and the CNV-shaped CNN of `brevitas_minifloat.zoo` (default sizes, power-of-two
scales, calibrated on random data: hardware cost does not depend on training) with one format for
weights and activations, this exports to QONNX and runs FINN+'s estimate-only build with our
lowering step twice per minifloat format, ``mapping="embedding"`` (the integers that contain the
format, FINN's own MVAU) and ``mapping="native"`` (ordinal thresholds + ``MVAU_minifloat``), and once
for INT4 / INT8 (FINN's flow), at one fixed folding (every layer fully folded, PE = SIMD = 1) and
at one ``target_fps``. Per build: thresholds per channel of the widest activation layer, weight
bits (code or integer width), FINN's LUT / BRAM / DSP estimates (for native layers the op's
``*_estimation`` methods, and beside them FINN's own MVAU LUT model evaluated on the same node), the
estimated cycles of the slowest layer, and for native builds the Yosys synthesis of every native
MVAU layer (``native_layer_cost(spec, synthesize=True)``, JSON-cached) beside our model's estimate of
the same layers, and the slowest native layer's cycles for one frame both from ``get_exp_cycles()``
and simulated in its RTL. Refusals are rows too.

    python scripts/native_minifloat_table.py [--out docs/native_minifloat.md] [--models mlp,cnn]
                                             [--formats INT4,E4M3] [--target-fps 10000] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from brevitas_minifloat import export_qonnx
from brevitas_minifloat.hw.cost import yosys_missing
from brevitas_minifloat.hw.operands import is_minifloat
from brevitas_minifloat.zoo import calibrate, cnv_cnn, tfc_mlp
from finn_transforms.build import FinnBuildError, build_estimates
from finn_transforms.finn_defaults import DEFAULT_FPGA_PART
from finn_transforms.native.cost import native_layer_cost
from finn_transforms.native.sim import execute_native_layer_rtl
from finn_transforms.steps import make_step_lower_minifloat
from finn_transforms.transformation import LoweringError

# sections other scripts write into the same document, kept as they are: benchmarks/bench_native.py
# --write-doc and scripts/native_pareto.py
KEPT_SECTIONS = (("<!-- bench_native:start -->", "<!-- bench_native:end -->"),
                 ("<!-- native_pareto:start -->", "<!-- native_pareto:end -->"))
FORMATS = ["INT4", "INT8", "E2M1", "E2M3", "E3M2", "E4M3", "E5M2"]
MODELS = {
    "mlp": (lambda f: tfc_mlp(f, f, input_bits_or_fmt=f, power_of_two=True), (1, 784)),
    "cnn": (lambda f: cnv_cnn(f, f, input_bits_or_fmt=f, power_of_two=True), (1, 1, 28, 28)),
}
_MVAU_TYPES = ("MVAU_hls", "MVAU_rtl", "MVAU_minifloat_rtl")  # FINN's MVAUs and the native one


def _layer_facts(hw_graph: Path) -> dict:
    """Thresholds per channel (widest Thresholding layer), weight bits (widest MVAU), FINN's MVAU LUT
    model summed over the matrix-vector layers (for a native layer: FINN's ``MVAU_hls.lut_estimation``
    on the same node, i.e. as if its codes and ordinals were integers of that width), and the slowest
    native layer's estimated and RTL-simulated cycles for one frame."""
    import finn_transforms.native.hw_op  # noqa: F401  (registers MVAU_minifloat)
    from finn.custom_op.fpgadataflow.hls.matrixvectoractivation_hls import MVAU_hls

    model = ModelWrapper(str(hw_graph))
    thresholds, weight_bits, kinds, finn_lut, native = 0, 0, set(), 0.0, []
    for node in model.graph.node:
        if node.op_type.startswith("Thresholding"):
            thresholds = max(thresholds, model.get_initializer(node.input[1]).shape[-1])
        if node.op_type.startswith(("OrdinalLUT", "VVAU")):  # hardware decodes, depthwise layers
            kinds.add(node.op_type)
        if node.op_type in _MVAU_TYPES:
            inst = getCustomOp(node)
            weight_bits = max(weight_bits, inst.get_input_datatype(1).bitwidth())
            kinds.add(node.op_type)
            finn_lut += MVAU_hls.lut_estimation(inst, DEFAULT_FPGA_PART) if node.op_type == "MVAU_minifloat_rtl" \
                else inst.lut_estimation(DEFAULT_FPGA_PART)
            if node.op_type == "MVAU_minifloat_rtl":
                native.append(inst)
    facts = {"thresholds": thresholds, "weight_bits": weight_bits, "mvau_types": sorted(kinds),
             "finn_mvau_lut": round(finn_lut)}
    if native:
        facts.update(_synthesized(native))
        facts.update(_simulated_cycles(max(native, key=lambda inst: inst.get_exp_cycles()), model))
    return facts


def _synthesized(native: list) -> dict:
    """LUT / FF / BRAM18 / DSP of the native MVAU layers from Yosys (each layer synthesized, cached),
    and our model's LUT estimate of the same layers (what the build reports for them)."""
    specs = [inst.spec() for inst in native]
    facts = {"native_model_lut": sum(native_layer_cost(spec)["lut"] for spec in specs)}
    if yosys_missing():
        return facts
    costs, failed = [], []
    for inst, spec in zip(native, specs):
        try:
            costs.append(native_layer_cost(spec, synthesize=True))
        except RuntimeError as err:  # a Yosys error: named in the table, not summed over
            reason = next((line.strip() for line in str(err).splitlines() if "ERROR" in line), str(err).splitlines()[0])
            failed.append(f"{inst.onnx_node.name}: {reason}")
    if failed:
        return facts | {"native_synth_failed": failed}
    return facts | {"native_synth": {k: sum(c[k] for c in costs) for k in ("lut", "ff", "bram", "dsp")}}


def _simulated_cycles(inst, model: ModelWrapper) -> dict:
    """One frame (``numInputVectors`` vectors of random stream elements: cycles do not depend on the
    data) through the layer's RTL, beside ``get_exp_cycles()``."""
    spec = inst.spec()
    vectors = int(np.prod(inst.get_nodeattr("numInputVectors")))
    rng = np.random.default_rng(0)
    fmt = spec.input_format
    lo, hi = (0, len(fmt.values()) - 1) if is_minifloat(fmt) else (fmt.integer_min, fmt.integer_max)
    x = rng.integers(lo, hi + 1, size=(vectors, spec.mw))
    _, cycles = execute_native_layer_rtl(spec, inst.weight_codes(model), x)
    return {"native_layer": inst.onnx_node.name, "native_cycles_est": int(inst.get_exp_cycles()), "native_cycles_sim": cycles}


def build_row(model_name: str, fmt: str, mapping: str, target_fps: float | None, work: Path) -> dict:
    factory, shape = MODELS[model_name]
    torch.manual_seed(0)
    model = calibrate(factory(fmt))
    row = {"model": model_name, "format": fmt, "mapping": mapping, "target_fps": target_fps}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qonnx = export_qonnx(model, torch.randn(shape), work / "model.onnx")
    start = time.perf_counter()
    try:
        report = build_estimates(
            qonnx, work / "build", target_fps=target_fps, extra_steps_before=[make_step_lower_minifloat(mapping=mapping)]
        )
    except FinnBuildError as err:
        cause = err.__cause__ if isinstance(err.__cause__, LoweringError) else err
        return {**row, "status": "refused" if isinstance(cause, LoweringError) else "failed",
                "reason": str(cause).split(": ", 1)[-1][:160]}
    mvau_lut = sum(layer.lut for layer in report.layers if layer.op_type in _MVAU_TYPES)
    thr_lut = sum(layer.lut for layer in report.layers if layer.op_type.startswith("Thresholding"))
    row.update(
        status="ok", lut=report.total_lut, mvau_lut=mvau_lut, thr_lut=thr_lut, bram18=report.total_bram_18k,
        dsp=report.total_dsp,
        max_cycles=report.max_cycles, build_s=round(time.perf_counter() - start, 1), **_layer_facts(report.hw_graph_path),
    )
    return row


def configurations(models, formats):
    for model_name in models:
        for fmt in formats:
            for mapping in (["embedding"] if fmt.startswith("INT") else ["embedding", "native"]):
                yield model_name, fmt, mapping


def _cell(row: dict, key: str) -> str:
    value = row.get(key)
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


#: What is native beyond the two models measured here (docs/design.md, Native minifloat layers).
BEYOND_THESE_MODELS = [
    "Beyond these two models: depthwise convolutions become `VVAU_minifloat` layers (FINN's VVAU with",
    "weight codes and an exact accumulator; Python execution, generated RTL simulated in verify's `rtl` stage,",
    "and a cost model fitted to syntheses of that RTL: [native_layer_cost.md](native_layer_cost.md), depthwise",
    "section), and an activation whose consumers cannot take ordinals (a residual add,",
    "a pool, an integer layer) keeps its ordinal thresholds and is decoded to integers by an `OrdinalLUT`",
    "HW layer (one LUT ROM per PE, with RTL that `verify`'s `rtl` stage simulates; its cost in",
    "[ordinal_lut_cost.md](ordinal_lut_cost.md)). The E4M3 rows of [topologies.md](topologies.md) (ResNet-8,",
    "DS-CNN, MobileNetV1) use both.",
    "",
]


def _native_synth(row: dict) -> str:
    if "native_model_lut" not in row:
        return ""
    synth = row.get("native_synth")
    if "native_synth_failed" in row:
        measured = "Yosys failed on " + "; ".join(row["native_synth_failed"])
    else:
        measured = "no yosys" if synth is None else " / ".join(str(synth[k]) for k in ("lut", "ff", "bram", "dsp"))
    return f"{measured} ({row['native_model_lut']})"


def _native_cycles(row: dict) -> str:
    if "native_cycles_sim" not in row:
        return ""
    return f"{row['native_cycles_est']} / {row['native_cycles_sim']}"


def render(rows: list[dict], target_fps: float, argv: str) -> str:
    lines = [
        "# Native minifloat layers in FINN",
        "",
        "Generated by `python scripts/native_minifloat_table.py"
        + (f" {argv}" if argv else "")
        + f"` on {datetime.date.today()} ({platform.machine()}, FINN+ estimate-only builds). "
        "Do not edit by hand.",
        "",
        "Each minifloat model is built twice: **embedding** (every minifloat tensor becomes the integers that",
        "contain it; FINN's own MVAU) and **native** (activations as ordinal thresholds, one per distinct",
        "value; weights stored as codes in a `MVAU_minifloat` with an exact accumulator). INT4/INT8 are FINN's",
        "own flow. Models: the TFC-shaped MLP (784-64-64-64-10) and the CNV-shaped CNN (1x28x28, 16/32",
        "channels) of `brevitas_minifloat.zoo`, one format for weights and activations, power-of-two scales.",
        "",
        "Columns: *thresholds* per channel of the widest activation layer; *w bits*, the stored weight width",
        "(codes for native layers, integers otherwise); LUT / BRAM18 / DSP are the build's estimates summed",
        "over the layers: FINN's analytic models for FINN's layers, and for `MVAU_minifloat` its",
        "`*_estimation` methods, i.e. `finn_transforms.native.cost` (the model fitted to synthesized layers,",
        "independent of any local synthesis cache; its error is stated in native_layer_cost.md). So the MVAU",
        "columns compare FINN's model of its MVAU with our synthesis-based model of ours; *FINN's model* beside",
        "it is FINN's own `MVAU_hls.lut_estimation` evaluated on the same nodes (for a native layer: as if its",
        "weight codes and input ordinals were integers of that width, with its exact accumulator). *native MVAU",
        "synthesized*: every native MVAU layer of the build synthesized by the project's Yosys flow",
        "(`native_layer_cost(spec, synthesize=True)`: its compute, weights counted as FINN counts its MVAU's",
        "weight memory; docs/native_layer_cost.md), summed, beside our model's LUT estimate of the same layers",
        "(the native part of *MVAU LUT*). The LUT and MVAU LUT columns are split into the",
        "matrix-vector layers and the thresholding layers (FINN's `Thresholding_rtl` estimate counts the",
        "threshold memory of every channel, even when a per-tensor quantizer shares it: the 784-channel input",
        "quantizer dominates the MLP); *cycles*, the slowest layer's estimated cycles per frame. *native",
        "cycles est. / sim.*: the slowest native layer's `get_exp_cycles()` for one frame and the cycles its",
        "generated RTL took to stream that frame (`numInputVectors` vectors, no back-pressure) in a simulator",
        "(`finn_transforms.native.sim`; Verilator for long runs, else Icarus): the full layer, not a reduced",
        "folding. Refused builds give the reason.",
        "",
        "The synthesized cost of the native layer itself (Yosys, LUT / FF per layer vs INT8) is in",
        "[native_layer_cost.md](native_layer_cost.md) (`scripts/native_layer_cost_table.py`).",
        "",
        *BEYOND_THESE_MODELS,
    ]
    for title, fps in (("Fixed folding (every layer PE = SIMD = 1)", None), (f"target_fps = {target_fps:g}", target_fps)):
        lines += [f"## {title}", ""]
        for model_name in dict.fromkeys(r["model"] for r in rows):
            lines += [f"### {model_name.upper()}", "",
                      "| format | mapping | status | thresholds | w bits | LUT | MVAU LUT | MVAU LUT, FINN's model "
                      "| native MVAU synthesized LUT / FF / BRAM18 / DSP (model LUT) | thresholding LUT | BRAM18 | DSP "
                      "| cycles | native cycles est. / sim. | layers |",
                      "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
            for r in rows:
                if r["model"] != model_name or r["target_fps"] != fps:
                    continue
                status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('reason', '')}"
                lines.append(
                    f"| {r['format']} | {r['mapping']} | {status} | {_cell(r, 'thresholds')} | {_cell(r, 'weight_bits')} | "
                    f"{_cell(r, 'lut')} | {_cell(r, 'mvau_lut')} | {_cell(r, 'finn_mvau_lut')} | {_native_synth(r)} | {_cell(r, 'thr_lut')} | "
                    f"{_cell(r, 'bram18')} | {_cell(r, 'dsp')} | {_cell(r, 'max_cycles')} | {_native_cycles(r)} | "
                    f"{', '.join(r.get('mvau_types', []))} |"
                )
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/native_minifloat.md")
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--target-fps", type=float, default=10_000.0)
    ap.add_argument("--json", help="also write the rows as JSON")
    ap.add_argument("--from-json", help="render the rows of an earlier --json run instead of building")
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    models, formats = args.models.split(","), args.formats.split(",")
    rows = json.loads(Path(args.from_json).read_text()) if args.from_json else []
    with tempfile.TemporaryDirectory(prefix="native_table_") as tmp:
        for fps in () if args.from_json else (None, args.target_fps):
            for i, (model_name, fmt, mapping) in enumerate(configurations(models, formats)):
                work = Path(tmp) / f"{model_name}_{fmt}_{mapping}_{i}_{fps}"
                work.mkdir()
                rows.append(build_row(model_name, fmt, mapping, fps, work))
                print(json.dumps(rows[-1]), flush=True)
    extra = " ".join(a for a in argv if not a.startswith(("--out", "--json", "--from-json")) and not a.endswith(".json"))
    out = Path(args.out)
    old = out.read_text() if out.is_file() else ""
    kept = "".join("\n" + start + old.partition(start)[2].partition(end)[0] + end + "\n"
                   for start, end in KEPT_SECTIONS if start in old and end in old)
    out.write_text(render(rows, args.target_fps, extra) + "\n" + kept)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
