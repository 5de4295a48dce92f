"""Verilog-2001 for one native minifloat MVAU layer, generated from a `NativeMvauSpec` and its weights.

The layer is what FINN's MVAU with ``mem_mode="internal_embedded"`` is, on FINN's AXI-stream
interface (``ap_clk``, ``ap_rst_n``, ``in0_V_TDATA/TVALID/TREADY``, ``out0_V_TDATA/TVALID/TREADY``;
TDATA widths padded to whole bytes; element ``i`` of a beat at bits ``[i*W +: W]``):

- **schedule**: counters ``(nf, sf)`` walk FINN's fold order; fold ``nf = 0`` consumes the ``SF``
  input beats of a vector and keeps them in a small buffer (LUTRAM; banks of `REPLAY_BANK` beats
  for longer vectors), folds ``1 .. NF-1`` replay it, so a vector takes ``NF * SF`` cycles without
  back-pressure (FINN's ``get_exp_cycles`` per vector);
- **weights**: one ROM per PE, initialised in the source (word ``nf * SF + sf`` holds the ``SIMD``
  codes of row ``nf * PE + pe``), read synchronously so Yosys can map large ones to block RAM;
- **inputs**: a minifloat ordinal becomes the format's code (``ord2code``, below), an integer is
  its own code;
- **arithmetic**: one `brevitas_minifloat.hw.rtl.MacUnit` (shift architecture: significand
  multiply, exponent add and shift; multiplier-free for M0 formats) per PE, exact accumulator;
- **output**: a small queue sized so that fold results leave at full rate; the last beat of a fold
  is only issued when the queue is sure to have room, so back-pressure never loses a result.

Latency: a result leaves the queue 3 cycles after the last beat of its fold was accepted.

`finn_transforms.native.vvau_rtl.NativeVvauRtl` (the depthwise ``VVAU_minifloat``) is this layer
with its input hooks changed: ``PE * SIMD`` distinct inputs per beat (`lanes`, `_pe_codes`) and no
input replay (`replay`); header, ROMs, ordinal decode, counters, MAC units and output queue are shared.
"""

from __future__ import annotations

import math
import re
from functools import cached_property
from pathlib import Path

import numpy as np

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.hw.operands import code_bits, code_value, is_minifloat
from brevitas_minifloat.hw.rtl import ARCHS, MacUnit, accumulator_bits, format_tag, write_verilog
from finn_transforms.native.hdl import generated_header, rom_module, stream_bits, stream_module, ubits
from finn_transforms.native.spec import NativeMvauSpec, ordinal_bits, reference_mvau

PIPELINE = 3
"""Cycles from accepting a fold's last input beat to its result entering the output queue
(weight ROM read, then the MAC unit's two stages)."""

REPLAY_BANK = 256
"""Words per memory of the input replay buffer: Yosys 0.23 maps no xcup LUTRAM deeper (its
``lutrams_xcu.txt`` offers single-port depths above 256 that ``lutrams_xc5v_map.v`` cannot map:
"invalid OPTION_ABITS/WIDTH combination"), so a longer vector is kept in banks of this many beats
(a power of two: the bank of beat ``sf`` is its high bits)."""


def _array(depth: int, address: str) -> tuple[str, str]:
    """``(size, index)`` of a ``depth``-word Verilog memory read and written at ``address`` (one word:
    a plain register)."""
    return (f" [0:{depth - 1}]", f"[{address}]") if depth > 1 else ("", "")

# ---------------------------------------------------------------------------- ordinal -> code
def ordinal_codes(fmt: MinifloatFormat) -> tuple[int, ...]:
    """The code of every ordinal of ``fmt`` (zero: code 0), found by matching exact code values."""
    by_value = {}
    for code in range(2 ** code_bits(fmt)):
        value = code_value(fmt, code)
        if value is not None:
            by_value.setdefault(value, code)  # +0 (code 0) before -0
    return tuple(by_value[v] for v in sorted(by_value))


