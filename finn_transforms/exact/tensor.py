"""`Exact`: a tensor of exact rationals ``num * scale`` (integer array times one positive Fraction).

Every float32 constant is a dyadic rational ``m * 2^e``, so the tensors of a quantized network are
integer arrays times a common scale: sums and products stay exact integers (Python ints in object
arrays when int64 could overflow). Dot products use float64 BLAS only when a bound proves every
partial sum is an integer below 2^53 (then the result is exact in any summation order, on any
host); wider ones are split into limbs that satisfy the bound. Division appears only as a change
of ``scale`` (``x / c`` for a scalar constant ``c``) or through rational ``scale`` factors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import reduce

import numpy as np

__all__ = ["Exact", "ExactError", "as_fraction_array", "exact_matmul", "fraction_gcd"]

_F64_EXACT = 1 << 53  # every integer of magnitude < 2^53 is a float64
_I64_SAFE = 1 << 62


class ExactError(ValueError):
    """An input or operation the exact evaluator cannot represent (the message says which)."""


def bound(a: np.ndarray) -> int:
    """``max |a|`` as a Python int (0 for an empty array)."""
    if a.size == 0:
        return 0
    return max(abs(int(a.max())), abs(int(a.min())))


def _fit(a: np.ndarray) -> np.ndarray:
    """int64 when every entry fits, else an object array of Python ints."""
    if a.dtype == np.int64:
        return a
    if a.dtype != object:
        return a.astype(np.int64)
    return a.astype(np.int64) if bound(a) < _I64_SAFE else a


def _obj(a: np.ndarray) -> np.ndarray:
    return a.astype(object) if a.dtype != object else a


def _scaled(a: np.ndarray, factor: int) -> np.ndarray:
    """``a * factor`` (Python int), int64 when safe."""
    if factor == 1:
        return a
    if bound(a) * abs(factor) < _I64_SAFE:
        return a.astype(np.int64) * np.int64(factor)
    return _obj(a) * factor


def int_binary(a: np.ndarray, b: np.ndarray, op: str) -> np.ndarray:
    """Exact elementwise ``a + b``, ``a - b`` or ``a * b`` with broadcasting."""
    ba, bb = bound(a), bound(b)
    safe = (ba * bb if op == "mul" else ba + bb) < _I64_SAFE
    x, y = (a.astype(np.int64), b.astype(np.int64)) if safe else (_obj(a), _obj(b))
    out = {"add": np.add, "sub": np.subtract, "mul": np.multiply}[op](x, y)
    return _fit(out) if not safe else out


def fraction_gcd(values) -> Fraction:
    """The largest positive rational ``g`` with every value an integer multiple of ``g``."""
    values = [Fraction(v) for v in values if v != 0]
    if not values:
        return Fraction(1)
    num = reduce(math.gcd, (v.numerator for v in values))
    den = reduce(math.lcm, (v.denominator for v in values))
    return Fraction(abs(num), den)


def as_fraction_array(a: np.ndarray) -> tuple[np.ndarray, Fraction]:
    """Finite floats -> ``(num, scale)`` with ``a == num * scale`` exactly (num int64 or object)."""
    a = np.asarray(a)
    if a.dtype.kind in "iub":
        return _fit(a.astype(object) if a.dtype.kind == "u" else a.astype(np.int64)), Fraction(1)
    shape = a.shape
    a = a.astype(np.float64).reshape(-1)  # float32 -> float64 is exact
    if not np.all(np.isfinite(a)):
        raise ExactError("tensor holds NaN or Inf: exact evaluation needs finite values")
    mant, exp = np.frexp(a)  # a = mant * 2^exp, 0.5 <= |mant| < 1
    m = (mant * float(1 << 53)).astype(np.int64)  # exact: 53-bit significand
    e = exp.astype(np.int64) - 53
    nz = m != 0
    if not nz.any():
        return np.zeros(shape, dtype=np.int64), Fraction(1)
    tz = _trailing_zeros(m[nz])
    m[nz] >>= tz
    e[nz] += tz
    emin = int(e[nz].min())
    shift = np.where(nz, e - emin, 0)
    spread = int(shift.max())
    if spread + 54 < 63:
        num = m << shift
    else:
        num = _fit(m.astype(object) << shift.astype(object))  # Python ints, elementwise
    return num.reshape(shape), Fraction(2) ** emin


def _trailing_zeros(m: np.ndarray) -> np.ndarray:
    m = np.abs(m)
    low = m & -m  # lowest set bit
    return np.log2(low.astype(np.float64)).astype(np.int64)  # exact: a power of two


@dataclass(frozen=True, eq=False)
class Exact:
    """``value = num * scale``: ``num`` an integer ndarray (int64, or object for wide values),
    ``scale`` a positive Fraction common to all elements."""

    num: np.ndarray
    scale: Fraction = Fraction(1)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_array(cls, a) -> Exact:
        """Exact value of a finite float/int array (NaN/Inf refused with `ExactError`)."""
        num, scale = as_fraction_array(np.asarray(a))
        return cls(num, scale).normalized()

    @classmethod
    def from_ints(cls, num, scale=Fraction(1)) -> Exact:
        return cls(_fit(np.asarray(num)), Fraction(scale)).normalized()

    def normalized(self) -> Exact:
        """Same values with the common integer factor of ``num`` moved into ``scale``."""
        num = self.num
        if num.size == 0:
            return Exact(num, self.scale)
        if num.dtype == object:
            g = reduce(math.gcd, (int(v) for v in num.ravel()), 0)
        else:
            g = int(np.gcd.reduce(num.ravel())) if num.size else 0
        if g == 0:
            return Exact(np.zeros(num.shape, dtype=np.int64), Fraction(1))
        if g == 1:
            return Exact(_fit(num), self.scale)
        return Exact(_fit(num // g), self.scale * g)

    # ----------------------------------------------------------------- views
    @property
    def shape(self) -> tuple[int, ...]:
        return self.num.shape

    @property
    def ndim(self) -> int:
        return self.num.ndim

    def with_num(self, num: np.ndarray) -> Exact:
        """Same scale, new integer array (data movement: reshape, transpose, gather, ...)."""
        return Exact(num, self.scale)

    def to_float64(self) -> np.ndarray:
        """Nearest float64 of each value (for reports and comparisons with float stages)."""
        p, q = self.scale.numerator, self.scale.denominator
        if self.num.dtype != object and bound(self.num) < _F64_EXACT and p < _F64_EXACT and q < _F64_EXACT:
            return self.num.astype(np.float64) * (p / q)
        return np.array([float(Fraction(int(v) * p, q)) for v in self.num.ravel()], dtype=np.float64).reshape(self.shape)

    def fractions(self) -> np.ndarray:
        """Object array of Fractions (slow; for tests and small reports)."""
        return np.array([Fraction(int(v)) * self.scale for v in self.num.ravel()], dtype=object).reshape(self.shape)

    def is_integer(self) -> bool:
        return self.scale.denominator == 1

    def as_integers(self) -> np.ndarray:
        """Integer values (int64 or object); `ExactError` if some value is not an integer."""
        if self.scale.denominator != 1:
            raise ExactError(f"tensor is not integer-valued (scale {self.scale})")
        return _scaled(self.num, self.scale.numerator)

    # ----------------------------------------------------------------- arithmetic
    def _common(self, other: Exact) -> tuple[np.ndarray, np.ndarray, Fraction]:
        g = fraction_gcd([self.scale, other.scale])
        return _scaled(self.num, int(self.scale / g)), _scaled(other.num, int(other.scale / g)), g

    def __add__(self, other: Exact) -> Exact:
        a, b, g = self._common(other)
        return Exact(int_binary(a, b, "add"), g).normalized()

    def __sub__(self, other: Exact) -> Exact:
        a, b, g = self._common(other)
        return Exact(int_binary(a, b, "sub"), g).normalized()

    def __mul__(self, other: Exact) -> Exact:
        return Exact(int_binary(self.num, other.num, "mul"), self.scale * other.scale).normalized()

    def __neg__(self) -> Exact:
        return Exact(-_obj(self.num) if self.num.dtype == object else -self.num, self.scale)

    def times(self, factor: Fraction) -> Exact:
        """``self * factor`` for a rational scalar (``factor < 0`` negates)."""
        factor = Fraction(factor)
        if factor == 0:
            return Exact(np.zeros(self.shape, dtype=np.int64))
        out = Exact(self.num, self.scale * abs(factor))
        return -out if factor < 0 else out

    def maximum(self, other: Exact) -> Exact:
        a, b, g = self._common(other)
        return Exact(_fit(np.maximum(a, b)), g).normalized()

    def compare_ge(self, other: Exact) -> np.ndarray:
        a, b, _ = self._common(other)
        return np.asarray(a >= b, dtype=bool)

    def sum(self, axis, keepdims: bool = False) -> Exact:
        num = self.num
        n = int(np.prod([num.shape[a] for a in np.atleast_1d(axis)])) if num.ndim else 1
        if num.dtype != object and bound(num) * max(n, 1) < _I64_SAFE:
            return Exact(num.sum(axis=axis, keepdims=keepdims), self.scale).normalized()
        return Exact(_fit(_obj(num).sum(axis=axis, keepdims=keepdims)), self.scale).normalized()


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer ``a @ b`` (numpy matmul broadcasting, ``b`` 2-D ``(K, N)``).

    Uses float64 BLAS when ``max|a| * max|b| * K < 2^53`` (every product and partial sum is an
    integer below 2^53, so no rounding happens in any summation order), else splits the wider
    operand into sign-magnitude high and low limbs (each narrower) and recombines exactly.
    """
    k = a.shape[-1]
    ba, bb = bound(a), bound(b)
    if ba == 0 or bb == 0:
        return np.zeros(a.shape[:-1] + b.shape[-1:], dtype=np.int64)
    if ba * bb * k < _F64_EXACT:
        out = np.matmul(a.astype(np.float64), b.astype(np.float64))
        return np.rint(out).astype(np.int64)
    if ba >= bb:  # ba >= 2 here, since ba, bb <= 1 would have fitted
        bits = ba.bit_length() // 2
        lo, hi = _split(a, bits)
        return _combine(exact_matmul(hi, b), exact_matmul(lo, b), bits)
    bits = bb.bit_length() // 2
    lo, hi = _split(b, bits)
    return _combine(exact_matmul(a, hi), exact_matmul(a, lo), bits)


def _split(a: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``a == hi * 2^bits + lo`` with ``|lo| < 2^bits``, ``|hi| <= |a| / 2^bits``, signs of ``a``."""
    mag = np.abs(_obj(a)) if a.dtype == object else np.abs(a.astype(np.int64))
    sign = np.sign(a).astype(np.int64)
    if mag.dtype == object:
        mask = (1 << bits) - 1
        lo = _fit(np.vectorize(lambda v: int(v) & mask, otypes=[object])(mag))
        hi = _fit(np.vectorize(lambda v: int(v) >> bits, otypes=[object])(mag))
    else:
        lo, hi = mag & np.int64((1 << bits) - 1), mag >> np.int64(bits)
    return int_binary(lo, sign, "mul"), int_binary(hi, sign, "mul")


def _combine(hi: np.ndarray, lo: np.ndarray, bits: int) -> np.ndarray:
    return int_binary(_scaled(hi, 1 << bits), lo, "add")
