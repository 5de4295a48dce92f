"""Honest estimates (issue 16): part capacity flags, threshold memory embedded in MVAUs, thresholds
shared by all channels counted once (`finn_transforms.build.corrections`, `.parts`)."""

from __future__ import annotations

import json
import math

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


@pytest.mark.needs_finn
def test_demo_mlp_corrections_and_capacity(demo_model, tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    import finn_transforms

    report = finn_transforms.build_estimates(demo_model, tmp_path / "auto")
    thr = report.layer("Thresholding_rtl_0")
    # FINN stores the shared input thresholds once per channel: ~200k LUT, 3x the Ultra96
    assert thr.lut > 70_560 and "share one set" in thr.correction
    hw = ModelWrapper(str(report.hw_graph_path))
    node = next(n for n in hw.graph.node if n.name == "Thresholding_rtl_0")
    op = getCustomOp(node)
    channels, pe = op.get_nodeattr("NumChannels"), op.get_nodeattr("PE")
    assert channels == 784
    op.set_nodeattr("NumChannels", pe)  # the same layer holding one copy per PE lane, per FINN's own model
    assert thr.lut_corrected == op.lut_estimation(report.fpga_part) < thr.lut
    # the raw total exceeds the part, the corrected one fits: both are said
    assert any(e.startswith("LUT 201") and "fits" in e for e in report.exceeds), report.exceeds
    assert "DOES NOT FIT" in report.summary() and "LUT*" in report.summary()
    # MVAU_hls_1: 10 channels x 896 E3M2 thresholds, depth 10 -> counted as LUTRAM (FINN's model)
    mvau = report.layer("MVAU_hls_1")
    assert mvau.lut_corrected > mvau.lut and mvau.bram_18k_corrected == mvau.bram_18k
    assert report.total_lut_corrected == pytest.approx(
        sum(r.lut_corrected if r.correction else r.lut for r in report.layers))
    json.dumps(report.to_dict(), default=str)

    # the same layer with block-RAM thresholds: + PE * ceil(10 / 512) * ceil(896 * 15 / 36) RAMB18s
    block = finn_transforms.build_estimates(demo_model, tmp_path / "block",
                                            folding_config={"MVAU_hls_1": {"ram_style_thresholds": "block"}})
    mvau = block.layer("MVAU_hls_1")
    thresholds = ModelWrapper(str(block.hw_graph_path))
    node = next(n for n in thresholds.graph.node if n.name == "MVAU_hls_1")
    t = thresholds.get_initializer(node.input[2])
    bits = thresholds.get_tensor_datatype(node.input[2]).bitwidth()
    assert t.shape == (10, 896)
    assert mvau.bram_18k_corrected - mvau.bram_18k == (mvau.pe or 1) * math.ceil(896 * bits / 36)
