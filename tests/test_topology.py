"""Residual blocks, pooling heads, Conv1d and per-channel scales through FINN: exact or refused up front."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import brevitas.nn as qnn
import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from torch import nn

from brevitas_minifloat import MinifloatFormat
from brevitas_minifloat.zoo import calibrate, parse_spec
from finn_transforms.transformation.exact_thresholds import integer_thresholds
from tests.helpers import residual_block as _Residual
from tests.helpers import topology_act_quant as _q
from tests.helpers import topology_weight_quant as _w

needs_finn = pytest.mark.needs_finn


# ----------------------------------------------------------------------------- exact threshold arithmetic


@settings(max_examples=200, deadline=None)
@given(
    t=st.lists(st.floats(-300, 300, width=32), min_size=1, max_size=6),
    num=st.integers(1, 50),
    den=st.integers(1, 50),
    lo=st.integers(-40, 0),
    span=st.integers(0, 80),
)
def test_integer_thresholds_decide_like_rationals(t, num, den, lo, span):
    divisor = Fraction(num, den)
    hi = lo + span
    thresholds = np.asarray(t, dtype=np.float32)
    got = integer_thresholds(thresholds, divisor, lo, hi)
    for v in range(lo, hi + 1):
        want = [Fraction(v) * divisor >= Fraction(float(x)) for x in thresholds.tolist()]
        assert [v >= g for g in got.tolist()] == want
    assert np.all(got >= lo) and np.all(got <= hi + 1)


def test_integer_thresholds_refuse_bad_divisor():
    with pytest.raises(ValueError, match="positive"):
        integer_thresholds(np.zeros(2, np.float32), Fraction(0), 0, 3)


# ----------------------------------------------------------------------------- pooling heads, pass level


def _pool_graph(kind: str, channels: int, size: int, kernel: int, scale: float, thresholds: np.ndarray,
                dtype: str = "UINT4") -> ModelWrapper:
    """x (``dtype``) -> Mul(scale) -> pool -> MultiThreshold(thresholds) (FINN-ONNX, as after streamlining)."""
    out_size = 1 if kind == "GlobalAveragePool" else size // kernel
    pool = (
        helper.make_node("GlobalAveragePool", ["xs"], ["p"], name="pool")
        if kind == "GlobalAveragePool"
        else helper.make_node("AveragePool", ["xs"], ["p"], name="pool", kernel_shape=[kernel, kernel], strides=[kernel, kernel])
    )
    nodes = [
        helper.make_node("Mul", ["x", "s"], ["xs"], name="scale"),
        pool,
        helper.make_node("MultiThreshold", ["p", "t"], ["y"], name="mt", domain="qonnx.custom_op.general",
                         out_dtype="UINT4", data_layout="NCHW"),
    ]
    graph = helper.make_graph(
        nodes, "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, out_size, out_size])],
    )
    model = ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    model.set_initializer("s", np.asarray(scale, dtype=np.float32))
    model.set_initializer("t", thresholds.astype(np.float32))
    model.set_tensor_datatype("x", DataType[dtype])
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    return model.transform(InferShapes()).transform(InferDataTypes()).transform(InferDataLayouts())


def _pool_oracle(x: np.ndarray, kind: str, kernel: int, scale: float, thresholds: np.ndarray) -> np.ndarray:
    """count_j (sum * scale / N >= T_j), decided in exact rationals."""
    c, size = x.shape[1], x.shape[2]
    k = size if kind == "GlobalAveragePool" else kernel
    n = k * k
    out = np.zeros((1, c, size // k, size // k), dtype=np.float32)
    for ch, i, j in itertools.product(range(c), range(size // k), range(size // k)):
        total = int(x[0, ch, i * k:(i + 1) * k, j * k:(j + 1) * k].astype(np.int64).sum())
        avg = Fraction(total) * Fraction(float(np.float32(scale))) / n
        row = thresholds[0 if thresholds.shape[0] == 1 else ch]
        out[0, ch, i, j] = sum(avg >= Fraction(float(t)) for t in row.tolist())
    return out


@needs_finn
@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["GlobalAveragePool", "AveragePool"]),
    kernel=st.sampled_from([2, 3]),
    scale_exp=st.integers(-4, 2),
    odd_scale=st.booleans(),
    per_channel=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_pools_become_sums_with_exact_thresholds_on_ties(kind, kernel, scale_exp, odd_scale, per_channel, seed):
    """Thresholds placed exactly on reachable averages (ties), incl. 1/9 and 1/36: the rewritten graph
    (integer sums, integer thresholds) decides every one like the rational oracle; FINN's own float32
    absorption (thresholds / fl32(1/N)) is not used."""
    from finn_transforms.transformation.lower_average_pools import LowerAveragePoolsToSums

    rng = np.random.default_rng(seed)
    channels, size = 2, 6
    scale = float(np.float32(2.0**scale_exp * (0.75 if odd_scale else 1.0)))
    n = size * size if kind == "GlobalAveragePool" else kernel * kernel
    x = rng.integers(0, 16, size=(1, channels, size, size)).astype(np.float32)
    sums = rng.integers(0, 15 * n + 1, size=(channels if per_channel else 1, 6))
    exact = [Fraction(int(v)) * Fraction(scale) / n for v in sums.flatten()]
    thresholds = np.sort(np.asarray([float(np.float32(e)) for e in exact], np.float32).reshape(sums.shape), axis=1)
    if kind == "AveragePool" and size % kernel:
        return
    model = _pool_graph(kind, channels, size, kernel, scale, thresholds)
    lowered = model.transform(LowerAveragePoolsToSums())
    assert not lowered.get_nodes_by_op_type(kind) and not lowered.get_nodes_by_op_type("Mul")
    got = execute_onnx(lowered, {"x": x})["y"]
    np.testing.assert_array_equal(got, _pool_oracle(x, kind, kernel, scale, thresholds))
    mt = lowered.get_nodes_by_op_type("MultiThreshold")[0]
    t = lowered.get_initializer(mt.input[1])
    assert np.array_equal(t, np.round(t)) and t.min() >= 0  # integers in the sum's range: no negative thresholds


@settings(max_examples=100, deadline=None)
@given(t=st.lists(st.integers(2**20, 2**40), min_size=1, max_size=6), window=st.sampled_from([9, 25, 125]),
       scale_exp=st.integers(-20, 0))
def test_integer_thresholds_beyond_float32_are_float64_and_exact_on_ties(t, window, scale_exp):
    """A pool's odd window over wide integers (E5M2's embedded integers: 34 bits): integer thresholds
    with more than 24 significant bits are float64, deciding like rationals at ``k - 1`` and ``k``."""
    thresholds = np.sort(np.asarray([float(np.float32(v * 2.0**scale_exp / 7)) for v in t], np.float32))
    divisor = Fraction(2) ** scale_exp / window
    got = integer_thresholds(thresholds, divisor, 0, 2**50)
    ints = [math.ceil(Fraction(float(x)) / divisor) for x in thresholds.tolist()]
    assert got.dtype == (np.float32 if all(float(np.float32(k)) == k for k in ints) else np.float64)
    for k in ints:
        for v in (k - 1, k):
            assert [v >= Fraction(float(g)) for g in got.tolist()] == [Fraction(v) * divisor >= Fraction(float(x)) for x in thresholds.tolist()]


def test_integer_thresholds_beyond_float64_are_refused():
    t = np.array([(2**24 - 1) * 2.0**16], np.float32)  # 24 significant bits x 3^20: 56
    with pytest.raises(ValueError, match=r"integer threshold \d+ \(beyond 2\^53.*float32 or float64"):
        integer_thresholds(t, Fraction(1, 3**20), 0, 2**80)


@needs_finn
def test_e5m2_wide_pool_with_an_odd_window_is_exact_on_ties_with_float64_thresholds():
    """A 5x5 global pool (1/25) over UINT34 sums (E5M2's 34-bit embedded integers): the integer
    thresholds have up to 39 significant bits (float64, no float32 holds them); the exact evaluation
    of the lowered graph decides sums at ``k - 1`` and ``k`` like the rational oracle."""
    from finn_transforms.exact import execute_exact_hw
    from finn_transforms.transformation.lower_average_pools import LowerAveragePoolsToSums

    scale, n, big = 2.0**-16, 25, 2**33
    ks = [24 * big + 2**22 + 1, 24 * big + 3 * 2**21 + 7, 24 * big + 5 * 2**20 + 3]  # sums, beyond float32
    thresholds = np.sort(np.asarray([[float(np.float32(Fraction(k) * Fraction(scale) / n)) for k in ks]], np.float32))
    ints = [math.ceil(Fraction(float(x)) * n / Fraction(scale)) for x in thresholds[0].tolist()]
    assert any(float(np.float32(k)) != k for k in ints)
    sums = [v for k in ints for v in (k - 1, k)]
    x = np.full((1, len(sums), 5, 5), float(big), np.float32)  # 24 windows of 2^33, one remainder (< 2^24)
    x[0, :, 4, 4] = [v - 24 * big for v in sums]
    assert all(0 <= r < 2**24 for r in x[0, :, 4, 4])
    model = _pool_graph("GlobalAveragePool", len(sums), 5, 5, scale, thresholds, dtype="UINT34")
    lowered = model.transform(LowerAveragePoolsToSums())
    t = lowered.get_initializer(lowered.get_nodes_by_op_type("MultiThreshold")[0].input[1])
    assert t.dtype == np.float64 and [int(v) for v in t.ravel()] == ints
    got = execute_exact_hw(lowered, {"x": x})["y"].to_float64()  # GlobalAccPool: FINN's HW op
    np.testing.assert_array_equal(got, _pool_oracle(x, "GlobalAveragePool", 5, scale, thresholds))
    assert sorted(set(got.ravel().tolist())) == [0, 1, 2, 3]  # every tie decided on both sides


@needs_finn
def test_pool_thresholds_beyond_float64_are_refused_naming_the_pool():
    from finn_transforms.transformation import LoweringError
    from finn_transforms.transformation.lower_average_pools import LowerAveragePoolsToSums

    thresholds = np.asarray([[float(np.float32(2.0**58 / 7))]], np.float32)  # x 25 / fl32(1/3): 62 significant bits
    model = _pool_graph("GlobalAveragePool", 1, 5, 5, 1 / 3, thresholds, dtype="UINT62")
    with pytest.raises(LoweringError, match=r"'pool'.*window 25, UINT62.*'mt'.*beyond 2\^53"):
        model.transform(LowerAveragePoolsToSums())


@needs_finn
def test_pool_not_followed_by_thresholds_is_left_alone():
    from finn_transforms.transformation.lower_average_pools import LowerAveragePoolsToSums

    model = _pool_graph("AveragePool", 1, 4, 2, 0.5, np.zeros((1, 1), np.float32))
    model.graph.output[0].name = "p"  # the pool output is the graph output
    model.graph.node.remove(model.get_nodes_by_op_type("MultiThreshold")[0])
    out = model.transform(LowerAveragePoolsToSums())
    assert [n.op_type for n in out.graph.node] == ["Mul", "AveragePool"]


# ----------------------------------------------------------------------------- FINN's residual ordering bug


def _residual_graph() -> ModelWrapper:
    """x -> MultiThreshold -> Mul(s) -fork-> [MatMul -> MultiThreshold -> Mul(s)] + [identity] -> Add."""
    nodes = [
        helper.make_node("MultiThreshold", ["x", "t0"], ["q"], domain="qonnx.custom_op.general", out_dtype="UINT2"),
        helper.make_node("Mul", ["q", "s"], ["a"], name="mul_fork"),
        helper.make_node("MatMul", ["q2", "w"], ["m"], name="mm"),
        helper.make_node("MultiThreshold", ["m", "t1"], ["r"], domain="qonnx.custom_op.general", out_dtype="UINT2"),
        helper.make_node("Mul", ["r", "s2"], ["b"], name="mul_branch"),
        helper.make_node("Add", ["b", "a"], ["y"], name="add"),
    ]
    nodes.insert(2, helper.make_node("Mul", ["a", "one"], ["q2"], name="to_branch"))
    graph = helper.make_graph(
        nodes, "res", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    model.set_initializer("t0", np.asarray([[0.5, 1.5, 2.5]], np.float32))
    model.set_initializer("t1", np.asarray([[0.25, 1.0, 2.0]], np.float32))
    model.set_initializer("s", np.asarray(0.5, np.float32))
    model.set_initializer("s2", np.asarray(0.5, np.float32))
    model.set_initializer("one", np.asarray(1.0, np.float32))
    model.set_initializer("w", np.eye(4, dtype=np.float32)[::-1].copy())
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    return model.transform(InferShapes()).transform(InferDataTypes())


def _dangling(model: ModelWrapper) -> list[str]:
    known = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
    known |= {o for n in model.graph.node for o in n.output}
    return [i for n in model.graph.node for i in n.input if i and i not in known]


@needs_finn
def test_finn_eltwise_add_before_fork_drops_a_forked_mul_but_our_order_is_exact():
    """Upstream: MoveLinearPastEltwiseAdd first removes the forked Mul feeding the add and leaves the
    other branch reading a tensor nobody produces; StreamlineTopologies runs MoveLinearPastFork first."""
    from finn.transformation.streamline.reorder import MoveLinearPastEltwiseAdd

    from finn_transforms.transformation.streamline_topologies import StreamlineTopologies

    model = _residual_graph()
    broken = model.transform(MoveLinearPastEltwiseAdd())
    assert _dangling(broken), "FINN fixed MoveLinearPastEltwiseAdd: revisit StreamlineTopologies' docstring"
    ours = model.transform(StreamlineTopologies())
    assert not _dangling(ours)
    x = np.linspace(-1, 4, 4 * 9, dtype=np.float32).reshape(9, 1, 4)
    inp, out = ours.graph.input[0].name, ours.graph.output[0].name
    for row in x:
        want = execute_onnx(model, {"x": row})["y"]
        np.testing.assert_array_equal(execute_onnx(ours, {inp: row})[out], want)
    assert [n.op_type for n in ours.graph.node].count("Mul") == 1  # one scale, after the add


# ----------------------------------------------------------------------------- models through verify


def _verify(model, x, tmp_path, **kwargs):
    from finn_transforms.verify import verify

    report = verify(model, x, tmp_path, **kwargs)
    assert report.ok and all(s.max_abs_diff == 0 for s in report.stages), report.summary()
    return report


def _hw_types(report) -> set[str]:
    return {layer.op_type.rsplit("_", 1)[0] for layer in report.estimates.layers}


@needs_finn
@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(down=True, shortcut_act="E3M2")],
    ids=["identity-shared", "downsample-separate"],
)
def test_residual_blocks_verify_exactly(tmp_path, kwargs):
    torch.manual_seed(0)
    model = calibrate(_Residual("E2M3", "E2M1", **kwargs), batches=4, batch_size=16)
    report = _verify(model, torch.randn(6, 4, 8, 8) * 2, tmp_path)
    assert {"ElementwiseAdd", "DuplicateStreams", "GlobalAccPool", "MVAU"} <= _hw_types(report)
    if "shortcut_act" in kwargs:  # different scales at the add: one side multiplied by an integer ratio
        scales = [float(m.act_quant.scale()) for m in (model.q_add, model.q_short)]
        assert scales[0] != scales[1]


@needs_finn
def test_integer_residual_block_builds_integer_layers_only(tmp_path):
    """INT4 everywhere, separate quantizers of different widths at the add (INT4 / INT6: ratio 4)."""
    from finn_transforms.build import build_estimates
    from finn_transforms.hw_exec import load_hw_graph

    torch.manual_seed(0)
    model = calibrate(_Residual("INT4", "INT4", shortcut_act="INT6"), batches=4, batch_size=16)
    from brevitas_minifloat import export_qonnx

    exported = export_qonnx(model, torch.randn(model.input_shape), tmp_path / "m.onnx")
    report = build_estimates(exported, tmp_path / "build")
    hw = load_hw_graph(tmp_path / "build")
    last = hw.graph.node[-1].name  # the output scale (ElementwiseMul by a float) may be float
    float_ops = [n.name for n in hw.graph.node if n.name != last and any(
        a.name.endswith("dtype") and a.s == b"FLOAT32" for a in n.attribute)]
    assert not float_ops and {"ElementwiseAdd", "ElementwiseMul"} <= {l.op_type.rsplit("_", 1)[0] for l in report.layers}


def _head_model(pool: nn.Module, act: str, *, signed: bool, features: int, conv1d: bool = False):
    layers = [qnn.QuantIdentity(act_quant=_q(act))]
    if conv1d:
        layers += [qnn.QuantConv1d(2, 2, 3, padding=1, bias=False, weight_quant=_w("E2M1")),
                   qnn.QuantReLU(act_quant=_q(act, True))]
    layers += [pool, qnn.QuantIdentity(act_quant=_q(act, not signed)), nn.Flatten(),
               qnn.QuantLinear(features, 3, bias=False, weight_quant=_w("E2M1")), qnn.QuantIdentity(act_quant=_q("E3M2"))]
    return nn.Sequential(*layers)


def _tie_inputs(model: nn.Sequential, window: int, shape: tuple[int, ...], n: int, seed: int = 0) -> torch.Tensor:
    """Inputs on the (E2M3) input quantizer's grid whose window means land on midpoints of the (E2M3) pool
    quantizer's grid (round-half-to-even ties), found by search; asserts they exist."""
    rng = np.random.default_rng(seed)
    s_in = float(model[0].act_quant.scale())
    pool_q = next(m for m in model if isinstance(m, qnn.QuantIdentity) and m is not model[0])
    s_pool = float(pool_q.act_quant.scale())
    grid = MinifloatFormat.parse("E2M3").values() * s_in
    fmt_pool = MinifloatFormat.parse("E2M3")
    mids = set(Fraction(float(v)) for v in (fmt_pool.values()[1:] + fmt_pool.values()[:-1]) / 2)
    samples = []
    for _ in range(200_000):
        if len(samples) == n:
            break
        a, b = rng.choice(grid, 2)
        k = int(rng.integers(1, window))
        mean = (Fraction(float(a)) * k + Fraction(float(b)) * (window - k)) / window
        if mean / Fraction(s_pool) in mids:
            samples.append((a, b, k))
    assert len(samples) == n, "no tie inputs found"
    xs = np.empty((n, *shape[1:]), dtype=np.float32)
    for i, (a, b, k) in enumerate(samples):
        flat = np.full(window, b, dtype=np.float32)
        flat[:k] = a
        xs[i] = np.resize(rng.permutation(flat), shape[1:])
    return torch.from_numpy(xs)


@needs_finn
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_global_average_pool_head_exact_on_ties(tmp_path, signed):
    torch.manual_seed(0)
    model = _head_model(nn.AdaptiveAvgPool2d(1), "E2M3", signed=signed, features=2)
    calibrate(model, inputs=torch.randn(64, 2, 4, 4) * 2)
    x = _tie_inputs(model, 16, (1, 2, 4, 4), 8) if signed else torch.randn(8, 2, 4, 4) * 2
    report = _verify(model, torch.cat([x, torch.randn(4, 2, 4, 4)]), tmp_path)
    assert "GlobalAccPool" in _hw_types(report)


@needs_finn
@pytest.mark.parametrize("kernel", [2, 3])
def test_avgpool2d_head_exact(tmp_path, kernel):
    torch.manual_seed(1)
    size = 2 * kernel
    model = _head_model(nn.AvgPool2d(kernel), "E2M3", signed=True, features=8)
    calibrate(model, inputs=torch.randn(64, 2, size, size) * 2)
    extra = [_tie_inputs(model, kernel * kernel, (1, 2, size, size), 6)] if kernel == 2 else []
    report = _verify(model, torch.cat([*extra, torch.randn(6, 2, size, size) * 2]), tmp_path)
    assert "VVAU" in _hw_types(report)  # the window sum: a depthwise all-ones conv


@needs_finn
@pytest.mark.parametrize("pool", ["gap", "avg"])
def test_conv1d_models_verify_exactly(tmp_path, pool):
    torch.manual_seed(2)
    head = nn.AdaptiveAvgPool1d(1) if pool == "gap" else nn.AvgPool1d(2)
    model = _head_model(head, "E2M3", signed=True, features=2 if pool == "gap" else 6, conv1d=True)
    calibrate(model, inputs=torch.randn(64, 2, 6) * 2)
    report = _verify(model, torch.randn(8, 2, 6) * 2, tmp_path)
    assert "MVAU" in _hw_types(report)


# ----------------------------------------------------------------------------- per-channel scales and refusals


def _build(model, tmp_path, shape):
    from brevitas_minifloat import export_qonnx
    from finn_transforms.build import build_estimates
    from finn_transforms.steps import MINIFLOAT_STEP

    exported = export_qonnx(model.eval(), torch.randn(shape), tmp_path / "m.onnx")
    return build_estimates(exported, tmp_path / "build", extra_steps_before=[MINIFLOAT_STEP])


@needs_finn
def test_per_channel_scale_before_conv_is_refused_before_finn_runs(tmp_path):
    from finn_transforms.build import FinnBuildError

    model = nn.Sequential(
        qnn.QuantIdentity(act_quant=_q("E2M3")),
        qnn.QuantConv2d(2, 3, 3, bias=False, weight_quant=_w("E2M1")),
        qnn.QuantReLU(act_quant=_q("E2M3", True, per_channel=True, channels=3, pot=False)),
        qnn.QuantConv2d(3, 2, 1, bias=False, weight_quant=_w("E2M1")),
        qnn.QuantIdentity(act_quant=_q("E3M2")),
    )
    calibrate(model, inputs=torch.randn(32, 2, 5, 5))
    with pytest.raises(FinnBuildError, match=r"per-channel activation scale \(3 values\) in front of Conv") as err:
        _build(model, tmp_path, (1, 2, 5, 5))
    assert err.value.step == "step_check_topology"
    assert "per_channel=False" in str(err.value)


@needs_finn
def test_per_channel_scale_into_a_quantizer_is_absorbed(tmp_path):
    """A per-channel quantizer followed (through MaxPool) by a per-tensor one: FINN absorbs the per-channel
    Mul into the next MultiThreshold's per-channel thresholds."""
    torch.manual_seed(3)
    model = nn.Sequential(
        qnn.QuantIdentity(act_quant=_q("E2M3")),
        qnn.QuantConv2d(2, 3, 3, bias=False, weight_quant=_w("E2M1")),
        qnn.QuantReLU(act_quant=_q("E2M3", True, per_channel=True, channels=3)),
        nn.MaxPool2d(2),
        qnn.QuantIdentity(act_quant=_q("E2M3")),
        qnn.QuantConv2d(3, 2, 1, bias=False, weight_quant=_w("E2M1")),
        qnn.QuantIdentity(act_quant=_q("E3M2")),
    )
    calibrate(model, inputs=torch.randn(32, 2, 6, 6) * 2)
    _verify(model, torch.randn(6, 2, 6, 6) * 2, tmp_path)


def _refusal(model: nn.Module, shape, tmp_path, match: str):
    from finn_transforms.build import FinnBuildError

    torch.manual_seed(0)
    calibrate(model, inputs=torch.randn(16, *shape[1:]))
    with pytest.raises(FinnBuildError, match=match) as err:
        _build(model, tmp_path, shape)
    assert err.value.step == "step_check_topology"


@needs_finn
def test_unsupported_average_pools_are_refused(tmp_path):
    def head(pool):
        return nn.Sequential(qnn.QuantIdentity(act_quant=_q("E2M3")), pool, qnn.QuantIdentity(act_quant=_q("E2M3")),
                             nn.Flatten(), qnn.QuantLinear(2 * 4, 2, bias=False, weight_quant=_w("E2M1")))

    _refusal(head(nn.AvgPool2d(2, ceil_mode=True)), (1, 2, 3, 3), tmp_path / "a", "ceil_mode")
    _refusal(head(nn.AvgPool2d(2, padding=1, count_include_pad=False)), (1, 2, 2, 2), tmp_path / "b", "count_include_pad")
    no_quant = nn.Sequential(qnn.QuantIdentity(act_quant=_q("E2M3")), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             qnn.QuantLinear(2, 2, bias=False, weight_quant=_w("E2M1")))
    _refusal(no_quant, (1, 2, 4, 4), tmp_path / "c", r"GlobalAveragePool node .* feeds MatMul node .* without a quantizer")


@needs_finn
def test_residual_add_with_non_integer_scale_ratio_is_refused(tmp_path):
    class Add(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = qnn.QuantIdentity(act_quant=parse_spec("E2M3").act_quant(collect_stats_steps=4))
            self.b = qnn.QuantIdentity(act_quant=parse_spec("E2M3").act_quant(collect_stats_steps=4))
            self.out = qnn.QuantIdentity(act_quant=parse_spec("E2M3").act_quant(collect_stats_steps=4))

        def forward(self, x):
            return self.out(self.a(x) + self.b(3 * x))

    _refusal(Add(), (1, 4), tmp_path, r"Add node .* adds two quantized tensors with scales .* not an integer")


@needs_finn
def test_negative_thresholds_on_an_unsigned_quantizer_output_are_clipped_exactly():
    from finn_transforms.transformation.clip_thresholds_on_unsigned_inputs import ClipThresholdsOnUnsignedInputs

    nodes = [
        helper.make_node("MultiThreshold", ["x", "t0"], ["u"], domain="qonnx.custom_op.general", out_dtype="UINT2"),
        helper.make_node("MultiThreshold", ["u", "t1"], ["y"], domain="qonnx.custom_op.general", out_dtype="UINT2",
                         out_bias=-2.0),
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("MultiThreshold", ["m", "t1"], ["z"], domain="qonnx.custom_op.general", out_dtype="UINT2"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in ("y", "z")])
    model = ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    model.set_initializer("t0", np.asarray([[0.5, 1.5, 2.5]], np.float32))
    model.set_initializer("t1", np.asarray([[-3.0, -0.5, 1.0]], np.float32))
    model.set_initializer("w", np.eye(3, dtype=np.float32))
    model.set_tensor_datatype("x", DataType["INT4"])
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    model = model.transform(InferShapes()).transform(InferDataTypes())
    out = model.transform(ClipThresholdsOnUnsignedInputs())
    t = [out.get_initializer(n.input[1]).tolist() for n in out.get_nodes_by_op_type("MultiThreshold")]
    assert t[1] == [[0.0, 0.0, 1.0]] and t[2] == [[-3.0, -0.5, 1.0]]  # the MatMul-fed one is not trusted
    for v in np.arange(-4, 5, dtype=np.float32):
        x = np.full((1, 3), v, np.float32)
        np.testing.assert_array_equal(execute_onnx(out, {"x": x})["y"], execute_onnx(model, {"x": x})["y"])
