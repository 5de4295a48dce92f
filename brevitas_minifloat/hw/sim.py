"""RTL simulation harness: drive a generated `MacUnit` with Icarus Verilog and compare bit for bit.

A plain testbench reads beats ``{in_first, w lanes, a lanes}`` from a ``$readmemh`` vector file,
feeds one per clock, and writes ``acc`` after every beat; `simulate` returns those integers and
`verify` compares them with `MacUnit.reference` (the Python model built on `MinifloatFormat`).

Stimulus builders: `exhaustive_beats` (every pair of finite codes, each beat its own dot product,
so the output is the product itself when ``simd == 1``), `random_dot_products` (full-length
accumulation runs of random codes) and `extreme_dot_products` (every beat at the largest positive
or negative product: the accumulator width is exactly tight for these).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from brevitas_minifloat.hw.operands import embedded_table, finite_codes
from brevitas_minifloat.hw.rtl import MacUnit

Beats = tuple[list[list[int]], list[list[int]], list[bool]]
"""(weight codes per beat, activation codes per beat, in_first per beat)."""


def simulator_missing() -> str | None:
    """``None`` if Icarus Verilog (``iverilog`` and ``vvp``) is on PATH, else the reason it is not usable."""
    missing = [tool for tool in ("iverilog", "vvp") if shutil.which(tool) is None]
    if missing:
        return f"Icarus Verilog not found on PATH ({', '.join(missing)} missing; Debian/Ubuntu: apt-get install iverilog)"
    return None


def _testbench(unit: MacUnit, n_beats: int, vector_file: str, out_file: str) -> str:
    wb, ab = unit.weight.bit_width, unit.act.bit_width
    return f"""`timescale 1ns/1ps
module tb;
    localparam N = {n_beats};
    localparam VB = 1 + {unit.simd * wb} + {unit.simd * ab};
    reg [VB-1:0] vec [0:N-1];
    reg clk = 1'b0, rst = 1'b1, in_valid = 1'b0, in_first = 1'b0;
    reg [{unit.simd * wb - 1}:0] w = 0;
    reg [{unit.simd * ab - 1}:0] a = 0;
    wire signed [{unit.acc_bits - 1}:0] acc;
    {unit.top} dut (.clk(clk), .rst(rst), .in_valid(in_valid), .in_first(in_first), .w(w), .a(a), .acc(acc));
    integer t, fd;
    initial begin
        $readmemh("{vector_file}", vec);
        fd = $fopen("{out_file}", "w");
        #1 clk = 1'b1;  // one reset edge
        #1 clk = 1'b0;
        rst = 1'b0;
        for (t = 0; t <= N; t = t + 1) begin
            if (t < N) begin
                {{in_first, w, a}} = vec[t];
                in_valid = 1'b1;
            end else
                in_valid = 1'b0;
            #1 clk = 1'b1;
            #1 clk = 1'b0;
            // after edge t, acc includes beat t - 1 (latency 2)
            if (t >= 1) $fwrite(fd, "%h\\n", acc);
        end
        $fclose(fd);
        $finish;
    end
endmodule
"""


def _pack(codes: list[int], bits: int) -> int:
    value = 0
    for lane, code in enumerate(codes):
        value |= code << (lane * bits)
    return value


def simulate(unit: MacUnit, w_codes, a_codes, first, *, workdir: str | Path | None = None) -> list[int]:
    """Run the unit's RTL in Icarus Verilog; return ``acc`` (signed int) after every beat."""
    reason = simulator_missing()
    if reason:
        raise RuntimeError(reason)
    n = len(first)
    if not (len(w_codes) == len(a_codes) == n) or n == 0:
        raise ValueError("w_codes, a_codes and first need one (non-empty) entry per beat")
    wb, ab, simd = unit.weight.bit_width, unit.act.bit_width, unit.simd
    with tempfile.TemporaryDirectory(prefix="mac_sim_", dir=workdir) as tmp:
        d = Path(tmp)
        lines = []
        for ws, as_, f in zip(w_codes, a_codes, first, strict=True):
            if len(ws) != simd or len(as_) != simd:
                raise ValueError(f"every beat needs {simd} weight and {simd} activation codes")
            word = (int(bool(f)) << (simd * (wb + ab))) | (_pack(ws, wb) << (simd * ab)) | _pack(as_, ab)
            lines.append(f"{word:x}")
        (d / "vectors.hex").write_text("\n".join(lines) + "\n")
        unit.write(d)
        (d / "tb.v").write_text(_testbench(unit, n, "vectors.hex", "out.txt"))
        compile_ = subprocess.run(
            ["iverilog", "-g2005", "-Wall", "-s", "tb", "-o", "sim.vvp", "tb.v", f"{unit.top}.v"],
            cwd=d, capture_output=True, text=True,
        )
        if compile_.returncode:
            raise RuntimeError(f"iverilog failed for {unit.top}:\n{compile_.stderr}")
        run = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=d, capture_output=True, text=True)
        if run.returncode:
            raise RuntimeError(f"vvp failed for {unit.top}:\n{run.stdout}\n{run.stderr}")
        raw = (d / "out.txt").read_text().split()
    if len(raw) != n:
        raise RuntimeError(f"simulation of {unit.top} wrote {len(raw)} outputs for {n} beats")
    out = []
    bits = unit.acc_bits
    for i, text in enumerate(raw):
        if any(ch in text.lower() for ch in "xz"):
            raise AssertionError(f"{unit.top}: acc is undefined ({text}) after beat {i}")
        v = int(text, 16)
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


@dataclass
class Verification:
    """What one `verify` call checked."""

    unit: str
    beats: int
    products: int
    dot_products: int


def verify(unit: MacUnit, beats: Beats, *, workdir: str | Path | None = None) -> Verification:
    """Simulate and compare every output with the reference model; raise on the first mismatch."""
    w_codes, a_codes, first = beats
    got = simulate(unit, w_codes, a_codes, first, workdir=workdir)
    want = unit.reference(w_codes, a_codes, first)
    for i, (g, e) in enumerate(zip(got, want, strict=True)):
        if g != e:
            raise AssertionError(
                f"{unit.top}: beat {i} (first={first[i]}, w={w_codes[i]}, a={a_codes[i]}): RTL acc {g}, model {e}"
            )
    return Verification(unit.top, len(first), len(first) * unit.simd, sum(map(bool, first)))


def exhaustive_beats(unit: MacUnit) -> Beats:
    """Every (finite weight code, finite activation code) pair once; each beat its own dot product.

    Pairs are packed ``simd`` per beat (padding with code 0, which is zero in every format)."""
    pairs = [(w, a) for w in finite_codes(unit.weight) for a in finite_codes(unit.act)]
    pairs += [(0, 0)] * (-len(pairs) % unit.simd)
    ws, as_, first = [], [], []
    for i in range(0, len(pairs), unit.simd):
        chunk = pairs[i : i + unit.simd]
        ws.append([p[0] for p in chunk])
        as_.append([p[1] for p in chunk])
        first.append(True)
    return ws, as_, first


def random_dot_products(unit: MacUnit, count: int, *, seed: int = 0) -> Beats:
    """``count`` full-length dot products (``unit.beats`` beats each) of uniformly random finite codes."""
    rng = random.Random(seed)
    wc, ac = finite_codes(unit.weight), finite_codes(unit.act)
    ws, as_, first = [], [], []
    for _ in range(count):
        for b in range(unit.beats):
            ws.append([rng.choice(wc) for _ in range(unit.simd)])
            as_.append([rng.choice(ac) for _ in range(unit.simd)])
            first.append(b == 0)
    return ws, as_, first


def extreme_dot_products(unit: MacUnit) -> Beats:
    """Full-length dot products whose every product is the largest, then the smallest possible:
    the accumulator reaches ``fan_in * p_max`` and ``fan_in * p_min``, the bounds its width is made for."""
    wt, at = embedded_table(unit.weight), embedded_table(unit.act)
    lo, hi = unit.product_range
    ws, as_, first = [], [], []
    for target in (hi, lo):
        w, a = next((w, a) for w in wt for a in at if wt[w] * at[a] == target)
        for b in range(unit.beats):
            ws.append([w] * unit.simd)
            as_.append([a] * unit.simd)
            first.append(b == 0)
    return ws, as_, first


def concat(*parts: Beats) -> Beats:
    """Join stimulus blocks (each block starts with ``in_first`` set, so results do not leak)."""
    ws, as_, first = [], [], []
    for w, a, f in parts:
        ws += w
        as_ += a
        first += f
    return ws, as_, first


def verify_unit(unit: MacUnit, *, random_runs: int = 20, seed: int = 0, workdir=None) -> Verification:
    """The standard check: exhaustive pairs + extreme runs + ``random_runs`` random dot products,
    in one simulation."""
    beats = concat(exhaustive_beats(unit), extreme_dot_products(unit), random_dot_products(unit, random_runs, seed=seed))
    return verify(unit, beats, workdir=workdir)


def lint_missing() -> str | None:
    if shutil.which("verilator") is None:
        return "Verilator not found on PATH (Debian/Ubuntu: apt-get install verilator)"
    return None


def lint(unit: MacUnit, *, workdir: str | Path | None = None) -> str:
    """``verilator --lint-only -Wall`` on the generated source (one file holds several modules, so
    DECLFILENAME is off); returns its messages ('' when clean)."""
    reason = lint_missing()
    if reason:
        raise RuntimeError(reason)
    with tempfile.TemporaryDirectory(prefix="mac_lint_", dir=workdir) as tmp:
        path = unit.write(tmp)
        run = subprocess.run(
            ["verilator", "--lint-only", "-Wall", "-Wno-DECLFILENAME", "--top-module", unit.top, str(path)],
            cwd=tmp, capture_output=True, text=True,
        )
    return (run.stdout + run.stderr).strip()
