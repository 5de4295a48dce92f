"""Independent reference semantics for minifloat rounding in exact rational arithmetic.

Deliberately shares no code with the package: the grid is enumerated from the format's definition
(sign, exponent field, mantissa field, bias, specials) and rounding is decided with `Fraction`s.
"""

from __future__ import annotations

import bisect
import math
from fractions import Fraction
from functools import lru_cache


@lru_cache(maxsize=None)
def grid(e_bits: int, m_bits: int, bias: int, subnormals: bool, specials: str) -> tuple[Fraction, ...]:
    """Sorted non-negative finite values of the format."""
    vals = set()
    top_field = 2**e_bits - 1
    for field in range(0, top_field + 1):
        for mant in range(2**m_bits):
            if specials == "ieee" and field == top_field:
                continue
            if specials == "fn" and field == top_field and mant == 2**m_bits - 1:
                continue
            if field == 0:
                if not subnormals and mant:
                    continue
                v = Fraction(mant, 2**m_bits) * Fraction(2) ** (1 - bias)
            else:
                v = (1 + Fraction(mant, 2**m_bits)) * Fraction(2) ** (field - bias)
            vals.add(v)
    return tuple(sorted(vals))


def _ulp_index(v: Fraction, m_bits: int, bias: int) -> int:
    """The integer significand of v in units of its binade's ulp (parity decides ties)."""
    min_normal = Fraction(2) ** (1 - bias)
    if v < min_normal:
        ulp = Fraction(2) ** (1 - bias - m_bits)
    else:
        e = math.floor(math.log2(v))
        while Fraction(2) ** e > v:
            e -= 1
        while Fraction(2) ** (e + 1) <= v:
            e += 1
        ulp = Fraction(2) ** (e - m_bits)
    q = v / ulp
    assert q.denominator == 1
    return int(q)


def round_exact(x: float, e_bits: int, m_bits: int, bias: int, signed: bool, subnormals: bool, specials: str) -> float:
    """Round x onto the format: nearest, ties to even significand, saturating; NaN in, NaN out."""
    if math.isnan(x):
        return math.nan
    if not signed and x < 0:
        return 0.0
    g = grid(e_bits, m_bits, bias, subnormals, specials)
    neg = math.copysign(1.0, x) < 0
    a = g[-1] if math.isinf(x) else min(Fraction(abs(x)), g[-1])
    i = bisect.bisect_left(g, a)
    if g[i] == a:
        r = a
    else:
        lo, hi = g[i - 1], g[i]
        if a - lo < hi - lo - (a - lo):
            r = lo
        elif a - lo > hi - lo - (a - lo):
            r = hi
        elif lo == 0 and not subnormals:
            r = lo  # flush-to-zero tie between 0 and min_normal goes to 0
        else:
            r = lo if _ulp_index(lo, m_bits, bias) % 2 == 0 else hi
    out = float(r)
    return -out if neg and signed else out


def decode(e_bits: int, m_bits: int, bias: int, signed: bool, subnormals: bool, specials: str, code: int):
    """Exact value (`Fraction`) of a code laid out sign | exponent | mantissa; ``None`` for NaN/Inf.
    With subnormals off every exponent-field-0 code is zero."""
    top = 2**e_bits - 1
    sign = (code >> (e_bits + m_bits)) & 1 if signed else 0
    field, mant = (code >> m_bits) & top, code & (2**m_bits - 1)
    if (specials == "ieee" and field == top) or (specials == "fn" and field == top and mant == 2**m_bits - 1):
        return None
    if specials == "fnuz" and sign and field == 0 and mant == 0:
        return None
    if field == 0:
        mag = Fraction(mant, 2**m_bits) * Fraction(2) ** (1 - bias) if subnormals else Fraction(0)
    else:
        mag = (1 + Fraction(mant, 2**m_bits)) * Fraction(2) ** (field - bias)
    return -mag if sign else mag


def ordered_values(e_bits: int, m_bits: int, bias: int, signed: bool, subnormals: bool, specials: str):
    """Every finite value, ascending, zero once: what an ordinal indexes."""
    g = grid(e_bits, m_bits, bias, subnormals, specials)
    return tuple(-v for v in reversed(g[1:])) + g if signed else g