def ordinal_rule(fmt: MinifloatFormat) -> tuple[int, int]:
    """``(Z, GAP)`` of the closed form ``code = {ord < Z, d == 0 ? 0 : d + GAP}``, ``d = |ord - Z|``.

    ``Z`` is zero's ordinal; magnitudes ascend with the unsigned bit pattern (exponent | mantissa),
    and only the codes between zero and the smallest normal can be missing (``GAP = 2^M - 1`` with
    subnormals off). Checked against `ordinal_codes` for every ordinal."""
    codes = ordinal_codes(fmt)
    z = codes.index(0)
    gap = 0 if fmt.subnormals else 2**fmt.mantissa_bits - 1
    sign = 2 ** (fmt.bit_width - 1) if fmt.signed else 0
    for o, code in enumerate(codes):
        d = abs(o - z)
        if code != (sign if o < z else 0) + (d + gap if d else 0):
            raise ValueError(f"{fmt.name}: ordinal {o} is code {code}, outside the closed-form ordinal decode")
    return z, gap


def _ord2code_module(name: str, fmt: MinifloatFormat) -> str:
    """Verilog turning an ordinal of ``fmt`` into its code."""
    z, gap = ordinal_rule(fmt)
    ob, cb = ordinal_bits(fmt), code_bits(fmt)
    mb = cb - 1 if fmt.signed else cb  # magnitude bits of the code
    low = f"ord[{mb - 1}:0]" if ob > mb else (f"{{{mb - ob}'d0, ord}}" if ob < mb else "ord")
    lines = [
        f"// {fmt.name} ordinal (index into its {len(fmt.values())} finite values, ascending) -> code.",
        f"// Zero has ordinal {z}; magnitudes ascend with the code's unsigned bits, so the magnitude is",
        f"// d = |ord - {z}|" + (f", shifted past the {gap} subnormal codes (flush to zero) when d != 0." if gap else "."),
        f"module {name} (",
        f"    input  wire [{ob - 1}:0] ord,",
        f"    output wire [{cb - 1}:0] code",
        ");",
    ]
    if fmt.signed:
        lines += [
            f"    localparam [{ob - 1}:0] Z = {ob}'d{z};",
            f"    localparam [{mb - 1}:0] ZM = {mb}'d{z % 2**mb};  // Z on the magnitude's bits (sums wrap there)",
            f"    wire [{mb - 1}:0] ord_m = {low};",
            "    wire neg = ord < Z;",
            "    wire [{0}:0] d = neg ? ZM - ord_m : ord_m - ZM;".format(mb - 1),
        ]
        magnitude = "d"
    else:
        lines.append(f"    wire [{mb - 1}:0] d = {low};  // unsigned: zero is ordinal 0")
        magnitude = "d"
    if gap:
        lines.append(f"    wire [{mb - 1}:0] mag = (d == {mb}'d0) ? {mb}'d0 : d + {mb}'d{gap};")
        magnitude = "mag"
    lines.append(f"    assign code = {{neg, {magnitude}}};" if fmt.signed else f"    assign code = {magnitude};")
    lines.append("endmodule")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the layer
def output_queue_depth(input_beats: int) -> int:
    """Output queue entries for full rate: the results in flight plus one draining, at one fold
    result per ``SF = input_beats`` cycles."""
    return 1 + math.ceil((PIPELINE + 1) / input_beats)


def layer_mac(spec: NativeMvauSpec, arch: str = "shift", top: str | None = None) -> MacUnit:
    """The MAC unit of one PE: exact accumulator, or ``spec.acc_bits`` when that is narrower."""
    w, a = spec.weight_format, spec.input_format
    exact = accumulator_bits(w, a, spec.mw)
    narrow = spec.acc_bits if spec.acc_bits < exact else None
    return MacUnit(w, a, fan_in=spec.mw, simd=spec.simd, arch=arch, top=top, acc_width=narrow)


