"""Exact threshold absorption: FINN's float32 absorption flips exact ties, ExactAbsorbedThresholds
restores them (the reference: the exact evaluation of the graph before absorption)."""

from fractions import Fraction

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

from brevitas_minifloat import MinifloatFormat
from finn_transforms.exact import evaluate
from finn_transforms.thresholds import minifloat_thresholds
from finn_transforms.transformation import ExactAbsorbedThresholds

F32 = np.float32
C, H = 3, 6
SCALE = 2.0  # E3M3_U scale (power of two); the pool's 1/36 is not


def _gap_graph(absorbed_sum: bool) -> ModelWrapper:
    """x -> MultiThreshold (UINT8 codes of x) -> GlobalAveragePool -> MultiThreshold (E3M3_U, scale 2).

    ``absorbed_sum``: the pool as FINN leaves it before absorbing: ReduceSum -> Mul(fl32(1/36)).
    """
    fmt = MinifloatFormat.parse("E3M3_U")
    t0 = (np.arange(255) + 0.5).astype(F32)[None, :]  # integer inputs 0..255 -> themselves
    t1 = minifloat_thresholds(fmt, np.array([SCALE], F32))  # (1, integer_max)
    inits = {"t0": t0, "t1": t1}
    nodes = [helper.make_node("MultiThreshold", ["x", "t0"], ["k"], domain="qonnx.custom_op.general",
                              out_dtype="UINT8", data_layout="NCHW", name="mt0")]
    if absorbed_sum:
        inits["inv"] = np.array(1 / 36, dtype=F32)
        nodes += [helper.make_node("ReduceSum", ["k"], ["s"], axes=[2, 3], keepdims=1, name="sum"),
                  helper.make_node("Mul", ["s", "inv"], ["p"], name="mul")]
    else:
        nodes += [helper.make_node("GlobalAveragePool", ["k"], ["p"], name="gap")]
    nodes += [helper.make_node("MultiThreshold", ["p", "t1"], ["y"], domain="qonnx.custom_op.general",
                               out_dtype=fmt.integer_datatype.replace("INT", "UINT"), data_layout="NCHW", name="mt1")]
    graph = helper.make_graph(
        nodes, "gap", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, C, H, H))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, C, 1, 1))],
        initializer=[helper.make_tensor(n, TensorProto.FLOAT, v.shape, v.ravel()) for n, v in inits.items()],
    )
    return ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 11)])).transform(InferShapes())


def _tie_inputs() -> list[np.ndarray]:
    """Pools whose exact mean is a rounding tie of E3M3_U at scale 2 (sum = 36 * 2 * midpoint)."""
    v = MinifloatFormat.parse("E3M3_U").values()
    mids = [36 * Fraction(SCALE) * (Fraction(a) + Fraction(b)) / 2 for a, b in zip(v[:-1], v[1:])]
    sums = [int(m) for m in mids if m.denominator == 1 and m <= 255 * 36]
    assert len(sums) > 20
    out = []
    for i in range(0, len(sums), C):
        x = np.zeros((1, C, H * H), dtype=F32)
        for c, total in enumerate(sums[i : i + C]):
            x[0, c] = total // 36
            x[0, c, : total % 36] += 1
        out.append(x.reshape(1, C, H, H))
    return out


def _outputs(model, xs):
    return np.concatenate([evaluate(model, x)["y"].to_float64() for x in xs])


@pytest.mark.needs_finn
def test_gap_ties_flip_under_finn_absorption_and_are_restored():
    from finn.transformation.streamline.absorb import AbsorbMulIntoMultiThreshold

    reference = _gap_graph(absorbed_sum=False)
    xs = _tie_inputs()
    want = _outputs(reference, xs)
    finn = _gap_graph(absorbed_sum=True).transform(AbsorbMulIntoMultiThreshold())
    assert not finn.get_nodes_by_op_type("Mul")  # FINN divided the thresholds by fl32(1/36)
    flipped = int(np.count_nonzero(_outputs(finn, xs) != want))
    assert flipped > 0  # exact ties decided the wrong way by float32 thresholds
    fix = ExactAbsorbedThresholds(reference)
    fixed = finn.transform(fix)
    assert fix.fixed > 0
    np.testing.assert_array_equal(_outputs(fixed, xs), want)
    t = fixed.get_initializer(fixed.graph.node[-1].input[1])
    assert np.array_equal(t, np.round(t))  # integer thresholds on the integer pool sum
    assert t.shape[0] == 1  # the same affine map on every channel: shared thresholds stay one row


def test_identical_graphs_need_no_fix():
    reference = _gap_graph(absorbed_sum=False)
    fix = ExactAbsorbedThresholds(reference)
    out = _gap_graph(absorbed_sum=False).transform(fix)
    assert fix.fixed == 0
    np.testing.assert_array_equal(out.get_initializer("t1"), reference.get_initializer("t1"))


def test_different_thresholding_counts_are_left_alone():
    reference = _gap_graph(absorbed_sum=False)
    model = _gap_graph(absorbed_sum=True)
    model.graph.node.remove(model.graph.node[0])  # drop the first MultiThreshold
    model.graph.node[0].input[0] = "x"
    fix = ExactAbsorbedThresholds(reference)
    model.transform(fix)
    assert fix.fixed == 0


