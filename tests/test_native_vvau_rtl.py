"""Native depthwise (VVAU) RTL: exhaustive and folded simulation against an independent rational
oracle, FINN's VVAU stream layout (checked with FINN's own VVAU execution), cycles, lint, the cost
(FINN's VVAU weight memory, the depthwise fit, synthesis), and verify's ``rtl`` stage on a
depthwise-separable CNN.

Simulation tests need Icarus Verilog, lint tests Verilator, the cost test Yosys (markers of
``tests/conftest.py``). Exhaustive runs of the less common variants are ``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from onnx import helper

from brevitas_minifloat.hw import sim as mac_sim
from brevitas_minifloat.hw.operands import as_operand, finite_codes
from finn_transforms.native import sim
from finn_transforms.native.rtl import PIPELINE
from finn_transforms.native.spec import NativeMvauSpec
from finn_transforms.native.vvau_rtl import NativeVvauRtl
from tests.test_native_rtl import (
    EXHAUSTIVE,
    RANDOM_LAYERS,
    RANDOM_SETTINGS,
    elements,
    random_elements,
    random_layer,
    random_weights,
    zero_element,
)
from tests.test_native_rtl import check_against_oracle as dense_oracle
from tests.test_native_rtl import exhaustive_case as dense_case


def check_against_oracle(spec: NativeMvauSpec, w, windows, outputs) -> None:
    """Every output equals channel ``c``'s rational dot product ``sum_k W[c, k] x[k, c]`` of the
    oracle's values, in delta units: per channel, the MVAU oracle of a one-row layer."""
    one_row = NativeMvauSpec(spec.weight_format, spec.input_format, mw=spec.mw, mh=1)
    for c in range(spec.mh):
        dense_oracle(one_row, w[c : c + 1], windows[:, :, c], outputs[:, c : c + 1])


def exhaustive_case(weight: str, act: str, pe: int, simd: int):
    """The MVAU's exhaustive layer as a depthwise one (``K = 2``: channel ``c``'s kernel is weight
    code ``c`` and code ``C - 1 - c``); window ``b`` gives channel ``c`` element ``(b + c) mod n``
    at one kernel position and zero at the other, so every channel sees every element and
    neighbouring PEs see different ones."""
    spec, w, _ = dense_case(weight, act, pe, simd)
    every, z = elements(spec.input_format), zero_element(spec.input_format)
    n, c = len(every), spec.mh
    rows = [[every[(b + ch) % n] for ch in range(c)] for b in range(n)]
    zeros = [z] * c
    windows = np.array([[r, zeros] for r in rows] + [[zeros, r] for r in rows])
    return spec, w, windows


def _depthwise_case(case):
    """An MVAU exhaustive case for the depthwise layer: E4M3/E5M2-sized weight formats are slow here
    (every lane its own ordinal decode: several times the MVAU's simulation time)."""
    values, marks = (case.values, list(case.marks)) if hasattr(case, "values") else (case, [])
    if len(finite_codes(as_operand(values[0]))) > 64:
        marks.append(pytest.mark.slow)
    return pytest.param(*values, marks=marks)


@pytest.mark.needs_simulator
@pytest.mark.parametrize("weight,act,pe,simd", [_depthwise_case(case) for case in EXHAUSTIVE])
def test_exhaustive_products(weight, act, pe, simd, tmp_path):
    spec, w, windows = exhaustive_case(weight, act, pe, simd)
    run = sim.verify_layer(NativeVvauRtl(spec, w), windows, workdir=tmp_path)
    check_against_oracle(spec, w, windows, run.outputs)
    pairs = {(int(w[c, k]), int(windows[b, k, c])) for b in range(len(windows)) for c in range(spec.mh) for k in (0, 1)}
    assert pairs >= {(code, e) for code in finite_codes(spec.weight_format) for e in elements(spec.input_format)}


@pytest.mark.needs_simulator
@RANDOM_SETTINGS
@given(**RANDOM_LAYERS)
def test_random_foldings_under_back_pressure(weight, act, sf, simd, nf, pe, seed, tmp_path):
    spec, w, rng = random_layer(weight, act, sf, simd, nf, pe, seed)
    windows = random_elements(spec.input_format, (4, spec.mw, spec.mh), rng)
    run = sim.verify_layer(NativeVvauRtl(spec, w), windows, stall=0.3, seed=seed, workdir=tmp_path)
    check_against_oracle(spec, w, windows, run.outputs)


