"""Exactness of the MultiThreshold thresholds against `MinifloatFormat.quantize`.

Both sides are monotone step functions of x, so agreeing on every threshold and on the float32 just
below it proves agreement on all float32 inputs; we check the neighbourhood nextafter -2..+2.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from qonnx.custom_op.general.multithreshold import multithreshold

from brevitas_minifloat.formats import MinifloatFormat
from finn_transforms.thresholds import (
    minifloat_thresholds,
    multithreshold_reference,
    pair_thresholds,
    quantize_scaled,
    threshold_count,
)

F32 = np.float32
SPECIAL_POINTS = np.array(
    [0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 1e-40, -1e-40, 1.1754944e-38, np.finfo(F32).max, -np.finfo(F32).max],
    dtype=F32,
)


def make_format(e, m, signed, subnormals, specials="none", bias_offset=0) -> MinifloatFormat | None:
    try:
        fmt = MinifloatFormat(e, m, signed=signed, subnormals=subnormals, specials=specials)
        if bias_offset:
            fmt = MinifloatFormat(
                e, m, bias=fmt.bias + bias_offset, signed=signed, subnormals=subnormals, specials=specials
            )
        return fmt
    except ValueError:
        return None


def neighbours(t: np.ndarray, radius: int = 2) -> np.ndarray:
    out = [t]
    up, down = t, t
    for _ in range(radius):
        up = np.nextafter(up, F32(np.inf))
        down = np.nextafter(down, F32(-np.inf))
        out += [up, down]
    return np.concatenate(out)


def expected_k(fmt: MinifloatFormat, x: np.ndarray, s: np.float32) -> np.ndarray:
    q = quantize_scaled(fmt, x, s).astype(np.float64)
    k = q / fmt.delta  # delta is a power of two: exact
    assert np.array_equal(k, np.rint(k))
    return k


def check_exact(fmt: MinifloatFormat, scale) -> int:
    """Check every threshold neighbourhood of every channel; return the number of points checked."""
    scale = np.asarray(scale, dtype=F32).reshape(-1)
    T, jumps = pair_thresholds(fmt, scale)
    assert T.dtype == F32 and T.shape == (scale.size, len(fmt.values()) - 1)
    assert jumps.sum() == threshold_count(fmt)
    assert np.all(np.diff(T, axis=1) >= 0)
    checked = 0
    for c, s in enumerate(scale):
        x = np.concatenate([neighbours(T[c]), SPECIAL_POINTS, (fmt.values() * np.float64(s)).astype(F32)])
        k_mt = fmt.integer_min + (x[:, None] >= T[c][None, :]).astype(np.int64) @ jumps
        np.testing.assert_array_equal(k_mt, expected_k(fmt, x, s), err_msg=f"{fmt.name} scale {s!r}")
        # each threshold is the *smallest* float32 reaching its upper value
        q_at = quantize_scaled(fmt, T[c], s)
        q_below = quantize_scaled(fmt, np.nextafter(T[c], F32(-np.inf)), s)
        upper = fmt.values()[1:].astype(F32)
        assert np.all(q_at >= upper) and np.all(q_below < upper)
        checked += x.size
    return checked


ALL_FORMATS = [
    f
    for e, m, signed, sub, specials in itertools.product(
        range(1, 6), range(0, 5), (True, False), (True, False), ("none", "fn", "ieee")
    )
    if (f := make_format(e, m, signed, sub, specials)) is not None
]
SCALES = [F32(1.0), F32(0.3), F32(2.0**-7), F32(3.7e-5), F32(1234.5678), np.array([0.1, 1.0, 7.25, 2.0**5], F32)]


def test_format_sweep_is_exact():
    """Every E1..E5 x M0..M4 x signed/unsigned x subnormals on/off x specials, six scales."""
    points = 0
    for fmt in ALL_FORMATS:
        for s in SCALES:
            points += check_exact(fmt, s)
    assert len(ALL_FORMATS) >= 200 and points > 10**6


@st.composite
def formats(draw):
    fmt = make_format(
        draw(st.integers(1, 5)),
        draw(st.integers(0, 4)),
        draw(st.booleans()),
        draw(st.booleans()),
        draw(st.sampled_from(["none", "none", "fn", "ieee"])),
        draw(st.integers(-3, 3)),
    )
    assume(fmt is not None)
    return fmt


float_scales = st.floats(2.0**-20, 2.0**20, allow_nan=False, allow_infinity=False, width=32)
pot_scales = st.integers(-24, 24).map(lambda p: F32(2.0**p))
scales = st.one_of(
    float_scales.map(F32),
    pot_scales,
    st.lists(st.one_of(float_scales, pot_scales), min_size=1, max_size=5).map(lambda v: np.array(v, F32)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=formats(), scale=scales)
def test_thresholds_exact_hypothesis(fmt, scale):
    check_exact(fmt, scale)


@settings(max_examples=60, deadline=None)
@given(fmt=formats(), scale=scales, data=st.data())
def test_qonnx_multithreshold_matches_quantizer(fmt, scale, data):
    """The full (repeated) threshold matrix through qonnx's own MultiThreshold kernel."""
    assume(threshold_count(fmt) <= 4096)
    scale = np.asarray(scale, F32).reshape(-1)
    T = minifloat_thresholds(fmt, scale)
    assert T.shape == (scale.size, threshold_count(fmt))
    # Points: threshold neighbourhoods of channel 0 plus random values, in every channel.
    rnd = data.draw(st.lists(st.floats(-1e4, 1e4, width=32), min_size=1, max_size=50))
    pts = np.concatenate([neighbours(np.unique(T[0])), np.array(rnd, F32), SPECIAL_POINTS])
    x = np.repeat(pts[:, None], scale.size, axis=1)  # (N, C)
    got = multithreshold(x, T, out_bias=fmt.integer_min)
    want = np.stack([expected_k(fmt, x[:, c], scale[c]) for c in range(scale.size)], axis=1)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(multithreshold_reference(x, T, fmt.integer_min), want)


