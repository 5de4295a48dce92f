"""Native MVAU RTL: ordinal decode, exhaustive and folded RTL simulation against the exact reference
and an independent rational oracle, back-pressure, cycles, lint, refusals.

Simulation tests need Icarus Verilog, lint tests and the Verilator backend Verilator (markers of
``tests/conftest.py``). Exhaustive runs of the less common variants are ``slow``.
"""

from __future__ import annotations

from fractions import Fraction

import hashlib
import re

import numpy as np
import pytest
from onnx import helper
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.hw import sim as mac_sim
from brevitas_minifloat.hw.operands import as_operand, finite_codes, is_minifloat
from finn_transforms.native import sim
from finn_transforms.native.rtl import PIPELINE, REPLAY_BANK, NativeMvauRtl, ordinal_codes, ordinal_rule
from finn_transforms.native.spec import NativeMvauSpec, reference_mvau
from finn_transforms.native.vvau_rtl import NativeVvauRtl
from tests.oracle import decode, ordered_values
from tests.strategies import formats



def _traits(fmt: MinifloatFormat) -> tuple:
    return fmt.exponent_bits, fmt.mantissa_bits, fmt.bias, fmt.signed, fmt.subnormals, fmt.specials


def oracle_code_value(fmt, code: int) -> Fraction:
    """Value of a weight or input code from the format's definition (shares no code with the package)."""
    if not is_minifloat(fmt):
        return Fraction(code - 2**fmt.bits if fmt.signed and code >= 2 ** (fmt.bits - 1) else code)
    return decode(*_traits(fmt), code)


def oracle_element_value(fmt, element: int) -> Fraction:
    """Value of a stream element: an ordinal into the ascending finite values, or an integer."""
    return ordered_values(*_traits(fmt))[element] if is_minifloat(fmt) else Fraction(element)


def oracle_delta(fmt) -> Fraction:
    return Fraction(2) ** (1 - fmt.bias - fmt.mantissa_bits) if is_minifloat(fmt) else Fraction(1)


def elements(fmt) -> list[int]:
    """Every stream element of an input format."""
    if is_minifloat(fmt):
        return list(range(len(ordered_values(*_traits(fmt)))))
    return list(range(fmt.integer_min, fmt.integer_max + 1))


def zero_element(fmt) -> int:
    return ordered_values(*_traits(fmt)).index(0) if is_minifloat(fmt) else 0


def random_elements(fmt, shape, rng) -> np.ndarray:
    return rng.choice(np.array(elements(fmt)), size=shape)


def random_weights(spec: NativeMvauSpec, rng) -> np.ndarray:
    return rng.choice(np.array(finite_codes(spec.weight_format)), size=(spec.mh, spec.mw))


# ------------------------------------------------------------------------------ ordinal decode
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formats(max_exponent_bits=5, max_mantissa_bits=5, max_bits=9))
def test_ordinal_decode_rule_matches_the_oracle(fmt):
    """The closed form the RTL implements, ``code = {ord < Z, d ? d + GAP : 0}`` with
    ``d = |ord - Z|``, gives every ordinal the code of exactly its value, for any format."""
    z, gap = ordinal_rule(fmt)
    values = ordered_values(*_traits(fmt))
    sign = 2 ** (fmt.bit_width - 1) if fmt.signed else 0
    for o, value in enumerate(values):
        d = abs(o - z)
        code = (sign if o < z else 0) + (d + gap if d else 0)
        assert decode(*_traits(fmt), code) == value
    assert len(ordinal_codes(fmt)) == len(values)


# ------------------------------------------------------------------------------ exhaustive RTL simulation
def exhaustive_case(weight: str, act: str, pe: int, simd: int):
    """A layer seeing every (weight code, input element) pair as its own output: ``mw = 2``, column 0
    holds every finite weight code, column 1 the same reversed; each input vector is one element
    beside a zero, on either side."""
    codes = list(finite_codes(as_operand(weight)))
    codes += [0] * (-len(codes) % pe)
    spec = NativeMvauSpec(weight, act, mw=2, mh=len(codes), pe=pe, simd=simd)
    w = np.array([codes, codes[::-1]]).T
    z = zero_element(spec.input_format)
    x = np.array([[e, z] for e in elements(spec.input_format)] + [[z, e] for e in elements(spec.input_format)])
    return spec, w, x


