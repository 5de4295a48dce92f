"""Verilog of one exact wide thresholding layer (``WideThresholding``), and its simulation.

The layer computes FINN's ``Thresholding``, ``y = act_val + #{j : x >= T[c][j]}``, for integer
inputs and thresholds of any width (Python ints throughout: E5M2 native accumulators need ~72-bit
thresholds, which no float64 holds), on FINN's stream interface (`finn_transforms.native.hdl`): a
beat of ``PE`` inputs in, a beat of ``PE`` outputs (``outputDataType``, two's complement when signed)
out, ``NumChannels / PE`` beats per vector in FINN's elementwise order (channels last; lane ``p`` of
beat ``f`` is channel ``f * PE + p``).

- **search**: FINN's ``Thresholding_rtl`` architecture, a pipelined binary search over the sorted
  thresholds padded to ``2^M - 1`` (``M = ceil(log2(N + 1))`` stages) with ``in_max + 1``, which no
  input reaches, so the count is unchanged. Stage ``s`` decides bit ``M-1-s`` of the count: with the
  ``s`` bits decided so far as prefix ``i`` it compares ``x`` with padded threshold
  ``i * 2^(M-s) + 2^(M-s-1) - 1``. Its ROM (one per stage and PE lane, initialised in the source,
  read synchronously) holds that threshold for each (channel fold, prefix): ``CF * 2^s`` words,
  FINN's ``get_pe_mem_geometries`` per stage (``CF = NumChannels / PE``; ``CF = 1`` for thresholds
  shared by all channels, as FINN's RTL does).
- **width**: thresholds are clipped to ``[in_min, in_max + 1]`` (exact: one below every input counts
  for every input like ``in_min``, one above none like ``in_max + 1``) and stored and compared in
  ``input_bits + 1`` bits with the input's signedness, whatever their original magnitude (after
  FINN's ``RoundAndClipThresholds`` that is the ``weightDataType`` width).
- **handshake**: a valid-bit pipeline that advances as a whole whenever its output register is empty
  or being emptied (``advance = !out0_V_TVALID || out0_V_TREADY = in0_V_TREADY``): one beat per
  cycle under any back-pressure, bubbles leave whenever the output is free, and a stalled output
  holds every stage (``TREADY`` passes combinationally through one gate, as in the ``OrdinalLUT``;
  FINN's FIFOs between layers register it).

Latency ``M + 1`` (`WideThresholdingRtl.latency`): ``M`` ROM stages and the output register (count
plus ``act_val``); ``n`` beats take ``n + M + 1`` cycles from first input to last output (FINN's
``get_exp_cycles`` is ``n``).
"""

from __future__ import annotations

from bisect import bisect_right
from functools import cached_property
from pathlib import Path

import numpy as np
from qonnx.core.datatype import BaseDataType, DataType

from finn_transforms.native.hdl import (
    ElementwiseRtl, generated_header, input_beat, output_beat, rom_module, stream_module, ubits, verilog_identifier,
)
from finn_transforms.native.sim import RtlRun, assert_outputs_equal, simulator_for, stream_elementwise

__all__ = [
    "WideThresholdingRtl", "execute_wide_thresholding_rtl", "reference_thresholding", "simulate_wide_thresholding",
    "verify_wide_thresholding",
]


def _integer_datatype(dt: DataType | str, what: str) -> DataType:
    """``dt`` (or its name) as a qonnx integer ``DataType`` with a two's complement / unsigned code."""
    try:
        dt = DataType[dt] if isinstance(dt, str) else dt
    except KeyError:
        raise ValueError(f"{what} must be a qonnx integer DataType (e.g. INT8, UINT4), got {dt!r}") from None
    if not isinstance(dt, BaseDataType) or not dt.is_integer() or dt.name == "BIPOLAR":
        raise ValueError(f"{what} must be a qonnx integer DataType (e.g. INT8, UINT4; not BIPOLAR), got {dt!r}")
    return dt


def _int(v, what: str) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{what} must be an integer (Python int or numpy integer), got {v!r} ({type(v).__name__})")
    return int(v)


