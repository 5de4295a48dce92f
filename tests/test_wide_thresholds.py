"""Integer thresholds beyond 2^53 held exactly (`finn_transforms.wide_thresholds`, ``WideThresholding``).

Oracles: Python integers and `fractions.Fraction` (the exact ceil of a threshold after an absorbed
scale and bias), FINN's own threshold-type rule where float64 is exact (below 2^53).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import qonnx_make_model

from finn_transforms.wide_thresholds import (
    FLOAT64_EXACT,
    WideThresholdError,
    attach_residual,
    join,
    restore_residuals,
    saved_residuals,
    split,
)
from tests.test_native import HYP, native_thresholding_graph

needs_finn = pytest.mark.needs_finn
WIDE = st.integers(-(2**90), 2**90)


@settings(max_examples=200, **HYP)
@given(st.lists(WIDE, min_size=1, max_size=12))
def test_split_join_round_trip_is_exact_and_residuals_are_small(values):
    hi, residual = split(values)
    assert hi.dtype == np.float64 and residual.dtype == np.int64
    assert join(hi, residual).tolist() == values
    for v, r in zip(values, residual.tolist()):
        assert abs(r) <= max(1, 2 ** (abs(v).bit_length() - 53))  # half an ulp of float64 at v


def test_join_refuses_mismatched_or_non_integer_tensors():
    with pytest.raises(ValueError, match="shape"):
        join(np.zeros((2, 3)), np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="finite integers"):
        join(np.array([0.5]), np.array([0]))


def _absorption_graphs(weights: np.ndarray, c: float, b: float, thresholds: np.ndarray) -> tuple[ModelWrapper, ModelWrapper]:
    """``reference``: x -> Quant (INT8 codes) -> MatMul(weights) -> Mul(c) -> Add(b) -> MultiThreshold(T);
    ``after``: the same with Mul / Add absorbed in float32 arithmetic (FINN's way: ``(T - b) / c``)."""

    def build(absorbed: bool) -> ModelWrapper:
        k, n = weights.shape
        nodes = [
            helper.make_node("Quant", ["x", "s", "z", "bw"], ["q"], domain="qonnx.custom_op.general", signed=1, narrow=0,
                             rounding_mode="ROUND"),
            helper.make_node("MatMul", ["q", "w"], ["u"]),
        ]
        src = "u"
        if not absorbed:
            nodes += [helper.make_node("Mul", ["u", "c"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"])]
            src = "a"
        nodes.append(helper.make_node("MultiThreshold", [src, "t"], ["y"], domain="qonnx.custom_op.general",
                                      out_dtype="UINT2", data_layout="NC", name="mt"))
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])])
        model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
        for name, value in (("s", 1.0), ("z", 0.0), ("bw", 8.0), ("c", c), ("b", b)):
            model.set_initializer(name, np.array(value, dtype=np.float32))
        model.set_initializer("w", weights.astype(np.float32))
        t = thresholds if not absorbed else ((thresholds - np.float32(b)) / np.float32(c)).astype(np.float32)
        model.set_initializer("t", t.astype(np.float32))
        return model

    return build(False), build(True)


def test_absorbed_thresholds_beyond_2_53_are_exact_with_a_residual():
    """After a non-dyadic scale the exact integer thresholds ``ceil((T - b) / c)`` of 68-bit
    accumulators have ~68 significant bits: the MultiThreshold gets their residual and equals a
    Fraction oracle exactly, where its float64 tensor alone is wrong; nothing is counted inexact."""
    from finn_transforms.exact import evaluate
    from finn_transforms.transformation.exact_absorbed_thresholds import INEXACT_THRESHOLDS_KEY, ExactAbsorbedThresholds

    rng = np.random.default_rng(0)
    weights = (rng.integers(2**19, 2**20, size=(4, 3)) * 2.0**40)  # float32-exact, dot products up to ~2^69
    c, b = 3.0, 0.5
    t = np.sort(rng.uniform(2**66, 2**68, size=(3, 3)).astype(np.float32), axis=1)
    reference, after = _absorption_graphs(weights, c, b, t)
    transform = ExactAbsorbedThresholds(reference)
    after = after.transform(transform)
    node = after.get_nodes_by_op_type("MultiThreshold")[0]
    assert len(node.input) == 3 and after.get_metadata_prop(INEXACT_THRESHOLDS_KEY) is None
    exact = join(after.get_initializer(node.input[1]), after.get_initializer(node.input[2]))
    oracle = [[math.ceil((Fraction(float(v)) - Fraction(b)) / Fraction(c)) for v in row] for row in t]
    assert exact.tolist() == oracle
    assert any(abs(v) > FLOAT64_EXACT and float(v) != v for row in oracle for v in row)
    assert not np.array_equal(after.get_initializer(node.input[1]).astype(object), exact)  # float64 alone differs
    x = rng.standard_normal((1, 4)).astype(np.float32) * 50
    want = evaluate(reference, x)["y"].fractions()
    assert (evaluate(after, x)["y"].fractions() == want).all()


