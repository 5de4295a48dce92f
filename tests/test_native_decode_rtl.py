"""OrdinalLUT RTL: exhaustive simulation (every ordinal in every PE lane) against an independent
rational oracle, back-pressure, cycles, lint, refusals, the rtl stage of ``verify`` on a model with a
hardware decode, and the layer's cost (synthesis vs the table count).

Simulation tests need Icarus Verilog, lint Verilator, synthesis Yosys (markers of ``tests/conftest.py``).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.hw import sim as mac_sim
from finn_transforms.native.decode_rtl import (
    LATENCY,
    OrdinalLutRtl,
    execute_ordinal_lut_rtl,
    simulate_ordinal_lut,
    verify_ordinal_lut,
)
from tests.oracle import ordered_values


def _traits(fmt: MinifloatFormat) -> tuple:
    return fmt.exponent_bits, fmt.mantissa_bits, fmt.bias, fmt.signed, fmt.subnormals, fmt.specials


def oracle_decoded(fmt: MinifloatFormat) -> list[int]:
    """``value / delta`` of every ordinal from the format's definition (shares no code with the package)."""
    delta = Fraction(2) ** (1 - fmt.bias - fmt.mantissa_bits)
    out = [v / delta for v in ordered_values(*_traits(fmt))]
    assert all(k.denominator == 1 for k in out)
    return [int(k) for k in out]


def every_ordinal_in_every_lane(n: int, pe: int) -> np.ndarray:
    """Vectors of ``pe * n`` channels: beat ``j`` of vector 0 holds ordinal ``j`` in every lane, of
    vector 1 ordinal ``(j + lane) % n`` in lane ``lane``, vector 2 is vector 1 reversed."""
    lanes = np.arange(pe)
    beats = np.arange(n)[:, None]
    v0 = np.broadcast_to(beats, (n, pe)).ravel()
    v1 = ((beats + lanes) % n).ravel()
    return np.stack([v0, v1, v1[::-1]])


EXHAUSTIVE = [
    # (format, PE)
    ("E2M1", 1),
    ("E2M1", 4),
    ("E2M3", 3),
    ("E3M2", 2),
    ("E4M3", 1),
    ("E4M3", 4),
    ("E5M2", 2),  # decodes to 34-bit integers
    ("E3M0", 2),  # M0
    ("E2M1_NOSUB", 3),  # flush to zero
    ("E2M2_U", 2),  # unsigned
    ("E5M3_U", 1),  # unsigned, 256 ordinals (every address), UINT34
    ("E4M3_FN", 2),  # OCP FP8: the NaN codes have no ordinal
    ("E4M3", 8),
    ("E5M2", 5),
    ("E5M2_IEEE", 3),  # Inf / NaN codes have no ordinal
    ("E4M3_NOSUB", 2),
    ("E4M3_FNUZ", 1),
    ("E3M1_U_NOSUB", 4),  # unsigned and flush to zero
    ("E7M0", 2),  # INT129: value / delta up to 2^128
    ("E3M2_B1", 1),  # non-default bias
]


@pytest.mark.needs_simulator
@pytest.mark.parametrize("fmt,pe", EXHAUSTIVE)
def test_every_ordinal_decodes_exactly_in_every_lane(fmt, pe, tmp_path):
    fmt = MinifloatFormat.parse(fmt)
    want = oracle_decoded(fmt)
    n = len(want)
    rtl = OrdinalLutRtl(fmt, pe * n, pe)
    x = every_ordinal_in_every_lane(n, pe)
    run = verify_ordinal_lut(rtl, x, workdir=tmp_path)
    assert [[want[o] for o in row] for row in x] == run.outputs.tolist()
    assert run.expected_cycles == 3 * n and run.cycles == run.expected_cycles + LATENCY
    assert {(c % pe, o) for row in x for c, o in enumerate(row)} == {(lane, o) for lane in range(pe) for o in range(n)}


@pytest.mark.needs_simulator
@pytest.mark.parametrize("fmt,channels,pe,stall", [("E4M3", 12, 3, 0.4), ("E5M2", 8, 8, 0.6), ("E2M1", 6, 1, 0.2)])
def test_random_streams_under_back_pressure(fmt, channels, pe, stall, tmp_path):
    """Random stalls on both sides: every output still arrives, exact and in order."""
    fmt = MinifloatFormat.parse(fmt)
    want = oracle_decoded(fmt)
    rng = np.random.default_rng(channels * pe)
    x = rng.integers(0, len(want), size=(9, channels))
    run = verify_ordinal_lut(OrdinalLutRtl(fmt, channels, pe), x, stall=stall, seed=channels, workdir=tmp_path)
    assert run.outputs.tolist() == [[want[o] for o in row] for row in x]
    assert run.cycles > run.expected_cycles == 9 * channels // pe  # the stalls happened


