"""The contract shared by the native minifloat MVAU's HW op, its Python execution and its RTL.

Stream encoding (FINN's MVAU conventions, so FINN's data-layout and folding passes apply):

- **inputs**: a minifloat activation travels as its *ordinal*, the index of its value in
  ``fmt.values()`` (every finite value, ascending, zero once): the n-bit output of an
  ordinal-threshold ``MultiThreshold``/``Thresholding`` layer. Integer activations travel as the
  integer itself (two's complement or unsigned).
- **weights**: stored as the weight format's codes (bit layout sign | exponent | mantissa); an
  integer weight format (codes = two's complement or unsigned integers) describes the integer layer
  of the same shape and folding, the baseline a native layer's cost is compared with.
- **output**: the exact dot product in units of ``delta_w * delta_a`` (the integer embedding units;
  ``delta = 1`` for integers), a signed ``acc_bits`` integer.
- **folding**: an input vector of ``mw`` elements arrives as ``mw / simd`` beats of ``simd`` elements
  (element ``i`` of beat ``j`` is ``x[j * simd + i]``); the ``mh`` outputs leave as ``mh / pe`` beats of
  ``pe`` elements (element ``p`` of beat ``n`` is output ``n * pe + p``), FINN's MVAU order.

``reference_mvau`` is the exact oracle (Python integers) both the Python execution and the RTL
simulation are checked against; ``reference_vvau`` that of the depthwise layer (`finn_transforms.native.vvau`),
which is described by the same spec with ``mw = K`` kernel elements and ``mh`` channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.hw.operands import Operand, as_operand, embedded_table, is_minifloat
from brevitas_minifloat.hw.rtl import accumulator_bits


@lru_cache(maxsize=256)
def ordinal_embedded(fmt: Operand) -> tuple[int, ...]:
    """Embedded integer (``value / delta``) of every ordinal of a minifloat format, ascending."""
    if not is_minifloat(fmt):
        raise ValueError(f"{fmt} is an integer format: integers travel as themselves, not as ordinals")
    d = Fraction(fmt.delta)
    out = []
    for v in fmt.values():
        k = Fraction(float(v)) / d
        if k.denominator != 1:
            raise AssertionError(f"{fmt.name}: value {v} is not a multiple of delta {d}")
        out.append(int(k))
    return tuple(out)


def ordinal_bits(fmt: MinifloatFormat) -> int:
    """Unsigned width of an ordinal: ``ceil(log2(len(values())))`` (8 for E4M3: 255 values)."""
    return max(1, (len(fmt.values()) - 1).bit_length())


@dataclass(frozen=True)
class NativeMvauSpec:
    """One native minifloat matrix-vector layer: ``y = W x`` with ``W`` of shape ``(mh, mw)``."""

    weight_format: Operand
    input_format: Operand
    mw: int
    mh: int
    pe: int = 1
    simd: int = 1
    acc_bits: int | None = None  # None: wide enough for any dot product of length mw (exact)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight_format", as_operand(self.weight_format))
        object.__setattr__(self, "input_format", as_operand(self.input_format))
        for name in ("mw", "mh", "pe", "simd"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.mw % self.simd:
            raise ValueError(f"mw ({self.mw}) must be a multiple of simd ({self.simd})")
        if self.mh % self.pe:
            raise ValueError(f"mh ({self.mh}) must be a multiple of pe ({self.pe})")
        exact = accumulator_bits(self.weight_format, self.input_format, self.mw)
        if self.acc_bits is None:
            object.__setattr__(self, "acc_bits", exact)

    @property
    def input_bits(self) -> int:
        """Bits of one input element on the stream (ordinal or integer)."""
        if is_minifloat(self.input_format):
            return ordinal_bits(self.input_format)
        return self.input_format.bit_width

    @property
    def weight_bits(self) -> int:
        return self.weight_format.bit_width

    @property
    def input_beats(self) -> int:
        return self.mw // self.simd

    @property
    def output_beats(self) -> int:
        return self.mh // self.pe

    def input_embedded(self, x) -> np.ndarray:
        """Stream elements (ordinals or integers) -> embedded integers (object array)."""
        x = np.asarray(x)
        if is_minifloat(self.input_format):
            table = ordinal_embedded(self.input_format)
            if x.size and (x.min() < 0 or x.max() >= len(table)):
                raise ValueError(f"ordinals of {self.input_format.name} lie in [0, {len(table) - 1}]")
            return np.vectorize(lambda o: table[int(o)], otypes=[object])(x)
        lo, hi = self.input_format.integer_min, self.input_format.integer_max
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"{self.input_format.name} inputs lie in [{lo}, {hi}]")
        return x.astype(object)

    def weight_embedded(self, codes) -> np.ndarray:
        """Weight codes (mh, mw) -> embedded integers (object array); NaN/Inf codes are refused."""
        codes = np.asarray(codes)
        if codes.shape != (self.mh, self.mw):
            raise ValueError(f"weight codes must have shape (mh, mw) = {(self.mh, self.mw)}, got {codes.shape}")
        table = embedded_table(self.weight_format)
        bad = sorted({int(c) for c in codes.flat} - set(table))
        if bad:
            raise ValueError(f"weight codes {bad[:5]} are not finite codes of {self.weight_format.name}")
        return np.vectorize(lambda c: table[int(c)], otypes=[object])(codes)


def reference_mvau(spec: NativeMvauSpec, weight_codes, inputs) -> np.ndarray:
    """Exact ``(batch, mh)`` dot products (Python ints) of stream inputs ``(batch, mw)``."""
    w = spec.weight_embedded(weight_codes)
    x = spec.input_embedded(np.atleast_2d(inputs))
    if x.shape[-1] != spec.mw:
        raise ValueError(f"inputs must have mw = {spec.mw} elements in the last axis, got {x.shape}")
    return check_accumulator(spec, x @ w.T)


def reference_vvau(spec: NativeMvauSpec, weight_codes, windows) -> np.ndarray:
    """Exact ``(batch, mh)`` depthwise dot products (Python ints): channel ``c`` of window ``b`` is
    ``sum_k W[c, k] * windows[b, k, c]``, windows ``(batch, mw = K, mh = channels)`` of stream elements."""
    w = spec.weight_embedded(weight_codes)
    x = spec.input_embedded(np.asarray(windows))
    if x.ndim != 3 or x.shape[1:] != (spec.mw, spec.mh):
        raise ValueError(f"windows must have shape (batch, K = {spec.mw}, channels = {spec.mh}), got {x.shape}")
    return check_accumulator(spec, (x * w.T).sum(axis=1))


def check_accumulator(spec: NativeMvauSpec, y: np.ndarray) -> np.ndarray:
    """``y`` itself, or ``OverflowError`` when a dot product does not fit ``spec.acc_bits`` (signed)."""
    bound = 2 ** (spec.acc_bits - 1)
    if y.size and (min(y.flat) < -bound or max(y.flat) >= bound):
        raise OverflowError(f"a dot product does not fit the {spec.acc_bits}-bit accumulator")
    return y
