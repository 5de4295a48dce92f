"""Native layer cost: weight memory as FINN counts it, Yosys synthesis with its JSON cache, the fitted
model (and its error on a layer it was not fitted to), `native_layer_cost` without any tool."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brevitas_minifloat.hw import cost as hw_cost
from finn_transforms.native import cost
from finn_transforms.native.spec import NativeMvauSpec


@pytest.mark.needs_finn
@pytest.mark.parametrize(
    "mw,mh,pe,simd,wfmt",
    [(64, 64, 1, 1, "E4M3"), (64, 64, 4, 4, "E4M3"), (576, 64, 16, 32, "E2M1"), (16, 16, 1, 1, "E5M2"),
     (1024, 256, 2, 1, "E3M2"), (32, 4, 1, 2, "INT8")],
)
def test_weight_memory_matches_finns_mvau(mw, mh, pe, simd, wfmt):
    """BRAM18 and the LUTRAM LUTs are FINN+'s own MVAU estimates for a weight memory of that shape."""
    import finn.custom_op.fpgadataflow.hls  # noqa: F401  (registers MVAU_hls)
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    spec = NativeMvauSpec(wfmt, "INT8", mw, mh, pe, simd)

    def mvau(mem_mode: str):
        node = helper.make_node(
            "MVAU_hls", ["x", "w"], ["y"], domain="finn.custom_op.fpgadataflow.hls", PE=pe, SIMD=simd, MW=mw, MH=mh,
            inputDataType="INT8", weightDataType=f"UINT{spec.weight_bits}", outputDataType="INT32", noActivation=1,
            resType="lut", mem_mode=mem_mode, accDataType="INT32",
        )
        return getCustomOp(node)

    got = cost.weight_memory(spec)
    embedded = mvau("internal_embedded")
    assert got["bram18"] == embedded.bram_estimation("xcvu9p-flgb2104-2-i")
    # LUTRAM LUTs: what internal_embedded adds over external weights in FINN's LUT model
    assert got["lut"] == embedded.lut_estimation("xcvu9p-flgb2104-2-i") - mvau("external").lut_estimation("xcvu9p")


@pytest.mark.needs_yosys
def test_synthesis_and_its_cache(tmp_path):
    spec = NativeMvauSpec("E2M1", "E2M1", mw=8, mh=4, pe=2, simd=2)
    first = cost.synthesize_layer(spec, cache_dir=tmp_path)
    assert not first["cached"] and first["dsp"] == 0 and first["lut"] > 0
    # the accumulators alone are PE x acc_bits flip-flops; the weights (depth 8) sit in LUTRAM
    assert first["compute"]["ff"] >= spec.pe * spec.acc_bits and first["weights"]["lut"] == 2 * 2 * 4
    assert first["lut"] == first["compute"]["lut"] + first["weights"]["lut"] and first["bram"] == 0
    again = cost.synthesize_layer(spec, cache_dir=tmp_path)
    assert again["cached"] and {k: again[k] for k in ("lut", "ff", "bram")} == {k: first[k] for k in ("lut", "ff", "bram")}
    assert cost.native_layer_cost(spec, cache_dir=tmp_path, synthesize=True) == {
        "lut": first["lut"], "ff": first["ff"], "bram": 0, "dsp": 0, "source": "synthesis"}
    # a foreign entry at the same path is never trusted: synthesized again
    (path,) = list((tmp_path / "native_layers").glob("*.json"))
    stored = json.loads(path.read_text())
    stored["key"]["layer"]["mw"] = 999
    path.write_text(json.dumps(stored))
    assert not cost.synthesize_layer(spec, cache_dir=tmp_path)["cached"]


