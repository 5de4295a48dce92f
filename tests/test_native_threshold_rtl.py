"""Wide thresholding RTL: exhaustive simulation of small input types against a Python-int count
written here, 72-bit inputs at every threshold's ties (where float64 fails), property tests under
back-pressure, cycles, FINN's memory geometry, lint, refusals.

Simulation tests need Icarus Verilog, lint Verilator (markers of ``tests/conftest.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brevitas_minifloat.hw import sim as mac_sim
from finn_transforms.native.threshold_rtl import (
    WideThresholdingRtl,
    execute_wide_thresholding_rtl,
    simulate_wide_thresholding,
    verify_wide_thresholding,
)


def int_range(name: str) -> tuple[int, int]:
    """``[min, max]`` of ``INT<n>`` / ``UINT<n>`` from the name alone."""
    bits = int(name.lstrip("UINT"))
    return (0, 2**bits - 1) if name.startswith("U") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def output_type(act_val: int, n: int) -> str:
    """The narrowest ``INT`` / ``UINT`` holding ``act_val .. act_val + n`` (FINN's outputDataType rule)."""
    bits = 1
    while True:
        name = f"INT{bits}" if act_val < 0 else f"UINT{bits}"
        lo, hi = int_range(name)
        if lo <= act_val and act_val + n <= hi:
            return name
        bits += 1


def oracle(thresholds, x, act_val: int) -> list[list[int]]:
    """``act_val + #{j : x >= T[c][j]}`` by counting, one row per channel or one shared."""
    rows = [list(r) for r in thresholds]
    return [[act_val + sum(1 for t in rows[c % len(rows)] if xi >= t) for c, xi in enumerate(v)] for v in x]


def random_thresholds(rng, rows: int, n: int, lo: int, hi: int) -> list[list[int]]:
    """Sorted rows drawn from ``[lo - 4, hi + 4]`` (duplicates likely); row 0 reaches below ``lo``
    and above ``hi`` and repeats a value."""
    out = [sorted(int(v) for v in rng.integers(lo - 4, hi + 5, size=n)) for _ in range(rows)]
    if n >= 3:
        out[0][0], out[0][-1] = min(out[0][0], lo - 3), max(out[0][-1], hi + 2)
        out[0][1] = out[0][2]
    return out


def every_value_in_every_channel(lo: int, hi: int, channels: int) -> list[list[int]]:
    """Vector ``v`` holds ``lo + (v + c) mod (hi - lo + 1)`` in channel ``c``: each channel sees every value."""
    span = hi - lo + 1
    return [[lo + (v + c) % span for c in range(channels)] for v in range(span)]


EXHAUSTIVE = [
    # (input type, channels, PE, N, shared thresholds, act_val)
    ("INT6", 4, 2, 5, False, 0),
    ("INT6", 6, 3, 7, True, -4),  # N = 2^3 - 1: no padding
    ("INT6", 2, 1, 40, False, -20),
    ("INT6", 3, 3, 64, False, 0),  # more thresholds than input values
    ("UINT5", 3, 1, 12, False, 0),
    ("UINT5", 4, 4, 1, True, 0),  # one stage
    ("UINT5", 2, 2, 31, False, 3),
    ("UINT5", 6, 2, 9, True, -9),
]


@pytest.mark.needs_simulator
@pytest.mark.parametrize("idt,channels,pe,n,shared,act_val", EXHAUSTIVE)
def test_every_input_value_counts_exactly(idt, channels, pe, n, shared, act_val, tmp_path):
    lo, hi = int_range(idt)
    rng = np.random.default_rng(channels * 100 + n)
    t = random_thresholds(rng, 1 if shared else channels, n, lo, hi)
    if n >= 3:  # not vacuous: below / above the input range and a repeat
        assert t[0][0] < lo and t[0][-1] > hi and t[0][1] == t[0][2]
    x = every_value_in_every_channel(lo, hi, channels)
    rtl = WideThresholdingRtl(t, channels, pe, idt, output_type(act_val, n), act_val)
    run = verify_wide_thresholding(rtl, x, workdir=tmp_path)
    assert run.outputs.tolist() == oracle(t, x, act_val)
    beats = len(x) * channels // pe
    assert run.expected_cycles == beats and run.cycles == beats + rtl.latency
    assert rtl.latency == (n).bit_length() + 1


# 72-bit thresholds with odd low bits: neighbours T - 1, T, T + 1 are one float64 (spacing 2^19 there)
WIDE = [2**71 - 2**30 + 7, 2**71 - 3, 2**70 + 5, 2**53 + 1, -(2**70) - 3, -(2**71) + 1, 2**71 + 1, -(2**71) - 5]


@pytest.mark.needs_simulator
@pytest.mark.parametrize("idt,pe,act_val,shared", [("INT72", 2, 0, False), ("INT72", 1, -5, True), ("UINT74", 2, 1, False)])
def test_wide_inputs_at_every_threshold_and_its_neighbours(idt, pe, act_val, shared, tmp_path):
    lo, hi = int_range(idt)
    base = sorted(WIDE if lo < 0 else [abs(v) for v in WIDE] + [2**73 - 1, 2**74 + 3])
    channels = 2
    t = [base] if shared else [sorted(v + 3 * c for v in base) for c in range(channels)]
    assert any(float(v - 1) == float(v) == float(v + 1) for v in base)  # float64 cannot tell these apart
    cols = [sorted({min(max(v + d, lo), hi) for v in t[c % len(t)] for d in (-1, 0, 1)}) for c in range(channels)]
    k = max(len(c) for c in cols)
    x = [[cols[c][min(i, len(cols[c]) - 1)] for c in range(channels)] for i in range(k)]
    rtl = WideThresholdingRtl(t, channels, pe, idt, output_type(act_val, len(base)), act_val)
    assert rtl.threshold_bits == int(idt.lstrip("UINT")) + 1
    run = verify_wide_thresholding(rtl, x, stall=0.3, workdir=tmp_path)
    assert run.outputs.tolist() == oracle(t, x, act_val)


@st.composite
def layers(draw, max_channels: int = 6, max_n: int = 20, max_bits: int = 80):
    signed = draw(st.booleans())
    bits = draw(st.integers(2, max_bits))
    idt = f"INT{bits}" if signed else f"UINT{bits}"
    lo, hi = int_range(idt)
    channels = draw(st.integers(1, max_channels))
    pe = draw(st.sampled_from([d for d in range(1, channels + 1) if channels % d == 0]))
    n = draw(st.integers(1, max_n))
    rows = draw(st.sampled_from([1, channels]))
    near = st.one_of(st.integers(lo - 3, lo + 3), st.integers(hi - 3, hi + 3), st.integers(lo - 2**bits, hi + 2**bits))
    t = [sorted(draw(st.lists(near, min_size=n, max_size=n))) for _ in range(rows)]
    act_val = draw(st.integers(-n - 2, 3))
    ties = sorted({min(max(v + d, lo), hi) for r in t for v in r for d in (-1, 0, 1)})
    vectors = draw(st.integers(1, 4))
    x = [[draw(st.sampled_from(ties)) for _ in range(channels)] for _ in range(vectors)]
    return t, channels, pe, idt, act_val, x


def _check_layer(layer, stall: float, seed: int, tmp_path) -> None:
    t, channels, pe, idt, act_val, x = layer
    rtl = WideThresholdingRtl(t, channels, pe, idt, output_type(act_val, len(t[0])), act_val)
    run = simulate_wide_thresholding(rtl, x, stall=stall, seed=seed, workdir=tmp_path)
    assert run.outputs.tolist() == oracle(t, x, act_val)
    if stall == 0:
        assert run.cycles == len(x) * channels // pe + rtl.latency


@pytest.mark.needs_simulator
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(layer=layers(), stall=st.sampled_from([0.0, 0.3, 0.6]), seed=st.integers(1, 1000))
def test_random_layers_under_back_pressure(layer, stall, seed, tmp_path):
    _check_layer(layer, stall, seed, tmp_path)


@pytest.mark.slow
@pytest.mark.needs_simulator
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(layer=layers(max_channels=32, max_n=300, max_bits=96), stall=st.sampled_from([0.0, 0.5]), seed=st.integers(1, 1000))
def test_bigger_random_layers_under_back_pressure(layer, stall, seed, tmp_path):
    _check_layer(layer, stall, seed, tmp_path)


@pytest.mark.needs_simulator
def test_execute_for_the_rtl_stage_and_verilator_agree(tmp_path):
    t = [[-(2**40) + 1, -3, 0, 0, 2**45 + 1]]
    x = [[-(2**40), -(2**40) + 1, -4, -3], [0, 1, 2**45, 2**45 + 1], [2**46 - 1, -(2**46), 5, -1]]
    y, cycles = execute_wide_thresholding_rtl(t, 2, x, "INT47", "INT3", -2)
    assert y.tolist() == oracle(t, x, -2) and cycles == 3 * 2 + 4
    if mac_sim.lint_missing() is None:
        rtl = WideThresholdingRtl(t, 4, 2, "INT47", "INT3", -2)
        run = simulate_wide_thresholding(rtl, x, stall=0.4, simulator="verilator", workdir=tmp_path)
        assert run.outputs.tolist() == y.tolist()


@pytest.mark.needs_simulator
def test_verification_catches_a_wrong_threshold(tmp_path):
    """Not vacuous: one ROM word off by one is found and named (at its tie)."""
    rtl = WideThresholdingRtl([[2**60 + 1, 2**61 + 1, 2**62 + 1]], 1, 1, "INT64", "UINT2")
    word = f"65'h{2**61 + 1:017x}"
    assert word in rtl.verilog
    rtl.__dict__["verilog"] = rtl.verilog.replace(word, f"65'h{2**61 + 2:017x}")
    with pytest.raises(AssertionError, match=rf"x = {2**61 + 1}\): RTL 1, count 2"):
        verify_wide_thresholding(rtl, [[2**61 + 1]], workdir=tmp_path)


@pytest.mark.needs_simulator("verilator")
@pytest.mark.parametrize(
    "t,channels,pe,idt,odt,act_val",
    [
        ([[-3, 0, 0, 5, 40], [1, 2, 3, 4, 5], [-100, -100, 7, 8, 9], [0, 1, 2, 3, 31]], 4, 2, "INT6", "INT4", -2),
        ([[3]], 3, 1, "UINT5", "UINT1", 0),
        ([[2**71 - 3, 2**71 - 1, 2**71 + 1]] * 2, 2, 1, "INT72", "UINT2", 0),
        ([list(range(10))] * 6, 6, 3, "UINT8", "UINT4", 0),
        ([list(range(0, 255, 2))], 8, 8, "UINT8", "UINT8", 0),
    ],
)
def test_generated_verilog_lints_clean(t, channels, pe, idt, odt, act_val):
    assert mac_sim.lint(WideThresholdingRtl([sorted(r) for r in t], channels, pe, idt, odt, act_val)) == ""


@pytest.mark.needs_finn
@pytest.mark.parametrize("channels,pe,n,shared", [(6, 3, 7, False), (8, 2, 15, False), (4, 4, 3, False), (6, 2, 31, True)])
def test_memory_is_finns_thresholding_rtl_geometry(channels, pe, n, shared):
    """Per stage ``s`` and PE: ``NumChannels / PE * 2^s`` words of the weight width (``N = 2^k - 1``,
    ``ActVal 0``: FINN's stage count ``outputDataType`` bits is ours); shared thresholds: one fold,
    as FINN's RTL generator (``C = PE``)."""
    import onnx.helper as oh
    from qonnx.custom_op.registry import getCustomOp

    t = [list(range(n))] * (1 if shared else channels)
    rtl = WideThresholdingRtl(t, channels, pe, "INT9", output_type(0, n), 0)
    node = oh.make_node(
        "Thresholding_rtl", ["x", "t"], ["y"], domain="finn.custom_op.fpgadataflow.rtl", NumChannels=pe if shared else channels,
        PE=pe, numSteps=n, inputDataType="INT9", weightDataType="INT10", outputDataType=output_type(0, n), ActVal=0,
        numInputVectors=[1],
    )
    assert rtl.mem_geometries() == [(w, int(d)) for w, d in getCustomOp(node).get_pe_mem_geometries()]
    assert [len(rtl.rom_words(s, 0)) for s in range(rtl.stages)] == [d for _, d in rtl.mem_geometries()]


def test_stream_contract_and_refusals(tmp_path):
    rtl = WideThresholdingRtl([[1, 2, 3]] * 6, 6, 3, "INT72", "UINT2")
    assert (rtl.input_width, rtl.output_width, rtl.threshold_bits, rtl.stages, rtl.latency) == (216, 8, 73, 2, 3)
    assert rtl.padded()[0] == [1, 2, 3] and WideThresholdingRtl([[-9, 9]], 1, 1, "INT4", "UINT2").padded() == [[-8, 8, 8]]
    for name in ("ap_clk", "ap_rst_n", "in0_V_TDATA", "in0_V_TVALID", "in0_V_TREADY", "out0_V_TDATA",
                 "out0_V_TVALID", "out0_V_TREADY"):
        assert name in rtl.verilog
    bad = [
        (([[1, 2]], 6, 4, "INT8", "UINT2", 0), r"pe \(4\) must divide channels \(6\)"),
        (([[1, 2]], 0, 1, "INT8", "UINT2", 0), "channels must be a positive integer"),
        (([[2, 1]], 2, 1, "INT8", "UINT2", 0), r"row 0 must be sorted ascending: T\[0\] = 2 > T\[1\] = 1"),
        (([[1, 2]] * 3, 2, 1, "INT8", "UINT2", 0), r"rows 1 or channels \(2\), got shape \(3, 2\)"),
        (([1, 2], 2, 1, "INT8", "UINT2", 0), "must be a \\(rows, N >= 1\\) array"),
        (([[]], 2, 1, "INT8", "UINT2", 0), "must be a \\(rows, N >= 1\\) array"),
        (([[1.5, 2]], 1, 1, "INT8", "UINT2", 0), r"threshold \[0\]\[0\] must be an integer"),
        (([[1, True]], 1, 1, "INT8", "UINT2", 0), r"threshold \[0\]\[1\] must be an integer"),
        (([[1, 2, 3]], 1, 1, "INT8", "UINT1", 0), r"BINARY must hold act_val .. act_val \+ N = 0 .. 3 \(e.g. UINT2\)"),
        (([[1, 2, 3]], 1, 1, "INT8", "UINT2", -1), r"-1 .. 2 \(e.g. INT3\)"),
        (([[1, 2]], 1, 1, "FLOAT32", "UINT2", 0), "input_dt must be a qonnx integer DataType"),
        (([[1, 2]], 1, 1, "BIPOLAR", "UINT2", 0), "not BIPOLAR"),
        (([[1, 2]], 1, 1, "INT8", "NOPE", 0), "output_dt must be a qonnx integer DataType"),
        (([[1, 2]], 1, 1, "INT8", "UINT2", 0.5), "act_val must be an integer"),
    ]
    for args, match in bad:
        with pytest.raises(ValueError, match=match):
            WideThresholdingRtl(*args)
    with pytest.raises(ValueError, match="Verilog identifier"):
        WideThresholdingRtl([[1]], 1, 1, "INT8", "UINT1", top="1bad")
    with pytest.raises(ValueError, match=r"x\[0, 1\] = 128 is outside INT8 \[-128, 127\]"):
        simulate_wide_thresholding(WideThresholdingRtl([[1]], 2, 1, "INT8", "UINT1"), [[0, 128]], workdir=tmp_path)
    with pytest.raises(ValueError, match="channels = 2"):
        simulate_wide_thresholding(WideThresholdingRtl([[1]], 2, 1, "INT8", "UINT1"), [[0, 1, 2]], workdir=tmp_path)
    with pytest.raises(ValueError, match=r"x\[0, 0\] must be an integer"):
        simulate_wide_thresholding(WideThresholdingRtl([[1]], 1, 1, "INT8", "UINT1"), [[0.0]], workdir=tmp_path)
