"""Generated MAC RTL: reference model, widths, lint, bit-exact simulation, Yosys cost API.

Simulation tests need Icarus Verilog, lint tests Verilator, cost tests Yosys; each is skipped with
the reason when its tool is missing. The full sweep (every 3..8-bit format pair at equal width,
both architectures, exhaustive) is ``@pytest.mark.slow``.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.hw import cost, sim
from brevitas_minifloat.hw.cache import JsonCache
from brevitas_minifloat.hw.operands import (
    IntegerFormat,
    as_operand,
    code_value,
    embedded_integer,
    finite_codes,
    formats_of_width,
    is_special,
    signed_bits,
)
from brevitas_minifloat.hw.rtl import MacUnit, accumulator_bits, product_bits


# Variants beyond the plain E/M splits: subnormals off, unsigned, specials, explicit bias.
VARIANTS = [
    "E2M1_NOSUB", "E3M2_NOSUB", "E4M3_NOSUB", "E2M3_U", "E3M1_U_NOSUB", "E4M3_FN", "E5M2_IEEE",
    "E4M3_FNUZ", "E3M2_B1", "E2M1_B-2", "E1M0",
]
ALL_SMALL = [f.name for n in range(3, 9) for f in formats_of_width(n)] + VARIANTS


# ------------------------------------------------------------------------------ reference model
@pytest.mark.parametrize("name", [n for n in ALL_SMALL if not n.startswith("INT")])
def test_code_values_are_exactly_the_format_grid(name):
    """Decoding every finite code gives exactly ``MinifloatFormat.values()`` (the source of truth),
    and every embedded integer is one of ``integer_values()``."""
    fmt = MinifloatFormat.parse(name)
    values = {code_value(fmt, c) for c in finite_codes(fmt)}
    assert values == {Fraction(v) for v in fmt.values()}
    ks = {embedded_integer(fmt, c) for c in finite_codes(fmt)}
    assert ks == {int(v / Fraction(fmt.delta)) for v in values}
    assert max(ks) == fmt.integer_max and min(ks) == fmt.integer_min
    if fmt.integer_bit_width <= 63:  # integer_values() is int64 (it overflows for E6M1, E7M0)
        assert ks == set(fmt.integer_values().tolist())


@pytest.mark.parametrize(
    "name", ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn"]
)
def test_code_values_match_ml_dtypes_bit_for_bit(name):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    fmt = MinifloatFormat.parse(name)
    dtype = getattr(ml_dtypes, name)
    n = fmt.bit_width
    codes = np.arange(2**n, dtype=np.uint8)
    decoded = codes.view(dtype).astype(np.float64)  # sub-byte types: one per byte, low bits
    for c in range(2**n):
        want = decoded[c]
        got = code_value(fmt, c)
        if np.isnan(want) or np.isinf(want):
            assert got is None, (name, c)
        else:
            assert got == Fraction(float(want)), (name, c)


def test_subnormals_off_decodes_exponent_zero_to_zero():
    fmt = MinifloatFormat.parse("E2M1_NOSUB")
    assert [code_value(fmt, c) for c in (0b0000, 0b0001, 0b1001)] == [0, 0, 0]
    assert embedded_integer(fmt, 0b0010) == 2  # 1.0 / delta(0.5)


def test_integer_operands():
    assert as_operand("INT4") == IntegerFormat(4)
    assert as_operand("uint8") == IntegerFormat(8, signed=False)
    assert [embedded_integer(IntegerFormat(3), c) for c in range(8)] == [0, 1, 2, 3, -4, -3, -2, -1]
    assert as_operand("E4M3") == MinifloatFormat(4, 3)
    with pytest.raises(ValueError, match="INT"):
        as_operand("FP8")


def test_special_codes_are_excluded():
    assert is_special(MinifloatFormat.parse("E4M3_FN"), 0x7F) and is_special(MinifloatFormat.parse("E4M3_FN"), 0xFF)
    assert len(finite_codes(MinifloatFormat.parse("E5M2_IEEE"))) == 256 - 8
    assert finite_codes(MinifloatFormat.parse("E4M3_FNUZ")).count(0x80) == 0


# ------------------------------------------------------------------------------ widths
@pytest.mark.parametrize("fan_in", [1, 2, 3, 64, 1000])
@pytest.mark.parametrize("w", ["INT4", "INT8", "UINT4", "E2M1", "E4M3", "E5M2", "E2M3_U", "E1M2"])
@pytest.mark.parametrize("a", ["INT4", "UINT8", "E2M1", "E4M3", "E3M2_NOSUB"])
def test_accumulator_width_formula(w, a, fan_in):
    w, a = as_operand(w), as_operand(a)
    kb = [signed_bits(f.integer_min, f.integer_max) for f in (w, a)]
    pb = product_bits(w, a)
    symmetric = any(isinstance(f, MinifloatFormat) and f.signed for f in (w, a))
    if symmetric:
        assert pb <= kb[0] + kb[1] - 1
    if all(isinstance(f, IntegerFormat) and f.signed for f in (w, a)):
        assert pb == kb[0] + kb[1]
    acc = accumulator_bits(w, a, fan_in)
    assert acc <= pb + math.ceil(math.log2(fan_in))
    # tight: the extreme dot product needs every bit
    lo = min(x * y for x in (w.integer_min, w.integer_max) for y in (a.integer_min, a.integer_max))
    hi = max(x * y for x in (w.integer_min, w.integer_max) for y in (a.integer_min, a.integer_max))
    assert -(2 ** (acc - 1)) <= fan_in * lo and fan_in * hi < 2 ** (acc - 1)
    assert not (-(2 ** (acc - 2)) <= fan_in * lo and fan_in * hi < 2 ** (acc - 2))


def test_mac_unit_validates_parameters():
    with pytest.raises(ValueError, match="multiple of simd"):
        MacUnit("INT4", "INT4", fan_in=10, simd=4)
    with pytest.raises(ValueError, match="arch"):
        MacUnit("INT4", "INT4", arch="booth")
    with pytest.raises(ValueError, match="identifier"):
        MacUnit("INT4", "INT4", top="1bad")
    assert MacUnit("E2M1_B-2", "INT4").top == "mac_e2m1_bm2_x_int4_f64_s1_decode"


# ------------------------------------------------------------------------------ lint
@pytest.mark.needs_simulator("verilator")
@pytest.mark.parametrize(
    "w,a,simd,arch",
    [
        ("INT4", "INT4", 1, "decode"),
        ("E4M3", "E4M3", 4, "shift"),
        ("E4M3", "UINT8", 2, "decode"),
        ("E1M2", "E2M1_NOSUB", 1, "shift"),
        ("E1M2", "INT3", 1, "decode"),
        ("E2M3_U", "E5M2", 3, "shift"),
    ],
)
def test_generated_verilog_lints_clean(w, a, simd, arch):
    assert sim.lint(MacUnit(w, a, fan_in=12 * simd, simd=simd, arch=arch)) == ""


# ------------------------------------------------------------------------------ simulation
DEFAULT_UNITS = [
    # (weight, act, simd, arch): exhaustive pairs + extreme runs + random dot products each
    ("INT8", "INT8", 1, "decode"),
    ("E4M3", "E4M3", 1, "decode"),
    ("E4M3", "E4M3", 1, "shift"),
    ("E5M2", "INT8", 1, "shift"),
    ("E4M3_NOSUB", "UINT4", 1, "decode"),
    ("E2M1", "E2M1", 1, "decode"),
    ("E2M1", "E2M1", 4, "shift"),
    ("E3M2_NOSUB", "E2M3", 2, "shift"),
    ("E2M3_U", "E3M1_U_NOSUB", 1, "shift"),
    ("E1M2", "INT4", 1, "shift"),
    ("E5M2_IEEE", "E2M1", 1, "shift"),
    ("E4M3_FN", "E3M2", 1, "decode"),
    ("E4M3_FNUZ", "INT4", 3, "decode"),
    ("E3M2_B1", "E2M1_B-2", 1, "decode"),
    ("E7M0", "INT4", 1, "shift"),
]


@pytest.mark.needs_simulator
@pytest.mark.parametrize("w,a,simd,arch", DEFAULT_UNITS)
def test_rtl_is_bit_exact(w, a, simd, arch, tmp_path):
    unit = MacUnit(w, a, fan_in=16 * simd, simd=simd, arch=arch)
    result = sim.verify_unit(unit, random_runs=10, workdir=tmp_path)
    assert result.products >= len(finite_codes(unit.weight)) * len(finite_codes(unit.act))


@pytest.mark.needs_simulator
@pytest.mark.parametrize("w,a,arch", [("E4M3", "E4M3", "shift"), ("E2M1", "INT8", "decode")])
def test_long_random_accumulation(w, a, arch, tmp_path):
    """Dot products of length 4096 (1024 beats of 4 lanes), random codes and extremes."""
    unit = MacUnit(w, a, fan_in=4096, simd=4, arch=arch)
    beats = sim.concat(sim.extreme_dot_products(unit), sim.random_dot_products(unit, 8, seed=1))
    result = sim.verify(unit, beats, workdir=tmp_path)
    assert result.dot_products == 10


@pytest.mark.needs_simulator
def test_verification_catches_a_wrong_decoder(tmp_path):
    """The harness is not vacuous: break subnormal decoding and it must fail."""
    unit = MacUnit("E2M1", "INT4", fan_in=4, arch="decode")
    broken = unit.verilog.replace("wire [1:0] mag = {normal, f};", "wire [1:0] mag = {1'b1, f};")
    assert broken != unit.verilog
    unit.__dict__["verilog"] = broken  # override the cached property on this instance only
    with pytest.raises(AssertionError, match="RTL acc"):
        sim.verify_unit(unit, random_runs=1, workdir=tmp_path)


@pytest.mark.needs_simulator
def test_verification_catches_a_narrow_accumulator(tmp_path):
    unit = MacUnit("INT4", "INT4", fan_in=64, arch="decode")
    narrow = unit.verilog.replace(f"localparam ACCB = {unit.acc_bits};", f"localparam ACCB = {unit.acc_bits - 1};")
    narrow = narrow.replace(f"output reg  signed [{unit.acc_bits - 1}:0] acc", f"output reg  signed [{unit.acc_bits - 2}:0] acc")
    narrow = narrow.replace("{{6{dot_r[DB-1]}}, dot_r}", "{{5{dot_r[DB-1]}}, dot_r}")
    unit.__dict__["verilog"] = narrow
    with pytest.raises(AssertionError):
        sim.verify(unit, sim.extreme_dot_products(unit), workdir=tmp_path)


@pytest.mark.needs_simulator
def test_narrowed_accumulator_wraps_like_its_reference(tmp_path):
    """``acc_width`` below the exact width: sums wrap modulo 2^acc_width in RTL and reference alike
    (extreme runs overflow it), and the unit's name and cache description say so."""
    unit = MacUnit("E4M3", "E4M3", fan_in=16, simd=2, arch="shift", acc_width=20)
    assert unit.acc_bits == 20 < accumulator_bits("E4M3", "E4M3", 16) and unit.top.endswith("_acc20")
    assert unit.describe()["acc_width"] == 20 and "acc_width" not in MacUnit("E4M3", "E4M3").describe()
    sim.verify_unit(unit, random_runs=5, workdir=tmp_path)
    with pytest.raises(ValueError, match="acc_width"):
        MacUnit("INT4", "INT4", fan_in=4, acc_width=99)


