"""Native depthwise layers (`VVAU_minifloat`), the hardware ordinal decode (`OrdinalLUT`) and the
E4M3 CNN topologies they let the default mapping build (`finn_transforms.native`).

Oracles: exact rational dot products of independently decoded codes (`tests/oracle.py`), the
format's ordered values for the decode, and the exact reference evaluator of the exported model
(through `verify`, every exact stage 0 mismatches).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper
from qonnx.custom_op.registry import getCustomOp

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.hw.operands import IntegerFormat
from tests import oracle
from tests.test_native import HYP, finite_codes, oracle_args

needs_finn = pytest.mark.needs_finn

#: E2M1, E4M3, E5M2 (FP8), an M0 format, flush-to-zero, unsigned (issue 14's list).
VVAU_FORMATS = ["E2M1", "E2M3", "E4M3", "E5M2", "E3M0", "E2M1_NOSUB", "E2M2_U", "E4M4_U"]


def _delta(fmt: MinifloatFormat) -> Fraction:
    return Fraction(2) ** (1 - fmt.bias - fmt.mantissa_bits)


def vvau_node(wfmt: str, ifmt: str, channels: int, kernel: tuple[int, int], pe: int, simd: int, dim=(2, 2)):
    from finn_transforms.native import vvau  # noqa: F401  (registers the op)

    return helper.make_node(
        "VVAU_minifloat", ["x", "w"], ["y"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow",
        PE=pe, SIMD=simd, Dim=list(dim), Channels=channels, Kernel=list(kernel), inputDataType="UINT8",
        weightDataType="UINT8", outputDataType="INT64", accDataType="INT128", noActivation=1,
        weightFormat=wfmt, inputFormat=ifmt,
    )


def finn_layout(windows: np.ndarray, pe: int) -> np.ndarray:
    """``(N, H, W, K, C)`` window values -> FINN's VVAU input interleaving for ``pe`` (written
    independently of the code under test: ``C / pe`` folds, each ``K`` elements of ``pe`` channels)."""
    n, h, w, k, c = windows.shape
    out = np.zeros((n, h, w, c * k), dtype=windows.dtype)
    for fold in range(c // pe):
        for j in range(k):
            for p in range(pe):
                out[..., (fold * k + j) * pe + p] = windows[..., j, fold * pe + p]
    return out


@needs_finn
@settings(max_examples=40, **HYP)
@given(data=st.data())
def test_vvau_execution_equals_rational_depthwise_dot_products(data):
    """Python and exact-executor results == per-channel rational dot products / (delta_w * delta_a),
    over formats, integer inputs, kernels and PE/SIMD foldings (the result never depends on them)."""
    from finn_transforms.native.vvau import window_pe

    wfmt = MinifloatFormat.parse(data.draw(st.sampled_from(VVAU_FORMATS), label="weights"))
    iname = data.draw(st.sampled_from(VVAU_FORMATS + ["INT4", "UINT8"]), label="inputs")
    kernel = data.draw(st.sampled_from([(1, 1), (3, 3), (2, 3), (3, 1)]), label="kernel")
    k = kernel[0] * kernel[1]
    pe = data.draw(st.sampled_from([1, 2, 3]))
    channels = pe * data.draw(st.integers(1, 3))
    simd = data.draw(st.sampled_from([d for d in range(1, k + 1) if k % d == 0]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    codes = rng.choice(finite_codes(wfmt), size=(channels, k))
    shape = (1, 2, 2, k, channels)
    if iname.startswith(("INT", "UINT")):
        ifmt = IntegerFormat.parse(iname)
        win = rng.integers(ifmt.integer_min, ifmt.integer_max + 1, size=shape)
        value, d_a = (lambda v: Fraction(int(v))), Fraction(1)
    else:
        ifmt = MinifloatFormat.parse(iname)
        grid = oracle.ordered_values(*oracle_args(ifmt))
        win = rng.integers(0, len(grid), size=shape)
        value, d_a = (lambda v: grid[int(v)]), _delta(ifmt)
    d_w = _delta(wfmt)
    w_val = [[oracle.decode(*oracle_args(wfmt), int(c)) for c in row] for row in codes]
    want = np.empty(shape[:3] + (channels,), dtype=object)
    for idx in np.ndindex(*shape[:3]):
        for c in range(channels):
            want[idx + (c,)] = sum(w_val[c][j] * value(win[idx + (j, c)]) for j in range(k)) / (d_w * d_a)

    op = getCustomOp(vvau_node(wfmt.name, ifmt.name, channels, kernel, pe, simd))
    # the node's own PE interleaving (no Im2Col producer), and FINN's channel-major one after Im2Col
    for producer in (None, "Im2Col"):
        got = op.exact_output(finn_layout(win, window_pe(producer, channels, pe)), codes.reshape(channels, 1, *kernel), producer)
        assert all(Fraction(int(g)) == w for g, w in zip(got.ravel(), want.ravel()))
    assert op.get_exp_cycles() == channels * k // (pe * simd) * 4
    spec = op.spec()
    assert (spec.mw, spec.mh, spec.pe, spec.simd) == (k, channels, pe, simd)


@needs_finn
def test_vvau_refuses_nan_codes_and_narrow_accumulators():
    from finn_transforms.native.vvau import VVAU_minifloat

    node = vvau_node("E4M3_FN", "E4M3", 1, (1, 1), 1, 1)
    op = getCustomOp(node)
    with pytest.raises(ValueError, match="not finite codes of E4M3_FN"):
        op.exact_output(np.zeros((1, 2, 2, 1)), np.full((1, 1, 1, 1), 0x7F), None)  # 0x7F: E4M3_FN's NaN
    node.attribute.remove(next(a for a in node.attribute if a.name == "accDataType"))
    node.attribute.append(helper.make_attribute("accDataType", "INT8"))
    op = VVAU_minifloat(node)
    top = len(MinifloatFormat.parse("E4M3").values()) - 1  # the largest value: k = 480 / 2^-9, far beyond INT8
    with pytest.raises(OverflowError, match="8-bit accumulator"):
        op.exact_output(np.full((1, 2, 2, 1), top), np.full((1, 1, 1, 1), 0x38), None)  # 0x38: 1.0


@needs_finn
def test_ordinal_lut_decodes_every_ordinal_exactly_and_refuses_others():
    from finn_transforms.exact import execute_exact_hw
    from finn_transforms.native import decode_layer  # noqa: F401
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    fmt = MinifloatFormat.parse("E5M3_U")  # E5M2's unsigned rule: k up to 2^33, beyond float32's 2^24
    n = len(fmt.values())
    node = helper.make_node("OrdinalLUT", ["o"], ["k"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow",
                            format=fmt.name, NumChannels=n, PE=1, numInputVectors=[1], inputDataType="UINT8",
                            outputDataType=fmt.integer_datatype)
    graph = helper.make_graph([node], "lut", [helper.make_tensor_value_info("o", 1, [1, n])],
                              [helper.make_tensor_value_info("k", 1, [1, n])])
    model = ModelWrapper(qonnx_make_model(graph))
    o = np.arange(n, dtype=np.float32).reshape(1, n)
    want = [v / _delta(fmt) for v in oracle.ordered_values(*oracle_args(fmt))]
    exact = next(iter(execute_exact_hw(model, {"o": o}).values()))
    assert [Fraction(int(v)) * exact.scale for v in exact.num.ravel()] == want and max(want) > 2**24
    op = getCustomOp(node)
    ctx = {"o": o, "k": None}
    op.execute_node(ctx, None)
    assert [Fraction(float(v)) for v in ctx["k"].ravel()] == want
    with pytest.raises(ValueError, match=r"integer ordinals in \[0, "):
        op.execute_node({"o": np.full((1, n), n, dtype=np.float32), "k": None}, None)
    # the decode layer's cost (finn_transforms.native.decode_cost, tests/test_native_decode_rtl.py)
    from finn_transforms.native.decode_cost import ordinal_lut_cost

    assert op.lut_estimation("") == ordinal_lut_cost(fmt, 1)["lut"] > 0 and op.bram_estimation("") == 0
    assert op.get_exp_cycles() == n and op.get_instream_width() == 8


# ------------------------------------------------------------------------------------ topologies
def _verify_exact(model, x, tmp_path, **kwargs):
    from finn_transforms.verify import verify

    report = verify(model, x, tmp_path, **kwargs)
    exact = [s for s in report.stages if s.kind == "exact"]
    assert {s.stage for s in exact} >= {"lowered", "streamlined", "hw"}
    assert report.ok and all(s.mismatches == 0 and s.max_abs_diff == 0 for s in exact), report.summary()
    return report


def _types(report) -> list[str]:
    return [layer.op_type for layer in report.estimates.layers]


@needs_finn
def test_e4m3_depthwise_separable_cnn_builds_and_verifies_with_the_default_mapping(tmp_path):
    """DS-CNN's structure (reduced): depthwise convs become VVAU_minifloat, the activation before the
    average pool keeps its ordinals and is decoded by an OrdinalLUT; no override."""
    from brevitas_minifloat.zoo import calibrate, ds_cnn

    torch.manual_seed(0)
    model = calibrate(ds_cnn("E4M3", "E4M3", width=1 / 16, blocks=1, power_of_two=True, collect_stats_steps=4),
                      batches=4, batch_size=8)
    report = _verify_exact(model, torch.randn(3, *model.input_shape[1:]), tmp_path)
    types = _types(report)
    assert "VVAU_minifloat_rtl" in types and "OrdinalLUT_rtl" in types and "MVAU_minifloat_rtl" in types
    # the first conv's INT8 x E4M3 sums reach 2^24+ and a BatchNorm scale gives their thresholds more
    # significant bits than float32 has: they are kept as float64 through the build, none is inexact
    assert report.inexact_thresholds is None, report.summary()
    from qonnx.core.modelwrapper import ModelWrapper

    hw = ModelWrapper(str(report.output_dir / "finn_build" / "intermediate_models" / "step_minimize_bit_width.onnx"))
    wide = [hw.get_initializer(n.input[1]) for n in hw.graph.node if n.op_type.startswith("Thresholding")]
    wide = [t for t in wide if t is not None and t.dtype == np.float64]
    assert wide and any(np.float32(v) != v for t in wide for v in t.ravel())  # float64 to the end of the build
    assert not any(t.startswith(("MVAU_hls", "MVAU_rtl")) for t in types)  # every weight layer native


@needs_finn
@pytest.mark.parametrize("kwargs", [dict(), dict(down=True, shortcut_act="E4M3")], ids=["identity", "downsample"])
def test_e4m3_residual_block_builds_and_verifies_with_the_default_mapping(tmp_path, kwargs):
    """The activations at the residual add and before the global pool are decoded in hardware
    (OrdinalLUT), the add and the pool work on the embedded integers; exact at every stage, the
    ``rtl`` stage included: there the decode layers run as RTL beside the native MVAUs (none executed
    exactly instead), each taking NumChannels / PE cycles per pixel plus its latency once per sample."""
    from qonnx.core.modelwrapper import ModelWrapper

    from brevitas_minifloat.zoo import calibrate
    from finn_transforms.native.decode_rtl import LATENCY
    from tests.helpers import residual_block

    torch.manual_seed(0)
    model = calibrate(residual_block("E4M3", "E4M3", **kwargs), batches=4, batch_size=16)
    batch = 4
    report = _verify_exact(model, torch.randn(batch, 4, 8, 8) * 2, tmp_path, mapping="native", rtl=True)
    types = _types(report)
    assert {"OrdinalLUT_rtl", "ElementwiseAdd_hls", "GlobalAccPool_hls", "MVAU_minifloat_rtl"} <= set(types)
    assert "rtl" in {s.stage for s in report.stages} and not report.rtl_not_simulated
    hw = ModelWrapper(str(report.estimates.hw_graph_path))
    luts = [n for n in hw.graph.node if n.op_type == "OrdinalLUT_rtl"]
    assert luts and {n.name for n in luts} <= set(report.rtl_cycles)
    for node in luts:
        assert report.rtl_cycles[node.name] == (batch * (getCustomOp(node).get_exp_cycles() + LATENCY),
                                                batch * getCustomOp(node).get_exp_cycles())


@needs_finn
def test_native_folding_meets_a_target_for_depthwise_layers(tmp_path):
    """SetNativeFolding applies FINN's VVAU rule (PE, then SIMD over the kernel), keeps the sliding
    window's SIMD equal to the VVAU's PE, and folds the decode layers (PE over channels)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from brevitas_minifloat.zoo import calibrate, ds_cnn

    torch.manual_seed(0)
    model = calibrate(ds_cnn("E4M3", "E4M3", width=1 / 8, blocks=1, power_of_two=True, collect_stats_steps=4),
                      batches=2, batch_size=8)
    report = _verify_exact(model, torch.randn(2, *model.input_shape[1:]), tmp_path, target_fps=100_000, clock_ns=10.0)
    hw = ModelWrapper(str(report.estimates.hw_graph_path))
    target = 1000  # 1e8 Hz / 1e5 fps
    vvaus = [n for n in hw.graph.node if n.op_type == "VVAU_minifloat_rtl"]
    assert vvaus
    for node in vvaus:
        op = getCustomOp(node)
        assert op.get_exp_cycles() <= target
        swg = hw.find_producer(node.input[0])
        if swg is not None and swg.op_type.startswith("ConvolutionInputGenerator"):
            assert getCustomOp(swg).get_nodeattr("SIMD") == op.get_nodeattr("PE")
    for node in hw.graph.node:
        if node.op_type == "OrdinalLUT_rtl":
            assert getCustomOp(node).get_exp_cycles() <= target