def test_ties_go_to_even():
    fmt = MinifloatFormat.parse("E2M1")  # grid 0 .5 1 1.5 2 3 4 6
    T = minifloat_thresholds(fmt, 1.0)[0]
    k = lambda x: multithreshold_reference(np.array([[x]], F32), T[None], fmt.integer_min)[0, 0]  # noqa: E731
    assert k(0.25) == 0  # tie 0 / 0.5 -> 0 (even)
    assert k(0.75) == 2  # tie 0.5 / 1 -> 1 (even) = k 2
    assert k(2.5) == 4  # tie 2 / 3 -> 2 (even)
    assert k(3.5) == 8  # tie 3 / 4 -> 4 (even)
    assert k(5.0) == 8 and k(np.nextafter(F32(5), F32(9))) == 12  # tie 4 / 6 -> 4
    assert k(-0.25) == 0 and k(-0.75) == -2 and k(100.0) == 12 and k(-100.0) == -12


def test_unsigned_and_flush_to_zero():
    u = MinifloatFormat.parse("E2M1_U")
    T = minifloat_thresholds(u, 1.0)[0]
    assert T.size == 12 and T[0] > 0.25  # ties to 0 at 0.25
    assert multithreshold_reference(np.array([[-7.0]], F32), T[None])[0, 0] == 0
    ftz = MinifloatFormat.parse("E3M2_NOSUB")  # min normal 0.25, delta 1/16: k jumps 0 -> 4
    T, jumps = pair_thresholds(ftz, 1.0)
    mid = ftz.values().tolist().index(0.0)
    assert jumps[mid] == 4 and T[0, mid] == np.nextafter(F32(0.125), F32(1))  # 0.125 ties to 0


def test_refusals():
    with pytest.raises(ValueError, match="positive"):
        minifloat_thresholds("E2M1", 0.0)
    with pytest.raises(ValueError, match="positive"):
        minifloat_thresholds("E2M1", np.array([1.0, -1.0], F32))
    with pytest.raises(ValueError, match="overflow"):
        minifloat_thresholds("E5M2", F32(1e35))


def test_threshold_counts():
    counts = {n: threshold_count(n) for n in ("E2M1", "E2M2", "E2M3", "E3M2", "E3M4", "E2M5", "E4M3")}
    assert counts == {"E2M1": 24, "E2M2": 56, "E2M3": 120, "E3M2": 896, "E3M4": 3968, "E2M5": 504, "E4M3": 491520}
