"""Operand formats of a hardware MAC: minifloat (`MinifloatFormat`) or integer (`IntegerFormat`).

Both kinds answer the same few questions the RTL generator, the reference model and the cost API
ask: how many code bits, which codes are finite, what embedded integer a code stands for (its value
divided by ``delta``), and the range of those integers. Integers are their own embedding
(``delta = 1``). The minifloat answers are derived from `MinifloatFormat`, the single source of
truth for a format; `embedded_integer` goes through exact `fractions.Fraction` arithmetic.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.numformat import IntegerFormat, NumberFormat, formats_of_width, parse_format

__all__ = [
    "IntegerFormat",
    "Operand",
    "as_operand",
    "code_bits",
    "code_value",
    "delta",
    "embedded_integer",
    "embedded_table",
    "finite_codes",
    "formats_of_width",
    "integer_range",
    "is_minifloat",
    "is_special",
    "signed_bits",
    "split_code",
]

Operand = NumberFormat


def as_operand(fmt: str | Operand) -> Operand:
    """Accept a `MinifloatFormat`, an `IntegerFormat`, or a name: ``"INT4"``, ``"UINT8"``, ``"E4M3"``,
    ``"E2M1_NOSUB"``, ``"float8_e4m3fn"`` (`brevitas_minifloat.numformat.parse_format`)."""
    return parse_format(fmt)


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
    lowering refuses NaN/Inf-producing configurations (docs/design.md, "Semantics"). Decided by
    `MinifloatFormat.special_kind`."""
    return is_minifloat(fmt) and fmt.special_kind(code) is not None


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
