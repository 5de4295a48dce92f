"""Simulate native layers' RTL with Icarus Verilog or Verilator, checked against the layer's exact
reference (MVAU: `NativeMvauRtl`, `reference_mvau`; depthwise VVAU: `NativeVvauRtl`, `reference_vvau`).

`stream` runs any generated layer on FINN's stream interface (`finn_transforms.native.hdl`); the
weight layers' `simulate_layer` / `verify_layer` / `execute_native_layer_rtl` fold their inputs into
beats (the layer's ``input_stream``) and back (the ``OrdinalLUT``'s are in `finn_transforms.native.decode_rtl`).

The testbench streams the input beats into ``in0_V`` and collects ``out0_V`` beats, with
optional random back-pressure on both sides (TVALID dropped / TREADY dropped with probability
``stall``, AXI-stream rules kept: a presented beat stays until accepted). It counts the cycles from
the first accepted input beat to the last accepted output beat, reported beside the layer's
expected count (``batch * NF * SF``: vectors of an MVAU, output pixels of a VVAU).
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from brevitas_minifloat.hw.sim import lint_missing, simulator_missing
from finn_transforms.native.rtl import NativeMvauRtl
from finn_transforms.native.spec import NativeMvauSpec


class StreamLayer(Protocol):
    """What `stream` needs of a generated layer: its top module name, Verilog and TDATA widths."""

    top: str
    input_width: int
    output_width: int

    @property
    def verilog(self) -> str: ...

    def write(self, directory: str | Path) -> Path: ...


@dataclass(frozen=True)
class RtlRun:
    """One simulation: outputs ``(batch, mh)`` (Python ints), simulated and expected cycles."""

    outputs: np.ndarray
    cycles: int
    expected_cycles: int
    seconds: float  # wall time of the simulator itself (compile excluded; compiled once per process)

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.seconds if self.seconds > 0 else float("inf")


def _testbench(rtl: StreamLayer, n_in: int, n_out: int, busy: int, stall: float, seed: int) -> str:
    """``busy``: the cycles the layer needs without back-pressure (bounds the simulation)."""
    iwa, owa = rtl.input_width, rtl.output_width
    threshold = round(stall * 256)  # a side stalls when an 8-bit random number is below it
    max_cycles = (busy + n_out + 100) * (4 if stall == 0 else 40)
    return f"""`timescale 1ns/1ps
module tb;
    reg clk = 1'b0, rst_n = 1'b0;
    reg [{iwa - 1}:0] in_data = 0;
    reg in_valid = 1'b0, out_ready = 1'b0, hs_in = 1'b0;
    wire in_ready, out_valid;
    wire [{owa - 1}:0] out_data;
    reg [{iwa - 1}:0] beats [0:{n_in - 1}];
    integer seed = {seed}, fd, cycle = 0, first = -1, last = -1, n_in = 0, n_out = 0;
    {rtl.top} dut (.ap_clk(clk), .ap_rst_n(rst_n), .in0_V_TDATA(in_data), .in0_V_TVALID(in_valid),
        .in0_V_TREADY(in_ready), .out0_V_TDATA(out_data), .out0_V_TVALID(out_valid), .out0_V_TREADY(out_ready));
    initial begin
        $readmemh("in.hex", beats);
        fd = $fopen("out.hex", "w");
        repeat (2) begin #1 clk = 1'b1; #1 clk = 1'b0; end
        rst_n = 1'b1;
        while (n_out < {n_out} && cycle < {max_cycles}) begin
            // drive this cycle: a presented beat stays until it is accepted
            if (!in_valid && n_in < {n_in} && ($random(seed) & 255) >= {threshold}) begin
                in_valid = 1'b1;
                in_data = beats[n_in];
            end
            out_ready = ($random(seed) & 255) >= {threshold};
            #1;  // settle, then sample both handshakes before the edge
            hs_in = in_valid && in_ready;
            if (out_valid && out_ready) begin
                $fwrite(fd, "%h\\n", out_data);
                n_out = n_out + 1;
                last = cycle;
            end
            clk = 1'b1;
            #1 clk = 1'b0;
            if (hs_in) begin
                if (first < 0) first = cycle;
                n_in = n_in + 1;
                in_valid = 1'b0;
            end
            cycle = cycle + 1;
        end
        $fwrite(fd, "cycles %0d\\n", last - first + 1);
        $fclose(fd);
        $finish;
    end
endmodule
"""


def _icarus(top: str) -> list[str]:
    return ["iverilog", "-g2005", "-s", "tb", "-o", "sim.vvp", "tb.v", f"{top}.v"]


def _verilator(top: str) -> list[str]:
    """Verilator 5 compiles the same delay-based testbench (``--timing``) into a C++ binary: seconds
    to build, then one to two orders of magnitude faster than Icarus on large layers."""
    return ["verilator", "--binary", "--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-j", "1",
            "--top-module", "tb", "-o", "sim", "tb.v", f"{top}.v"]


_COMMANDS = {"icarus": _icarus, "verilator": _verilator}
_RUN = {"icarus": lambda d: ["vvp", "-n", str(d / "sim.vvp")], "verilator": lambda d: [str(d / "obj_dir" / "sim")]}
_BUILDS: OrderedDict[str, tempfile.TemporaryDirectory] = OrderedDict()
_MAX_BUILDS = 16


def _build(rtl: StreamLayer, testbench: str, simulator: str) -> Path:
    """Directory of the compiled simulation of ``rtl`` + ``testbench``, compiled once per process:
    the verify chain simulates the same layer for every sample (same shapes, same testbench)."""
    key = hashlib.sha256("\0".join((simulator, rtl.top, rtl.verilog, testbench)).encode()).hexdigest()
    if key in _BUILDS:
        _BUILDS.move_to_end(key)
        return Path(_BUILDS[key].name)
    build = tempfile.TemporaryDirectory(prefix="native_build_")
    d = Path(build.name)
    rtl.write(d)
    (d / "tb.v").write_text(testbench)
    cmd = _COMMANDS[simulator](rtl.top)
    comp = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
    if comp.returncode:
        build.cleanup()
        raise RuntimeError(f"{cmd[0]} failed on {rtl.top}:\n{(comp.stdout + comp.stderr)[-3000:]}")
    _BUILDS[key] = build
    while len(_BUILDS) > _MAX_BUILDS:
        _BUILDS.popitem(last=False)[1].cleanup()
    return d


_MISSING = {"icarus": simulator_missing, "verilator": lint_missing}


def layer_simulator_missing(simulator: str = "icarus") -> str | None:
    """``None`` if ``simulator`` (``"icarus"`` or ``"verilator"``) can run, else why not (with the
    install command)."""
    if simulator not in _COMMANDS:
        raise ValueError(f"simulator must be one of {sorted(_COMMANDS)}, got {simulator!r}")
    return _MISSING[simulator]()


def pack(values, bits: int) -> int:
    """One stream beat: element ``i`` of ``values`` at bits ``[i*bits +: bits]`` (two's complement)."""
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & (2**bits - 1)) << (i * bits)
    return word


def unpack(word: int, bits: int, count: int, signed: bool) -> list[int]:
    """The ``count`` elements of ``bits`` bits of a stream beat (two's complement when ``signed``)."""
    mask, out = 2**bits - 1, []
    for i in range(count):
        v = (word >> (i * bits)) & mask
        out.append(v - (1 << bits) if signed and v >> (bits - 1) else v)
    return out


def stream(
    rtl: StreamLayer,
    beats: list[int],
    n_out: int,
    busy: int,
    *,
    stall: float = 0.0,
    seed: int = 1,
    simulator: str = "icarus",
    workdir: str | Path | None = None,
) -> tuple[list[int], int, float]:
    """Stream input ``beats`` (TDATA words) through ``rtl`` in ``simulator`` until ``n_out`` output
    beats came out (``busy``: the cycles that takes without back-pressure); returns the output
    words, the simulated cycles and the simulator's wall seconds."""
    reason = layer_simulator_missing(simulator)
    if reason:
        raise RuntimeError(reason)
    if not 0 <= stall < 1:
        raise ValueError(f"stall is a probability in [0, 1), got {stall}")
    build = _build(rtl, _testbench(rtl, len(beats), n_out, busy, stall, seed), simulator)
    with tempfile.TemporaryDirectory(prefix="native_sim_", dir=workdir) as tmp:
        d = Path(tmp)
        (d / "in.hex").write_text("".join(f"{b:x}\n" for b in beats))
        t0 = time.perf_counter()
        run = subprocess.run(_RUN[simulator](build), cwd=d, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if run.returncode:
            raise RuntimeError(f"{simulator} simulation failed on {rtl.top}:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
        lines = (d / "out.hex").read_text().split("\n")
    texts, cycles = lines[:-2], int(lines[-2].split()[1])
    if len(texts) != n_out:
        raise RuntimeError(f"{rtl.top}: {len(texts)} of {n_out} output beats came out (stalled or deadlocked)")
    for b, text in enumerate(texts):
        if any(ch in text.lower() for ch in "xz"):
            raise AssertionError(f"{rtl.top}: output beat {b} is undefined ({text})")
    return [int(t, 16) for t in texts], cycles, seconds


def stream_elementwise(
    rtl: StreamLayer, x: np.ndarray, pe: int, in_bits: int, out_bits: int, signed: bool, **kwargs
) -> RtlRun:
    """Stream ``x`` (``(vectors, channels)`` integers) through an elementwise layer in FINN's order
    (channels last, ``pe`` elements of ``in_bits`` per beat, ``channels / pe`` beats per vector) and
    read ``out_bits``-bit results (two's complement when ``signed``) back into ``(vectors, channels)``
    Python ints; expected cycles ``vectors * channels / pe`` (FINN's ``get_exp_cycles``). ``kwargs``:
    `stream`'s ``stall``, ``seed``, ``simulator``, ``workdir``."""
    beats = [pack(v[j : j + pe], in_bits) for v in x for j in range(0, x.shape[1], pe)]
    words, cycles, seconds = stream(rtl, beats, len(beats), len(beats), **kwargs)
    values = [v for w in words for v in unpack(w, out_bits, pe, signed)]
    return RtlRun(np.array(values, dtype=object).reshape(x.shape), cycles, len(beats), seconds)


def simulate_layer(
    rtl: NativeMvauRtl,
    inputs,
    *,
    stall: float = 0.0,
    seed: int = 1,
    simulator: str = "icarus",
    workdir: str | Path | None = None,
) -> RtlRun:
    """Stream ``inputs`` through the layer's RTL in ``simulator``: ``(batch, mw)`` stream elements for
    an MVAU, windows ``(batch, K, C)`` for a VVAU (the layer's ``input_stream``)."""
    s = rtl.spec
    batch, lanes = rtl.input_stream(inputs)
    beats = [pack(beat, s.input_bits) for beat in lanes]
    words, cycles, seconds = stream(rtl, beats, batch * s.output_beats, batch * rtl.expected_cycles,
                                    stall=stall, seed=seed, simulator=simulator, workdir=workdir)
    out = np.empty((batch, s.mh), dtype=object)
    for b, word in enumerate(words):
        out[b // s.output_beats, (b % s.output_beats) * s.pe : (b % s.output_beats + 1) * s.pe] = unpack(word, s.acc_bits, s.pe, True)
    return RtlRun(out, cycles, batch * rtl.expected_cycles, seconds)


def verify_layer(rtl: NativeMvauRtl, inputs, **kwargs) -> RtlRun:
    """`simulate_layer` and compare every output with the layer's exact ``reference``; raise on the
    first mismatch."""
    run = simulate_layer(rtl, inputs, **kwargs)
    assert_outputs_equal(rtl.top, run.outputs, rtl.reference(inputs),
                         lambda b, r: f"vector {b} output {r}", "reference")
    return run


def assert_outputs_equal(top: str, got: np.ndarray, want: np.ndarray, where, oracle: str) -> None:
    """``AssertionError`` naming the first output of ``top`` that differs (``where(*index)``), both
    values, and how many differ."""
    bad = np.argwhere(got != want)
    if bad.size:
        i = tuple(bad[0])
        raise AssertionError(f"{top}: {where(*i)}: RTL {got[i]}, {oracle} {want[i]} ({len(bad)} of {want.size} outputs differ)")


AUTO_VERILATOR_WORK = 100_000
"""``simulator="auto"`` picks Verilator above this many lane-cycles (cycles x PE x SIMD): Icarus ran
2k-90k lane-cycles per second here (fewer with more SIMD lanes and on a loaded machine), Verilator
~300k after a 20-90 s build (benchmarks/bench_native_rtl.py measures both)."""


def simulator_for(work: int) -> str:
    """``"verilator"`` for runs of more than `AUTO_VERILATOR_WORK` lane-cycles when it is installed,
    else ``"icarus"``."""
    if work > AUTO_VERILATOR_WORK and layer_simulator_missing("verilator") is None:
        return "verilator"
    return "icarus"


def choose_simulator(rtl: NativeMvauRtl, batch: int) -> str:
    """`simulator_for` a batch of ``batch`` vectors (MVAU) or pixels (VVAU) through this layer."""
    return simulator_for(batch * rtl.expected_cycles * rtl.spec.pe * rtl.spec.simd)


def execute_native_layer_rtl(
    spec: NativeMvauSpec, weight_codes, inputs, *, simulator: str = "auto", layer: type[NativeMvauRtl] = NativeMvauRtl
) -> tuple[np.ndarray, int]:
    """Outputs ``(batch, mh)`` (Python ints, units of ``delta_w * delta_a``) of a native layer by RTL
    simulation, and the simulated cycles (no back-pressure); for the verify chain's ``rtl`` stage.
    ``layer``: the generator (`NativeMvauRtl`, or `finn_transforms.native.vvau_rtl.NativeVvauRtl` with
    windows ``(batch, K, C)`` as inputs). The outputs are the simulator's, not the reference's:
    compare them with the layer's ``reference``."""
    rtl = layer(spec, weight_codes)
    if simulator == "auto":
        simulator = choose_simulator(rtl, np.atleast_2d(np.asarray(inputs)).shape[0])
    run = simulate_layer(rtl, inputs, simulator=simulator)
    return run.outputs, run.cycles