def _wide_graph(codes: np.ndarray, thresholds: list[list[int]], residual: bool = True) -> ModelWrapper:
    """``MVAU_minifloat`` (E5M2 x E5M2) -> ``WideThresholding`` with exact ``thresholds`` (or FINN's
    ``Thresholding`` with only their nearest float64 when ``residual`` is False)."""
    import finn_transforms.native.wide_thresholding  # noqa: F401  (registers the op)

    hi, res = split(thresholds)
    model = native_thresholding_graph(codes, hi)
    if residual:
        node = model.graph.node[1]
        node.op_type = "WideThresholding"
        attach_residual(model, node, res)
    return model


@needs_finn
def test_wide_thresholding_decides_exactly_at_every_tie_beyond_2_53():
    """Thresholds at acc - 1, acc, acc + 1 of real E5M2 x E5M2 accumulators (beyond 2^53, odd low
    bits): the exact HW executor equals a Python-int count; the float64 thresholds alone do not."""
    from finn_transforms.exact import execute_exact_hw

    codes = np.array([[0x7B, 0x01], [0x7A, 0x81]])  # 57344 / 49152 and +-2^-16 (subnormal)
    x = np.array([[254, 128], [253, 129], [250, 131]], dtype=np.float32)  # ordinals (127: zero): big and subnormal inputs
    probe = _wide_graph(codes, [[0], [0]])
    acc = np.concatenate([execute_exact_hw(probe, x[i : i + 1], return_all=True)["y"].as_integers() for i in range(len(x))])
    assert all(abs(int(v)) > FLOAT64_EXACT and float(int(v)) != int(v) for v in acc.flat)
    thresholds = [sorted(int(a) + d for a in acc[:, ch] for d in (-1, 0, 1)) for ch in range(2)]
    for residual in (True, False):
        model = _wide_graph(codes, thresholds, residual)
        got = np.concatenate([execute_exact_hw(model, x[i : i + 1])["t"].as_integers() for i in range(len(x))])
        want = [[sum(int(a) >= t for t in thresholds[ch]) for ch, a in enumerate(row)] for row in acc]
        assert (got.tolist() == want) == residual


@needs_finn
def test_wide_thresholding_python_execution_compares_with_the_exact_thresholds():
    """FINN-style execution of the op (``execute_onnx``) on float64-exact inputs: 2^60 must not reach the
    threshold 2^60 + 1, nor -2^59 - 128 reach -2^59 - 127; their nearest float64s (2^60, -2^59 - 128) would be."""
    from onnx import numpy_helper
    from qonnx.core.onnx_exec import execute_onnx

    import finn_transforms.native.wide_thresholding  # noqa: F401

    from finn_transforms.finn_defaults import HW_DOMAIN

    node = helper.make_node("WideThresholding", ["v", "thr"], ["t"], domain=HW_DOMAIN, backend="fpgadataflow", name="wide",
                            NumChannels=2, PE=1, numSteps=2, inputDataType="INT64", weightDataType="INT64",
                            outputDataType="UINT2", ActVal=0, numInputVectors=[1])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("v", TensorProto.DOUBLE, [1, 2])],
                              [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 2])])
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    hi, res = split([[2**60 + 1, 2**61], [-(2**59) - 127, 2**60 - 1]])
    model.set_initializer("thr", hi)
    attach_residual(model, model.graph.node[0], res)
    v = np.array([[2.0**60, -(2.0**59) - 128]])
    out = execute_onnx(model, {"v": v})["t"]
    assert out.tolist() == [[0, 0]]
    assert numpy_helper.to_array(model.graph.initializer[0]).dtype == np.float64