def _threshold_rows(thresholds, channels: int) -> list[list[int]]:
    """``thresholds`` as rows of Python ints, checked: 2-D, ``rows`` 1 or ``channels``, N >= 1, each row sorted."""
    t = np.asarray(thresholds, dtype=object)
    if t.ndim != 2 or t.shape[1] == 0 or t.shape[0] not in (1, channels):
        raise ValueError(f"thresholds must be a (rows, N >= 1) array with rows 1 or channels ({channels}), got shape {t.shape}")
    rows = [[_int(v, f"threshold [{r}][{j}]") for j, v in enumerate(row)] for r, row in enumerate(t)]
    for r, row in enumerate(rows):
        bad = next((j for j in range(1, len(row)) if row[j] < row[j - 1]), None)
        if bad is not None:
            raise ValueError(f"thresholds of row {r} must be sorted ascending: T[{bad - 1}] = {row[bad - 1]} > T[{bad}] = {row[bad]}")
    return rows


def reference_thresholding(thresholds, x, act_val: int) -> np.ndarray:
    """``act_val + #{j : x[v, c] >= T[c][j]}`` in Python ints (``T``: one row shared or one per channel)."""
    x = np.atleast_2d(np.asarray(x, dtype=object))
    rows = _threshold_rows(thresholds, x.shape[1])
    out = np.empty(x.shape, dtype=object)
    for (v, c), xi in np.ndenumerate(x):
        out[v, c] = act_val + bisect_right(rows[c % len(rows)], int(xi))
    return out


