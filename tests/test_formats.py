"""MinifloatFormat traits and rounding against independent oracles (ml_dtypes, exact fractions)."""

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brevitas_minifloat import MinifloatFormat
from tests.oracle import grid, round_exact
from tests.strategies import formats, interesting_values

ML_DTYPES = [
    "float8_e4m3fn", "float8_e5m2", "float8_e4m3", "float8_e3m4", "float8_e4m3fnuz", "float8_e5m2fnuz",
    "float8_e4m3b11fnuz", "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn",
]


@pytest.mark.parametrize("name", ML_DTYPES)
def test_grid_and_range_match_ml_dtypes(name):
    fmt = MinifloatFormat.parse(name)
    dt = getattr(ml_dtypes, name)
    info = ml_dtypes.finfo(dt)
    codes = np.arange(2 ** info.bits, dtype=np.uint16).astype(np.uint8 if info.bits <= 8 else np.uint16)
    all_values = codes.view(dt).astype(np.float64) if info.bits == 8 else None
    if all_values is None:  # sub-byte types: enumerate through float32 casts of our grid
        all_values = fmt.values().astype(dt).astype(np.float64)
    finite = np.unique(all_values[np.isfinite(all_values)])
    np.testing.assert_array_equal(fmt.values(), finite)
    assert fmt.max_value == float(info.max)
    assert fmt.min_normal == float(info.smallest_normal)
    assert fmt.min_subnormal == float(info.smallest_subnormal)
    assert fmt.ml_dtypes_name() == name


@pytest.mark.parametrize("name", ML_DTYPES)
def test_rounding_matches_ml_dtypes_bit_for_bit(name):
    fmt = MinifloatFormat.parse(name)
    dt = getattr(ml_dtypes, name)
    rng = np.random.default_rng(0)
    x = np.concatenate([
        interesting_values(fmt),
        (rng.standard_normal(200_000) * fmt.max_value / 4).astype(np.float32),
        (rng.standard_normal(20_000) * fmt.min_normal).astype(np.float32),
    ])
    x = x[np.isfinite(x) & (np.abs(x) <= fmt.max_value)]  # ml_dtypes overflows to NaN/Inf, we saturate
    ours = fmt.quantize(torch.from_numpy(x)).numpy()
    ref = x.astype(dt).astype(np.float32)
    np.testing.assert_array_equal(ours, ref)
    ours64 = fmt.quantize(torch.from_numpy(x.astype(np.float64))).numpy()
    np.testing.assert_array_equal(ours64, ref.astype(np.float64))


@settings(max_examples=120, deadline=None)
@given(fmt=formats(max_bits=12), data=st.data())
def test_rounding_matches_exact_rational_reference(fmt, data):
    xs = interesting_values(fmt)
    if len(xs) > 600:  # keep every special input, sample the rest
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        xs = np.concatenate([xs[-8:], rng.choice(xs[:-8], 600, replace=False)])
    extra = data.draw(st.lists(st.floats(-4 * fmt.max_value, 4 * fmt.max_value, width=32), max_size=20))
    xs = np.concatenate([xs, np.array(extra, dtype=np.float32)])
    args = (fmt.exponent_bits, fmt.mantissa_bits, fmt.bias, fmt.signed, fmt.subnormals, fmt.specials)
    expected = np.array([round_exact(float(x), *args) for x in xs], dtype=np.float64)
    for dtype in (torch.float32, torch.float64):
        got = fmt.quantize(torch.from_numpy(xs).to(dtype)).double().numpy()
        np.testing.assert_array_equal(got, expected, err_msg=f"{fmt.name} {dtype}")


@settings(max_examples=200, deadline=None)
@given(fmt=formats())
def test_traits_against_definition(fmt):
    g = grid(fmt.exponent_bits, fmt.mantissa_bits, fmt.bias, fmt.subnormals, fmt.specials)
    values = [Fraction(v) for v in fmt.values()]
    expected = sorted(set([-v for v in g] + list(g))) if fmt.signed else list(g)
    assert values == expected
    assert Fraction(fmt.max_value) == g[-1]
    assert Fraction(fmt.min_subnormal) == g[1]
    assert fmt.bit_width == int(fmt.signed) + fmt.exponent_bits + fmt.mantissa_bits
    # integer embedding: every value is an integer multiple of delta, within [integer_min, integer_max]
    k = [v / Fraction(fmt.delta) for v in values]
    assert all(q.denominator == 1 for q in k)
    assert list(fmt.integer_values()) == [int(q) for q in k]
    assert (fmt.integer_min, fmt.integer_max) == (int(min(k)), int(max(k)))
    lo, hi = (-(2 ** (fmt.integer_bit_width - 1)), 2 ** (fmt.integer_bit_width - 1) - 1) if fmt.signed else (0, 2**fmt.integer_bit_width - 1)
    assert lo <= fmt.integer_min and fmt.integer_max <= hi
    narrower = fmt.integer_bit_width - 1
    assert narrower == 0 or fmt.integer_max > (2 ** (narrower - 1) - 1 if fmt.signed else 2**narrower - 1)
    assert MinifloatFormat.parse(fmt.name) == fmt
    assert MinifloatFormat.parse(fmt.name.lower()) == fmt