@pytest.mark.needs_simulator
def test_execute_for_the_rtl_stage_and_verilator_agree(tmp_path):
    fmt = MinifloatFormat.parse("E4M3")
    x = np.random.default_rng(0).integers(0, 255, size=(5, 6))
    k, cycles = execute_ordinal_lut_rtl(fmt, 2, x)
    want = oracle_decoded(fmt)
    assert k.tolist() == [[want[o] for o in row] for row in x] and cycles == 5 * 3 + LATENCY
    if mac_sim.lint_missing() is None:
        run = simulate_ordinal_lut(OrdinalLutRtl(fmt, 6, 2), x, stall=0.3, simulator="verilator", workdir=tmp_path)
        assert run.outputs.tolist() == k.tolist()


@pytest.mark.needs_simulator
def test_verification_catches_a_wrong_table_entry(tmp_path):
    """Not vacuous: one ROM word off by one is found and named."""
    fmt = MinifloatFormat.parse("E2M1")
    rtl = OrdinalLutRtl(fmt, 15, 1)
    broken = rtl.verilog.replace("mem[13] = 5'h08;", "mem[13] = 5'h09;")
    assert broken != rtl.verilog
    rtl.__dict__["verilog"] = broken  # override the cached property on this instance only
    with pytest.raises(AssertionError, match=r"ordinal 13\): RTL 9, table 8"):
        verify_ordinal_lut(rtl, np.arange(15)[None], workdir=tmp_path)


@pytest.mark.needs_simulator("verilator")
@pytest.mark.parametrize("fmt,channels,pe", [("E4M3", 8, 2), ("E2M1", 3, 3), ("E5M2", 4, 1), ("E2M2_U", 6, 6)])
def test_generated_verilog_lints_clean(fmt, channels, pe):
    assert mac_sim.lint(OrdinalLutRtl(fmt, channels, pe)) == ""


def test_stream_contract_and_refusals(tmp_path):
    """TDATA widths are whole bytes of PE elements; ROM words are two's complement ``value / delta``."""
    rtl = OrdinalLutRtl("E5M2", 6, 3)
    assert (rtl.input_bits, rtl.output_bits, rtl.input_width, rtl.output_width) == (8, 34, 24, 104)
    assert rtl.rom_words()[0] == 2**34 - 7516192768 and rtl.rom_words()[127] == 0  # -57344 / 2^-16; zero
    for name in ("ap_clk", "ap_rst_n", "in0_V_TDATA", "in0_V_TVALID", "in0_V_TREADY", "out0_V_TDATA",
                 "out0_V_TVALID", "out0_V_TREADY"):
        assert name in rtl.verilog
    with pytest.raises(ValueError, match=r"pe \(4\) must divide channels \(6\)"):
        OrdinalLutRtl("E4M3", 6, 4)
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        OrdinalLutRtl("E4M3", 0, 1)
    with pytest.raises(ValueError, match="Verilog identifier"):
        OrdinalLutRtl("E4M3", 2, 1, top="1bad")
    with pytest.raises(ValueError, match=r"integers in \[0, 254\]"):
        simulate_ordinal_lut(rtl, np.full((1, 6), 255), workdir=tmp_path)
    with pytest.raises(ValueError, match="channels = 6"):
        simulate_ordinal_lut(rtl, np.zeros((1, 4), dtype=int), workdir=tmp_path)


def test_missing_simulator_names_the_install_command(monkeypatch):
    monkeypatch.setattr(mac_sim.shutil, "which", lambda tool: None)
    with pytest.raises(RuntimeError, match="apt-get install iverilog"):
        execute_ordinal_lut_rtl("E2M1", 1, np.zeros((1, 2), dtype=int), simulator="icarus")