@pytest.mark.slow
@needs_finn
@pytest.mark.parametrize("factory", ["mobilenet_v1", "resnet8"])
def test_reduced_e4m3_mlperf_cnns_verify_with_the_default_mapping(tmp_path, factory):
    import brevitas_minifloat.zoo as zoo

    kwargs = dict(mobilenet_v1=dict(width=1 / 16, input_size=16, blocks=3), resnet8=dict(width=1 / 8, input_size=8))
    torch.manual_seed(0)
    model = zoo.calibrate(getattr(zoo, factory)("E4M3", "E4M3", power_of_two=True, collect_stats_steps=4,
                                                **kwargs[factory]), batches=4, batch_size=8)
    _verify_exact(model, torch.randn(3, *model.input_shape[1:]), tmp_path)


# ------------------------------------------------------------------------------------ refusals
def _depthwise_only(act: str = "E4M3"):
    """Input quantizer -> 3x3 depthwise conv -> output quantizer (no dense layer)."""
    import brevitas.nn as qnn
    from torch import nn

    from brevitas_minifloat.zoo import calibrate, parse_spec

    fs = parse_spec(act)
    model = nn.Sequential(
        qnn.QuantIdentity(act_quant=fs.act_quant(power_of_two=True, collect_stats_steps=4)),
        qnn.QuantConv2d(4, 4, 3, groups=4, bias=False, weight_quant=fs.weight_quant(power_of_two=True)),
        qnn.QuantIdentity(act_quant=fs.act_quant(power_of_two=True, collect_stats_steps=4)),
    )
    model.input_shape = (1, 4, 6, 6)
    torch.manual_seed(0)
    return calibrate(model, batches=2, batch_size=8)


