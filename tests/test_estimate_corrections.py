"""Honest estimates (issue 16): part capacity flags, threshold memory embedded in MVAUs, thresholds
shared by all channels counted once (`finn_transforms.build.corrections`, `.parts`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from finn_transforms.build.corrections import RAMB18_GEOMETRIES, ramb18_count
from finn_transforms.build.parts import part_capacity


@given(st.integers(1, 100_000), st.integers(1, 100_000))
def test_ramb18_count_is_between_dense_packing_and_one_geometry(depth, width):
    n = ramb18_count(depth, width)
    assert n >= math.ceil(depth * width / (18 * 1024))  # a RAMB18 holds 18 Kib
    for d, w in RAMB18_GEOMETRIES:
        assert n <= math.ceil(depth / d) * math.ceil(width / w)


def test_ramb18_count_by_hand():
    assert ramb18_count(16384, 1) == 1 and ramb18_count(16385, 1) == 2
    assert ramb18_count(512, 36) == 1 and ramb18_count(10, 896 * 15) == 374  # ceil(13440 / 36)
    assert ramb18_count(1024, 18) == 1 and ramb18_count(0, 5) == 0


def test_part_capacity_from_the_data_sheets():
    ultra96 = part_capacity("xczu3eg-sbva484-1-e")  # DS891: ZU3EG 70,560 LUTs, 216 x 36 Kb BRAM, 360 DSP
    assert (ultra96.lut, ultra96.bram_18k, ultra96.uram, ultra96.dsp) == (70_560, 432, 0, 360)
    pynq = part_capacity("xc7z020clg400-1")  # DS190: Z-7020 53,200 LUTs, 140 BRAM, 220 DSP
    assert (pynq.lut, pynq.bram_18k, pynq.dsp) == (53_200, 280, 220)
    assert part_capacity("xcvu9p-flga2104-2-i") is None and part_capacity(None) is None


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """The demo's 784-64-10 MLP (shared per-tensor input quantizer, thresholds embedded in MVAUs)."""
    from brevitas_minifloat import export_qonnx
    from brevitas_minifloat.demo import tiny_mlp

    torch.manual_seed(0)
    model = tiny_mlp().train()
    for _ in range(12):  # collect activation statistics (no training needed for the hardware)
        model(torch.rand(64, 1, 28, 28))
    return export_qonnx(model.eval(), torch.rand(1, 1, 28, 28), tmp_path_factory.mktemp("demo") / "mlp.onnx")


def test_capacity_check_says_which_number_exceeds_the_part():
    from finn_transforms.build.report import _capacity_check

    raw = {"lut": 201_132.0, "bram_18k": 26.0, "uram": 0.0, "dsp": 0.0}
    fixed = {"lut": 38_004.0, "bram_18k": 500.0, "uram": 0.0}
    cap, over = _capacity_check("xczu3eg-sbva484-1-e", raw, fixed)
    assert cap["lut"] == 70_560
    assert over == ("LUT 201132 > 70560 (285%; corrected 38004: fits)", "BRAM18 26 <= 432 (6%; corrected 500: over)")
    assert _capacity_check("xczu3eg-sbva484-1-e", fixed | {"dsp": 1.0}, fixed)[1] == (
        "BRAM18 500 > 432 (116%)",)
    assert _capacity_check("xczu3eg-sbva484-1-e", fixed | {"uram": 4.0, "dsp": 0.0}, fixed)[1] == (  # was ZeroDivisionError
        "BRAM18 500 > 432 (116%)", "URAM 4 > 0 (the part has none; corrected 0: fits)")
    assert _capacity_check("unknown-part", raw, fixed) == (None, ())


@pytest.mark.needs_finn
def test_demo_mlp_corrections_and_capacity(demo_model, tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    import finn_transforms
    from finn_transforms.build.corrections import layer_corrections

    report = finn_transforms.build_estimates(demo_model, tmp_path / "auto")
    assert report.capacity["lut"] == 70_560 and "fits" in report.summary()
    # MVAU_hls_1: 10 channels x 896 E3M2 thresholds, depth 10 -> counted as LUTRAM (FINN's model)
    mvau = report.layer("MVAU_hls_1")
    assert mvau.lut_corrected > mvau.lut and mvau.bram_18k_corrected == mvau.bram_18k and "LUT*" in report.summary()
    assert report.total_lut_corrected == pytest.approx(
        sum(r.lut_corrected if r.correction else r.lut for r in report.layers))
    json.dumps(report.to_dict(), default=str)

    # The input quantizer's thresholds are one set (our streamlining keeps it one channel). Stored once
    # per channel, as FINN does for a per-channel layout, they would cost 784 copies; the correction
    # must give back what FINN estimates for the one-channel layer this build really has.
    hw = ModelWrapper(str(report.hw_graph_path))
    node = next(n for n in hw.graph.node if n.op_type.startswith("Thresholding"))
    one_channel = report.layer(node.name)
    op = getCustomOp(node)
    if op.get_nodeattr("NumChannels") == 1:
        op.set_nodeattr("NumChannels", 784)
        hw.set_initializer(node.input[1], np.tile(hw.get_initializer(node.input[1]), (784, 1)))
        hw.save(str(tmp_path / "per_channel.onnx"))
        fix = layer_corrections(tmp_path / "per_channel.onnx", report.fpga_part)[node.name]
        assert op.lut_estimation(report.fpga_part) > 70_560  # FINN: ~200k LUT, 3x the Ultra96
        assert fix.lut == one_channel.lut and "share one set" in fix.reason
    else:  # FINN's own per-channel layout: corrected in the report itself
        assert one_channel.lut_corrected < one_channel.lut and "share one set" in one_channel.correction

    # the same layer with block-RAM thresholds: + PE * ceil(10 / 512) * ceil(896 * W / 36) RAMB18s
    block = finn_transforms.build_estimates(demo_model, tmp_path / "block",
                                            folding_config={"MVAU_hls_1": {"ram_style_thresholds": "block"}})
    mvau = block.layer("MVAU_hls_1")
    graph = ModelWrapper(str(block.hw_graph_path))
    node = next(n for n in graph.graph.node if n.name == "MVAU_hls_1")
    bits = graph.get_tensor_datatype(node.input[2]).bitwidth()
    assert graph.get_initializer(node.input[2]).shape == (10, 896)
    assert mvau.bram_18k_corrected - mvau.bram_18k == (mvau.pe or 1) * math.ceil(896 * bits / 36)
