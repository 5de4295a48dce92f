"""Operand formats of a hardware MAC: minifloat (`MinifloatFormat`) or integer (`IntegerFormat`).

Both kinds answer the same few questions the RTL generator, the reference model and the cost API
ask: how many code bits, which codes are finite, what embedded integer a code stands for (its value
divided by ``delta``), and the range of those integers. Integers are their own embedding
(``delta = 1``). The minifloat answers are derived from `MinifloatFormat`, the single source of
truth for a format; `embedded_integer` goes through exact `fractions.Fraction` arithmetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from brevitas_minifloat.formats import MinifloatFormat

_INT_RE = re.compile(r"^(?P<u>U?)INT(?P<n>\d+)$")


@dataclass(frozen=True)
class IntegerFormat:
    """An integer operand: ``bits``-bit two's complement (``signed``) or unsigned binary.

    ``IntegerFormat.parse("INT4")``, ``IntegerFormat.parse("UINT8")``; the name round-trips.
    """

    bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or self.bits < 1:
            raise ValueError(f"an integer format needs bits >= 1, got {self.bits!r}")
        if self.signed and self.bits < 2:
            raise ValueError("a signed integer format needs at least 2 bits (INT1 would be {-1, 0})")
        if self.bits > 32:
            raise ValueError(f"integer operands wider than 32 bits are not supported, got {self.bits}")

    @classmethod
    def parse(cls, text: str | IntegerFormat) -> IntegerFormat:
        if isinstance(text, IntegerFormat):
            return text
        match = _INT_RE.match(str(text).strip().upper())
        if match is None:
            raise ValueError(f"cannot parse integer format {text!r}: expected e.g. 'INT4' or 'UINT8'")
        return cls(int(match.group("n")), signed=not match.group("u"))

    @property
    def name(self) -> str:
        return f"{'' if self.signed else 'U'}INT{self.bits}"

    def __str__(self) -> str:
        return self.name

    @property
    def bit_width(self) -> int:
        return self.bits

    @property
    def integer_min(self) -> int:
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def integer_max(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1


Operand = MinifloatFormat | IntegerFormat


def as_operand(fmt: str | Operand) -> Operand:
    """Accept a `MinifloatFormat`, an `IntegerFormat`, or a name: ``"INT4"``, ``"UINT8"``, ``"E4M3"``,
    ``"E2M1_NOSUB"``, ``"float8_e4m3fn"``."""
    if isinstance(fmt, (MinifloatFormat, IntegerFormat)):
        return fmt
    if not isinstance(fmt, str):
        raise ValueError(f"an operand format is a MinifloatFormat, an IntegerFormat or a name, got {fmt!r}")
    if _INT_RE.match(fmt.strip().upper()):
        return IntegerFormat.parse(fmt)
    try:
        return MinifloatFormat.parse(fmt)
    except ValueError as err:
        raise ValueError(f"cannot parse operand format {fmt!r}: not 'INT<n>'/'UINT<n>' and {err}") from None


def code_bits(fmt: Operand) -> int:
    """Bits of one code (the bit vector the RTL takes)."""
    return fmt.bit_width


def is_minifloat(fmt: Operand) -> bool:
    return isinstance(fmt, MinifloatFormat)


def split_code(fmt: MinifloatFormat, code: int) -> tuple[int, int, int]:
    """``code -> (sign, exponent field, mantissa field)``; layout sign | exponent | mantissa."""
    e_bits, m_bits = fmt.exponent_bits, fmt.mantissa_bits
    sign = (code >> (e_bits + m_bits)) & 1 if fmt.signed else 0
    return sign, (code >> m_bits) & (2**e_bits - 1), code & (2**m_bits - 1)


def is_special(fmt: Operand, code: int) -> bool:
    """True for codes that are NaN or Inf in the format's specials convention.

    The hardware treats them as don't-care: saturating quantizers never produce them and the
    lowering refuses NaN/Inf-producing configurations (DESIGN.md section 6)."""
    if not is_minifloat(fmt):
        return False
    s, e, f = split_code(fmt, code)
    e_top, m_top = 2**fmt.exponent_bits - 1, 2**fmt.mantissa_bits - 1
    if fmt.specials == "ieee":
        return e == e_top
    if fmt.specials == "fn":
        return e == e_top and f == m_top
    if fmt.specials == "fnuz":
        return s == 1 and e == 0 and f == 0
    return False


def code_value(fmt: Operand, code: int) -> Fraction | None:
    """Exact value of a code (``None`` for NaN/Inf codes).

    Minifloat: normal ``(-1)^s 2^(e-bias) (1 + f/2^M)`` for ``e >= 1``; subnormal
    ``(-1)^s 2^(1-bias) f/2^M`` for ``e == 0``. **Subnormals off**: every ``e == 0`` code decodes to
    zero (flush-to-zero on input); the quantizer only ever produces ``f == 0`` there.
    Integer: the two's complement (or unsigned) reading of the code.
    """
    if not 0 <= code < 2 ** code_bits(fmt):
        raise ValueError(f"code {code} does not fit {code_bits(fmt)} bits")
    if not is_minifloat(fmt):
        if fmt.signed and code >= 2 ** (fmt.bits - 1):
            return Fraction(code - 2**fmt.bits)
        return Fraction(code)
    if is_special(fmt, code):
        return None
    s, e, f = split_code(fmt, code)
    m_bits = fmt.mantissa_bits
    if e == 0:
        mag = Fraction(f, 2**m_bits) * Fraction(2) ** (1 - fmt.bias) if fmt.subnormals else Fraction(0)
    else:
        mag = (1 + Fraction(f, 2**m_bits)) * Fraction(2) ** (e - fmt.bias)
    return -mag if s else mag


def delta(fmt: Operand) -> Fraction:
    """The embedding unit: every value is an integer multiple of it (1 for integers)."""
    return Fraction(fmt.delta) if is_minifloat(fmt) else Fraction(1)


def embedded_integer(fmt: Operand, code: int) -> int | None:
    """``value(code) / delta`` as a Python int (``None`` for NaN/Inf codes)."""
    value = code_value(fmt, code)
    if value is None:
        return None
    k = value / delta(fmt)
    if k.denominator != 1:
        raise AssertionError(f"{fmt.name} code {code}: value {value} is not a multiple of delta {delta(fmt)}")
    return int(k)


@lru_cache(maxsize=256)
def finite_codes(fmt: Operand) -> tuple[int, ...]:
    """All codes that are not NaN/Inf, ascending."""
    return tuple(c for c in range(2 ** code_bits(fmt)) if not is_special(fmt, c))


@lru_cache(maxsize=256)
def embedded_table(fmt: Operand) -> dict[int, int]:
    """``{code: embedded integer}`` over the finite codes."""
    return {c: embedded_integer(fmt, c) for c in finite_codes(fmt)}


def integer_range(fmt: Operand) -> tuple[int, int]:
    """``(min, max)`` of the embedded integers of finite codes."""
    return fmt.integer_min, fmt.integer_max


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's complement width holding every integer in ``[lo, hi]``."""
    n = 1
    while not (-(2 ** (n - 1)) <= lo and hi <= 2 ** (n - 1) - 1):
        n += 1
    return n


def formats_of_width(bits: int) -> list[Operand]:
    """``INT<bits>`` followed by every signed minifloat split E1M(bits-2) ... E(bits-1)M0 (default
    bias, subnormals on, all codes finite)."""
    return [IntegerFormat(bits)] + [MinifloatFormat(e, bits - 1 - e) for e in range(1, bits)]
