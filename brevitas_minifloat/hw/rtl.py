"""Verilog generator for the multiply-accumulate a dataflow MVAU needs, per (weight, activation) format pair.

One `MacUnit` is one MVAU processing element: ``SIMD`` lanes multiply a weight code by an
activation code each, an adder sums the lanes, an accumulator sums successive beats of one dot
product of length ``fan_in`` (``fan_in / SIMD`` beats). Inputs are *codes* (bit vectors, layout
sign | exponent | mantissa for minifloats, two's complement or unsigned binary for integers); the
output is the exact dot product as an integer in units of ``delta_w * delta_a``
(``value = acc * delta_w * delta_a``, docs/design.md, "Semantics").

Two architectures, both bit-exact:

``arch="decode"``
    Each minifloat code is first turned into its embedded integer ``k = value / delta`` (sign,
    implicit leading one, shift left by ``e - 1``), then an ordinary integer multiplier
    ``k_w * k_a`` feeds the adder and the accumulator. This is exactly what FINN builds from our
    lowering (integer MVAU on the ``INTn`` embedding, docs/design.md, "Semantics") plus the decoders.
``arch="shift"``
    The multiplier only sees the significands; the exponent shifts are added and applied to the
    product. This is the usual floating-point datapath with an exact fixed-point (Kulisch-style)
    accumulator. Minifloat x minifloat lanes multiply the unsigned magnitudes (``M + 1`` bits, the
    implicit one included) and negate the product once when the signs differ (sign = xor), before
    the shift: one small negation per lane instead of one per operand plus a signed multiplier
    (generator version 2; version 1 multiplied signed ``M + 2``-bit significands). A lane with an
    integer operand multiplies signed significands (``M + 2`` bits for the minifloat, the code for
    the integer).

Integer x integer units are the same in both architectures.

Widths (all computed exactly from the finite codes of the two formats):

* embedded integer of an operand: ``bits(k)``, the smallest two's complement width holding its
  range (``INTn``: n; ``UINTn``: n + 1; E2M1: 5, E4M3: 19, see ``MinifloatFormat.integer_bit_width``);
* product: ``P = bits(kw) + bits(ka) - 1`` when at least one operand is sign-symmetric
  (every minifloat; ``|k| <= 2^(bits-1) - 1``), ``bits(kw) + bits(ka)`` for ``INT x INT``
  (``(-2^(n-1)) * (-2^(m-1)) = 2^(n+m-2)``), one less when an operand is unsigned and the other
  cannot reach its two's complement minimum — in every case the smallest width holding
  ``[p_min, p_max]``, the extreme corner products;
* accumulator: ``ACC = signed_bits(fan_in * p_min, fan_in * p_max) <= P + ceil(log2(fan_in))``;
  the lane adder likewise with ``SIMD`` instead of ``fan_in``.

``accumulator_bits(w, a, fan_in)`` computes it; tests check it against the closed form.

Special codes (NaN / Inf under the ``ieee``, ``fn``, ``fnuz`` conventions) are don't-care inputs:
saturating quantizers never produce them and the lowering refuses NaN/Inf-producing formats. With
subnormals off, every code with exponent field 0 decodes to zero.

Timing: two pipeline stages (lane products and their sum are registered, then accumulated);
a beat presented with ``in_valid`` at clock edge t is in ``acc`` after edge t + 1 (latency 2).
The product register keeps Yosys from merging multiplier and accumulator into one ``$macc``
cell, which it maps much worse (measured with Yosys 0.23: 113 vs 42 LUTs for INT4 x INT4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.hw.operands import (
    IntegerFormat,
    Operand,
    as_operand,
    code_bits,
    embedded_table,
    integer_range,
    is_minifloat,
    signed_bits,
)

GENERATOR_VERSION = 2
"""Bump whenever the generated Verilog changes in a way that can change synthesis results
(it is part of the synthesis cache key)."""

ARCHS = ("decode", "shift")


def _corner_products(w: Operand, a: Operand) -> tuple[int, int]:
    wl, wh = integer_range(w)
    al, ah = integer_range(a)
    corners = [wl * al, wl * ah, wh * al, wh * ah]
    return min(corners), max(corners)


def product_bits(weight: str | Operand, act: str | Operand) -> int:
    """Two's complement width of one exact product ``k_w * k_a`` (see module docstring)."""
    return signed_bits(*_corner_products(as_operand(weight), as_operand(act)))