def check_against_oracle(spec: NativeMvauSpec, w, x, outputs) -> None:
    """Every output equals the rational dot product of the oracle's values, in delta units."""
    unit = oracle_delta(spec.weight_format) * oracle_delta(spec.input_format)
    wv = {int(c): oracle_code_value(spec.weight_format, int(c)) / unit for c in np.unique(w)}
    xv = {int(e): oracle_element_value(spec.input_format, int(e)) for e in np.unique(x)}
    for b in range(x.shape[0]):
        nonzero = [(j, xv[int(e)]) for j, e in enumerate(x[b]) if xv[int(e)]]
        for r in range(spec.mh):
            exact = sum((wv[int(w[r, j])] * v for j, v in nonzero), Fraction(0))
            assert exact.denominator == 1 and outputs[b, r] == exact, (b, r, outputs[b, r], exact)


EXHAUSTIVE = [
    # (weight, input, pe, simd)
    ("E2M1", "E2M1", 2, 2),
    ("E2M3", "E2M3", 4, 1),
    ("E3M2", "E3M2", 4, 2),
    ("E4M3", "E4M3", 8, 2),
    ("E5M2", "E5M2", 16, 2),
    ("E3M0", "E3M0", 3, 2),  # M0: multiplier-free
    ("E2M1_NOSUB", "E2M1_NOSUB", 1, 1),  # flush to zero: ordinal gap
    ("E2M3", "E2M2_U", 4, 2),  # unsigned activations
    ("E4M3_FN", "E4M3_FN", 8, 2),  # OCP FP8: NaN code excluded
    ("E4M3", "INT8", 8, 2),  # integer inputs
    ("E2M1", "UINT4", 2, 1),
] + [
    pytest.param(*case, marks=pytest.mark.slow)
    for case in [
        ("E5M2_IEEE", "E5M2_IEEE", 16, 2),
        ("E4M3_NOSUB", "E4M3_NOSUB", 8, 2),
        ("E4M3_FNUZ", "E4M3_FNUZ", 8, 1),
        ("E3M1_U_NOSUB", "E3M1_U_NOSUB", 2, 2),
        ("E2M3_U", "E4M3_U", 4, 2),
        ("E1M2", "E7M0", 2, 2),
        ("E3M2_B1", "E2M1_B-2", 2, 1),
    ]
]


@pytest.mark.needs_simulator
@pytest.mark.parametrize("weight,act,pe,simd", EXHAUSTIVE)
def test_exhaustive_products(weight, act, pe, simd, tmp_path):
    spec, w, x = exhaustive_case(weight, act, pe, simd)
    run = sim.verify_layer(NativeMvauRtl(spec, w), x, workdir=tmp_path)
    check_against_oracle(spec, w, x, run.outputs)
    assert x.shape[0] * spec.mh >= 2 * len(finite_codes(spec.weight_format)) * len(elements(spec.input_format))


# ------------------------------------------------------------------------------ folded layers
FOLDED = [
    # (weight, input, mw, mh, pe, simd): random weights and inputs, random back-pressure
    ("E4M3", "E4M3", 24, 12, 3, 4),
    ("E5M2", "E5M2", 16, 8, 2, 8),
    ("E2M1", "INT4", 12, 6, 6, 3),
    ("E3M2", "E2M3_U", 20, 10, 5, 2),
    ("E4M3_FN", "E4M3_FN", 8, 8, 1, 1),
    ("E2M1", "E2M1", 32, 4, 4, 32),  # fully parallel: one cycle per vector
    ("E3M0", "E3M0_NOSUB", 9, 6, 2, 3),
    ("INT8", "INT8", 16, 8, 2, 4),  # the integer baseline on the same generator
]


@pytest.mark.needs_simulator
@pytest.mark.parametrize("weight,act,mw,mh,pe,simd", FOLDED)
def test_folded_layers_under_back_pressure(weight, act, mw, mh, pe, simd, tmp_path):
    rng = np.random.default_rng(mw * mh + pe)
    spec = NativeMvauSpec(weight, act, mw, mh, pe, simd)
    w, x = random_weights(spec, rng), random_elements(spec.input_format, (5, mw), rng)
    run = sim.verify_layer(NativeMvauRtl(spec, w), x, stall=0.4, seed=7, workdir=tmp_path)
    check_against_oracle(spec, w, x, run.outputs)
    assert run.cycles > run.expected_cycles  # the stalls really happened


