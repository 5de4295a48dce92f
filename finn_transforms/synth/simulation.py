"""Icarus Verilog simulation of FINN's ``Thresholding_rtl`` against qonnx's ``multithreshold``."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from finn_transforms.finn_defaults import DEFAULT_FPGA_PART
from finn_transforms.synth.hdl import ThresholdSynthError, generate_thresholding_hdl
from finn_transforms.synth.slang import to_verilog

__all__ = ["simulate_thresholding"]

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
        verilog = to_verilog(hdl, timeout)
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