def accumulator_bits(weight: str | Operand, act: str | Operand, fan_in: int) -> int:
    """Width of an accumulator that holds any dot product of length ``fan_in`` exactly.

    ``signed_bits(fan_in * p_min, fan_in * p_max)`` where ``p_min``/``p_max`` are the extreme
    products of embedded integers; never more than
    ``product_bits + ceil(log2(fan_in))``, and ``product_bits`` is ``bits(kw) + bits(ka) - 1`` for
    sign-symmetric operands (all minifloats), ``bits(kw) + bits(ka)`` for ``INT x INT``.
    """
    if fan_in < 1:
        raise ValueError(f"fan_in must be >= 1, got {fan_in}")
    lo, hi = _corner_products(as_operand(weight), as_operand(act))
    return signed_bits(fan_in * lo, fan_in * hi)


def _sext(expr: str, msb: str, from_bits: int, to_bits: int) -> str:
    """Explicit sign extension of ``expr`` (``from_bits`` wide, sign bit ``msb``) to ``to_bits``."""
    if to_bits < from_bits:
        raise AssertionError(f"cannot sign-extend {from_bits} bits to {to_bits}")
    return expr if to_bits == from_bits else f"{{{{{to_bits - from_bits}{{{msb}}}}}, {expr}}}"


def _zext(expr: str, from_bits: int, to_bits: int) -> str:
    return expr if to_bits == from_bits else f"{{{to_bits - from_bits}'d0, {expr}}}"


def format_tag(fmt: Operand) -> str:
    """Identifier-safe lower-case format name (``E4M3_B-2`` -> ``e4m3_bm2``)."""
    return re.sub(r"[^a-z0-9_]", "", fmt.name.lower().replace("-", "m"))


# ----------------------------------------------------------------------------------------- operands
@dataclass(frozen=True)
class _OperandRtl:
    """How one operand enters a lane: its code width, embedded-integer width, significand/shift."""

    fmt: Operand

    @property
    def code_bits(self) -> int:
        return code_bits(self.fmt)

    @property
    def k_bits(self) -> int:
        return signed_bits(*integer_range(self.fmt))

    @property
    def sig_range(self) -> tuple[int, int]:
        """Range of the signed significand the shift architecture multiplies."""
        if not is_minifloat(self.fmt):
            return integer_range(self.fmt)
        top = 2 ** (self.fmt.mantissa_bits + 1) - 1
        return (-top if self.fmt.signed else 0), top

    @property
    def mag_max(self) -> int:
        """Largest significand magnitude of a minifloat (implicit one included)."""
        return 2 ** (self.fmt.mantissa_bits + 1) - 1

    @property
    def sig_bits(self) -> int:
        return self.fmt.mantissa_bits + 2 if is_minifloat(self.fmt) else self.k_bits

    @property
    def max_shift(self) -> int:
        """Largest left shift any code asks for (``2^E - 2``; integers: 0)."""
        return 2**self.fmt.exponent_bits - 2 if is_minifloat(self.fmt) else 0

    @property
    def shift_bits(self) -> int:
        return max(1, self.max_shift.bit_length())


def unpack_module_name(fmt: MinifloatFormat, magnitude: bool) -> str:
    return f"mf_unpack_{'mag_' if magnitude else ''}{format_tag(fmt)}"