@needs_finn
@settings(max_examples=150, **HYP)
@given(lo=st.integers(-(2**23), 2**23), span=st.integers(0, 2**23), idt=st.sampled_from(["INT8", "INT20", "INT30", "UINT8", "UINT24", "UINT33"]))
def test_threshold_type_is_finns_rtl_rule_where_float32_is_exact(lo, span, idt):
    """Within 2^24 FINN's own ``Thresholding_rtl.minimize_weight_bit_width`` is the oracle (it checks the
    thresholds as float32, exact there); ours computes the same rule in integers at any width."""
    from finn.custom_op.fpgadataflow.rtl.thresholding_rtl import Thresholding_rtl

    from finn_transforms.finn_defaults import RTL_DOMAIN
    from finn_transforms.native.wide_thresholding import threshold_type

    dt = DataType[idt]
    lo = max(lo, int(dt.min())) if not dt.signed() else lo
    hi = lo + span
    node = helper.make_node("Thresholding_rtl", ["v", "thr"], ["t"], domain=RTL_DOMAIN, backend="fpgadataflow",
                            NumChannels=1, PE=1, numSteps=2, inputDataType=idt, weightDataType="INT64",
                            outputDataType="UINT2", ActVal=0, numInputVectors=[1])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 1])],
                              [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 1])])
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    model.set_initializer("thr", np.array([[lo, hi]], dtype=np.float64))
    model.set_tensor_datatype("v", dt)
    if lo < 0 and not dt.signed():
        return  # FINN clips thresholds of unsigned inputs at 0 first
    want = Thresholding_rtl(node).minimize_weight_bit_width(model)
    got = threshold_type(lo, hi, dt)
    if want.name == "BINARY":
        want = DataType["UINT1"]
    assert got == want, (lo, hi, idt)


@needs_finn
def test_minimize_weight_bit_width_clips_exactly_and_types_beyond_64_bits():
    from finn_transforms.native.wide_thresholding import WideThresholding

    codes = np.array([[0x7B, 0x01], [0x7A, 0x81]])
    acc_bits = 70
    thresholds = [[-(2**90), 2**60 + 7, 2**66 + 1, 2**91], [-(2**66) - 5, -3, 2**62 + 1, 2**68 + 3]]
    model = _wide_graph(codes, thresholds)
    model.set_tensor_datatype("y", DataType[f"INT{acc_bits}"])
    op = getCustomOp(model.graph.node[1])
    op.set_nodeattr("inputDataType", f"INT{acc_bits}")
    assert isinstance(op, WideThresholding)
    tdt = op.minimize_weight_bit_width(model)
    stored = op.exact_thresholds(model).tolist()
    lo, top = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1)  # clipped to [min, max + 1] of the input type
    assert stored == [[max(min(t, top), lo) for t in row] for row in thresholds]
    assert tdt.name == op.get_nodeattr("weightDataType") == "INT71"  # holds -(max + 1) - 1 = -2^69 - 1
    assert all(tdt.min() <= t <= tdt.max() for row in stored for t in row)


def _mt_graph(residual: np.ndarray | None = None) -> ModelWrapper:
    node = helper.make_node("MultiThreshold", ["v", "thr"], ["t"], domain="qonnx.custom_op.general", name="mt")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 2])])
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    hi, res = split([[2**60 + 1], [2**61 + 3]])
    model.set_initializer("thr", hi)
    attach_residual(model, model.graph.node[0], res if residual is None else residual)
    return model


def _as_finn_conversion(model: ModelWrapper, op_type: str = "Thresholding", thresholds: str = "thr") -> ModelWrapper:
    """What FINN's InferThresholdingLayer does to the node: a new node from inputs 0 and 1 only."""
    node = model.graph.node[0]
    model.graph.node.remove(node)
    model.graph.node.append(helper.make_node(op_type, [node.input[0], thresholds], list(node.output), name="Thresholding_mt",
                                             domain="finn.custom_op.fpgadataflow"))
    return model


def test_residuals_are_reattached_after_finns_conversion():
    model = _mt_graph()
    saved = saved_residuals(model)
    exact = join(model.get_initializer("thr"), model.get_initializer(model.graph.node[0].input[2]))
    model = restore_residuals(_as_finn_conversion(model), saved, "step")
    node = model.graph.node[0]
    assert node.op_type == "WideThresholding" and len(node.input) == 3
    assert join(model.get_initializer(node.input[1]), model.get_initializer(node.input[2])).tolist() == exact.tolist()