class NativeMvauRtl:
    """Verilog of one native layer: ``NativeMvauRtl(spec, weight_codes).verilog``.

    ``weight_codes``: ``(mh, mw)`` codes of ``spec.weight_format`` (checked, copied). ``top``: module
    name (default derived from the spec). ``arch``: the MAC datapath, ``"shift"`` (the native one)
    or ``"decode"`` (embedded integers, for comparison). ``blackbox_roms``: declare the weight ROMs
    as empty black-box modules (synthesis of the compute alone, independent of the weight values;
    `finn_transforms.native.cost` counts the weight memory separately, as FINN does).
    """

    #: The default top module name, formatted with the spec's fields and the formats' ``tags``.
    TOP = "native_mvau_{tags}_mw{mw}_mh{mh}_pe{pe}_simd{simd}"

    def __init__(
        self,
        spec: NativeMvauSpec,
        weight_codes,
        *,
        top: str | None = None,
        arch: str = "shift",
        blackbox_roms: bool = False,
    ) -> None:
        if not isinstance(spec, NativeMvauSpec):
            raise ValueError(f"spec must be a NativeMvauSpec, got {type(spec).__name__}")
        spec.weight_embedded(weight_codes)  # shape and finite codes, with clear errors
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        self.spec = spec
        self.weight_codes = np.array(weight_codes, dtype=np.int64)  # a copy: the caller's array stays theirs
        self.arch = arch
        self.blackbox_roms = blackbox_roms
        w, a = spec.weight_format, spec.input_format
        if top is None:
            top = self.TOP.format(tags=f"{format_tag(w)}_x_{format_tag(a)}", mw=spec.mw, mh=spec.mh, pe=spec.pe,
                                  simd=spec.simd)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", top):
            raise ValueError(f"top must be a Verilog identifier, got {top!r}")
        self.top = top
        self.mac = layer_mac(spec, arch, top=f"{top}_mac")

    # ---- geometry (the hooks `NativeVvauRtl` changes: lanes, replay, _pe_codes, _describe)
    @property
    def lanes(self) -> int:
        """Stream elements per input beat: ``SIMD``, broadcast to every PE."""
        return self.spec.simd

    @property
    def replay(self) -> bool:
        """Whether folds ``1 .. NF-1`` replay the buffered vector (an MVAU with ``NF > 1``)."""
        return self.nf > 1

    @property
    def banked_replay(self) -> bool:
        """Whether the replayed vector is longer than one memory may be (`REPLAY_BANK` beats)."""
        return self.replay and self.sf > REPLAY_BANK

    @property
    def sf(self) -> int:
        return self.spec.input_beats

    @property
    def nf(self) -> int:
        return self.spec.output_beats

    @property
    def input_width(self) -> int:
        """``in0_V_TDATA`` bits (`lanes` elements, padded to bytes)."""
        return stream_bits(self.lanes * self.spec.input_bits)

    @property
    def output_width(self) -> int:
        """``out0_V_TDATA`` bits (``PE`` accumulators of ``acc_bits``, padded to bytes)."""
        return stream_bits(self.spec.pe * self.spec.acc_bits)

    @property
    def queue_depth(self) -> int:
        return output_queue_depth(self.sf)

    @property
    def expected_cycles(self) -> int:
        """Cycles per input vector without back-pressure: ``NF * SF`` (FINN's MVAU count)."""
        return self.nf * self.sf

    def rom_words(self, pe: int) -> list[int]:
        """Weight ROM of one PE: word ``nf * SF + sf`` packs lane ``i`` at bits ``[i*WB +: WB]``."""
        s, wb = self.spec, self.spec.weight_bits
        words = []
        for nf in range(self.nf):
            row = self.weight_codes[nf * s.pe + pe]
            for sf in range(self.sf):
                lanes = row[sf * s.simd : (sf + 1) * s.simd]
                words.append(sum(int(c) << (i * wb) for i, c in enumerate(lanes)))
        return words

    # ---- the stream
    def input_stream(self, inputs) -> tuple[int, np.ndarray]:
        """``(batch, beats)``: input vectors ``(batch, mw)`` of stream elements as ``in0_V`` beats
        ``(batch * SF, lanes)`` (beat ``j`` of a vector holds its elements ``j*SIMD ..``)."""
        s = self.spec
        x = np.atleast_2d(np.asarray(inputs))
        if x.ndim != 2 or x.shape[1] != s.mw or x.shape[0] == 0:
            raise ValueError(f"inputs must be a non-empty (batch, mw = {s.mw}) array of stream elements, got {x.shape}")
        s.input_embedded(x)  # range check with a clear error
        return x.shape[0], x.reshape(-1, s.simd)

    def reference(self, inputs) -> np.ndarray:
        """The exact ``(batch, mh)`` outputs of these inputs (`reference_mvau`)."""
        return reference_mvau(self.spec, self.weight_codes, inputs)

    # ---- Verilog
    @cached_property
    def verilog(self) -> str:
        parts = [self._header(), self.mac.verilog.rstrip()]
        if is_minifloat(self.spec.input_format):
            parts.append(_ord2code_module(f"{self.top}_ord2code", self.spec.input_format))
        parts += [self._rom_module(pe) for pe in range(self.spec.pe)]
        parts.append(self._top_module())
        return "\n\n".join(parts) + "\n"

    def write(self, directory: str | Path) -> Path:
        """Write ``<top>.v`` into ``directory`` and return its path."""
        return write_verilog(self.top, self.verilog, directory)

    def _describe(self) -> tuple[str, str]:
        """The header's layer line and what one pass of ``NF * SF`` cycles computes."""
        s = self.spec
        return f"Native MVAU {self.top}: y = W x, W {s.mh} x {s.mw} {s.weight_format.name} codes,", "vector"

    def _header(self) -> str:
        s = self.spec
        inp = "ordinals" if is_minifloat(s.input_format) else "integers"
        layer, per = self._describe()
        return generated_header(
            "finn_transforms.native.rtl",
            [
                layer,
                f"  x {s.input_format.name} {inp} ({s.input_bits} bits), PE {s.pe}, SIMD {s.simd}:"
                f" NF {self.nf} x SF {self.sf} = {self.expected_cycles} cycles per {per}.",
                f"Output: exact dot products in units of delta_w * delta_a, {s.acc_bits}-bit two's complement.",
            ],
        )

    def _rom_module(self, pe: int) -> str:
        s = self.spec
        comment = f"Weights of PE {pe}: word nf*{self.sf} + sf = row nf*{s.pe} + {pe}, columns sf*{s.simd} .. +{s.simd - 1}."
        words = [0] * (self.sf * self.nf) if self.blackbox_roms else self.rom_words(pe)
        return rom_module(f"{self.top}_wrom{pe}", words, s.simd * s.weight_bits, comment, blackbox=self.blackbox_roms)

    def _schedule(self) -> tuple[list[str], list[str]]:
        """Declarations and update of the counters ``sf``/``nf``/``waddr`` (those not constant)."""
        sf, nf, words = self.sf, self.nf, self.sf * self.nf
        decl, reset, step = [], [], []

        def counter(name: str, n: int, what: str, first: bool = True) -> None:
            b = ubits(n - 1)
            decl.append(f"reg  [{b - 1}:0] {name};  // {what}")
            if first:
                decl.append(f"wire {name}_first = {name} == {b}'d0;")
            decl.append(f"wire {name}_last = {name} == {b}'d{n - 1};")
            reset.append(f"{name} <= {b}'d0;")
            step.append(f"{name} <= {name}_last ? {b}'d0 : {name} + {b}'d1;")

        if sf > 1:
            counter("sf", sf, "input beat within the vector")
        else:
            decl += ["wire sf_first = 1'b1;  // SF = 1: every beat is a whole vector", "wire sf_last = 1'b1;"]
        if self.replay or (nf > 1 and sf == 1):  # the fold count drives the replay or the ROM address
            counter("nf", nf, "output fold", first=self.replay)
            step[-1] = f"if (sf_last) {step[-1]}"
        if self.replay:
            decl.append("wire from_stream = nf_first;  // fold 0 reads in0")
        else:
            decl += ["wire from_stream = 1'b1;  // " + ("NF = 1: no replay" if nf == 1 else "no replay: every beat from in0")]
        if words > 1:
            b = ubits(words - 1)
            if sf == 1 or nf == 1:
                decl.append(f"wire [{b - 1}:0] waddr = {'nf' if sf == 1 else 'sf'};  // weight ROM word")
            else:
                decl.append(f"reg  [{b - 1}:0] waddr;  // weight ROM word nf * SF + sf")
                reset.append(f"waddr <= {b}'d0;")
                wrap = "sf_last && nf_last" if self.replay else f"waddr == {b}'d{words - 1}"
                step.append(f"waddr <= ({wrap}) ? {b}'d0 : waddr + {b}'d1;")
        if not reset:
            return decl, []
        return decl, [
            "always @(posedge ap_clk) begin",
            "    if (rst) begin",
            *[f"        {x}" for x in reset],
            "    end else if (issue) begin",
            *[f"        {x}" for x in step],
            "    end",
            "end",
        ]

    def _replay_buffer(self, iw: int) -> list[str]:
        """The buffered vector (written in fold 0, read at beat ``sf`` in folds 1 .. NF-1) and the
        activation beat stage 1 registers: ``beat`` (one memory, read asynchronously: LUTRAM), or
        for ``SF > REPLAY_BANK`` `_banked_replay`, which registers the beat itself (``a1``)."""
        if self.banked_replay:
            return self._banked_replay(iw)
        size, index = _array(self.sf, "sf")
        return [
            f"reg  [{iw - 1}:0] ibuf{size};  // the current vector, replayed for folds 1 .. NF-1",
            f"always @(posedge ap_clk) if (issue && from_stream) ibuf{index} <= in_beat;",
            f"wire [{iw - 1}:0] beat = from_stream ? in_beat : ibuf{index};",
        ]

    def _banked_replay(self, iw: int) -> list[str]:
        """``SF > REPLAY_BANK`` beats in banks of `REPLAY_BANK` (beat ``sf``: bank ``sf / REPLAY_BANK``,
        word ``sf % REPLAY_BANK``), each its own memory with its own stage-1 register ``q<k>``
        (fold 0: the stream beat it also writes), and ``a1`` the register of the beat's bank. A
        register per bank keeps every bank a single-port LUTRAM in Yosys (read and write at ``sf``,
        the output register merged into the read port, as for one memory); one register after a
        mux of the banks would be merged as the read address instead, a second port."""
        sf = self.sf
        b, low = ubits(sf - 1), REPLAY_BANK.bit_length() - 1
        hb, banks = b - low, math.ceil(sf / REPLAY_BANK)
        lines = [
            f"// the current vector, replayed for folds 1 .. NF-1, in banks of {REPLAY_BANK} beats"
            " (Yosys 0.23 maps no deeper LUTRAM)",
            f"wire [{hb - 1}:0] bank = sf[{b - 1}:{low}];",
            f"reg  [{hb - 1}:0] bank1;  // the bank of the beat in stage 1",
            "always @(posedge ap_clk) if (issue) bank1 <= bank;",
        ]
        reads = []
        for k in range(banks):
            depth = min(REPLAY_BANK, sf - k * REPLAY_BANK)
            size, index = _array(depth, f"sf[{ubits(depth - 1) - 1}:0]")
            first = k * REPLAY_BANK
            lines += [
                f"reg  [{iw - 1}:0] ibuf{k}{size};  // beats {first} .. {first + depth - 1}",
                f"reg  [{iw - 1}:0] q{k};  // bank {k}'s beat in stage 1",
                f"wire keep{k} = from_stream && bank == {hb}'d{k};",
                "always @(posedge ap_clk) if (issue) begin",
                f"    if (keep{k}) ibuf{k}{index} <= in_beat;",
                f"    q{k} <= keep{k} ? in_beat : ibuf{k}{index};",
                "end",
            ]
            label = "default" if k == banks - 1 else f"{hb}'d{k}"
            reads.append(f"        {label}: a1 = q{k};")
        return lines + [
            f"reg  [{iw - 1}:0] a1;  // stage 1: the activation beat, its bank's register",
            "always @* begin",
            "    case (bank1)",
            *reads,
            "    endcase",
            "end",
        ]

    def _pe_codes(self, pe: int, code_bits: int) -> str:
        """Verilog expression of PE ``pe``'s ``SIMD`` input codes: every PE sees the whole beat."""
        return "a_codes"

    def _lanes_name(self) -> str:
        return "SIMD"

    def _top_module(self) -> str:
        s, mac = self.spec, self.mac
        iw, ow = self.lanes * s.input_bits, s.pe * s.acc_bits
        iwa, owa = self.input_width, self.output_width
        cb = code_bits(s.input_format)
        depth = self.queue_depth
        qb, pb = ubits(depth - 1), ubits(depth)
        body = [f"localparam DEPTH = {depth};  // output queue entries"]
        # ---- input side
        in_beat = "in0_V_TDATA" if iwa == iw else f"in0_V_TDATA[{iw - 1}:0]"
        body += [f"wire [{iw - 1}:0] in_beat = {in_beat};"]
        if iwa > iw:
            body.append(f"wire [{iwa - iw - 1}:0] unused_in_pad = in0_V_TDATA[{iwa - 1}:{iw}];  // byte padding")
        decl, update = self._schedule()
        body += decl + [
            f"reg  [{pb - 1}:0] pending;  // fold results issued and not yet sent",
            f"wire room = !sf_last || pending < {pb}'d{depth};  // a fold's last beat needs a queue entry",
            "wire issue = room && (!from_stream || in0_V_TVALID);",
            "assign in0_V_TREADY = room && from_stream;",
        ]
        body += update
        if self.replay:
            body += self._replay_buffer(iw)
        else:
            body.append(f"wire [{iw - 1}:0] beat = in_beat;")
        # ---- stage 1: activation register (a banked replay buffer has its own), ROM read
        banked = self.banked_replay
        body += [
            "",
            "// ---- stage 1: registered activation beat; the ROMs read the same word",
            "reg v1, f1;",
            *([] if banked else [f"reg [{iw - 1}:0] a1;"]),
            "reg [2:0] done;  // done[k]: a fold's last beat is k + 1 cycles past issue",
            "always @(posedge ap_clk) begin",
            "    v1 <= !rst && issue;",
            "    done <= rst ? 3'b000 : {done[1:0], issue && sf_last};",
            "    if (issue) begin",
            *([] if banked else ["        a1 <= beat;"]),
            "        f1 <= sf_first;",
            "    end",
            "end",
        ]
        if is_minifloat(s.input_format):
            body += [
                f"wire [{self.lanes * cb - 1}:0] a_codes;",
                "genvar l;",
                "generate",
                f"    for (l = 0; l < {self.lanes}; l = l + 1) begin : lane",
                f"        {self.top}_ord2code u_ord2code (.ord(a1[l*{s.input_bits} +: {s.input_bits}]),"
                f" .code(a_codes[l*{cb} +: {cb}]));",
                "    end",
                "endgenerate",
            ]
        else:
            body.append(f"wire [{self.lanes * cb - 1}:0] a_codes = a1;  // {s.input_format.name}: the integer is the code")
        # ---- PEs
        body += ["", "// ---- stage 2-3: one MAC unit per PE"]
        wbits = s.simd * s.weight_bits
        addr = ", .addr(waddr)" if self.sf * self.nf > 1 else ""
        results = []
        for pe in range(s.pe):
            codes = self._pe_codes(pe, cb)
            if codes != "a_codes":
                body.append(f"wire [{s.simd * cb - 1}:0] pe{pe}_codes = {codes};  // lanes s * PE + {pe}")
                codes = f"pe{pe}_codes"
            body += [
                f"wire [{wbits - 1}:0] w{pe};",
                f"wire signed [{mac.acc_bits - 1}:0] acc{pe};",
                f"{self.top}_wrom{pe} u_wrom{pe} (.clk(ap_clk), .en(issue){addr}, .q(w{pe}));",
                f"{mac.top} u_mac{pe} (.clk(ap_clk), .rst(rst), .in_valid(v1), .in_first(f1), .w(w{pe}),"
                f" .a({codes}), .acc(acc{pe}));",
            ]
            ext = s.acc_bits - mac.acc_bits
            results.append(f"{{{{{ext}{{acc{pe}[{mac.acc_bits - 1}]}}}}, acc{pe}}}" if ext else f"acc{pe}")
        # ---- output queue
        pad = f"{{{owa - ow}'d0, queue[rd]}}" if owa > ow else "queue[rd]"
        body += [
            "",
            "// ---- output queue: element pe of a beat at bits [pe*ACC +: ACC]",
            f"wire [{ow - 1}:0] result = {{{', '.join(reversed(results))}}};",
            "wire push = done[2];  // the fold's accumulators are final this cycle",
            "wire pop = out0_V_TVALID && out0_V_TREADY;",
            f"reg [{ow - 1}:0] queue [0:DEPTH-1];",
            f"reg [{qb - 1}:0] wr, rd;",
            f"reg [{pb - 1}:0] queued;",
            "always @(posedge ap_clk) begin",
            "    if (push) queue[wr] <= result;",
            "    if (rst) begin",
            f"        wr <= {qb}'d0;",
            f"        rd <= {qb}'d0;",
            f"        queued <= {pb}'d0;",
            f"        pending <= {pb}'d0;",
            "    end else begin",
            f"        if (push) wr <= (wr == {qb}'d{depth - 1}) ? {qb}'d0 : wr + {qb}'d1;",
            f"        if (pop) rd <= (rd == {qb}'d{depth - 1}) ? {qb}'d0 : rd + {qb}'d1;",
            f"        queued <= queued + {{{pb - 1}'d0, push}} - {{{pb - 1}'d0, pop}};",
            f"        pending <= pending + {{{pb - 1}'d0, issue && sf_last}} - {{{pb - 1}'d0, pop}};",
            "    end",
            "end",
            f"assign out0_V_TVALID = queued != {pb}'d0;",
            f"assign out0_V_TDATA = {pad};",
        ]
        inp = "ordinals" if is_minifloat(s.input_format) else "integers"
        return stream_module(
            self.top,
            iwa,
            f"{self._lanes_name()} x {s.input_bits}-bit {s.input_format.name} {inp}",
            owa,
            f"PE x {s.acc_bits}-bit dot products",
            body,
        )