def _unpack_module(fmt: MinifloatFormat, magnitude: bool = False) -> str:
    """Verilog splitting a minifloat code into a signed significand (``magnitude``: an unsigned
    magnitude and a sign) and a left shift."""
    op = _OperandRtl(fmt)
    e_bits, m_bits, n = fmt.exponent_bits, fmt.mantissa_bits, op.code_bits
    sh = op.shift_bits
    exp_desc = "2^e" if fmt.bias == 0 else f"2^(e-{fmt.bias})" if fmt.bias > 0 else f"2^(e+{-fmt.bias})"
    sub_desc = (
        f"subnormal (e == 0): {'(-1)^s ' if fmt.signed else ''}2^{1 - fmt.bias} * f/2^{m_bits}"
        if fmt.subnormals
        else "subnormals OFF: every code with e == 0 decodes to zero (flush to zero)"
    )
    special = {
        "none": "all codes are finite",
        "ieee": "e == all ones is Inf/NaN: don't-care input",
        "fn": "the all-ones exponent and mantissa code is NaN: don't-care input",
        "fnuz": "the negative-zero code is NaN: don't-care input (decodes to 0)",
    }[fmt.specials]
    lines = [
        f"// {fmt.name}: code = {'s | ' if fmt.signed else ''}e[{e_bits - 1}:0]" + (f" | f[{m_bits - 1}:0]" if m_bits else ""),
        f"//   normal (e >= 1): {'(-1)^s ' if fmt.signed else ''}{exp_desc} * (1 + f/2^{m_bits})",
        f"//   {sub_desc}",
        f"//   specials: {special}",
        f"// Embedded integer k = value / delta, delta = 2^{1 - fmt.bias - m_bits}:",
        ("//   k = (-1)^neg * (mag << shift),  mag = {e != 0, f} (implicit leading one),"
         if magnitude
         else "//   k = sig << shift,  sig = " + ("+-" if fmt.signed else "") + "{e != 0, f} (implicit leading one),"),
        "//                     shift = e - 1 for e >= 1, 0 for e == 0."
        if op.max_shift
        else "//                     shift = e - 1 = 0 always (E = 1: one binade).",
        f"//   |k| <= {fmt.integer_max}: {op.k_bits}-bit two's complement.",
        f"module {unpack_module_name(fmt, magnitude)} (",
        f"    input  wire [{n - 1}:0] code,",
    ]
    if magnitude:
        ports = [(f"output wire {f'[{m_bits}:0] ' if m_bits else ''}mag", "unsigned significand")]
        if fmt.signed:
            ports.append(("output wire neg", "sign bit"))
        if op.max_shift:
            ports.append((f"output wire [{sh - 1}:0] shift", f"left shift, 0..{op.max_shift}"))
        lines += [f"    {d}{',' if i < len(ports) - 1 else ''}  // {c}" for i, (d, c) in enumerate(ports)]
    elif op.max_shift:
        lines += [
            f"    output wire signed [{m_bits + 1}:0] sig,   // signed significand",
            f"    output wire [{sh - 1}:0] shift  // left shift, 0..{op.max_shift}",
        ]
    else:
        lines.append(f"    output wire signed [{m_bits + 1}:0] sig    // signed significand (E = 1: never shifted)")
    lines.append(");")
    if fmt.signed:
        lines.append(f"    wire s = code[{n - 1}];")
    lines.append(f"    wire [{e_bits - 1}:0] e = code[{e_bits + m_bits - 1}:{m_bits}];")
    if m_bits:
        lines.append(f"    wire [{m_bits - 1}:0] f = code[{m_bits - 1}:0];")
    lines.append("    wire normal = |e;  // exponent field != 0: implicit leading one")
    decl = "assign mag =" if magnitude else ("wire mag =" if m_bits == 0 else f"wire [{m_bits}:0] mag =")
    if m_bits == 0:
        lines.append(f"    {decl} normal;  // no mantissa bits: magnitude 1 or 0")
    elif fmt.subnormals:
        lines.append(f"    {decl} {{normal, f}};  // e == 0: subnormal, magnitude f")
    else:
        lines.append(f"    {decl} normal ? {{1'b1, f}} : {m_bits + 1}'d0;  // e == 0: flush to zero")
    if magnitude:
        if fmt.signed:
            lines.append("    assign neg = s;")
    elif fmt.signed:
        lines.append("    assign sig = s ? -$signed({1'b0, mag}) : $signed({1'b0, mag});")
    else:
        lines.append("    assign sig = $signed({1'b0, mag});")
    if op.max_shift:
        lines.append(f"    assign shift = normal ? e - 1'b1 : {sh}'d0;")
    lines.append("endmodule")
    return "\n".join(lines)


