"""The exact reference and HW executor against independent oracles (Python ints, Fractions, qonnx's
own op execution on float32 inputs, where it is exact by definition)."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

import finn_transforms.custom_op  # noqa: F401  (MinifloatQuant executable by qonnx)
from brevitas_minifloat import MinifloatFormat
from finn_transforms.exact import Exact, ExactError, evaluate
from finn_transforms.exact.explain import near_boundaries
from finn_transforms.exact.tensor import exact_matmul
from tests.strategies import formats, interesting_values

F32 = np.float32
big_ints = st.integers(-(2**70), 2**70)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 3), st.data())
def test_exact_matmul_equals_python_integers(m, k, n, data):
    a = [[data.draw(big_ints) for _ in range(k)] for _ in range(m)]
    b = [[data.draw(st.integers(-(2**40), 2**40)) for _ in range(n)] for _ in range(k)]
    want = [[sum(a[i][t] * b[t][j] for t in range(k)) for j in range(n)] for i in range(m)]
    got = exact_matmul(np.array(a, dtype=object), np.array(b, dtype=object))
    assert [[int(v) for v in row] for row in got] == want


def test_exact_matmul_uses_no_rounding_beyond_2_to_53():
    """A dot product whose float64 result would round: 2^53 + 1 is not a float64."""
    a = np.array([[2**52, 2**52, 1]], dtype=np.int64)
    b = np.array([[1], [1], [1]], dtype=np.int64)
    assert int(exact_matmul(a, b)[0, 0]) == 2**53 + 1


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=20))
def test_from_array_is_exact(values):
    x = np.array(values, dtype=F32)
    got = Exact.from_array(x).fractions()
    assert list(got) == [Fraction(float(v)) for v in x]


def test_nan_and_inf_are_refused_with_the_input_named():
    model = _single_node_model("Relu", [], [], (1, 3))
    for bad in (np.nan, np.inf):
        with pytest.raises(ExactError, match="graph input 'x'.*NaN or Inf"):
            evaluate(model, np.array([[1.0, bad, 2.0]], dtype=F32))


def test_unknown_op_is_refused_naming_the_node():
    model = _single_node_model("Softmax", [], [], (1, 3))
    with pytest.raises(ExactError, match="no exact implementation for Softmax node 'n0'"):
        evaluate(model, np.ones((1, 3), dtype=F32))


def _single_node_model(op, const_inputs, attrs, shape, domain=""):
    inits, names = [], ["x"]
    for i, value in enumerate(const_inputs):
        name = f"c{i}"
        names.append(name)
        inits.append(helper.make_tensor(name, TensorProto.FLOAT, np.shape(value), np.asarray(value, dtype=F32).ravel()))
    node = helper.make_node(op, names, ["y"], name="n0", domain=domain, **dict(attrs))
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], initializer=inits,
    )
    return ModelWrapper(qonnx_make_model(graph))


@settings(max_examples=30, deadline=None)
@given(
    bits=st.integers(2, 8), signed=st.booleans(), narrow=st.booleans(),
    scale=st.floats(0.0009765625, 10.0, width=32), channels=st.integers(1, 3), seed=st.integers(0, 1000),
)
def test_quant_on_float32_inputs_equals_qonnx(bits, signed, narrow, scale, channels, seed):
    """On float32 inputs the boundaries reproduce qonnx's float32 Quant bit for bit, ties included."""
    rng = np.random.default_rng(seed)
    s = (F32(scale) * (1 + rng.random((1, channels)))).astype(F32)
    ties = (np.arange(-(2**bits), 2**bits + 1) + 0.5).astype(F32)[None, :, None] * s[:, None, :]
    near = np.concatenate([ties, np.nextafter(ties, F32(np.inf)), np.nextafter(ties, F32(-np.inf))], axis=1)
    x = np.concatenate([near.reshape(-1, channels), rng.normal(0, 2**bits * scale, (64, channels))]).astype(F32)
    model = _single_node_model(
        "Quant", [s, np.zeros(1), np.array(bits)], [("signed", int(signed)), ("narrow", int(narrow)), ("rounding_mode", "ROUND")],
        x.shape, domain="qonnx.custom_op.general",
    )
    want = execute_onnx(model, {"x": x})["y"]  # fl32(code * s): compare the codes
    got = evaluate(model, x)["y"]  # code * s exactly
    s64 = s.astype(np.float64)
    np.testing.assert_array_equal(got.to_float64() / s64, np.rint(want.astype(np.float64) / s64))