# ------------------------------------------------------------------------------ the rtl stage's executor
def _decode_graph(fmt: MinifloatFormat, channels: int, pe: int, pixels: int):
    """A HW graph of one OrdinalLUT node over ``pixels`` vectors of ``channels`` ordinals."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    from finn_transforms.finn_defaults import HW_DOMAIN
    from finn_transforms.native import decode_layer  # noqa: F401  (registers OrdinalLUT)
    from finn_transforms.native.spec import ordinal_bits

    node = helper.make_node("OrdinalLUT", ["o"], ["k"], domain=HW_DOMAIN, backend="fpgadataflow", name="decode",
                            format=fmt.name, NumChannels=channels, PE=pe, numInputVectors=[1, pixels],
                            inputDataType=f"UINT{ordinal_bits(fmt)}", outputDataType=fmt.integer_datatype)
    shape = [1, pixels, channels]
    graph = helper.make_graph([node], "decode", [helper.make_tensor_value_info("o", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("k", TensorProto.FLOAT, shape)])
    return ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


@pytest.mark.needs_finn
@pytest.mark.needs_simulator
def test_rtl_executor_simulates_the_decode_layer_beyond_float32(monkeypatch):
    """`execute_rtl` decodes by simulation (E5M2: integers up to 2^33, which float32 cannot hold):
    exact, cycles NumChannels / PE per vector plus the latency; a broken ROM changes its output."""
    from finn_transforms.native import decode_rtl
    from finn_transforms.native.rtl_exec import execute_rtl

    fmt = MinifloatFormat.parse("E5M2")
    want = oracle_decoded(fmt)
    x = np.random.default_rng(2).integers(0, len(want), size=(1, 3, 4))
    x[0, 0, 0] = len(want) - 1  # the largest value
    model = _decode_graph(fmt, 4, 2, 3)
    run = execute_rtl(model, x.astype(np.float32))
    got = run.outputs["k"].as_integers().tolist()
    assert got == [[[want[o] for o in px] for px in x[0]]] and max(max(px) for px in got[0]) > 2**24
    assert run.cycles == {"decode": (3 * 2 + LATENCY, 3 * 2)} and not run.not_simulated
    original = decode_rtl.OrdinalLutRtl.rom_words
    monkeypatch.setattr(decode_rtl.OrdinalLutRtl, "rom_words", lambda self: [w ^ 1 for w in original(self)])
    assert execute_rtl(model, x.astype(np.float32)).outputs["k"].as_integers().tolist() != got


# ------------------------------------------------------------------------------ cost
def test_table_features_and_count_follow_the_table():
    """Independent of the package's table: the non-constant output bits of E2M1's ``value / delta``
    (INT5, from the oracle) are all 5, one 64-ordinal block each; PE scales the per-table part and
    the flip-flops (PE x bits + the valid bit)."""
    from finn_transforms.native import decode_cost

    fmt = MinifloatFormat.parse("E2M1")
    words = [k & 31 for k in oracle_decoded(fmt)]
    bits = {tuple((w >> b) & 1 for w in words) for b in range(5)}
    assert decode_cost.table_features(fmt) == {"bits": len(bits), "blocks": len(bits), "mixed": 0, "const": 1}
    assert len(bits) == 5
    e5m2 = decode_cost.table_features(MinifloatFormat.parse("E5M2"))
    assert e5m2["bits"] == 34 and 34 < e5m2["blocks"] < 34 * 4  # 255 ordinals: 4 blocks, some constant
    one, four = decode_cost.table_cost("E4M3", 1), decode_cost.table_cost("E4M3", 4)
    per_pe = one["lut"] - decode_cost.CONTROL_LUTS
    assert abs(four["lut"] - decode_cost.CONTROL_LUTS - 4 * per_pe) <= 2 and per_pe > 0
    assert (one["ff"], four["ff"], four["bram"], four["dsp"]) == (20, 77, 0, 0)


@pytest.mark.needs_yosys
def test_synthesis_of_a_held_out_layer_and_its_cache(tmp_path):
    """A format and PE outside the fit's training set: the table count is within 15 % of Yosys, the
    flip-flops equal; synthesis is cached, and only used when asked for: the estimate stays the
    table count whatever the cache holds."""
    from finn_transforms.native import decode_cost

    first = decode_cost.synthesize_ordinal_lut("E3M1", 3, cache_dir=tmp_path)
    table = decode_cost.table_cost("E3M1", 3)
    assert not first["cached"] and first["bram"] == 0 and first["dsp"] == 0
    assert abs(table["lut"] - first["lut"]) <= 0.15 * first["lut"] and table["ff"] == first["ff"], (table, first)
    again = decode_cost.synthesize_ordinal_lut("E3M1", 3, cache_dir=tmp_path)
    assert again["cached"] and again["lut"] == first["lut"]
    assert decode_cost.ordinal_lut_cost("E3M1", 3, cache_dir=tmp_path, synthesize=True) == {
        "lut": first["lut"], "ff": first["ff"], "bram": 0, "dsp": 0, "source": "synthesis"}
    assert decode_cost.ordinal_lut_cost("E3M1", 3, cache_dir=tmp_path) == table | {"source": "table"}