@pytest.mark.needs_simulator
@pytest.mark.parametrize("k,c,pe,simd", [(1, 1, 1, 1), (9, 4, 1, 1), (9, 6, 3, 1), (9, 8, 2, 3), (9, 4, 4, 9), (4, 6, 6, 2)])
def test_cycles_without_back_pressure(k, c, pe, simd, tmp_path):
    """A pixel takes NF * SF cycles (FINN's VVAU get_exp_cycles), plus the pipeline latency once."""
    rng = np.random.default_rng(0)
    spec = NativeMvauSpec("E4M3", "E4M3", k, c, pe, simd)
    pixels = 7
    windows = random_elements(spec.input_format, (pixels, k, c), rng)
    run = sim.verify_layer(NativeVvauRtl(spec, random_weights(spec, rng)), windows, workdir=tmp_path)
    assert run.expected_cycles == pixels * (c // pe) * (k // simd)
    assert run.cycles == run.expected_cycles + PIPELINE + 1


def finn_stream(windows: np.ndarray, pe: int) -> np.ndarray:
    """FINN's VVAU input of windows ``(pixels, K, C)`` for ``pe``, written independently of the code
    under test: ``C / pe`` channel folds, each ``K`` kernel elements of ``pe`` channels."""
    pixels, k, c = windows.shape
    out = np.zeros((pixels, c * k), dtype=windows.dtype)
    for fold in range(c // pe):
        for j in range(k):
            for p in range(pe):
                out[:, (fold * k + j) * pe + p] = windows[:, j, fold * pe + p]
    return out


@pytest.mark.needs_finn
@pytest.mark.needs_simulator
@pytest.mark.parametrize("c,kernel,pe,simd", [(6, (3, 3), 3, 1), (4, (3, 3), 2, 3), (4, (2, 2), 4, 4), (8, (1, 3), 2, 1)])
def test_rtl_consumes_finns_vvau_stream(c, kernel, pe, simd, tmp_path):
    """The beats the RTL consumes, flattened, are FINN's VVAU input (PE-interleaved, as the depthwise
    sliding window emits it), and the RTL's outputs equal FINN's own VVAU execution of that input
    (integer weights and inputs, no window generator before it: FINN reads the PE interleaving)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.util.basic import qonnx_make_model

    k = kernel[0] * kernel[1]
    rng = np.random.default_rng(c * k + pe)
    spec = NativeMvauSpec("INT4", "INT4", k, c, pe, simd)
    w = rng.integers(-8, 8, size=(c, k))
    dim = (2, 3)
    windows = rng.integers(-8, 8, size=(dim[0] * dim[1], k, c))
    stream = finn_stream(windows, pe)
    rtl = NativeVvauRtl(spec, w & 0xF)  # INT4 codes: the two's complement bit patterns
    _, beats = rtl.input_stream(windows)
    assert beats.shape == (len(windows) * (c // pe) * (k // simd), pe * simd)
    assert (beats.reshape(len(windows), -1) == stream).all()

    node = helper.make_node("VVAU", ["x", "w"], ["y"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow",
                            PE=pe, SIMD=simd, Dim=list(dim), Channels=c, Kernel=list(kernel), inputDataType="INT4",
                            weightDataType="INT4", outputDataType="INT32", accDataType="INT32", noActivation=1)
    graph = helper.make_graph([node], "vvau", [helper.make_tensor_value_info("x", 1, [1, *dim, c * k])],
                              [helper.make_tensor_value_info("y", 1, [1, *dim, c])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("w", w.reshape(c, 1, *kernel).astype(np.float32))
    context = {"x": stream.reshape(1, *dim, c * k).astype(np.float32), "y": None}
    getCustomOp(node).execute_node(context, model.graph)
    finn = context["y"].reshape(-1, c)
    run = sim.verify_layer(rtl, windows, workdir=tmp_path)
    assert (run.outputs == finn.astype(np.int64)).all()


@pytest.mark.needs_simulator
def test_verification_catches_a_wrong_lane_order(tmp_path):
    """Swap two PEs' input lanes: every shape check passes, the products use the wrong channel."""
    rng = np.random.default_rng(2)
    spec = NativeMvauSpec("E2M1", "E2M1", mw=2, mh=4, pe=2, simd=2)
    rtl = NativeVvauRtl(spec, random_weights(spec, rng))
    lane = "wire [7:0] pe0_codes = {a_codes[8 +: 4], a_codes[0 +: 4]};"
    assert lane in rtl.verilog
    rtl.__dict__["verilog"] = rtl.verilog.replace(lane, lane.replace("a_codes[0 +: 4]", "a_codes[4 +: 4]"))
    with pytest.raises(AssertionError, match="RTL"):
        sim.verify_layer(rtl, random_elements(spec.input_format, (6, 2, 4), rng), workdir=tmp_path)


@pytest.mark.needs_simulator("verilator")
@pytest.mark.parametrize(
    "weight,act,k,c,pe,simd",
    [("E4M3", "E4M3", 9, 4, 2, 3), ("E2M1", "INT4", 9, 6, 3, 1), ("E2M1_NOSUB", "E2M1_NOSUB", 4, 4, 1, 4),
     ("E3M0", "E2M2_U", 9, 8, 4, 1), ("E4M3", "E4M3", 1, 1, 1, 1), ("E5M2", "UINT3", 3, 2, 1, 3), ("INT8", "INT8", 9, 8, 8, 9)],
)
def test_generated_verilog_lints_clean(weight, act, k, c, pe, simd):
    spec = NativeMvauSpec(weight, act, k, c, pe, simd)
    assert mac_sim.lint(NativeVvauRtl(spec, random_weights(spec, np.random.default_rng(0)))) == ""


def test_stream_widths_and_refusals():
    spec = NativeMvauSpec("E2M1", "E3M2", mw=9, mh=4, pe=2, simd=3)
    rtl = NativeVvauRtl(spec, np.zeros((4, 9), dtype=int))
    assert spec.input_bits == 6 and rtl.input_width == 40  # PE x SIMD = 6 ordinals of 6 bits, padded to bytes
    assert rtl.output_width == 8 * -(-2 * spec.acc_bits // 8)
    assert rtl.expected_cycles == 2 * 3 and rtl.top.startswith("native_vvau_")
    with pytest.raises(ValueError, match="K = 9, channels = 4"):
        rtl.input_stream(np.zeros((1, 4, 9), dtype=int))
    with pytest.raises(ValueError, match="ordinals of E3M2 lie in"):
        rtl.input_stream(np.full((1, 9, 4), 99))
    with pytest.raises(ValueError, match="shape"):
        NativeVvauRtl(spec, np.zeros((9, 4), dtype=int))


# ------------------------------------------------------------------------------ cost
def test_vvau_weight_memory_is_counted_as_finn_counts_it():
    """LUTRAM up to 128 words as for the MVAU; deeper memories by FINN's VVAU rule (HLS memory
    widths 4, 8, 16, 32), which differs from the MVAU's (9, 18, 36)."""
    from finn_transforms.native.cost import weight_memory

    lut = weight_memory(NativeMvauSpec("E4M3", "E4M3", mw=9, mh=64, pe=8, simd=1), unit="vvau")
    assert (lut["depth"], lut["width"], lut["bram18"], lut["lut"]) == (72, 64, 0, 64 * 2)
    deep = NativeMvauSpec("E3M2", "E3M2", mw=9, mh=300, pe=3, simd=1)  # 900 words of 18 bits
    assert weight_memory(deep, unit="vvau")["bram18"] == 2  # ceil(900 / 1024) * ceil(18 / 16)
    assert weight_memory(deep)["bram18"] == 1  # the MVAU's ceil(900 / 1024) * ceil(18 / 18)
    with pytest.raises(ValueError, match="unit must be one of"):
        weight_memory(deep, unit="conv")


@pytest.mark.needs_finn
def test_vvau_estimates_use_the_depthwise_fit(monkeypatch):
    """VVAU_minifloat's estimates are `native_layer_cost(spec, unit="vvau")`: the depthwise fit
    (`cost_fit_vvau`) of the features with PE * SIMD input lanes, FINN's VVAU weight memory; a
    refit changes them and `cost_model_id` (the DSE's cache key)."""
    from qonnx.custom_op.registry import getCustomOp

    from finn_transforms.native import cost, cost_fit_vvau
    from tests.test_native_vvau import vvau_node

    op = getCustomOp(vvau_node("E4M3", "E4M3", 8, (3, 3), 4, 3))
    spec = op.spec()
    lanes_bits = 4 * 3 * spec.input_bits
    assert cost.features(spec, "vvau")["input"] == lanes_bits == 4 * cost.features(spec)["input"]
    model = cost.model_cost(spec, unit="vvau")
    assert op.lut_estimation("") == model["lut"] and op.bram_estimation("") == model["bram"] and op.dsp_estimation("") == 0
    before, key = model["lut"], cost.cost_model_id()
    refit = {k: dict(v) for k, v in cost_fit_vvau.COEFFICIENTS.items()}
    refit["lut"]["input"] = refit["lut"].get("input", 0.0) + 1.0
    monkeypatch.setattr(cost_fit_vvau, "COEFFICIENTS", refit)
    cost._model_lookup.cache_clear()
    try:
        assert op.lut_estimation("") == before + lanes_bits and cost.cost_model_id() != key
    finally:
        cost._model_lookup.cache_clear()


@pytest.mark.needs_yosys
def test_synthesized_vvau_is_cached_apart_from_the_mvau(tmp_path):
    from finn_transforms.native import cost

    spec = NativeMvauSpec("E2M1", "E2M1", mw=4, mh=2, pe=2, simd=2)
    first = cost.synthesize_layer(spec, cache_dir=tmp_path, unit="vvau")
    assert not first["cached"] and first["lut"] > 0 and first["dsp"] == 0
    again = cost.native_layer_cost(spec, cache_dir=tmp_path, unit="vvau", synthesize=True)
    assert again["source"] == "synthesis" and again["lut"] == first["lut"]
    assert cost.synthesize_layer(spec, cache_dir=tmp_path, unit="vvau")["cached"]
    keys = [cost._cache_key(cost._compute_rtl(spec, unit), unit) for unit in ("vvau", "mvau")]
    assert keys[0] != keys[1] and keys[0]["layer"]["unit"] == "vvau"  # the MVAU of this spec is another layer


# ------------------------------------------------------------------------------ verify's rtl stage
@pytest.mark.needs_finn
@pytest.mark.needs_simulator
def test_verify_rtl_stage_simulates_the_depthwise_layers(tmp_path):
    """A reduced DS-CNN (E4M3, default mapping), folded for a target that gives its depthwise layer
    1 < PE < Channels (the sliding window's channel interleaving matters): every VVAU_minifloat
    runs as RTL in the rtl stage (none left to exact execution), NF * SF cycles per output pixel
    plus the pipeline latency per sample."""
    import torch
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from brevitas_minifloat.zoo import calibrate, ds_cnn
    from finn_transforms.verify import verify

    torch.manual_seed(0)
    model = calibrate(ds_cnn("E4M3", "E4M3", width=1 / 8, blocks=1, power_of_two=True, collect_stats_steps=4),
                      batches=2, batch_size=8)
    batch = 2
    report = verify(model, torch.randn(batch, *model.input_shape[1:]), tmp_path, mapping="native", rtl=True,
                    target_fps=40_000, clock_ns=10.0)
    assert report.ok, report.summary()
    hw = ModelWrapper(str(report.estimates.hw_graph_path))
    vvaus = [n for n in hw.graph.node if n.op_type == "VVAU_minifloat_rtl"]
    assert any(1 < getCustomOp(n).get_nodeattr("PE") < getCustomOp(n).get_nodeattr("Channels") for n in vvaus)
    assert not report.rtl_not_simulated, report.summary()
    for node in vvaus:
        simulated, expected = report.rtl_cycles[node.name]
        assert expected == batch * getCustomOp(node).get_exp_cycles()
        assert simulated == expected + batch * (PIPELINE + 1), node.name
