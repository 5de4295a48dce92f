"""Integer activation ``Quant`` nodes lowered by `LowerIntegerActivations`: exact at ties.

The oracle is qonnx's own ``Quant`` execution (``int_quant``: ``np.round``, half to even, and
qonnx's other rounding modes) on float32 inputs, and Python's ``round`` (half to even) for the
hand-picked ties; whole models go through `finn_transforms.verify` against the exact reference.
"""

from __future__ import annotations

import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model
from torch import nn

from brevitas_minifloat.zoo import calibrate, parse_spec
from finn_transforms.transformation import LowerIntegerActivations, LoweringError

F32 = np.float32
MODES = ["ROUND", "HALF_EVEN", "HALF_UP", "HALF_DOWN", "FLOOR", "CEIL", "UP", "DOWN"]
LAYOUTS = {"NC": 1, "NCW": 1, "NCHW": 1, "NHWC": 3}


def quant_model(shape, scale, zero, bits, *, signed=True, narrow=False, mode="ROUND", relu=False,
                before: str | None = None) -> ModelWrapper:
    """``x [-> Relu / before] -> Quant -> y``."""
    nodes, x = [], "x"
    if relu or before:
        nodes.append(helper.make_node(before or "Relu", ["x"], ["r"], name="act"))
        x = "r"
    nodes.append(helper.make_node("Quant", [x, "s", "z", "b"], ["y"], domain="qonnx.custom_op.general", name="q",
                                  signed=int(signed), narrow=int(narrow), rounding_mode=mode))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))])
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    for name, value in (("s", scale), ("z", zero), ("b", bits)):
        model.set_initializer(name, np.asarray(value, F32))
    return model.transform(InferShapes())


def run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    return execute_onnx(model, {"x": x})["y"]