@pytest.mark.needs_yosys
@pytest.mark.needs_finn
def test_estimates_do_not_depend_on_the_synthesis_cache(tmp_path, monkeypatch):
    """The op's estimates (FINN's reports, ``target_fps`` folding, the DSE's cache keyed by
    `cost_model_id`) are the fitted model whether or not this layer's synthesis is cached."""
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    import finn_transforms.native.hw_op  # noqa: F401  (registers MVAU_minifloat)

    monkeypatch.setenv("BREVITAS_MINIFLOAT_HW_CACHE", str(tmp_path))
    spec = NativeMvauSpec("E2M1", "E2M1", mw=8, mh=4, pe=2, simd=2, acc_bits=12)
    node = helper.make_node(
        "MVAU_minifloat", ["x", "w"], ["y"], domain="finn.custom_op.fpgadataflow", MW=8, MH=4, PE=2, SIMD=2,
        weightFormat="E2M1", inputFormat="E2M1", inputDataType="UINT4", weightDataType="UINT4",
        outputDataType="INT12", accDataType="INT12", noActivation=1,
    )
    op = getCustomOp(node)
    assert op.spec() == spec

    def estimates():
        cost._model_lookup.cache_clear()
        return cost.native_layer_cost(spec), op.lut_estimation("xcvu9p"), op.bram_estimation("xcvu9p"), cost.cost_model_id()

    cold = estimates()
    synthesized = cost.native_layer_cost(spec, synthesize=True)  # now cached under the default cache dir
    assert cost.synthesize_layer(spec)["cached"]
    warm = estimates()
    assert cold == warm and cold[0]["source"] == "model"
    assert cold[0] == cost.model_cost(spec) | {"source": "model"}
    assert synthesized["source"] == "synthesis" and synthesized["lut"] != cold[0]["lut"]  # the two really differ


def test_fit_recovers_a_known_linear_cost():
    """NNLS on `features` recovers coefficients that generated the data, also restricted to some
    features (no tools involved)."""
    specs = [NativeMvauSpec(w, a, mw, mh, pe, simd) for w, a in [("E4M3", "E4M3"), ("E2M1", "INT4"), ("INT8", "INT8"),
                                                                ("E3M2", "E2M3"), ("E5M2", "E5M2"), ("E2M1", "UINT4")]
             for mw, mh, pe, simd in [(32, 8, 1, 1), (64, 16, 2, 4), (16, 16, 4, 1), (24, 6, 3, 8), (64, 8, 1, 8)]]
    truth = {"mul": 1.5, "shift_range": 3.0, "negate": 0.5, "adder": 0.8, "acc": 2.0, "input_decode": 3.0,
             "control": 4.0, "const": 40.0}
    measured = [{"compute": {"lut": sum(truth[k] * v for k, v in cost.features(s).items() if k in truth),
                             "ff": 2 * cost.features(s)["acc"]}} for s in specs]
    for names in (None, list(truth)):
        fitted = cost.fit(specs, measured, names)
        for k in cost.features(specs[0]):
            assert fitted["lut"].get(k, 0.0) == pytest.approx(truth.get(k, 0.0), rel=1e-6, abs=1e-6), k
            assert fitted["ff"].get(k, 0.0) == pytest.approx(2.0 if k == "acc" else 0.0, rel=1e-6, abs=1e-6), k


def test_model_is_used_without_tools(monkeypatch):
    monkeypatch.setattr(hw_cost.shutil, "which", lambda tool: None)
    spec = NativeMvauSpec("E4M3", "E4M3", mw=576, mh=64, pe=16, simd=32)
    got = cost.native_layer_cost(spec)
    assert got["source"] == "model" and got["dsp"] == 0 and got["bram"] == cost.weight_memory(spec)["bram18"]
    # more lanes cost more; E2M1 lanes cost less than E4M3 lanes
    assert got["lut"] > cost.native_layer_cost(NativeMvauSpec("E4M3", "E4M3", 576, 64, 8, 32))["lut"]
    assert got["lut"] > cost.native_layer_cost(NativeMvauSpec("E2M1", "E2M1", 576, 64, 16, 32))["lut"]
    with pytest.raises(ValueError, match="NativeMvauSpec"):
        cost.native_layer_cost({"mw": 4})
    with pytest.raises(RuntimeError, match="apt-get install yosys"):
        cost.native_layer_cost(spec, synthesize=True)


@pytest.mark.needs_yosys
def test_model_error_on_a_layer_it_was_not_fitted_to(tmp_path):
    """A format pair and folding outside the training set: the model is within 25 % of synthesis."""
    spec = NativeMvauSpec("E3M1", "E2M2", mw=20, mh=6, pe=3, simd=5)
    measured = cost.synthesize_layer(spec, cache_dir=tmp_path)["lut"]
    predicted = cost.model_cost(spec)["lut"]
    assert abs(predicted - measured) <= 0.25 * measured, (predicted, measured)