@settings(max_examples=25, deadline=None)
@given(fmt=formats(max_exponent_bits=4, max_mantissa_bits=4, max_bits=8), scale=st.floats(0.0078125, 10.0, width=32))
def test_minifloat_quant_on_float32_inputs_equals_its_execution(fmt, scale):
    if fmt.specials != "none":
        fmt = MinifloatFormat(fmt.exponent_bits, fmt.mantissa_bits, bias=fmt.bias, signed=fmt.signed, subnormals=fmt.subnormals)
    x = (interesting_values(fmt)[None, :] * F32(scale)).astype(F32)
    x = x[:, np.isfinite(x[0])]
    attrs = [("exponent_bitwidth", fmt.exponent_bits), ("mantissa_bitwidth", fmt.mantissa_bits),
             ("exponent_bias", fmt.bias), ("signed", int(fmt.signed)), ("has_subnormal", int(fmt.subnormals))]
    model = _single_node_model("MinifloatQuant", [np.array(scale, dtype=F32)], attrs, x.shape, domain="finn_transforms.custom_op")
    # oracle: the format's own rounding of fl32(x / s), then * s in exact arithmetic
    q = fmt.quantize(torch.from_numpy(x / F32(scale))).numpy().astype(np.float64)
    want = [Fraction(float(v)) * Fraction(float(F32(scale))) for v in q.ravel()]
    assert list(evaluate(model, x)["y"].fractions().ravel()) == want


def _wide_accumulator_model(xs_len: int, w: np.ndarray) -> ModelWrapper:
    """x -> MinifloatQuant E3M4_U (scale 1) -> MatMul(w) -> Quant INT16 (scale 1: codes = rounded dot)."""
    fmt = MinifloatFormat.parse("E3M4_U")
    nodes = [
        helper.make_node("MinifloatQuant", ["x", "one"], ["xq"], domain="finn_transforms.custom_op", name="qin",
                         exponent_bitwidth=3, mantissa_bitwidth=4, exponent_bias=fmt.bias, signed=0, has_subnormal=1),
        helper.make_node("MatMul", ["xq", "w"], ["acc"], name="mm"),
        helper.make_node("Quant", ["acc", "one", "zero", "bits"], ["y"], domain="qonnx.custom_op.general", name="qout",
                         signed=1, narrow=0, rounding_mode="ROUND"),
    ]
    inits = {"one": np.array(1.0, F32), "w": w, "zero": np.array(0.0, F32), "bits": np.array(16.0, F32)}
    graph = helper.make_graph(
        nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, xs_len))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 1))],
        initializer=[helper.make_tensor(n, TensorProto.FLOAT, v.shape, v.ravel()) for n, v in inits.items()],
    )
    return ModelWrapper(qonnx_make_model(graph)).transform(InferShapes())