def probes(s: float, z: float, lo: int, hi: int) -> np.ndarray:
    """One channel's inputs: every tie ``(k + 0.5 - z) * s`` and step ``(k - z) * s`` (the boundaries
    of every rounding mode) with their float32 neighbours, zeros, saturation, infinities."""
    ks = np.arange(lo - 1, hi + 2, dtype=np.float64)
    base = np.concatenate([(ks + 0.5 - z) * s, (ks - z) * s]).astype(F32)
    near = [base, np.nextafter(base, F32(np.inf)), np.nextafter(base, F32(-np.inf))]
    extra = np.array([0.0, -0.0, 1e-45, -1e-45, np.inf, -np.inf, 3e38, -3e38], F32)
    return np.concatenate(near + [extra])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_lowered_quant_equals_qonnx_quant_everywhere_incl_ties(data):
    signed = data.draw(st.booleans(), label="signed")
    narrow = data.draw(st.booleans(), label="narrow")
    bits = data.draw(st.integers(2, 8), label="bits")
    mode = data.draw(st.sampled_from(MODES), label="mode")
    relu = data.draw(st.booleans(), label="relu")
    layout = data.draw(st.sampled_from(sorted(LAYOUTS)), label="layout")
    channels = data.draw(st.integers(1, 3), label="C")
    per_channel = data.draw(st.booleans(), label="per_channel")
    caxis = LAYOUTS[layout] if layout != "NHWC" else 3
    rank = len(layout)
    pshape = [1] * rank
    if per_channel:
        pshape[caxis] = channels
    n = int(np.prod(pshape))
    if data.draw(st.booleans(), label="pot"):
        scale = 2.0 ** np.asarray(data.draw(st.lists(st.integers(-10, 6), min_size=n, max_size=n)), np.float64)
    else:
        scale = np.asarray(data.draw(st.lists(st.floats(2.0**-10, 2.0**6, width=32), min_size=n, max_size=n)))
    zero = np.asarray(data.draw(st.lists(st.integers(-2, 2) if data.draw(st.booleans()) else st.just(0),
                                         min_size=n, max_size=n)), np.float64)
    scale, zero = scale.astype(F32).reshape(pshape), zero.astype(F32).reshape(pshape)
    lo, hi = (-(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1 - int(narrow))
    cols = [probes(float(scale.flat[c if per_channel else 0]), float(zero.flat[c if per_channel else 0]), lo, hi)
            for c in range(channels)]
    x2 = np.stack([np.resize(c, max(map(len, cols))) for c in cols], axis=1)  # (N, C)
    x = np.moveaxis(x2.reshape(x2.shape + (1,) * (rank - 2)), 1, caxis)
    model = quant_model(x.shape, scale, zero, bits, signed=signed, narrow=narrow, mode=mode, relu=relu)
    before = model.model.SerializeToString()
    lowered = model.transform(LowerIntegerActivations())
    assert model.model.SerializeToString() == before  # the input model is untouched
    ops = [nd.op_type for nd in lowered.graph.node]
    assert "Quant" not in ops and ops[ops.index("MultiThreshold"):][-1] in ("MultiThreshold", "Add", "Mul")
    with np.errstate(invalid="ignore", over="ignore"):
        want = run(model, x)
    np.testing.assert_array_equal(run(lowered, x), want)


def test_ties_round_half_to_even_not_up():
    """INT4 at scale 0.25 (and a float scale): every ``(k + 0.5) * s`` gives the even neighbour, as
    Python's ``round`` (half to even) says; FINN's half-step thresholds would give ``k + 1``."""
    for s in (F32(0.25), F32(0.1)):
        k = np.arange(-8, 7, dtype=np.float64)
        x = ((k + 0.5) * np.float64(s)).astype(F32)
        ties = (x / s).astype(np.float64) == k + 0.5  # float32 division lands exactly on the tie
        model = quant_model((1, x.size), s, 0.0, 4)
        got = run(model.transform(LowerIntegerActivations()), x[None])[0] / s
        want = [round(float(v)) for v in (x / s)]
        np.testing.assert_array_equal(np.round(got), np.clip(want, -8, 7))
        assert ties.sum() >= 7 and any(round(v + 0.5) == v for v in k[ties])  # even ties exist: rounding matters


def test_relu_absorbed_and_unsigned_output():
    model = quant_model((1, 6), F32(0.5), 0.0, 4, signed=True, relu=True)
    lowered = model.transform(LowerIntegerActivations())
    assert [nd.op_type for nd in lowered.graph.node] == ["MultiThreshold", "Mul"]
    mt = getCustomOp(lowered.graph.node[0])
    assert mt.get_nodeattr("out_dtype") == "UINT3" and mt.get_nodeattr("out_bias") == 0
    assert (lowered.get_initializer(lowered.graph.node[0].input[1]) > 0).all()
    x = np.array([[-3.0, -0.25, 0.25, 0.75, 1.25, 9.0]], F32)
    np.testing.assert_array_equal(run(lowered, x), run(model, x))


def test_zero_points_per_tensor_and_per_channel():
    x = np.linspace(-6, 6, 97, dtype=F32)[:, None].repeat(3, axis=1)
    per_tensor = quant_model(x.shape, F32(0.5), 3.0, 4, signed=False)
    lowered = per_tensor.transform(LowerIntegerActivations())
    assert [nd.op_type for nd in lowered.graph.node] == ["MultiThreshold", "Mul"]
    assert getCustomOp(lowered.graph.node[0]).get_nodeattr("out_bias") == -3
    np.testing.assert_array_equal(run(lowered, x), run(per_tensor, x))
    per_channel = quant_model(x.shape, np.array([[0.5, 0.3, 1.0]], F32), np.array([[0, 2, -1]], F32), 3)
    lowered = per_channel.transform(LowerIntegerActivations())
    assert [nd.op_type for nd in lowered.graph.node] == ["MultiThreshold", "Add", "Mul"]
    np.testing.assert_array_equal(run(lowered, x), run(per_channel, x))


def test_unit_scale_needs_no_mul():
    model = quant_model((1, 4), F32(1.0), 0.0, 8, signed=False)
    lowered = model.transform(LowerIntegerActivations())
    assert [nd.op_type for nd in lowered.graph.node] == ["MultiThreshold"]
    x = np.array([[0.5, 1.5, 2.5, 300.0]], F32)
    np.testing.assert_array_equal(run(lowered, x), [[0, 2, 2, 255]])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mode="STOCHASTIC"), "rounding mode 'STOCHASTIC'"),
        (dict(zero=0.5), "non-integer zero points"),
        (dict(scale=np.ones((1, 2, 3), F32)), "varies along several axes"),
        (dict(scale=np.ones((1, 1, 3, 1), F32), shape=(1, 2, 3, 4)), "axis 2"),
        (dict(scale=F32(-1.0)), "finite and positive"),
        (dict(bits=2.5), "bit width must be a positive integer"),
        (dict(bits=1, signed=False, narrow=True), "a single code"),
        (dict(shape=(4,)), "rank >= 2"),
        (dict(scale=F32(1e38)), "overflow float32"),
    ],
)
def test_refusals_name_the_node(kwargs, match):
    shape = kwargs.pop("shape", (1, 2, 3))
    args = dict(scale=F32(0.5), zero=0.0, bits=4)
    args.update({k: kwargs.pop(k) for k in list(kwargs) if k in args})
    model = quant_model(shape, args["scale"], args["zero"], args["bits"], **kwargs)
    with pytest.raises(LoweringError, match=match) as err:
        model.transform(LowerIntegerActivations())
    assert "Quant node 'q'" in str(err.value)