@pytest.mark.slow
@pytest.mark.needs_simulator
@pytest.mark.parametrize("bits", range(3, 9))
def test_every_equal_width_pair_is_bit_exact(bits, tmp_path):
    """Every (weight, act) pair of the 3..8-bit formats at equal width, both architectures,
    exhaustive over code pairs plus extreme and random runs (fan-in 16)."""
    fmts = formats_of_width(bits)
    for w in fmts:
        for a in fmts:
            for arch in ("decode", "shift"):
                sim.verify_unit(MacUnit(w, a, fan_in=16, arch=arch), random_runs=5, workdir=tmp_path)


# ------------------------------------------------------------------------------ cost
def test_summarize_cells():
    cells = {"LUT2": 3, "LUT6": 4, "INV": 1, "CARRY4": 2, "CARRY8": 1, "FDRE": 5, "FDSE": 1,
             "DSP48E2": 1, "MUXF7": 2, "MUXF8": 1, "BUFG": 1}
    s = cost.summarize_cells(cells)
    assert (s["LUT"], s["CARRY"], s["FF"], s["DSP"], s["MUXF"], s["other"]) == (8, 3, 6, 1, 3, 0)
    memories = cost.summarize_cells({"RAMB18E2": 2, "RAMB36E2": 3, "RAM64X1D": 4, "RAM32M16": 1, "URAM288": 1,
                                     "SRL16E": 2})
    assert (memories["RAMB18"], memories["RAMB36"], memories["BRAM18"]) == (2, 3, 8)
    assert (memories["LUTRAM"], memories["URAM"], memories["SRL"], memories["other"]) == (5, 1, 2, 0)