@pytest.mark.parametrize(
    "name,kmax,dtype",
    [("E2M1", 12, "INT5"), ("E2M2", 28, "INT6"), ("E2M3", 60, "INT7"), ("E3M2", 448, "INT10"),
     ("E3M4", 1984, "INT12"), ("E2M5", 252, "INT9"), ("E4M3", 245760, "INT19"), ("E2M1_U", 12, "UINT4")],
)
def test_integer_embedding_table_of_design_doc(name, kmax, dtype):
    fmt = MinifloatFormat.parse(name)
    assert fmt.integer_max == kmax and fmt.integer_datatype == dtype


def test_integer_embedding_beyond_int64():
    fmt = MinifloatFormat(7, 0)
    k = fmt.integer_values()
    assert k[-1] == 2**126 and k[0] == -(2**126) and fmt.integer_bit_width == 128
    assert all(Fraction(int(a)) * Fraction(fmt.delta) == Fraction(v) for a, v in zip(k, fmt.values()))


def test_defaults_and_ocp():
    assert MinifloatFormat(4, 3).bias == 7
    assert MinifloatFormat(4, 3, specials="fnuz").bias == 8
    assert MinifloatFormat(4, 3, specials="ocp").specials == "fn"
    assert MinifloatFormat(5, 2, specials="ocp").specials == "ieee"
    assert MinifloatFormat(2, 1, specials="ocp").specials == "none"
    assert MinifloatFormat.parse("e4m3_ocp") == MinifloatFormat.parse("float8_e4m3fn")
    assert MinifloatFormat.parse("E3M2_U_NOSUB_B2") == MinifloatFormat(3, 2, bias=2, signed=False, subnormals=False)
    assert str(MinifloatFormat(3, 2, bias=2, signed=False, subnormals=False)) == "E3M2_U_NOSUB_B2"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(exponent_bits=0, mantissa_bits=3), "exponent_bits must be >= 1"),
        (dict(exponent_bits=3, mantissa_bits=-1), "mantissa_bits must be >= 0"),
        (dict(exponent_bits=8, mantissa_bits=8), "wider than 16 bits"),
        (dict(exponent_bits=3, mantissa_bits=2, bias=200), "too large"),
        (dict(exponent_bits=5, mantissa_bits=2, bias=-120), "too small"),
        (dict(exponent_bits=3, mantissa_bits=2, specials="weird"), "unknown specials"),
        (dict(exponent_bits=3, mantissa_bits=3, specials="ocp"), "ocp"),
        (dict(exponent_bits=1, mantissa_bits=0, specials="ieee"), "no finite non-zero value"),
        (dict(exponent_bits=1, mantissa_bits=0, specials="fn"), "no finite non-zero value"),
        (dict(exponent_bits=1, mantissa_bits=2, specials="ieee", subnormals=False), "no normal binade"),
        (dict(exponent_bits=2, mantissa_bits=1, specials="fnuz", signed=False), "signed"),
        (dict(exponent_bits=2.5, mantissa_bits=1), "integer"),
        (dict(exponent_bits=2, mantissa_bits=1, bias="1"), "bias must be an integer"),
    ],
)
def test_invalid_formats_raise_clear_errors(kwargs, message):
    e, m = kwargs.pop("exponent_bits"), kwargs.pop("mantissa_bits")
    with pytest.raises(ValueError, match=message):
        MinifloatFormat(e, m, **kwargs)


@pytest.mark.parametrize("text", ["E4", "INT8", "E2M1_X", "", "float8_e9m9", 42])
def test_parse_rejects_garbage(text):
    with pytest.raises(ValueError, match="minifloat format"):
        MinifloatFormat.parse(text)


def test_quantize_rejects_integer_tensors_and_keeps_input():
    fmt = MinifloatFormat.parse("E2M1")
    with pytest.raises(TypeError, match="floating-point"):
        fmt.quantize(torch.arange(4))
    x = torch.tensor([0.3, 7.0, -0.26])
    before = x.clone()
    fmt.quantize(x)
    assert torch.equal(x, before)


def test_quantize_non_contiguous_and_nan():
    fmt = MinifloatFormat.parse("E3M2")
    x = torch.randn(64, 32).t()
    assert torch.equal(fmt.quantize(x), fmt.quantize(x.contiguous()))
    out = fmt.quantize(torch.tensor([float("nan"), float("inf"), -float("inf")]))
    assert torch.isnan(out[0]) and out[1] == fmt.max_value and out[2] == -fmt.max_value
