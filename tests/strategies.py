"""Hypothesis strategies for formats and for inputs that hit ties, saturation and tiny values."""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from brevitas_minifloat import MinifloatFormat


@st.composite
def formats(draw, max_exponent_bits: int = 5, max_mantissa_bits: int = 6, min_bits: int = 2, max_bits: int = 16):
    e = draw(st.integers(1, max_exponent_bits))
    m = draw(st.integers(0, max_mantissa_bits))
    signed = draw(st.booleans())
    specials = draw(st.sampled_from(["none", "ieee", "fn", "fnuz"] if signed else ["none", "ieee", "fn"]))
    default = 2 ** (e - 1) if specials == "fnuz" else 2 ** (e - 1) - 1
    bias = draw(st.integers(default - 3, default + 3))
    subnormals = draw(st.booleans())
    assume(min_bits <= int(signed) + e + m <= max_bits)
    try:
        return MinifloatFormat(e, m, bias=bias, signed=signed, subnormals=subnormals, specials=specials)
    except ValueError:
        assume(False)


def interesting_values(fmt: MinifloatFormat) -> np.ndarray:
    """float32 grid values, exact midpoints (ties), their float32 neighbours, saturation and specials."""
    v = fmt.values().astype(np.float32)
    mids = ((fmt.values()[1:] + fmt.values()[:-1]) / 2).astype(np.float32)
    up, down = np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf))
    extra = np.array(
        [0.0, -0.0, fmt.max_value * 1.5, -fmt.max_value * 1.5, np.inf, -np.inf, np.nan, fmt.min_subnormal / 3],
        dtype=np.float32,
    )
    return np.concatenate([v, -v, mids, -mids, up, down, -up, -down, extra]).astype(np.float32)
