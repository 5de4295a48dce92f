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