def test_wide_accumulator_one_lsb_below_a_tie():
    """E3M4_U x E3M4 grid values, fan-in 576, exact dot product 1.5 - 2^-12: one LSB
    (delta_x * delta_w) below the tie 1.5, so the exact code is 1. Float32 partial sums reach 2^16
    (ulp 2^-7) and may lose that LSB and round onto the tie (code 2): whichever way this host's
    float32 goes, the reference and the lowered graph say 1, and a float32 difference is explained."""
    from finn_transforms.steps import lower_minifloat

    k = 576
    big = (k - 2) // 2
    x = np.concatenate([[2.0**-6], np.full(2 * big, 15.5), [1.5]]).astype(F32)[None, :]  # E3M4_U grid values
    w = np.concatenate([[-(2.0**-6)], np.full(big, 15.5), np.full(big, -15.5), [1.0]]).astype(F32)[:, None]  # E3M4
    exact = sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(x[0], w[:, 0]))
    assert exact == Fraction(3, 2) - Fraction(1, 2**12)
    model = _wide_accumulator_model(k, w)
    assert evaluate(model, x)["y"].fractions()[0, 0] == 1
    lowered = lower_minifloat(model)
    assert any(n.op_type == "MultiThreshold" for n in lowered.graph.node)
    assert evaluate(lowered, x)["y"].fractions()[0, 0] == 1
    nb = near_boundaries(model, x)
    assert nb.tainted["y"].all() and nb.near_counts["y"] == 1
    float32 = execute_onnx(model, {"x": x})["y"][0, 0]
    assert float32 in (1.0, 2.0)  # 2.0: float32 rounding, explained by the taint above


def test_far_from_boundaries_nothing_is_tainted():
    x = np.array([[1.0, 2.0, 3.0]], dtype=F32)
    model = _wide_accumulator_model(3, np.array([[1.0], [1.0], [0.5]], dtype=F32))  # dot 4.5 + ... = 4.5
    nb = near_boundaries(model, np.array([[1.0, 2.0, 2.0]], dtype=F32))  # dot 4.0: far from 3.5 / 4.5
    assert not nb.tainted["y"].any() and nb.near_counts["y"] == 0
    assert evaluate(model, x)["y"].fractions()[0, 0] == 4  # 4.5 is a tie: half to even


@pytest.mark.needs_finn
def test_exact_mvau_with_a_30_bit_accumulator_one_lsb_below_its_threshold():
    """FINN MVAU, MW = 576: E3M4_U input codes x E3M4 weight codes whose partial sums reach 2^28
    while the dot product is 6143, one below the threshold 6144 (1.5 in units of 2^-12). The exact HW
    executor outputs 0 exactly as the integer oracle; FINN's float32 execution may not (informational)."""
    from qonnx.custom_op.registry import getCustomOp

    from finn_transforms.exact import execute_exact_hw

    k, big = 576, 287
    x = np.concatenate([[1], np.full(2 * big, 992), [96]]).astype(F32)[None, :]  # codes of 2^-6, 15.5, 1.5
    w = np.concatenate([[-1], np.full(big, 992), np.full(big, -992), [64]]).astype(F32)[:, None]
    assert sum(int(a) * int(b) for a, b in zip(x[0], w[:, 0])) == 6143
    node = helper.make_node(
        "MVAU", ["inp", "w", "thr"], ["out"], domain="finn.custom_op.fpgadataflow", name="mvau",
        backend="fpgadataflow", MW=k, MH=1, SIMD=1, PE=1, inputDataType="UINT10", weightDataType="INT11",
        outputDataType="UINT1", accDataType="INT32", ActVal=0, binaryXnorMode=0, noActivation=0,
        numInputVectors=[1],
    )
    inits = {"w": w, "thr": np.array([[6144.0]], dtype=F32)}
    graph = helper.make_graph(
        [node], "mvau", [helper.make_tensor_value_info("inp", TensorProto.FLOAT, (1, k))],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, (1, 1))],
        initializer=[helper.make_tensor(n, TensorProto.FLOAT, v.shape, v.ravel()) for n, v in inits.items()],
    )
    model = ModelWrapper(qonnx_make_model(graph))
    assert execute_exact_hw(model, x)["out"].fractions()[0, 0] == 0
    context = {"inp": x, "w": w, "thr": inits["thr"], "out": np.zeros((1, 1), F32)}
    getCustomOp(model.graph.node[0]).execute_node(context, model.graph)
    assert context["out"][0, 0] in (0.0, 1.0)  # FINN's float32 result: 1.0 when the LSB was rounded away
    model.graph.node[0].attribute[[a.name for a in node.attribute].index("accDataType")].s = b"INT12"
    with pytest.raises(ExactError, match="accumulator .* exceed accDataType INT12"):
        execute_exact_hw(model, x)