@pytest.mark.needs_yosys
def test_mac_cost_and_json_cache(tmp_path):
    # a foreign entry already sits where the result belongs: it must be ignored, never trusted
    key = cost._cache_key(MacUnit("INT2", "E1M0", fan_in=4), "xcup", False)
    JsonCache(tmp_path).path(key, cost._cache_name(key)).write_text(json.dumps({"key": {"other": 1}, "result": {"LUT": -1}}))
    first = cost.mac_cost("INT2", "E1M0", fan_in=4, cache_dir=tmp_path)
    assert not first["cached"] and first["LUT"] > 0 and first["DSP"] == 0 and first["LUT_per_MAC"] == first["LUT"]
    assert first["FF"] == first["acc_bits"] + first["product_bits"] + 2  # acc, product register, 2 control bits
    again = cost.mac_cost("INT2", "E1M0", fan_in=4, cache_dir=tmp_path)
    assert again["cached"] and {k: again[k] for k in ("LUT", "CARRY", "FF")} == {k: first[k] for k in ("LUT", "CARRY", "FF")}
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    stored = json.loads(files[0].read_text())  # plain JSON, key stored with the result
    assert stored["key"] == key and stored["key"]["unit"]["fan_in"] == 4 and "Yosys" in stored["key"]["yosys"]
    # any parameter change misses the cache
    for other in (cost._cache_key(MacUnit("INT2", "E1M0", fan_in=8), "xcup", False),
                  cost._cache_key(MacUnit("INT2", "E1M0", fan_in=4), "xcup", True)):
        assert JsonCache(tmp_path).path(other, cost._cache_name(other)) != files[0]