@needs_finn
def test_depthwise_only_model_verifies_and_its_accumulator_limit_is_refused_naming_the_layer(tmp_path):
    from brevitas_minifloat.export import export_qonnx
    from finn_transforms.build import FinnBuildError, build_estimates
    from finn_transforms.steps import make_step_lower_minifloat

    model = _depthwise_only()
    report = _verify_exact(model, torch.randn(2, 4, 6, 6) * 2, tmp_path / "ok", rtl=True)
    assert "VVAU_minifloat_rtl" in _types(report)
    # the rtl stage simulates the depthwise layer's RTL (tests/test_native_vvau_rtl.py)
    assert "rtl" in {s.stage for s in report.stages}
    assert not report.rtl_not_simulated and "no RTL for" not in report.summary()
    assert [n for n in report.rtl_cycles if n.startswith("VVAU_minifloat")]
    onnx_model = export_qonnx(model.eval(), torch.randn(1, 4, 6, 6), tmp_path / "dw.onnx")
    with pytest.raises(FinnBuildError, match=r"MatMul.*dot products of length 9\) needs \d+ bits, more than max_acc_bits=12"):
        build_estimates(onnx_model, tmp_path / "refused", extra_steps_before=[make_step_lower_minifloat(max_acc_bits=12)])


def test_grouped_non_depthwise_conv_is_refused_naming_the_node(tmp_path):
    """A grouped conv that is not depthwise has no native form: its E4M3 weights (INT19) are refused."""
    import brevitas.nn as qnn
    from torch import nn

    from brevitas_minifloat.export import export_qonnx
    from brevitas_minifloat.zoo import parse_spec
    from finn_transforms.steps import lower_minifloat
    from finn_transforms.transformation import LoweringError

    fs = parse_spec("E4M3")
    model = nn.Sequential(
        qnn.QuantIdentity(act_quant=fs.act_quant(power_of_two=True, collect_stats_steps=1)),
        qnn.QuantConv2d(4, 4, 3, groups=2, bias=False, weight_quant=fs.weight_quant(power_of_two=True)),
    ).eval()
    onnx_model = export_qonnx(model, torch.randn(1, 4, 6, 6), tmp_path / "grouped.onnx")
    with pytest.raises(LoweringError, match=r"E4M3 weights need INT19.*native layers are dense or depthwise"):
        lower_minifloat(onnx_model)