class WideThresholdingRtl(ElementwiseRtl):
    """Verilog of one wide thresholding layer: ``WideThresholdingRtl(T, channels, pe, idt, odt, act_val).verilog``
    (module docstring).

    ``thresholds``: ``(rows, N)`` Python ints, rows ascending, ``rows`` 1 (shared) or ``channels``;
    ``input_dt`` / ``output_dt``: qonnx integer ``DataType`` s or names (``output_dt`` must hold
    ``act_val .. act_val + N``); ``top``: module name (default derived from the attributes)."""

    def __init__(
        self, thresholds, channels: int, pe: int, input_dt: DataType | str, output_dt: DataType | str, act_val: int = 0,
        *, top: str | None = None,
    ) -> None:
        self._set_folding(channels, pe)
        self.thresholds = _threshold_rows(thresholds, self.channels)
        self.input_dt = _integer_datatype(input_dt, "input_dt")
        self.output_dt = _integer_datatype(output_dt, "output_dt")
        self.act_val = _int(act_val, "act_val")
        n = self.n_thresholds
        lo, hi = self.act_val, self.act_val + n
        if lo < self.output_dt.min() or hi > self.output_dt.max():
            raise ValueError(
                f"output_dt {self.output_dt.name} must hold act_val .. act_val + N = {lo} .. {hi}"
                f" (e.g. {'INT' if lo < 0 else 'UINT'}{ubits(max(-lo - 1, hi)) + (lo < 0)})"
            )
        if top is None:
            top = f"wide_thresholding_{self.input_dt.name.lower()}_n{n}_c{self.channels}_pe{self.pe}"
        self.top = verilog_identifier(top)

    # ---- geometry
    @property
    def n_thresholds(self) -> int:
        """``N``: thresholds per channel (FINN's ``numSteps``)."""
        return len(self.thresholds[0])

    @property
    def stages(self) -> int:
        """``M = ceil(log2(N + 1))``: binary search stages, the count's bits."""
        return ubits(self.n_thresholds)

    @property
    def latency(self) -> int:
        """Cycles from accepting a beat to its result on ``out0_V``: ``M`` ROM stages + the output register."""
        return self.stages + 1

    @property
    def input_bits(self) -> int:
        return self.input_dt.bitwidth()

    @property
    def output_bits(self) -> int:
        return self.output_dt.bitwidth()

    @property
    def threshold_bits(self) -> int:
        """Stored and compared threshold width: ``input_bits + 1`` (holds ``in_min .. in_max + 1``)."""
        return self.input_bits + 1

    @property
    def rom_folds(self) -> int:
        """Channel folds a ROM distinguishes: ``NumChannels / PE``, or 1 for shared thresholds."""
        return self.beats if len(self.thresholds) > 1 else 1

    def mem_geometries(self) -> list[tuple[int, int]]:
        """``(width, depth)`` of each stage's ROM per PE lane: ``(threshold_bits, folds * 2^s)``, the
        layout of FINN's ``Thresholding_rtl.get_pe_mem_geometries``."""
        return [(self.threshold_bits, self.rom_folds * 2**s) for s in range(self.stages)]

    def padded(self) -> list[list[int]]:
        """Each row clipped to ``[in_min, in_max + 1]`` and padded with ``in_max + 1`` to ``2^M - 1`` thresholds."""
        lo, never = self.input_dt.min(), self.input_dt.max() + 1
        pad = [never] * (2**self.stages - 1 - self.n_thresholds)
        return [[min(max(t, lo), never) for t in row] + pad for row in self.thresholds]

    def rom_words(self, stage: int, lane: int) -> list[int]:
        """Stage ``stage``'s ROM of PE ``lane``: word ``f * 2^s + i`` is the padded threshold
        ``i * 2^(M-s) + 2^(M-s-1) - 1`` of channel ``f * PE + lane`` (two's complement)."""
        m, mask, rows = self.stages, 2**self.threshold_bits - 1, self.padded()
        step, mid = 2 ** (m - stage), 2 ** (m - stage - 1) - 1
        return [
            rows[(f * self.pe + lane) % len(rows)][i * step + mid] & mask
            for f in range(self.rom_folds) for i in range(2**stage)
        ]

    def reference(self, x) -> np.ndarray:
        """The exact outputs of ``x`` (``(vectors, channels)``): `reference_thresholding`."""
        return reference_thresholding(self.thresholds, x, self.act_val)

    # ---- Verilog
    @cached_property
    def verilog(self) -> str:
        return "\n\n".join([self._header(), *self._roms(), self._top_module()]) + "\n"

    def _rom_name(self, stage: int, lane: int) -> str:
        return f"{self.top}_s{stage}" + (f"_p{lane}" if len(self.thresholds) > 1 else "")

    def _header(self) -> str:
        n, m = self.n_thresholds, self.stages
        shared = "one row shared by all channels" if len(self.thresholds) == 1 else "one row per channel"
        return generated_header(
            "finn_transforms.native.threshold_rtl",
            [
                f"WideThresholding {self.top}: {self.input_dt.name} -> {self.output_dt.name},"
                f" y = {self.act_val} + #{{j : x >= T[c][j]}},",
                f"  N = {n} thresholds ({shared}), clipped to [in_min, in_max + 1] and stored in"
                f" {self.threshold_bits} bits, padded to {2**m - 1} with in_max + 1;",
                f"  binary search in {m} stages, stage s: ROM of {self.rom_folds} x 2^s words per PE;",
                f"  NumChannels {self.channels}, PE {self.pe}: NumChannels / PE = {self.beats} cycles per vector;"
                f" latency {self.latency}.",
            ],
        )

    def _roms(self) -> list[str]:
        lanes = range(self.pe) if len(self.thresholds) > 1 else range(1)
        return [
            rom_module(
                self._rom_name(s, p), self.rom_words(s, p), self.threshold_bits,
                f"stage {s}, lane {p}: word f * 2^{s} + i = padded threshold i * {2 ** (self.stages - s)}"
                f" + {2 ** (self.stages - s - 1) - 1} of channel f * {self.pe} + {p}." if len(lanes) > 1 else
                f"stage {s}, every lane: word i = padded threshold i * {2 ** (self.stages - s)}"
                f" + {2 ** (self.stages - s - 1) - 1}.",
            )
            for s in range(self.stages) for p in lanes
        ]

    def _top_module(self) -> str:
        b, w, ob, pe, m = self.input_bits, self.threshold_bits, self.output_bits, self.pe, self.stages
        fb = ubits(self.rom_folds - 1) if self.rom_folds > 1 else 0
        body = input_beat(self.input_width, pe * b) + [
            f"reg [{m}:0] valid;  // valid[s]: stage s holds a beat; valid[{m}]: out0_V does",
            f"wire advance = !valid[{m}] || out0_V_TREADY;  // the whole pipeline moves on",
            "assign in0_V_TREADY = advance;",
            "always @(posedge ap_clk) begin",
            f"    if (rst) valid <= {m + 1}'d0;",
            f"    else if (advance) valid <= {{valid[{m - 1}:0], in0_V_TVALID}};",
            "end",
        ]
        if fb:
            body += [
                f"reg [{fb - 1}:0] fold;  // channel fold of the next input beat",
                "always @(posedge ap_clk) begin",
                f"    if (rst) fold <= {fb}'d0;",
                f"    else if (in0_V_TVALID && advance) fold <= fold == {fb}'d{self.rom_folds - 1} ? {fb}'d0 : fold + {fb}'d1;",
                "end",
            ]
        for s in range(m):
            body += [""] + self._stage(s, fb)
        body += [
            "",
            "// ---- output register: count + act_val",
            f"wire [{pe * ob - 1}:0] result;",
            f"reg [{pe * ob - 1}:0] y;",
            "always @(posedge ap_clk) if (advance) y <= result;",
            f"assign out0_V_TVALID = valid[{m}];",
            output_beat(self.output_width, pe * ob, "y"),
            "",
            "// ---- per lane: the comparisons (threshold <= x), the next prefix, the result",
            "genvar p;",
            "generate",
            f"    for (p = 0; p < {pe}; p = p + 1) begin : lane",
        ]
        for s in range(m):
            prefix = f"{{pfx{s}[p*{s} +: {s}], c{s}[p]}}" if s else f"c{s}[p]"
            body += [
                f"        assign c{s}[p] = {self._compare(s)};",
                f"        assign n{s}[p*{s + 1} +: {s + 1}] = {prefix};",
            ]
        count = f"n{m - 1}[p*{m} +: {m}]"
        if ob > m:
            count = f"{{{ob - m}'d0, {count}}}"
        body += [
            f"        assign result[p*{ob} +: {ob}] = {count} + {ob}'d{self.act_val % 2**ob};",
            "    end",
            "endgenerate",
        ]
        sign = "signed" if self.input_dt.signed() else "unsigned"
        return stream_module(
            self.top, self.input_width, f"PE x {b}-bit {self.input_dt.name} inputs", self.output_width,
            f"PE x {ob}-bit {self.output_dt.name} outputs", [f"// comparisons: {w}-bit {sign}"] + body,
        )

    def _compare(self, s: int) -> str:
        """Lane ``p``'s comparison at stage ``s``: threshold ``<=`` input, both in ``threshold_bits``."""
        b, w = self.input_bits, self.threshold_bits
        x, t = f"x{s}[p*{b} +: {b}]", f"t{s}[p*{w} +: {w}]"
        if self.input_dt.signed():
            return f"$signed({t}) <= $signed({{x{s}[p*{b} + {b - 1}], {x}}})"
        return f"{t} <= {{1'b0, {x}}}"

    def _stage(self, s: int, fb: int) -> list[str]:
        """Stage ``s``'s registers (input ``x``, fold ``f`` while a later ROM needs it, prefix) and
        ROMs, loaded together when the pipeline advances; ``c<s>`` / ``n<s>`` are its comparisons and
        next prefix (the lanes' generate block)."""
        b, w, pe, m = self.input_bits, self.threshold_bits, self.pe, self.stages
        src = "in_beat" if s == 0 else f"x{s - 1}"
        lines = [f"// ---- stage {s}: bit {m - 1 - s} of the count", f"reg [{pe * b - 1}:0] x{s};"]
        load = [f"    x{s} <= {src};"]
        if fb and s < m - 1:
            lines.append(f"reg [{fb - 1}:0] f{s};")
            load.append(f"    f{s} <= {'fold' if s == 0 else f'f{s - 1}'};")
        if s:
            lines.append(f"reg [{pe * s - 1}:0] pfx{s};  // bits decided by stages 0 .. {s - 1}, per lane")
            load.append(f"    pfx{s} <= n{s - 1};")
        lines += [
            f"wire [{pe * w - 1}:0] t{s};  // the thresholds compared with x{s} (ROM read registers)",
            f"wire [{pe - 1}:0] c{s};",
            f"wire [{pe * (s + 1) - 1}:0] n{s};",
            "always @(posedge ap_clk) if (advance) begin",
            *load,
            "end",
        ]
        fold = ("fold" if s == 0 else f"f{s - 1}") if fb else ""
        for p in range(pe):
            parts = [fold] + ([f"n{s - 1}[{p * s + s - 1}:{p * s}]"] if s else [])
            addr = ", ".join(x for x in parts if x)
            port = f", .addr({{{addr}}})" if addr else ""
            lines.append(f"{self._rom_name(s, p)} u_s{s}_p{p} (.clk(ap_clk), .en(advance){port}, .q(t{s}[{p * w + w - 1}:{p * w}]));")
        return lines