def test_dynamic_scale_is_refused():
    model = quant_model((1, 4), F32(0.5), 0.0, 4)
    model.graph.initializer.remove(next(i for i in model.graph.initializer if i.name == "s"))
    model.graph.input.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, []))
    with pytest.raises(LoweringError, match="scale 's' is not a constant"):
        model.transform(LowerIntegerActivations())


@pytest.mark.parametrize(
    "kwargs",
    [dict(bits=1), dict(before="Selu"), dict(bits=13)],
    ids=["bipolar-1-bit", "after-selu", "wider-than-max-thresholds"],
)
def test_left_to_finn(kwargs):
    bits = kwargs.pop("bits", 4)
    model = quant_model((1, 4), F32(0.5), 0.0, bits, **kwargs)
    assert [nd.op_type for nd in model.transform(LowerIntegerActivations()).graph.node][-1] == "Quant"


@pytest.mark.needs_finn
def test_finn_conversion_rounds_ties_up_and_ours_does_not():
    """The upstream problem this pass works around: FINN+ 1.6.1's ConvertQONNXtoFINN thresholds an
    INT4 quantizer at the half steps, so ``x = 0.5 * s`` becomes 1 where ``Quant`` gives 0."""
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN

    model = quant_model((1, 4), F32(0.25), 0.0, 4)
    x = np.array([[0.125, 0.375, -0.125, -0.375]], F32)  # ties at codes 0.5, 1.5, -0.5, -1.5
    want = run(model, x)
    np.testing.assert_array_equal(want / F32(0.25), [[0, 2, 0, -2]])
    finn = run(model.transform(ConvertQONNXtoFINN()), x)
    assert not np.array_equal(finn, want), "FINN rounds ties to even now: revisit LowerIntegerActivations"
    np.testing.assert_array_equal(run(model.transform(LowerIntegerActivations()), x), want)


# ----------------------------------------------------------------------------- whole models through verify


def _int_q(spec: str, unsigned: bool = False):
    return parse_spec(spec).act_quant(unsigned=unsigned, power_of_two=True, collect_stats_steps=4)


def _int_model(*layers, inputs: torch.Tensor) -> nn.Sequential:
    """INT4 input quantizer, ``layers`` (INT4 power-of-two weights), INT8 output quantizer; calibrated."""
    torch.manual_seed(0)
    model = nn.Sequential(qnn.QuantIdentity(act_quant=_int_q("INT4")), *layers, qnn.QuantIdentity(act_quant=_int_q("INT8")))
    return calibrate(model, inputs=inputs)


def _w4():
    return parse_spec("INT4").weight_quant(power_of_two=True)


