"""brevitas_minifloat.numformat: one parser, one unsigned rule, one list of formats per width, and
the one decision which codes are NaN/Inf, shared by the zoo, PTQ and the hardware models."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brevitas_minifloat import MinifloatFormat
from brevitas_minifloat.hw.operands import finite_codes
from brevitas_minifloat.numformat import IntegerFormat, formats_of_width, parse_format, signed, unsigned
from brevitas_minifloat.ptq.spec import QuantSpec, formats_for_bits
from brevitas_minifloat.quant.minifloat import _special_codes
from brevitas_minifloat.zoo import parse_spec
from tests.strategies import formats


@given(formats())
def test_minifloat_names_round_trip(fmt):
    assert parse_format(fmt.name) == fmt and parse_format(fmt) is fmt


@given(st.integers(1, 32), st.booleans())
def test_integer_names_round_trip(bits, is_signed):
    if is_signed and bits == 1:
        with pytest.raises(ValueError, match="at least 2 bits"):
            IntegerFormat(1)
        return
    fmt = IntegerFormat(bits, is_signed)
    assert parse_format(fmt.name) == fmt == parse_format(fmt.name.lower())
    assert (fmt.integer_min, fmt.integer_max) == ((-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if is_signed else (0, 2**bits - 1))


@pytest.mark.parametrize("bad", ["INT0", "INT33", "UINT0", "E9M9", "fp8", "", 4, None])
def test_parse_errors_are_value_errors(bad):
    with pytest.raises(ValueError):
        parse_format(bad)


@settings(max_examples=200)
@given(formats(max_bits=15))
def test_unsigned_keeps_the_width_and_refines_the_grid(fmt):
    u = unsigned(fmt)
    assert u.bit_width == fmt.bit_width and not u.signed and u.subnormals == fmt.subnormals
    if not fmt.signed:
        assert u is fmt
    elif fmt.specials != "fnuz":  # fnuz has no unsigned form: its unsigned variant is 'none' with its own bias
        assert u.exponent_bits == fmt.exponent_bits and u.mantissa_bits == fmt.mantissa_bits + 1
        assert u.bias == fmt.bias and signed(u) == fmt
        positive = fmt.values()[fmt.values() >= 0]
        assert np.isin(positive, u.values()).all()  # every non-negative value stays representable


def test_the_rule_on_examples():
    assert [unsigned(n).name for n in ("E2M1", "E4M3", "E4M3_FN", "INT4", "E3M2_NOSUB", "E2M2_U")] == [
        "E2M2_U", "E4M4_U", "E4M4_U_FN", "UINT4", "E3M3_U_NOSUB", "E2M2_U"]
    assert signed("UINT8").name == "INT8" and signed("E2M2_U").name == "E2M1"
    with pytest.raises(ValueError, match="no signed variant"):
        signed("E3M0_U")


@pytest.mark.parametrize("name", ["E2M1", "E3M2", "E4M3", "E2M3_NOSUB", "INT4", "INT8", "E5M2_IEEE"])
def test_zoo_ptq_and_numformat_agree_on_the_unsigned_format(name):
    want = unsigned(name).name
    assert QuantSpec.parse(name).unsigned().name == want
    assert parse_spec(name).unsigned_name() == want


def test_formats_of_width():
    assert [f.name for f in formats_of_width(4)] == ["INT4", "E1M2", "E2M1", "E3M0"]
    assert [f.name for f in formats_of_width(6, ("minifloat",), min_exponent=2, max_exponent=3)] == ["E2M3", "E3M2"]
    assert formats_for_bits(5) == [f.name for f in formats_of_width(5)]
    for bits in range(2, 9):
        assert all(f.bit_width == bits and f.signed for f in formats_of_width(bits))
    with pytest.raises(ValueError, match="unknown format kinds"):
        formats_of_width(4, ("fixed",))


def _ml_dtypes_formats():
    out = []
    for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3", "float8_e3m4", "float8_e4m3fnuz", "float8_e5m2fnuz",
                 "float8_e4m3b11fnuz", "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn"):
        if hasattr(ml_dtypes, name):
            out.append(name)
    return out


@pytest.mark.parametrize("name", _ml_dtypes_formats())
def test_special_codes_match_ml_dtypes(name):
    """The one decision of which codes are NaN/Inf, against ml_dtypes' own decoding of every code."""
    fmt = MinifloatFormat.parse(name)
    dtype = np.dtype(getattr(ml_dtypes, name))
    codes = np.arange(2**fmt.bit_width, dtype=np.uint8)  # sub-byte types read the low bits
    values = codes.view(dtype).astype(np.float64)
    kinds = [fmt.special_kind(int(c)) for c in codes]
    assert kinds == ["nan" if np.isnan(v) else "inf" if np.isinf(v) else None for v in values]
    assert len(finite_codes(fmt)) == int(np.isfinite(values).sum())


@pytest.mark.parametrize("name, inf, nan", [
    ("E4M3_FN", None, ("111",)),
    ("E5M2_IEEE", ("00",), ("01", "10", "11")),
    ("E3M0_IEEE", ("",), None),
    ("E4M3_FNUZ", None, None),  # its NaN is the negative-zero code, not in the top binade
    ("E4M3", None, None),
])
def test_brevitas_special_description_derives_from_the_format(name, inf, nan):
    assert _special_codes(MinifloatFormat.parse(name)) == (inf, nan)