# ---------------------------------------------------------------------------- simulation
def _inputs(rtl: WideThresholdingRtl, x) -> np.ndarray:
    """``x`` as a ``(vectors, channels)`` object array of Python ints in the input type's range."""
    a = np.atleast_2d(np.asarray(x, dtype=object))
    if a.ndim != 2 or a.shape[1] != rtl.channels or a.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (vectors, channels = {rtl.channels}) array, got shape {a.shape}")
    lo, hi = rtl.input_dt.min(), rtl.input_dt.max()
    for (v, c), xi in np.ndenumerate(a):
        if not lo <= _int(xi, f"x[{v}, {c}]") <= hi:
            raise ValueError(f"x[{v}, {c}] = {xi} is outside {rtl.input_dt.name} [{lo}, {hi}]")
    return np.vectorize(int, otypes=[object])(a)


def simulate_wide_thresholding(
    rtl: WideThresholdingRtl, x, *, stall: float = 0.0, seed: int = 1, simulator: str = "icarus",
    workdir: str | Path | None = None,
) -> RtlRun:
    """Stream ``x`` (``(vectors, channels)`` Python ints) through the layer's RTL
    (`finn_transforms.native.sim.stream_elementwise`); outputs ``(vectors, channels)`` Python ints."""
    return stream_elementwise(rtl, _inputs(rtl, x), rtl.pe, rtl.input_bits, rtl.output_bits, rtl.output_dt.signed(),
                              stall=stall, seed=seed, simulator=simulator, workdir=workdir)