def test_features_follow_the_structure():
    base = cost.features(NativeMvauSpec("E4M3", "E4M3", 64, 16, 2, 4))
    wider = cost.features(NativeMvauSpec("E4M3", "E4M3", 64, 16, 4, 4))
    assert wider["mul"] == 2 * base["mul"] and wider["acc"] == 2 * base["acc"] and wider["input"] == base["input"]
    assert base["shift_range"] == 8 * (2 * 14 + 1)  # E4M3: exponent shifts 0 .. 14 per operand
    assert base["adder"] == 3 * base["dot_reg"]  # PE x (SIMD - 1) lane-sum adders vs PE lane-sum registers
    integer = cost.features(NativeMvauSpec("INT8", "INT8", 64, 16, 2, 4))
    assert integer["shift"] == integer["shift_range"] == integer["negate"] == integer["input_decode"] == 0
    assert integer["mul"] == integer["mul_signed"] == 8 * 8 * 8
    m0 = cost.features(NativeMvauSpec("E3M0", "E3M0", 64, 16, 2, 4))
    assert m0["mul"] == 8 * 1 * 1 and m0["mul_signed"] == 0  # M0: 1-bit magnitudes, the product is all shift
    mixed = cost.features(NativeMvauSpec("E4M3", "INT8", 64, 16, 2, 4))
    assert mixed["mul"] == mixed["mul_signed"] == 8 * 5 * 8  # a lane with an integer operand multiplies signed significands
    assert mixed["shift_signed"] == mixed["shift_range"] == 8 * 15 and mixed["negate"] == 0
    replayed = cost.features(NativeMvauSpec("E4M3", "E4M3", 256, 16, 2, 4))  # SF = 64: two LUTRAM words deep
    assert replayed["replay"] == 2 * base["replay"] and cost.features(NativeMvauSpec("E4M3", "E4M3", 64, 2, 2, 4))["replay"] == 0
    assert np.isfinite(list(base.values())).all()


@pytest.mark.needs_finn
def test_the_hw_op_reports_the_native_cost():
    """FINN's estimate reports read the op's ``*_estimation``: they are `native_layer_cost`."""
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    import finn_transforms.native.hw_op  # noqa: F401  (registers MVAU_minifloat)

    node = helper.make_node(
        "MVAU_minifloat", ["x", "w"], ["y"], domain="finn.custom_op.fpgadataflow", MW=64, MH=32, PE=4, SIMD=8,
        weightFormat="E4M3", inputFormat="E4M3", inputDataType="UINT8", weightDataType="UINT8",
        outputDataType="INT43", accDataType="INT43", noActivation=1,
    )
    op = getCustomOp(node)
    want = cost.native_layer_cost(NativeMvauSpec("E4M3", "E4M3", 64, 32, 4, 8, acc_bits=43))
    part = "xcvu9p-flgb2104-2-i"
    assert (op.lut_estimation(part), op.bram_estimation(part), op.dsp_estimation(part), op.uram_estimation(part)) == (
        want["lut"], want["bram"], 0, 0)


@pytest.mark.needs_yosys
def test_a_long_replay_buffer_synthesizes(tmp_path):
    """A fully folded 784-input layer replays SF = 784 beats, more than Yosys 0.23 maps into one
    LUTRAM ("invalid OPTION_ABITS/WIDTH combination" before the buffer was banked): its banks of 256
    beats synthesize as single-port LUTRAM, one RAM256X1S per bit of each full bank (E2M1: 4 bits)."""
    spec = NativeMvauSpec("E2M1", "E2M1", mw=784, mh=2, pe=1, simd=1)
    found = cost.synthesize_layer(spec, cache_dir=tmp_path)
    assert found["cells"]["RAM256X1S"] == 3 * 4 and found["lut"] > found["compute"]["lutram_luts"] > 0
    assert cost.synthesize_layer(spec, cache_dir=tmp_path)["cached"]