#: Random layers over PE/SIMD foldings (``mw = sf * simd``, ``mh = nf * pe``; the VVAU tests too).
RANDOM_SETTINGS = settings(max_examples=8, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
RANDOM_LAYERS = dict(
    weight=st.sampled_from(["E2M1", "E3M2", "E4M3", "E2M3_NOSUB", "E3M1_U"]),
    act=st.sampled_from(["E2M1", "E4M3", "E2M2_U", "INT3", "UINT2", "E3M2_NOSUB"]),
    sf=st.integers(1, 3), simd=st.integers(1, 4), nf=st.integers(1, 3), pe=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)



def random_layer(weight: str, act: str, sf: int, simd: int, nf: int, pe: int, seed: int):
    """A layer of a `RANDOM_LAYERS` draw: its spec, random weights and the generator for its inputs."""
    rng = np.random.default_rng(seed)
    spec = NativeMvauSpec(weight, act, mw=sf * simd, mh=nf * pe, pe=pe, simd=simd)
    return spec, random_weights(spec, rng), rng


@pytest.mark.needs_simulator
@RANDOM_SETTINGS
@given(**RANDOM_LAYERS)
def test_random_foldings(weight, act, sf, simd, nf, pe, seed, tmp_path):
    spec, w, rng = random_layer(weight, act, sf, simd, nf, pe, seed)
    x = random_elements(spec.input_format, (3, spec.mw), rng)
    sim.verify_layer(NativeMvauRtl(spec, w), x, stall=0.3, seed=seed, workdir=tmp_path)


@pytest.mark.needs_simulator
def test_extreme_dot_products_fill_the_exact_accumulator(tmp_path):
    """Every product at the format's largest magnitude, both signs: the dot products reach the
    accumulator's bounds."""
    spec = NativeMvauSpec("E4M3", "E4M3", mw=64, mh=2, pe=1, simd=8)
    top = max(finite_codes(spec.weight_format), key=lambda c: oracle_code_value(spec.weight_format, c))
    w = np.array([[top] * 64, [top | 0x80] * 64])
    n = len(elements(spec.input_format))
    x = np.array([[n - 1] * 64, [0] * 64])
    run = sim.verify_layer(NativeMvauRtl(spec, w), x, workdir=tmp_path)
    assert run.outputs[0, 0] == 64 * spec.weight_format.integer_max**2
    assert run.outputs[0, 1] == -run.outputs[0, 0] == run.outputs[1, 0]


@pytest.mark.needs_simulator
def test_narrowed_accumulator(tmp_path):
    """An ``acc_bits`` below the exact width (weights that are known small): the MAC accumulates
    modulo 2^acc_bits and every output that fits is exact."""
    rng = np.random.default_rng(3)
    small = [c for c in finite_codes(as_operand("E4M3")) if abs(oracle_code_value(as_operand("E4M3"), c)) <= 1]
    spec = NativeMvauSpec("E4M3", "E2M1", mw=16, mh=4, pe=2, simd=4, acc_bits=16)
    w = rng.choice(small, size=(4, 16))
    x = random_elements(spec.input_format, (6, 16), rng)
    rtl = NativeMvauRtl(spec, w)
    assert rtl.mac.acc_bits == 16 < NativeMvauSpec("E4M3", "E2M1", mw=16, mh=4).acc_bits
    run = sim.verify_layer(rtl, x, workdir=tmp_path)
    check_against_oracle(spec, w, x, run.outputs)


# ------------------------------------------------------------------------------ cycles
@pytest.mark.needs_simulator
@pytest.mark.parametrize("mw,mh,pe,simd", [(1, 1, 1, 1), (4, 4, 1, 2), (6, 6, 2, 2), (12, 4, 4, 4), (10, 9, 3, 2)])
def test_cycles_without_back_pressure(mw, mh, pe, simd, tmp_path):
    """A batch streams at FINN's rate, NF * SF cycles per vector, plus the pipeline latency once."""
    rng = np.random.default_rng(0)
    spec = NativeMvauSpec("E4M3", "E4M3", mw, mh, pe, simd)
    batch = 7
    x = random_elements(spec.input_format, (batch, mw), rng)
    run = sim.verify_layer(NativeMvauRtl(spec, random_weights(spec, rng)), x, workdir=tmp_path)
    assert run.expected_cycles == batch * (mh // pe) * (mw // simd)
    assert run.cycles == run.expected_cycles + PIPELINE + 1


@pytest.mark.needs_simulator
def test_execute_native_layer_rtl(tmp_path):
    rng = np.random.default_rng(5)
    spec = NativeMvauSpec("E5M2", "E4M3", mw=8, mh=6, pe=3, simd=2)
    w, x = random_weights(spec, rng), random_elements(spec.input_format, (4, 8), rng)
    outputs, cycles = sim.execute_native_layer_rtl(spec, w, x)
    assert (outputs == reference_mvau(spec, w, x)).all()
    assert cycles == 4 * 2 * 4 + PIPELINE + 1


@pytest.mark.slow
@pytest.mark.needs_simulator("verilator")
def test_verilator_backend_agrees(tmp_path):
    rng = np.random.default_rng(9)
    spec = NativeMvauSpec("E4M3", "E4M3", mw=16, mh=8, pe=2, simd=4)
    w, x = random_weights(spec, rng), random_elements(spec.input_format, (4, 16), rng)
    run = sim.verify_layer(NativeMvauRtl(spec, w), x, stall=0.3, simulator="verilator", workdir=tmp_path)
    assert run.cycles > run.expected_cycles


# ------------------------------------------------------------------------------ long vectors: banked replay buffer
#: Layers replaying more than REPLAY_BANK beats: (weight, input, mw, mh, pe, simd). SF = 300 (banks of
#: 256 + 44 beats), 784 (3 x 256 + 16: the MLP's first layer fully folded), 257 (a last bank of one beat).
LONG = [("E2M1", "E2M1", 600, 4, 2, 2), ("E2M1", "INT3", 784, 2, 1, 1), ("E3M2", "E2M2_U", 257, 4, 2, 1)]


def replay_memories(verilog: str) -> dict[str, int]:
    """Words of every ``ibuf*`` memory declared in the Verilog (a plain register: 1)."""
    found = re.findall(r"reg  \[\d+:0\] (ibuf\d*)(?: \[0:(\d+)\])?;", verilog)
    return {name: int(last) + 1 if last else 1 for name, last in found}


@pytest.mark.parametrize("weight,act,mw,mh,pe,simd", LONG)
def test_long_vectors_are_kept_in_banks_no_deeper_than_yosys_maps(weight, act, mw, mh, pe, simd):
    spec = NativeMvauSpec(weight, act, mw, mh, pe, simd)
    memories = replay_memories(NativeMvauRtl(spec, random_weights(spec, np.random.default_rng(0))).verilog)
    sf = mw // simd
    assert len(memories) == -(-sf // 256) and max(memories.values()) <= 256 and sum(memories.values()) == sf


#: sha256 of the compute Verilog (weight ROMs as black boxes: what the native synthesis cache is keyed
#: by, `finn_transforms.native.cost.synthesis_key`) of layers replaying at most REPLAY_BANK beats, as the
#: generator wrote them before the buffer was banked (main at 9b69c98): banking must not change them.
UNBANKED_SHA256 = {
    ("mvau", "E4M3", "E4M3", 64, 32, 4, 8): "ddbbf28608ec08eea49c5e5dff3c1fb90644672e64c79fd829b5e8e0d853bc04",
    ("mvau", "E2M1", "E2M1", 256, 2, 1, 1): "a5bcf9fb28e643fb00f026fd155908ba98289b05064cc6aa0d6d310e47a3def7",
    ("mvau", "E2M1", "INT4", 4, 8, 2, 4): "c42ec541154f5db4f5203442a217973060e1e2b83144448d01352c81a72463b3",
    ("mvau", "E3M2", "E2M3_U", 20, 5, 5, 2): "ac71f8437cd8235b40a088cfdcf17076720be0d5ebd42344f37b70f92df2fabf",
    ("mvau", "E2M1", "E2M2_U", 800, 10, 1, 4): "77ea7e79df30ebe9bc5e7d5e735a7006423a9a3e9e3952e0d1f78f725fb6c7ef",
    ("vvau", "E4M3", "E4M3", 9, 8, 2, 3): "cf003c203f7a7ccfb072da5a6ec3b16f33b15583d7a712123340a5044cd283a7",
}


@pytest.mark.parametrize("layer", sorted(UNBANKED_SHA256))
def test_layers_of_one_replay_memory_keep_their_verilog(layer):
    unit, *args = layer
    spec = NativeMvauSpec(*args)
    generator = NativeVvauRtl if unit == "vvau" else NativeMvauRtl
    verilog = generator(spec, np.zeros((spec.mh, spec.mw), dtype=np.int64), blackbox_roms=True).verilog
    assert hashlib.sha256(verilog.encode()).hexdigest() == UNBANKED_SHA256[layer]
    assert spec.input_beats <= REPLAY_BANK
    if unit == "mvau" and spec.input_beats > 1 and spec.output_beats > 1:  # a replayed vector
        assert f" ibuf [0:{spec.input_beats - 1}];  // the current vector" in verilog


@pytest.mark.needs_simulator
@pytest.mark.parametrize("weight,act,mw,mh,pe,simd", LONG)
def test_long_vectors_replay_exactly_at_full_rate(weight, act, mw, mh, pe, simd, tmp_path):
    """The banked buffer replays every beat of its vector (random vectors, exact against the rational
    oracle) under back-pressure, and streams at FINN's rate without it, as one memory did."""
    rng = np.random.default_rng(mw)
    spec = NativeMvauSpec(weight, act, mw, mh, pe, simd)
    w, x = random_weights(spec, rng), random_elements(spec.input_format, (3, mw), rng)
    rtl = NativeMvauRtl(spec, w)
    run = sim.verify_layer(rtl, x, stall=0.4, seed=5, workdir=tmp_path)
    check_against_oracle(spec, w, x, run.outputs)
    assert run.cycles > run.expected_cycles
    free = sim.verify_layer(rtl, x, workdir=tmp_path)
    assert free.expected_cycles == 3 * (mh // pe) * (mw // simd)
    assert free.cycles == free.expected_cycles + PIPELINE + 1


# ------------------------------------------------------------------------------ the harness is not vacuous
@pytest.mark.needs_simulator
def test_verification_catches_a_wrong_ordinal_decode(tmp_path):
    spec, w, x = exhaustive_case("E2M1", "E2M1", 2, 2)
    rtl = NativeMvauRtl(spec, w)
    broken = rtl.verilog.replace("localparam [2:0] ZM = 3'd7;", "localparam [2:0] ZM = 3'd6;")
    assert broken != rtl.verilog
    rtl.__dict__["verilog"] = broken  # override the cached property on this instance only
    with pytest.raises(AssertionError, match="RTL"):
        sim.verify_layer(rtl, x, workdir=tmp_path)


@pytest.mark.needs_simulator
def test_verification_catches_a_wrong_fold_order(tmp_path):
    """Swap two PEs' ROMs: every shape check passes, the outputs are in the wrong place."""
    rng = np.random.default_rng(1)
    spec = NativeMvauSpec("E2M1", "E2M1", mw=4, mh=4, pe=2, simd=2)
    w = random_weights(spec, rng)
    rtl = NativeMvauRtl(spec, w)
    swapped = rtl.verilog.replace("u_wrom0 (", "u_tmp (").replace(f"{rtl.top}_wrom1 u_wrom1 (", f"{rtl.top}_wrom0 u_wrom1 (")
    swapped = swapped.replace(f"{rtl.top}_wrom0 u_tmp (", f"{rtl.top}_wrom1 u_wrom0 (")
    assert swapped != rtl.verilog and (w[0::2] != w[1::2]).any()
    rtl.__dict__["verilog"] = swapped
    with pytest.raises(AssertionError, match="RTL"):
        sim.verify_layer(rtl, random_elements(spec.input_format, (3, 4), rng), workdir=tmp_path)


# ------------------------------------------------------------------------------ lint
@pytest.mark.needs_simulator("verilator")
@pytest.mark.parametrize(
    "weight,act,mw,mh,pe,simd",
    [("E4M3", "E4M3", 8, 4, 2, 2), ("E2M1", "INT4", 6, 6, 3, 1), ("E2M1_NOSUB", "E2M1_NOSUB", 4, 4, 1, 4),
     ("E3M0", "E2M2_U", 4, 8, 4, 1), ("E4M3", "E4M3", 1, 1, 1, 1), ("E5M2", "UINT3", 3, 2, 1, 3),
     ("E2M1_U", "E4M3_FNUZ", 4, 2, 1, 1), ("INT8", "INT8", 8, 8, 8, 8), *LONG],
)
def test_generated_verilog_lints_clean(weight, act, mw, mh, pe, simd):
    spec = NativeMvauSpec(weight, act, mw, mh, pe, simd)
    rtl = NativeMvauRtl(spec, random_weights(spec, np.random.default_rng(0)))
    assert mac_sim.lint(rtl) == ""


def test_stream_widths_follow_finn():
    """TDATA widths are whole bytes of SIMD elements in and PE accumulators out; ROM words pack lane i
    at bits [i*WB +: WB] of row nf*PE + pe."""
    spec = NativeMvauSpec("E2M1", "E3M2", mw=6, mh=4, pe=2, simd=3)
    w = np.arange(24).reshape(4, 6) % 16
    rtl = NativeMvauRtl(spec, w)
    assert (rtl.input_width, rtl.output_width) == (24, 8 * -(-2 * spec.acc_bits // 8))
    words = rtl.rom_words(1)  # PE 1: rows 1 and 3
    assert words[0] == w[1, 0] | w[1, 1] << 4 | w[1, 2] << 8 and words[3] == w[3, 3] | w[3, 4] << 4 | w[3, 5] << 8
    for name in ("ap_clk", "ap_rst_n", "in0_V_TDATA", "in0_V_TVALID", "in0_V_TREADY", "out0_V_TDATA",
                 "out0_V_TVALID", "out0_V_TREADY"):
        assert f" {name}" in rtl.verilog


# ------------------------------------------------------------------------------ bad input
def test_bad_layers_are_refused_clearly():
    spec = NativeMvauSpec("E4M3_FN", "E4M3", mw=2, mh=2)
    with pytest.raises(ValueError, match="shape"):
        NativeMvauRtl(spec, np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match="not finite codes"):
        NativeMvauRtl(spec, np.array([[0x7F, 0], [0, 0]]))  # E4M3_FN's NaN
    with pytest.raises(ValueError, match="identifier"):
        NativeMvauRtl(spec, np.zeros((2, 2), dtype=int), top="9lives")
    with pytest.raises(ValueError, match="spec must be"):
        NativeMvauRtl({"mw": 2}, np.zeros((2, 2), dtype=int))


def test_weights_are_copied_not_modified():
    spec = NativeMvauSpec("E2M1", "E2M1", mw=2, mh=2, simd=2)
    w = np.array([[1, 2], [3, 4]])
    rtl = NativeMvauRtl(spec, w)
    w[0, 0] = 5
    assert rtl.weight_codes[0, 0] == 1 and rtl.rom_words(0)[0] == 1 | 2 << 4


@pytest.mark.needs_simulator
def test_bad_inputs_are_refused_clearly(tmp_path):
    spec = NativeMvauSpec("E2M1", "E2M1", mw=2, mh=2)
    rtl = NativeMvauRtl(spec, np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="ordinals of E2M1 lie in"):
        sim.simulate_layer(rtl, np.array([[0, 15]]), workdir=tmp_path)
    with pytest.raises(ValueError, match="mw = 2"):
        sim.simulate_layer(rtl, np.zeros((1, 3), dtype=int), workdir=tmp_path)
    with pytest.raises(ValueError, match="stall"):
        sim.simulate_layer(rtl, np.zeros((1, 2), dtype=int), stall=1.0, workdir=tmp_path)
    with pytest.raises(ValueError, match="simulator must be"):
        sim.simulate_layer(rtl, np.zeros((1, 2), dtype=int), simulator="modelsim", workdir=tmp_path)


def test_missing_simulator_names_the_install_command(monkeypatch):
    monkeypatch.setattr(mac_sim.shutil, "which", lambda tool: None)
    spec = NativeMvauSpec("E2M1", "E2M1", mw=2, mh=2)
    with pytest.raises(RuntimeError, match="apt-get install iverilog"):
        sim.execute_native_layer_rtl(spec, np.zeros((2, 2), dtype=int), np.zeros((1, 2), dtype=int), simulator="icarus")
    with pytest.raises(RuntimeError, match="apt-get install verilator"):
        sim.simulate_layer(NativeMvauRtl(spec, np.zeros((2, 2), dtype=int)), np.zeros((1, 2), dtype=int),
                           simulator="verilator")


# ------------------------------------------------------------------------------ verify's rtl stage
@pytest.mark.needs_finn
@pytest.mark.needs_simulator
def test_verify_rtl_stage_on_a_mixed_native_and_integer_model(tmp_path):
    """The native layer runs as RTL inside the chain (FINN's own MVAU beside it in Python) and the
    stage agrees with torch; its cycles are FINN's NF * SF per vector plus the pipeline latency."""
    import torch

    from finn_transforms.verify import verify
    from tests.helpers import mixed_model

    batch = 6
    report = verify(mixed_model(), torch.randn(batch, 16) * 3, tmp_path, mapping="native", rtl=True)
    names = [s.stage for s in report.stages]
    assert report.ok and names[names.index("hw") + 1] == "rtl", report.summary()
    assert len(report.rtl_cycles) == 1
    ((simulated, expected),) = report.rtl_cycles.values()
    assert expected > 0 and simulated == expected + batch * (PIPELINE + 1)  # one vector per sample


def wide_mixed_graph(w_native: np.ndarray, thresholds: np.ndarray, w_int: np.ndarray):
    """A HW graph ``MVAU_minifloat (E4M3 x E4M3, no activation) -> Thresholding (FINN's) -> MVAU
    (FINN's, INT24 weights)``: both accumulators exceed 2^24."""
    from onnx import TensorProto
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    import finn_transforms.native.hw_op  # noqa: F401  (registers MVAU_minifloat)
    from brevitas_minifloat.hw.rtl import accumulator_bits
    from finn_transforms.finn_defaults import HW_DOMAIN

    mh, mw = w_native.shape
    n_thr = thresholds.shape[1]
    acc_native = f"INT{accumulator_bits('E4M3', 'E4M3', mw)}"
    t_bits = int(n_thr).bit_length()
    nodes = [
        helper.make_node("MVAU_minifloat", ["x", "wn"], ["acc"], domain=HW_DOMAIN, backend="fpgadataflow", name="native",
                         MW=mw, MH=mh, PE=1, SIMD=1, inputDataType="UINT8", weightDataType="UINT8",
                         outputDataType=acc_native, accDataType=acc_native, noActivation=1, weightFormat="E4M3",
                         inputFormat="E4M3", numInputVectors=[1]),
        helper.make_node("Thresholding", ["acc", "thr"], ["t"], domain=HW_DOMAIN, backend="fpgadataflow", name="thr",
                         NumChannels=mh, PE=1, numSteps=n_thr, inputDataType=acc_native, weightDataType=acc_native,
                         outputDataType=f"UINT{t_bits}", ActVal=0, numInputVectors=[1]),
        helper.make_node("MVAU", ["t", "wi"], ["y"], domain=HW_DOMAIN, backend="fpgadataflow", name="integer",
                         MW=mh, MH=w_int.shape[1], PE=1, SIMD=1, inputDataType=f"UINT{t_bits}", weightDataType="INT24",
                         outputDataType="INT32", accDataType="INT32", noActivation=1, numInputVectors=[1],
                         binaryXnorMode=0, ActVal=0, mem_mode="internal_embedded"),
    ]
    shapes = {"x": [1, mw], "acc": [1, mh], "t": [1, mh], "y": [1, w_int.shape[1]]}
    info = {k: helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in shapes.items()}
    graph = helper.make_graph(nodes, "wide", [info["x"]], [info["y"]], value_info=[info["acc"], info["t"]])
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    for name, value in (("wn", w_native.T), ("thr", thresholds), ("wi", w_int)):
        model.set_initializer(name, np.asarray(value, dtype=np.float32))
    for name, dt in (("x", "UINT8"), ("acc", acc_native), ("t", f"UINT{t_bits}"), ("y", "INT32")):
        model.set_tensor_datatype(name, DataType[dt])
    return model


@pytest.mark.needs_finn
@pytest.mark.needs_simulator
def test_rtl_execution_is_exact_beyond_float32_in_native_and_finn_layers():
    """The rtl stage's executor: the native layer by RTL simulation, FINN's Thresholding and MVAU
    in exact integers. Both accumulators exceed 2^24, where FINN's float32 execution of its own
    MVAU rounds (checked: it differs); every output equals a rational oracle of the three layers."""
    from finn_transforms.hw_exec import execute_hw_graph
    from finn_transforms.native.rtl_exec import execute_rtl

    rng = np.random.default_rng(3)
    fmt = as_operand("E4M3")
    w_native = random_weights(NativeMvauSpec("E4M3", "E4M3", mw=4, mh=2), rng)
    unit = oracle_delta(fmt) ** 2
    thresholds = np.array([[0, 2**18, 2**22]] * 2)  # values 0, 1, 16 in units of delta^2 (float32-exact)
    w_int = np.array([[2**23 - 1], [2]])
    x = np.concatenate([random_elements(fmt, (12, 4), rng), [[elements(fmt)[-1]] * 4]])
    model = wide_mixed_graph(w_native, thresholds, w_int)

    got, floats, cycles = [], [], 0
    for row in x:
        run = execute_rtl(model, row[None].astype(np.float32))
        got.append(int(run.outputs["y"].as_integers().ravel()[0]))
        cycles += run.cycles["native"][0]
        floats.append(float(execute_hw_graph(model, row[None].astype(np.float32))["y"].ravel()[0]))
    want, wide = [], 0
    for row in x:
        acc = [sum((oracle_code_value(fmt, int(w_native[r, j])) * oracle_element_value(fmt, int(row[j]))
                    for j in range(4)), Fraction(0)) / unit for r in range(2)]
        wide += any(abs(a) > 2**24 for a in acc)
        t = [sum(int(a >= th) for th in thresholds[r]) for r, a in enumerate(acc)]
        want.append(sum(ti * int(w_int[r, 0]) for r, ti in enumerate(t)))
    assert got == want
    assert wide > 0 and max(abs(v) for v in want) > 2**24
    assert any(f != v for f, v in zip(floats, want)), "float32 execution was exact here: the test would not fail"
    assert cycles == len(x) * (2 * 4 + PIPELINE + 1)  # NF * SF per vector plus the pipeline latency


@pytest.mark.needs_finn
@pytest.mark.needs_simulator
def test_verify_rtl_stage_on_a_cnv_shaped_e4m3_cnn(tmp_path):
    """E4M3 weights and activations, no overrides: every convolution and the classifier run as RTL."""
    import torch

    from finn_transforms.verify import verify
    from tests.helpers import cnv_e4m3

    report = verify(cnv_e4m3((4, 8), 12), torch.randn(2, 1, 12, 12), tmp_path, mapping="native", rtl=True)
    assert report.ok and "rtl" in [s.stage for s in report.stages]
    assert len(report.rtl_cycles) == 3
    for simulated, expected in report.rtl_cycles.values():
        assert expected <= simulated <= expected + 2 * (PIPELINE + 1)


@pytest.mark.needs_finn
@pytest.mark.needs_simulator
def test_rtl_stage_catches_a_wrong_layer(tmp_path, monkeypatch):
    """Not vacuous: a native layer whose RTL computes something else makes the rtl stage disagree."""
    import torch

    from finn_transforms.native import rtl as rtl_module
    from finn_transforms.verify import VerificationError, verify
    from tests.helpers import mixed_model

    original = rtl_module.NativeMvauRtl.rom_words
    monkeypatch.setattr(rtl_module.NativeMvauRtl, "rom_words", lambda self, pe: [w ^ 1 for w in original(self, pe)])
    with pytest.raises(VerificationError, match="rtl"):
        verify(mixed_model(), torch.randn(4, 16) * 3, tmp_path, mapping="native", rtl=True)