def test_a_dropped_changed_or_absorbed_residual_is_refused_naming_the_node():
    model = _mt_graph()
    saved = saved_residuals(model)
    with pytest.raises(WideThresholdError, match=r"0 readers of the exact thresholds of 'mt'"):
        restore_residuals(_as_finn_conversion(model, thresholds="other"), saved, "step")
    model = _mt_graph()
    model = _as_finn_conversion(model, op_type="MVAU")
    with pytest.raises(WideThresholdError, match=r"into MVAU 'Thresholding_mt'.*float tensors only"):
        restore_residuals(model, saved, "step")
    model = _as_finn_conversion(_mt_graph())
    model.set_initializer("thr", model.get_initializer("thr") * 2)
    with pytest.raises(WideThresholdError, match=r"changed the exact thresholds of 'mt'"):
        restore_residuals(model, saved, "step")


@needs_finn
def test_e5m2_cnn_thresholds_beyond_2_53_are_exact_through_the_build(tmp_path):
    """The reduced E5M2 CNN with BatchNorm (default mapping): its thresholds beyond 2^53 (before: counted
    inexact, decided by the nearest float64) are held by WideThresholding layers to the last step,
    FINN's estimate report lists them, and every exact stage agrees, the ``rtl`` stage included (native
    layers and WideThresholding layers simulated, each one's cycles beside FINN's expected count)."""
    from brevitas_minifloat import zoo
    from finn_transforms.verify import verify

    torch.manual_seed(0)
    model = zoo.calibrate(zoo.cnv_cnn("E5M2", "E5M2", channels=(2, 4), image_size=10, input_bits_or_fmt="E5M2"))
    report = verify(model, torch.randn(3, 1, 10, 10), tmp_path, raise_on_mismatch=False, rtl=True)
    assert report.inexact_thresholds is None and report.wide_thresholds["layers"] >= 1
    assert f"{report.wide_thresholds['count']:,} thresholds beyond 2^53 held exactly" in report.summary()
    assert all(s.mismatches == 0 for s in report.stages if s.kind == "exact"), report.summary()
    hw = ModelWrapper(str(report.estimates.hw_graph_path))
    wide = [n for n in hw.graph.node if n.op_type == "WideThresholding_rtl"]
    assert wide
    exact = [join(hw.get_initializer(n.input[1]), hw.get_initializer(n.input[2])) for n in wide]
    beyond = [int(v) for t in exact for v in t.flat if abs(int(v)) > FLOAT64_EXACT]
    assert len(beyond) == report.wide_thresholds["count"] and any(float(v) != v for v in beyond)
    assert {n.name for n in wide} <= {layer.name for layer in report.estimates.layers}
    assert report.rtl_not_simulated == [] and "rtl" in [s.stage for s in report.stages]
    for n in wide:  # simulated: expected NumChannels / PE beats per vector, plus the pipeline latency per call
        simulated, expected = report.rtl_cycles[n.name]
        assert expected > 0 and simulated > expected


@needs_finn
def test_shared_wide_thresholds_get_finns_one_copy_per_lane_correction(tmp_path):
    """A per-tensor quantizer after an E5M2 layer: one row of thresholds shared by all channels. As for
    FINN's Thresholding_rtl, the estimate is corrected to one copy per PE lane: FINN's own
    Thresholding_rtl estimate of the layer with NumChannels = PE."""
    from finn.custom_op.fpgadataflow.rtl.thresholding_rtl import Thresholding_rtl

    import finn_transforms.native.wide_thresholding  # noqa: F401
    from finn_transforms.build.corrections import layer_corrections
    from finn_transforms.finn_defaults import RTL_DOMAIN

    attrs = dict(backend="fpgadataflow", PE=2, numSteps=255, inputDataType="INT72", weightDataType="INT73",
                 outputDataType="UINT8", ActVal=0, numInputVectors=[1])
    node = helper.make_node("WideThresholding_rtl", ["v", "thr", "res"], ["t"], domain=RTL_DOMAIN, name="wide",
                            NumChannels=16, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 16])])
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    hi, res = split([sorted(2**60 + 3 * k for k in range(255))])
    model.set_initializer("thr", hi)
    model.set_initializer("res", res)
    model.save(str(tmp_path / "hw.onnx"))
    fix = layer_corrections(tmp_path / "hw.onnx", "xczu3eg-sbva484-1-e")["wide"]
    once = helper.make_node("Thresholding_rtl", ["v", "thr"], ["t"], domain=RTL_DOMAIN, NumChannels=2, **attrs)
    assert fix.lut == Thresholding_rtl(once).lut_estimation("xczu3eg-sbva484-1-e") > 0