def _decode_module(fmt: MinifloatFormat) -> str:
    """Verilog turning a minifloat code into its embedded integer."""
    op = _OperandRtl(fmt)
    t, sb, kb = format_tag(fmt), fmt.mantissa_bits + 2, op.k_bits
    lines = [
        f"// {fmt.name} code -> embedded integer k = value / delta ({kb}-bit two's complement).",
        f"module mf_decode_{t} (",
        f"    input  wire [{op.code_bits - 1}:0] code,",
        f"    output wire signed [{kb - 1}:0] k",
        ");",
        f"    wire signed [{sb - 1}:0] sig;",
    ]
    if op.max_shift:
        lines += [
            f"    wire [{op.shift_bits - 1}:0] shift;",
            f"    mf_unpack_{t} u_unpack (.code(code), .sig(sig), .shift(shift));",
            "    // sign-extend to the width of k, then shift: exact for every finite code",
            f"    wire signed [{kb - 1}:0] sig_ext = {_sext('sig', f'sig[{sb - 1}]', sb, kb)};",
            "    assign k = sig_ext <<< shift;",
        ]
    else:
        lines += [
            f"    mf_unpack_{t} u_unpack (.code(code), .sig(sig));",
            f"    assign k = {_sext('sig', f'sig[{sb - 1}]', sb, kb)};",
        ]
    lines.append("endmodule")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- the unit