def test_finn_formula_transcription():
    est = cost.finn_mvau_lut_estimate("INT4", "INT4", fan_in=64)
    # 300 + 1.1 * ((2*2-1)*8 + 8 + 14)
    assert est["LUT"] == 350 and est["W"] == 4
    assert cost.finn_mvau_lut_estimate("E2M1", "E2M1")["W"] == 5  # the INT5 embedding FINN sees


@pytest.mark.needs_finn
@pytest.mark.parametrize("w,a,simd,mw", [("INT4", "INT4", 1, 64), ("E4M3", "INT8", 4, 256), ("E2M1", "UINT4", 2, 32)])
def test_finn_formula_matches_finn(w, a, simd, mw):
    import finn.custom_op.fpgadataflow.hls  # noqa: F401  (registers MVAU_hls)
    onnx_helper = pytest.importorskip("onnx.helper")
    from qonnx.custom_op.registry import getCustomOp

    wb, _ = cost.finn_datatype(w)
    ab, a_signed = cost.finn_datatype(a)
    node = onnx_helper.make_node(
        "MVAU_hls", ["x", "w"], ["y"], domain="finn.custom_op.fpgadataflow.hls",
        PE=1, SIMD=simd, MW=mw, MH=16, inputDataType=f"{'INT' if a_signed else 'UINT'}{ab}",
        weightDataType=f"INT{wb}", outputDataType="INT32", noActivation=1, resType="lut",
        accDataType=f"INT{accumulator_bits(w, a, mw)}", mem_mode="internal_decoupled", ram_style="block",
    )
    assert getCustomOp(node).lut_estimation("xcvu9p") == cost.finn_mvau_lut_estimate(w, a, fan_in=mw, simd=simd)["LUT"]


def test_table_sweep_and_rendering_without_yosys(tmp_path, monkeypatch):
    """The sweep/render/plot plumbing on fake synthesis results (Yosys itself is tested above)."""
    from brevitas_minifloat.hw import sweep
    from tests.helpers import load_script

    script = load_script("mac_cost_table")

    def fake_costs(jobs, **_):
        return [{"LUT": 10 * (i + 1), "LUT_per_MAC": 10.0 * (i + 1) / j["simd"], "CARRY": 1, "FF": 2, "DSP": 0,
                 "MUXF": 0, "acc_bits": 12, "product_bits": 6, "seconds": 1.0, "cpu_seconds": 0.5, "cached": False}
                for i, j in enumerate(jobs)]

    monkeypatch.setattr(sweep, "mac_costs", fake_costs)
    monkeypatch.setattr(sweep, "yosys_version", lambda: "Yosys test")
    result = sweep.build([3, 4], max_decode_product_bits=8)
    # 3 bits: 9 pairs -> 9 decode + 8 shift; 4 bits: 16 pairs, decode E3M0 x E3M0 (14-bit product) etc. skipped
    assert any("skipped" in r for r in result["main"])
    assert {r["arch"] for r in result["dsp"]} == {"decode", "shift"}
    md = script.render_markdown(result)
    assert "### 3 bits" in md and "| **E2M0** |" in md and "not synthesized" in md
    script.plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