# ----------------------------------------------------------------- thresholds beyond float32 (2^24)
DIGITS = 5  # u = sum(k_i * 32^(4 - i)): the UINT8 codes k (digits 0..31, k_0 up to 255) reach every u < 2^28
A, B = F32(0.3), F32(-12345.67)  # a BatchNorm-like scale and shift after the integer accumulator u
APPROX = [2**26, 2**26 + 1000, 2**27 - 8]  # where the exact integer thresholds lie (in [2^26, 2^28))


def _exact_threshold(t: np.float32) -> int:
    """Oracle: the smallest integer u with A * u + B >= t (Fractions of the float32 constants)."""
    return int(-((-(Fraction(float(t)) - Fraction(float(B)))) // Fraction(float(A))))


def _wide_thresholds() -> np.ndarray:
    """float32 thresholds T near A * APPROX + B whose exact integer threshold has no float32 in (t - 1, t]."""
    from finn_transforms.transformation.exact_absorbed_thresholds import float32_threshold

    out = []
    for t in APPROX:
        v = F32(float(A) * t + float(B))
        while float32_threshold(_exact_threshold(v)) is not None:
            v = np.nextafter(v, F32(np.inf))
        out.append(v)
    return np.array([out], F32)


def _wide_graph(absorbed: bool, thresholds: np.ndarray | None = None) -> ModelWrapper:
    """x -> MultiThreshold (UINT8 codes) -> MatMul (powers of 32) = u -> [Mul(A) -> Add(B)] -> MultiThreshold."""
    t0 = (np.arange(255) + 0.5).astype(F32)[None, :]
    w = (32.0 ** np.arange(DIGITS - 1, -1, -1)).astype(F32).reshape(DIGITS, 1)
    if thresholds is None:
        thresholds = _wide_thresholds()
    inits = {"t0": t0, "w": w, "t1": thresholds}
    nodes = [helper.make_node("MultiThreshold", ["x", "t0"], ["k"], domain="qonnx.custom_op.general",
                              out_dtype="UINT8", data_layout="NC", name="mt0"),
             helper.make_node("MatMul", ["k", "w"], ["u" if not absorbed else "p"], name="mm")]
    if not absorbed:
        inits.update(a=np.array(A), b=np.array(B))
        nodes += [helper.make_node("Mul", ["u", "a"], ["s"], name="mul"), helper.make_node("Add", ["s", "b"], ["p"], name="add")]
    nodes += [helper.make_node("MultiThreshold", ["p", "t1"], ["y"], domain="qonnx.custom_op.general",
                               out_dtype="UINT2", data_layout="NC", name="mt1")]
    graph = helper.make_graph(
        nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, DIGITS))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 1))],
        initializer=[helper.make_tensor(n, TensorProto.FLOAT, v.shape, v.ravel()) for n, v in inits.items()],
    )
    return ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 11)])).transform(InferShapes())


def _codes(u: int) -> np.ndarray:
    digits = [(u >> (5 * (DIGITS - 1 - i))) & 31 for i in range(DIGITS)]
    digits[0] = u >> (5 * (DIGITS - 1))
    return np.array([digits], F32)


def _decide(model: ModelWrapper, u: float) -> int:
    """FINN's Python execution of the last MultiThreshold on the exact accumulator u (float64, as the
    native layers store accumulators beyond 2^24)."""
    from qonnx.custom_op.registry import getCustomOp

    node = model.graph.node[-1]
    ctx = {node.input[0]: np.array([[u]], np.float64), node.input[1]: model.get_initializer(node.input[1]), node.output[0]: None}
    getCustomOp(node).execute_node(ctx, model.graph)
    return int(ctx[node.output[0]].item())