def verify_wide_thresholding(rtl: WideThresholdingRtl, x, **kwargs) -> RtlRun:
    """`simulate_wide_thresholding` and compare every output with the Python-int count
    (`reference_thresholding`); raise on the first mismatch."""
    run = simulate_wide_thresholding(rtl, x, **kwargs)
    a = _inputs(rtl, x)
    assert_outputs_equal(rtl.top, run.outputs, rtl.reference(a), lambda v, c: f"vector {v} channel {c} (x = {a[v, c]})",
                         "count")
    return run


def execute_wide_thresholding_rtl(
    thresholds, pe: int, x, input_dt: DataType | str, output_dt: DataType | str, act_val: int, *,
    simulator: str = "auto",
) -> tuple[np.ndarray, int]:
    """Outputs (Python ints, ``(vectors, channels)`` of ``x``) of a wide thresholding layer by RTL
    simulation and the simulated cycles (no back-pressure), for the verify chain's ``rtl`` stage
    (``"auto"``: `finn_transforms.native.sim.simulator_for` its lane-cycles). The outputs are the
    simulator's: compare them with the exact thresholding."""
    a = np.atleast_2d(np.asarray(x, dtype=object))
    if simulator == "auto":
        simulator = simulator_for(a.size)  # vectors x beats x PE lanes
    rtl = WideThresholdingRtl(thresholds, a.shape[-1], pe, input_dt, output_dt, act_val)
    run = simulate_wide_thresholding(rtl, a, simulator=simulator)
    return run.outputs, run.cycles