def test_integer_thresholds_beyond_2_24_are_float32_where_float32_holds_them_else_float64():
    """A pool over E5M2's embedded integers (beyond 2^24) keeps float32 thresholds where float32 holds
    them exactly (power-of-two windows); an odd window's need more bits: float64 (exact to 2^53)."""
    from finn_transforms.transformation.exact_thresholds import integer_thresholds

    big = np.array([[2.0**30, 3 * 2.0**40]], dtype=np.float32)
    got = integer_thresholds(big, Fraction(1, 16), 0, 2**50)
    assert got.dtype == np.float32 and [Fraction(float(v)) for v in got.ravel()] == [Fraction(2) ** 34, 3 * Fraction(2) ** 44]
    odd = integer_thresholds(np.array([[2.0**30 + 128]], dtype=np.float32), Fraction(3, 125), 0, 2**50)
    assert odd.dtype == np.float64 and int(odd[0, 0]) == -(-(2**30 + 128) * 125 // 3) and np.float32(odd[0, 0]) != odd[0, 0]


@pytest.mark.slow
@needs_finn
def test_reduced_e5m2_resnet8_verifies_with_the_default_mapping(tmp_path):
    """E5M2 (embedded integers up to 2^33 after the decode layers, accumulators over 64 bits): the
    residual adds and the 4x4 global pool stay exact."""
    from brevitas_minifloat.zoo import calibrate, resnet8

    torch.manual_seed(0)
    model = calibrate(resnet8("E5M2", "E5M2", width=1 / 8, input_size=8, power_of_two=True, collect_stats_steps=4),
                      batches=4, batch_size=8)
    _verify_exact(model, torch.randn(3, *model.input_shape[1:]), tmp_path)


@needs_finn
def test_e5m2_pool_with_an_odd_window_builds_and_verifies_with_float64_thresholds(tmp_path):
    """DS-CNN's AvgPool2d((25, 5)) over E5M2's embedded integers (reduced DS-CNN, default mapping):
    its exact integer thresholds have more than 24 significant bits, stored as float64 from the
    lowering to the last step of the build; exact at every stage (was refused naming the pool)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from brevitas_minifloat.zoo import calibrate, ds_cnn

    torch.manual_seed(0)
    model = calibrate(ds_cnn("E5M2", "E5M2", width=1 / 16, blocks=1, power_of_two=True, collect_stats_steps=4),
                      batches=2, batch_size=8)
    report = _verify_exact(model, torch.randn(3, *model.input_shape[1:]), tmp_path)
    hw = ModelWrapper(str(report.output_dir / "finn_build" / "intermediate_models" / "step_minimize_bit_width.onnx"))
    (pool,) = [n for n in hw.graph.node if n.op_type.startswith("VVAU_hls")]  # the 25x5 window sum (all-ones weights)
    t = hw.get_initializer(pool.input[2])
    assert t.dtype == np.float64 and any(np.float32(v) != v for v in t.ravel())


@settings(max_examples=200, deadline=None)
@given(t=st.integers(-(2**40), 2**40))
def test_float32_threshold_decides_like_the_integer_threshold_or_is_none(t):
    """A float32 in (t - 1, t] when one exists (then ``x >= f`` equals ``x >= t`` for every integer x),
    None exactly when the float32 grid skips the whole interval."""
    from finn_transforms.transformation.exact_absorbed_thresholds import float32_threshold

    got = float32_threshold(t)
    below = np.nextafter(np.float32(t), np.float32(-np.inf))
    candidates = [f for f in (np.float32(t), below, np.nextafter(np.float32(t), np.float32(np.inf)))
                  if t - 1 < Fraction(float(f)) <= t]
    if got is None:
        assert not candidates
    else:
        assert t - 1 < Fraction(float(got)) <= t and got.dtype == np.float32
    if abs(t) <= 2**24:
        assert got is not None and Fraction(float(got)) == t