@pytest.mark.needs_finn
def test_thresholds_beyond_float32_are_exact_as_float64_through_finn_rounding():
    """Exact integer thresholds with 27 significant bits: stored as float64 (no float32 decides like
    them), exact at t - 1 and t in our exact executor and in FINN's MultiThreshold execution; FINN's
    RoundAndClipThresholds casts them to float32 (wrong decisions), ours keeps them."""
    from qonnx.core.datatype import DataType

    from finn_transforms.exact import execute_exact_hw
    from finn_transforms.transformation.exact_absorbed_thresholds import INEXACT_THRESHOLDS_KEY, float32_threshold
    from finn_transforms.transformation.round_and_clip_float64_thresholds import (
        RoundAndClipFloat64Thresholds,
        float64_thresholds,
    )

    reference = _wide_graph(absorbed=False)
    t1 = reference.get_initializer("t1")
    exact = [_exact_threshold(t) for t in t1[0]]
    assert all(float32_threshold(t) is None and abs(t - a) < 100 for t, a in zip(exact, APPROX))
    finn_like = np.array([[(float(t) - float(B)) / float(A) for t in t1[0]]], F32)  # FINN's float32 absorption
    fix = ExactAbsorbedThresholds(reference)
    fixed = _wide_graph(absorbed=True, thresholds=finn_like).transform(fix)
    got = fixed.get_initializer("t1")
    assert got.dtype == np.float64 and [int(v) for v in got[0]] == exact
    assert fixed.get_metadata_prop(INEXACT_THRESHOLDS_KEY) is None
    for t in exact:
        for u in (t - 1, t):
            want = sum(u >= e for e in exact)
            x = _codes(u)
            assert int(evaluate(reference, x)["y"].to_float64().item()) == want  # the exact reference
            assert int(execute_exact_hw(fixed, x)["y"].to_float64().item()) == want
            assert _decide(fixed, float(u)) == want
    # FINN's step_minimize_bit_width ends with RoundAndClipThresholds: float32 again, wrong at some t - 1 / t
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds

    from qonnx.transformation.infer_datatypes import InferDataTypes

    fixed.set_tensor_datatype("w", DataType["UINT21"])  # integer weights: qonnx infers an INT32 accumulator
    fixed = fixed.transform(InferDataTypes())
    saved = float64_thresholds(fixed)
    assert list(saved) == ["t1"]
    rounded = fixed.transform(RoundAndClipThresholds())
    assert rounded.get_initializer("t1").dtype == np.float32
    wrong = sum(_decide(rounded, float(u)) != sum(u >= e for e in exact) for t in exact for u in (t - 1, t))
    assert wrong > 0
    restored = rounded.transform(RoundAndClipFloat64Thresholds(saved))
    assert restored.get_initializer("t1").dtype == np.float64
    for t in exact:
        for u in (t - 1, t):
            assert _decide(restored, float(u)) == sum(u >= e for e in exact)


def _beyond_float64() -> tuple[ModelWrapper, np.ndarray, np.ndarray]:
    """(reference, its thresholds, FINN's float32 absorption of them): the second exact integer threshold
    lies beyond 2^53 with no float64 equal to it."""
    reference = _wide_graph(absorbed=False, thresholds=np.array([[float(A) * 2**26 + float(B), float(A) * 2**60]], F32))
    t1 = reference.get_initializer("t1")
    assert _exact_threshold(t1[0, 1]) > 2**53 and float(_exact_threshold(t1[0, 1])) != _exact_threshold(t1[0, 1])
    return reference, t1, np.array([[(float(t) - float(B)) / float(A) for t in t1[0]]], F32)


def test_thresholds_beyond_float64_get_an_exact_residual():
    """An exact integer threshold beyond 2^53 has no float64 either: the MultiThreshold keeps its nearest
    float64 and gets the int64 residual as input 2, ``int(hi) + residual`` equal to the Fraction oracle;
    nothing is counted inexact."""
    import warnings

    from finn_transforms.transformation.exact_absorbed_thresholds import INEXACT_THRESHOLDS_KEY
    from finn_transforms.wide_thresholds import join

    reference, t1, finn_like = _beyond_float64()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no inexact-threshold warning
        fixed = _wide_graph(absorbed=True, thresholds=finn_like).transform(ExactAbsorbedThresholds(reference))
    assert fixed.get_metadata_prop(INEXACT_THRESHOLDS_KEY) is None
    node = fixed.graph.node[-1]
    assert len(node.input) == 3 and fixed.get_initializer(node.input[2]).dtype == np.int64
    exact = join(fixed.get_initializer("t1"), fixed.get_initializer(node.input[2]))
    assert exact.tolist() == [[_exact_threshold(t) for t in t1[0]]]


def test_thresholds_beyond_float64_of_a_layer_without_a_residual_input_are_counted_and_named():
    """A HW ``Thresholding`` (no residual input) keeps FINN's value beyond 2^53, counted in the model's
    metadata and named in a warning."""
    import json

    from finn_transforms.finn_defaults import HW_DOMAIN
    from finn_transforms.transformation.exact_absorbed_thresholds import INEXACT_THRESHOLDS_KEY

    reference, t1, finn_like = _beyond_float64()
    after = _wide_graph(absorbed=True, thresholds=finn_like)
    last = after.graph.node[-1]
    after.graph.node.remove(last)
    after.graph.node.append(helper.make_node("Thresholding", list(last.input), list(last.output), domain=HW_DOMAIN, name="mt1",
                                             backend="fpgadataflow", NumChannels=1, PE=1, numSteps=2, inputDataType="INT64",
                                             weightDataType="INT64", outputDataType="UINT2", ActVal=0, numInputVectors=[1]))
    with pytest.warns(UserWarning, match=r"1 thresholds in 1 node\(s\) \(first: 'mt1'\) lie beyond 2\^53"):
        fixed = after.transform(ExactAbsorbedThresholds(reference))
    assert json.loads(fixed.get_metadata_prop(INEXACT_THRESHOLDS_KEY)) == {"count": 1, "first": "mt1"}
    got = fixed.get_initializer("t1")
    assert got.dtype == np.float64 and got[0, 1] == finn_like[0, 1]  # FINN's value kept
    assert got[0, 0] == _exact_threshold(t1[0, 0])