def _tie_batch(model, shape, n: int, seed: int = 0) -> torch.Tensor:
    """Inputs on ties of the model's first quantizer, at even codes (``(2j + 0.5) * s``: round half
    up would give ``2j + 1``), mixed with random values."""
    rng = np.random.default_rng(seed)
    s = float(model[0].act_quant.scale())
    codes = 2 * rng.integers(-3, 3, size=(n, *shape)) + 0.5
    x = np.where(rng.random((n, *shape)) < 0.5, codes * s, rng.normal(size=(n, *shape)) * 4 * s)
    return torch.from_numpy(x.astype(F32))


def _verify(model, x, tmp_path):
    from finn_transforms.verify import verify

    report = verify(model, x, tmp_path)
    exact = [s for s in report.stages if s.kind == "exact"]
    assert exact and all(s.mismatches == 0 for s in exact), report.summary()
    return report


@pytest.mark.needs_finn
def test_integer_mlp_verifies_exactly_on_ties(tmp_path):
    model = _int_model(
        qnn.QuantLinear(12, 8, bias=False, weight_quant=_w4()), qnn.QuantReLU(act_quant=_int_q("INT4", True)),
        qnn.QuantLinear(8, 4, bias=False, weight_quant=_w4()), inputs=torch.randn(64, 12) * 2,
    )
    _verify(model, _tie_batch(model, (12,), 16), tmp_path)


@pytest.mark.needs_finn
def test_integer_gap_head_verifies_exactly_on_ties(tmp_path):
    model = _int_model(
        qnn.QuantConv2d(2, 4, 3, padding=1, bias=False, weight_quant=_w4()), qnn.QuantReLU(act_quant=_int_q("INT4", True)),
        nn.AdaptiveAvgPool2d(1), qnn.QuantIdentity(act_quant=_int_q("INT4")), nn.Flatten(),
        qnn.QuantLinear(4, 3, bias=False, weight_quant=_w4()), inputs=torch.randn(64, 2, 4, 4) * 2,
    )
    _verify(model, _tie_batch(model, (2, 4, 4), 12), tmp_path)


@pytest.mark.needs_finn
def test_integer_residual_block_verifies_exactly_on_ties(tmp_path):
    from tests.helpers import residual_block

    torch.manual_seed(0)
    model = calibrate(residual_block("INT4", "INT4", shortcut_act="INT6"), batches=4, batch_size=16)
    s = float(model.inp.act_quant.scale())
    rng = np.random.default_rng(1)
    x = np.where(rng.random((8, 4, 8, 8)) < 0.5, (2 * rng.integers(-3, 3, (8, 4, 8, 8)) + 0.5) * s,
                 rng.normal(size=(8, 4, 8, 8)) * 4 * s)
    _verify(model, torch.from_numpy(x.astype(F32)), tmp_path)


@pytest.mark.needs_finn
def test_wide_integer_input_quantizer_stays_thresholding_and_exact_on_ties(tmp_path):
    """An INT10 input quantizer: uniform thresholds, which FINN's Requant conversion (float32
    ``round(x * scale + bias)``, not the quantizer's code function) would take; the lowering step
    raises the build's Requant width limit, the layer stays Thresholding and verifies exactly."""
    import types

    from brevitas_minifloat import export_qonnx
    from finn_transforms.steps import step_lower_minifloat

    torch.manual_seed(0)
    model = nn.Sequential(qnn.QuantIdentity(act_quant=_int_q("INT10")),
                          qnn.QuantLinear(12, 4, bias=False, weight_quant=_w4()), qnn.QuantIdentity(act_quant=_int_q("INT8")))
    calibrate(model, inputs=torch.randn(64, 12) * 2)
    cfg = types.SimpleNamespace(requant_bitwidth_threshold=9)
    with pytest.warns(UserWarning, match="raising cfg.requant_bitwidth_threshold to 11"):
        step_lower_minifloat(export_qonnx(model, torch.randn(1, 12), tmp_path / "m.onnx"), cfg)
    assert cfg.requant_bitwidth_threshold == 11
    report = _verify(model, _tie_batch(model, (12,), 8), tmp_path / "verify")
    assert "Requant" not in {layer.op_type.rsplit("_", 1)[0] for layer in report.estimates.layers}
