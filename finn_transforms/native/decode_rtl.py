"""Verilog of one ``OrdinalLUT`` layer (ordinal -> ``value / delta``), and its simulation.

The layer is `finn_transforms.native.decode_layer.OrdinalLUT` on FINN's stream interface
(`finn_transforms.native.hdl`): a beat of ``PE`` ordinals (``UINT<ordinal bits>`` each) in, a beat
of ``PE`` embedded integers (the format's ``integer_datatype``, two's complement when signed) out,
``NumChannels / PE`` beats per vector in FINN's elementwise order (channels last).

- **table**: one ROM per PE, ``len(fmt.values())`` words initialised in the source (word ``o``
  holds ``value / delta`` of ordinal ``o``), in LUT logic (never block RAM: Yosys would otherwise put
  E5M2's 255 x 34 bits into a RAMB18 and E4M3's into LUTs; docs/design.md), read synchronously: the ROM's read
  register *is* the output register, so the layer adds no logic but a valid bit;
- **handshake**: a one-stage pipeline, ``in0_V_TREADY = !out0_V_TVALID || out0_V_TREADY``: a beat
  is accepted whenever the output register is empty or being emptied, so the layer streams one
  beat per cycle under any back-pressure and holds its output while ``out0_V_TREADY`` is low
  (``TREADY`` passes combinationally through one gate, which AXI-stream allows; FINN's FIFOs between
  layers register it).

Latency 1: a result is on ``out0_V`` the cycle after its beat was accepted, so a batch of ``n``
beats takes ``n + 1`` cycles from first input to last output (FINN's ``get_exp_cycles`` is ``n``).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
from qonnx.core.datatype import DataType

from brevitas_minifloat.formats import MinifloatFormat, as_format
from brevitas_minifloat.hw.rtl import format_tag
from finn_transforms.native.hdl import (
    ElementwiseRtl, generated_header, input_beat, output_beat, rom_module, stream_module, verilog_identifier,
)
from finn_transforms.native.sim import RtlRun, assert_outputs_equal, simulator_for, stream_elementwise
from finn_transforms.native.spec import ordinal_bits, ordinal_embedded

__all__ = ["LATENCY", "OrdinalLutRtl", "execute_ordinal_lut_rtl", "simulate_ordinal_lut", "verify_ordinal_lut"]

LATENCY = 1
"""Cycles from accepting a beat to its decoded beat on ``out0_V`` (the ROM read register)."""


class OrdinalLutRtl(ElementwiseRtl):
    """Verilog of one decode layer: ``OrdinalLutRtl(fmt, channels, pe).verilog`` (module docstring).

    ``fmt``: the minifloat format (or its name); ``channels``: ``NumChannels``, a multiple of ``pe``;
    ``top``: module name (default derived from the attributes)."""

    def __init__(self, fmt: MinifloatFormat | str, channels: int, pe: int = 1, *, top: str | None = None) -> None:
        self.fmt = as_format(fmt)
        self._set_folding(channels, pe)
        self.table = ordinal_embedded(self.fmt)
        self.output_datatype = DataType[self.fmt.integer_datatype]
        if top is None:
            top = f"ordinal_lut_{format_tag(self.fmt)}_c{self.channels}_pe{self.pe}"
        self.top = verilog_identifier(top)

    # ---- geometry
    @property
    def input_bits(self) -> int:
        return ordinal_bits(self.fmt)

    @property
    def output_bits(self) -> int:
        return self.output_datatype.bitwidth()

    @property
    def signed(self) -> bool:
        return self.output_datatype.signed()

    @property
    def expected_cycles(self) -> int:
        return self.beats

    def rom_words(self) -> list[int]:
        """Word ``o``: ``value / delta`` of ordinal ``o`` in ``output_bits`` (two's complement)."""
        return [k & (2**self.output_bits - 1) for k in self.table]

    # ---- Verilog
    @cached_property
    def verilog(self) -> str:
        return "\n\n".join([self._header(), self._rom(), self._top_module()]) + "\n"

    def _header(self) -> str:
        f = self.fmt
        return generated_header(
            "finn_transforms.native.decode_rtl",
            [
                f"OrdinalLUT {self.top}: {f.name} ordinal ({self.input_bits} bits) -> value / delta"
                f" ({self.output_datatype.name}), delta = {f.delta},",
                f"  NumChannels {self.channels}, PE {self.pe}: NumChannels / PE = {self.beats} cycles per vector;"
                f" latency {LATENCY}.",
            ],
        )

    def _rom(self) -> str:
        comment = f"{self.fmt.name}: word o = value / delta of ordinal o ({len(self.table)} finite values, ascending)."
        return rom_module(f"{self.top}_rom", self.rom_words(), self.output_bits, comment, logic=True)

    def _top_module(self) -> str:
        ib, ob, pe = self.input_bits, self.output_bits, self.pe
        iw, ow = pe * ib, pe * ob
        body = input_beat(self.input_width, iw) + [
            "reg full;  // out0_V holds a decoded beat",
            "assign in0_V_TREADY = !full || out0_V_TREADY;",
            "wire take = in0_V_TVALID && in0_V_TREADY;",
            "always @(posedge ap_clk) begin",
            "    if (rst) full <= 1'b0;",
            "    else if (in0_V_TREADY) full <= in0_V_TVALID;",
            "end",
            "",
            "// ---- one ROM per PE; its read register is the output register",
            f"wire [{ow - 1}:0] decoded;",
            "genvar p;",
            "generate",
            f"    for (p = 0; p < {pe}; p = p + 1) begin : lane",
            f"        {self.top}_rom u_rom (.clk(ap_clk), .en(take), .addr(in_beat[p*{ib} +: {ib}]), .q(decoded[p*{ob} +: {ob}]));",
            "    end",
            "endgenerate",
            "assign out0_V_TVALID = full;",
            output_beat(self.output_width, ow, "decoded"),
        ]
        return stream_module(
            self.top,
            self.input_width,
            f"PE x {ib}-bit {self.fmt.name} ordinals",
            self.output_width,
            f"PE x {ob}-bit {self.output_datatype.name} values / delta",
            body,
        )


# ---------------------------------------------------------------------------- simulation
def simulate_ordinal_lut(
    rtl: OrdinalLutRtl, ordinals, *, stall: float = 0.0, seed: int = 1, simulator: str = "icarus",
    workdir: str | Path | None = None,
) -> RtlRun:
    """Stream ``ordinals`` (``(vectors, channels)``) through the layer's RTL (`finn_transforms.native.sim.stream`);
    outputs ``(vectors, channels)`` Python ints."""
    x = np.atleast_2d(np.asarray(ordinals))
    if x.ndim != 2 or x.shape[1] != rtl.channels or x.shape[0] == 0:
        raise ValueError(f"ordinals must be a non-empty (vectors, channels = {rtl.channels}) array, got {x.shape}")
    if not np.array_equal(x, x.astype(np.int64)) or x.min() < 0 or x.max() >= len(rtl.table):
        raise ValueError(f"ordinals of {rtl.fmt.name} are integers in [0, {len(rtl.table) - 1}], got [{x.min()}, {x.max()}]")
    return stream_elementwise(rtl, x.astype(np.int64), rtl.pe, rtl.input_bits, rtl.output_bits, rtl.signed,
                              stall=stall, seed=seed, simulator=simulator, workdir=workdir)


def verify_ordinal_lut(rtl: OrdinalLutRtl, ordinals, **kwargs) -> RtlRun:
    """`simulate_ordinal_lut` and compare every output with the table (`ordinal_embedded`); raise on
    the first mismatch."""
    run = simulate_ordinal_lut(rtl, ordinals, **kwargs)
    x = np.atleast_2d(np.asarray(ordinals)).astype(np.int64)
    assert_outputs_equal(rtl.top, run.outputs, np.array(rtl.table, dtype=object)[x],
                         lambda v, c: f"vector {v} channel {c} (ordinal {x[v, c]})", "table")
    return run


def execute_ordinal_lut_rtl(
    fmt: MinifloatFormat | str, pe: int, ordinals, *, simulator: str = "auto"
) -> tuple[np.ndarray, int]:
    """Outputs (Python ints, shape of ``ordinals`` ``(vectors, channels)``) of a decode layer by RTL
    simulation and the simulated cycles (no back-pressure), for the verify chain's ``rtl`` stage
    (``"auto"``: `finn_transforms.native.sim.simulator_for` its lane-cycles). The outputs are the
    simulator's: compare them with the exact decode."""
    x = np.atleast_2d(np.asarray(ordinals))
    if simulator == "auto":
        simulator = simulator_for(x.size)  # vectors x beats x PE lanes
    run = simulate_ordinal_lut(OrdinalLutRtl(fmt, x.shape[1], pe), x, simulator=simulator)
    return run.outputs, run.cycles