@dataclass(frozen=True)
class MacUnit:
    """One MVAU processing element for a (weight format, activation format) pair.

    ``fan_in``: dot-product length the accumulator must hold exactly (the layer's MW);
    ``simd``: lanes per beat (``fan_in % simd == 0``); ``arch``: ``"decode"`` or ``"shift"``
    (module docstring). ``top``: module name (default derived from the parameters).
    ``acc_width``: a narrower accumulator than the exact one (a layer whose actual weights bound
    the dot products, as FINN's accumulator minimisation does): sums wrap modulo
    ``2^acc_width``, so a final dot product is right whenever it fits that width.
    """

    weight: Operand
    act: Operand
    fan_in: int = 64
    simd: int = 1
    arch: str = "decode"
    top: str | None = field(default=None)
    acc_width: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", as_operand(self.weight))
        object.__setattr__(self, "act", as_operand(self.act))
        for name in ("fan_in", "simd"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.fan_in % self.simd:
            raise ValueError(f"fan_in ({self.fan_in}) must be a multiple of simd ({self.simd})")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        exact = accumulator_bits(self.weight, self.act, self.fan_in)
        if self.acc_width is not None and (
            isinstance(self.acc_width, bool) or not isinstance(self.acc_width, int) or not 2 <= self.acc_width <= exact
        ):
            raise ValueError(f"acc_width must be an integer in [2, {exact}] (exact width), got {self.acc_width!r}")
        if self.top is None:
            name = f"mac_{format_tag(self.weight)}_x_{format_tag(self.act)}_f{self.fan_in}_s{self.simd}_{self.arch}"
            if self.acc_width is not None:
                name += f"_acc{self.acc_width}"
            object.__setattr__(self, "top", name)
        elif not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.top):
            raise ValueError(f"top must be a Verilog identifier, got {self.top!r}")

    # ---- widths
    @property
    def product_range(self) -> tuple[int, int]:
        return _corner_products(self.weight, self.act)

    @property
    def product_bits(self) -> int:
        return signed_bits(*self.product_range)

    @property
    def dot_bits(self) -> int:
        lo, hi = self.product_range
        return signed_bits(self.simd * lo, self.simd * hi)

    @property
    def acc_bits(self) -> int:
        return self.acc_width or accumulator_bits(self.weight, self.act, self.fan_in)

    @property
    def sign_magnitude(self) -> bool:
        """Lanes multiply unsigned magnitudes and negate once (shift architecture, both operands
        minifloats; module docstring)."""
        return self.arch == "shift" and is_minifloat(self.weight) and is_minifloat(self.act)

    @property
    def beats(self) -> int:
        """Beats (clock cycles) per dot product."""
        return self.fan_in // self.simd

    latency = 2

    def describe(self) -> dict:
        """Plain-JSON description of the parameters (used as part of cache keys)."""
        out = {
            "weight": self.weight.name,
            "act": self.act.name,
            "fan_in": self.fan_in,
            "simd": self.simd,
            "arch": self.arch,
            "top": self.top,
        }
        if self.acc_width is not None:  # only when set: keys of exact units stay as they were
            out["acc_width"] = self.acc_width
        return out

    # ---- reference model
    def reference(self, w_codes, a_codes, first) -> list[int]:
        """Expected ``acc`` after each beat: plain Python integers from `operands.embedded_integer`
        (two's complement modulo ``2^acc_width`` when the accumulator is narrowed).

        ``w_codes``/``a_codes``: one sequence of ``simd`` codes per beat; ``first``: one bool per beat.
        """
        wt, at = embedded_table(self.weight), embedded_table(self.act)
        half = 2 ** (self.acc_bits - 1)
        acc, out = 0, []
        for ws, as_, f in zip(w_codes, a_codes, first, strict=True):
            dot = sum(wt[w] * at[a] for w, a in zip(ws, as_, strict=True))
            acc = dot if f else acc + dot
            out.append((acc + half) % (2 * half) - half)  # exact unless acc_width wraps it
        return out

    # ---- Verilog
    @cached_property
    def verilog(self) -> str:
        """The complete Verilog-2005 source: decoder modules, then the top module."""
        w, a = _OperandRtl(self.weight), _OperandRtl(self.act)
        parts = [self._header()]
        seen = set()
        for fmt in (self.weight, self.act):
            if is_minifloat(fmt) and fmt not in seen:
                seen.add(fmt)
                parts.append(_unpack_module(fmt, magnitude=self.sign_magnitude))
                if self.arch == "decode":
                    parts.append(_decode_module(fmt))
        parts.append(self._top_module(w, a))
        return "\n\n".join(parts) + "\n"

    def write(self, directory: str | Path) -> Path:
        """Write ``<top>.v`` into ``directory`` and return its path."""
        return write_verilog(self.top, self.verilog, directory)

    def _header(self) -> str:
        lo, hi = self.product_range
        return "\n".join(
            [
                f"// Generated by brevitas_minifloat.hw.rtl (generator version {GENERATOR_VERSION}). Do not edit.",
                f"// MAC unit: {self.weight.name} weights x {self.act.name} activations, arch '{self.arch}',",
                f"//   SIMD {self.simd}, fan-in {self.fan_in} ({self.beats} beats per dot product).",
                f"// Output acc = exact dot product in units of delta_w * delta_a"
                f" = {_delta_str(self.weight)} * {_delta_str(self.act)}.",
                f"// Widths: product [{lo}, {hi}] -> {self.product_bits} bits; lane sum {self.dot_bits} bits;"
                f" accumulator {self.acc_bits} bits.",
                "// Latency 2: a beat sampled at clock edge t is included in acc after edge t + 1.",
            ]
        )

    def _operand_lane(self, op: _OperandRtl, port: str) -> list[str]:
        """Lane-local wires for one operand: ``k<port>`` (decode) or ``s<port>``/``h<port>`` (shift)."""
        code = f"{port}[l*{port.upper()}B +: {port.upper()}B]"
        if not is_minifloat(op.fmt):
            kind = "k" if self.arch == "decode" else "s"
            value = code if op.fmt.signed else f"{{1'b0, {code}}}"
            return [f"wire signed [{op.k_bits - 1}:0] {kind}{port} = {value};  // {op.fmt.name}: the code is the integer"]
        t = format_tag(op.fmt)
        if self.arch == "decode":
            return [
                f"wire signed [{op.k_bits - 1}:0] k{port};  // {op.fmt.name} embedded integer",
                f"mf_decode_{t} u_dec_{port} (.code({code}), .k(k{port}));",
            ]
        name = unpack_module_name(op.fmt, self.sign_magnitude)
        if self.sign_magnitude:
            m = op.fmt.mantissa_bits
            lines = [f"wire {f'[{m}:0] ' if m else ''}m{port};  // {op.fmt.name} significand magnitude"]
            conns = [f".code({code})", f".mag(m{port})"]
            if op.fmt.signed:
                lines.append(f"wire n{port};  // its sign")
                conns.append(f".neg(n{port})")
        else:
            lines = [f"wire signed [{op.sig_bits - 1}:0] s{port};  // {op.fmt.name} signed significand"]
            conns = [f".code({code})", f".sig(s{port})"]
        if op.max_shift:
            lines.append(f"wire [{op.shift_bits - 1}:0] h{port};  // and its left shift")
            conns.append(f".shift(h{port})")
        lines.append(f"{name} u_unpack_{port} ({', '.join(conns)});")
        return lines

    @property
    def _lane_negations(self) -> bool:
        """Sign-magnitude lanes with a signed operand hand their product's sign to the lane sum."""
        return self.sign_magnitude and (self.weight.signed or self.act.signed)

    def _lane_product(self, w: _OperandRtl, a: _OperandRtl) -> list[str]:
        """Lane lines computing ``p`` = the exact product ``k_w * k_a`` on PB bits (sign-magnitude
        lanes: ``k_w * k_a - neg``, the lane sum adds ``neg`` back)."""
        pb = self.product_bits
        if self.arch == "decode":
            return ["wire signed [PB-1:0] p = kw * ka;  // exact: every product of finite codes fits PB bits"]
        shifted = [(op, f"h{port}") for op, port in ((w, "w"), (a, "a")) if op.max_shift]
        if not shifted and not self.sign_magnitude:
            return [f"wire signed [PB-1:0] p = sw * sa;  // no exponent shift in either operand"]
        lines = []
        if shifted:
            hb = max(1, sum(op.max_shift for op, _ in shifted).bit_length())
            terms = " + ".join(_zext(name, op.shift_bits, hb) for op, name in shifted)
            total = len(shifted) > 1 or hb != shifted[0][0].shift_bits
            lines.append(f"wire [{hb - 1}:0] h = {terms};  // {'total ' if total else ''}left shift")
        if self.sign_magnitude:
            return lines + self._magnitude_product(w, a, shifted=bool(shifted))
        sp_corners = [x * y for x in w.sig_range for y in a.sig_range]
        spb = signed_bits(min(sp_corners), max(sp_corners))
        lines.append(f"wire signed [{spb - 1}:0] sp = sw * sa;  // significand product")
        lines.append(f"wire signed [PB-1:0] sp_ext = {_sext('sp', f'sp[{spb - 1}]', spb, pb)};")
        lines.append("wire signed [PB-1:0] p = sp_ext <<< h;  // = k_w * k_a exactly")
        return lines

    def _magnitude_product(self, w: _OperandRtl, a: _OperandRtl, shifted: bool) -> list[str]:
        """Unsigned magnitudes multiplied and shifted; the sign applied once, as ones' complement."""
        top = w.mag_max * a.mag_max
        mpb, pb = top.bit_length(), self.product_bits
        pm = _zext("mp", mpb, pb - 1)
        lines = [
            f"wire [{mpb - 1}:0] mp = mw * ma;  // magnitude product, at most {top}",
            f"wire [PB-2:0] pm = {pm + ' << h' if shifted else pm};  // |k_w * k_a|",
        ]
        if not self._lane_negations:
            return lines + ["wire signed [PB-1:0] p = {1'b0, pm};  // unsigned formats: never negative"]
        signs = " ^ ".join(f"n{port}" for op, port in ((w, "w"), (a, "a")) if op.fmt.signed)
        return lines + [
            f"wire neg = {signs};  // product sign",
            "wire signed [PB-1:0] p = {neg, pm ^ {(PB-1){neg}}};  // ones' complement: k_w * k_a - neg",
            "assign negs[l] = neg;  // the lane sum adds it back",
        ]

    def _top_module(self, w: _OperandRtl, a: _OperandRtl) -> str:
        pb, db, accb = self.product_bits, self.dot_bits, self.acc_bits
        body = self._operand_lane(w, "w") + self._operand_lane(a, "a") + self._lane_product(w, a)
        ext = "  // sign-extended to DB bits" if db > pb else ""
        body.append(f"assign prods[l*DB +: DB] = {_sext('p', 'p[PB-1]', pb, db)};{ext}")
        body_txt = "\n".join("            " + line for line in body)
        if accb >= db:
            dot_ext = _sext("dot_r", "dot_r[DB-1]", db, accb)
            dot_hi = ""
        else:  # narrow accumulator: sums are taken modulo 2^ACCB
            dot_ext = "dot_r[ACCB-1:0]"
            dot_hi = "\n    wire [DB-ACCB-1:0] unused_dot_hi = dot_r[DB-1:ACCB];  // modulo 2^ACCB: not needed"
        negs_decl, negs_term = "", ""
        if self._lane_negations:
            negs_decl = "    wire [SIMD-1:0] negs;  // lane l: its product is stored as k_w * k_a - negs[l]\n"
            negs_term = " + {{(DB-1){1'b0}}, negs[i]}"
        return f"""module {self.top} (
    input  wire clk,
    input  wire rst,        // synchronous, active high
    input  wire in_valid,   // one beat: SIMD (weight, activation) code pairs
    input  wire in_first,   // this beat starts a new dot product
    input  wire [{self.simd * w.code_bits - 1}:0] w,  // lane l: w[l*WB +: WB], {self.weight.name} codes
    input  wire [{self.simd * a.code_bits - 1}:0] a,  // lane l: a[l*AB +: AB], {self.act.name} codes
    output reg  signed [{accb - 1}:0] acc  // running exact dot product
);
    localparam SIMD = {self.simd};
    localparam WB = {w.code_bits};    // weight code bits
    localparam AB = {a.code_bits};    // activation code bits
    localparam PB = {pb};   // product bits: [{self.product_range[0]}, {self.product_range[1]}]
    localparam DB = {db};   // lane-sum bits: SIMD x product range
    localparam ACCB = {accb}; // accumulator bits: {"fan_in x product range" if self.acc_width is None else "narrowed, sums wrap modulo 2^ACCB"}
    localparam signed [ACCB-1:0] ZERO = 0;

    // ---- stage 1: SIMD exact products and their sum
    wire [SIMD*DB-1:0] prods;  // lane l: prods[l*DB +: DB], already sign-extended
{negs_decl}    genvar l;
    generate
        for (l = 0; l < SIMD; l = l + 1) begin : lane
{body_txt}
        end
    endgenerate

    integer i;
    reg signed [DB-1:0] dot;
    always @* begin
        dot = {{DB{{1'b0}}}};
        for (i = 0; i < SIMD; i = i + 1)
            dot = dot + prods[i*DB +: DB]{negs_term};  // equal widths: two's complement sum, no overflow
    end

    reg dot_valid, dot_first;
    reg signed [DB-1:0] dot_r;
    always @(posedge clk) begin
        if (rst)
            dot_valid <= 1'b0;
        else
            dot_valid <= in_valid;
        if (in_valid) begin
            dot_r <= dot;
            dot_first <= in_first;
        end
    end

    // ---- stage 2: accumulate
    // Written as (first ? 0 : acc) + x with a *signed* zero: Yosys then folds the restart into
    // the adder's LUTs (40 LUTs for INT4 x INT4; 54 for first ? x : acc + x or an unsigned zero).
    wire signed [ACCB-1:0] dot_ext = {dot_ext};{dot_hi}
    always @(posedge clk) begin
        if (rst)
            acc <= ZERO;
        else if (dot_valid)
            acc <= (dot_first ? ZERO : acc) + dot_ext;
    end
endmodule"""


def write_verilog(top: str, verilog: str, directory: str | Path) -> Path:
    """Write ``verilog`` to ``<directory>/<top>.v`` (creating the directory) and return the path."""
    path = Path(directory) / f"{top}.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(verilog)
    return path


def _delta_str(fmt: Operand) -> str:
    if not is_minifloat(fmt):
        return "1"
    return f"2^{1 - fmt.bias - fmt.mantissa_bits}"


__all__ = ["ARCHS", "GENERATOR_VERSION", "IntegerFormat", "MacUnit", "accumulator_bits", "format_tag", "product_bits", "write_verilog"]
