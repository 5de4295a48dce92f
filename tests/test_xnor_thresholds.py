"""Thresholds after FINN's XNOR-popcount layers (binary weights x bipolar activations).

FINN+ 1.6.1 sizes an XNOR MVAU's accumulator as ``[-(#-1 weights), #+1 weights]`` instead of the
popcount's ``[0, MW]`` and clips the thresholds to it: a negative popcount threshold (a sign
activation that is always +1, e.g. after a large BatchNorm shift) crashed ``step_minimize_bit_width``
with a bare ``AssertionError``, and a threshold above that range (always -1, or switching near MW)
was clipped so the channel switched on too early, silently. `ClampXnorPopcountThresholds` and the
wrapped steps (`finn_transforms.steps.xnor_exact_step`) keep both exact.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from brevitas.quant import SignedBinaryActPerTensorConst
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.general.multithreshold import multithreshold
from qonnx.custom_op.general.xnorpopcount import xnorpopcountmatmul
from qonnx.util.basic import qonnx_make_model

from brevitas_minifloat import syq_weight_quant
from finn_transforms.transformation import ClampXnorPopcountThresholds
from finn_transforms.transformation.clamp_xnor_popcount_thresholds import (
    clamp_popcount_thresholds,
    popcount_datatype,
)


MW, MH = 5, 4
# per channel: 3 ascending thresholds in the popcount domain, some below 0, some above MW, fractional
THRESHOLDS = np.float32([[-7.5, -0.5, 2.2], [0.0, 3.0, 5.0], [4.5, 6.0, 40.0], [-1.0, 5.5, 9.0]])


def _all_inputs(mw: int) -> np.ndarray:
    """Every binary input vector of length mw: every popcount 0..mw of every column occurs."""
    return np.asarray(list(itertools.product([0.0, 1.0], repeat=mw)), dtype=np.float32)


def _weights(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=(MW, MH)).astype(np.float32)


def _xnor_mt_graph(weights: np.ndarray, thresholds: np.ndarray, out_dtype: str = "BIPOLAR") -> ModelWrapper:
    """``x -> XnorPopcountMatMul(W) -> MultiThreshold(T)`` as FINN's streamlining leaves it."""
    bipolar = out_dtype == "BIPOLAR"
    nodes = [
        helper.make_node("XnorPopcountMatMul", ["x", "W"], ["p"], domain="qonnx.custom_op.general"),
        helper.make_node(
            "MultiThreshold", ["p", "T"], ["y"], domain="qonnx.custom_op.general",
            out_dtype=out_dtype, out_scale=2.0 if bipolar else 1.0, out_bias=-1.0 if bipolar else 0.0,
        ),
    ]
    model = _binary_model(nodes, weights, thresholds, hidden=["p"])
    model.set_tensor_datatype("p", DataType["UINT32"])
    return model


def _binary_model(nodes, weights: np.ndarray, thresholds: np.ndarray, hidden=()) -> ModelWrapper:
    """Graph ``x [1, MW] -> nodes -> y [1, MH]`` with BINARY input and weights ``W``, thresholds ``T``."""
    mw, mh = weights.shape
    graph = helper.make_graph(
        nodes, "xnor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, mw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, mh])],
        value_info=[helper.make_tensor_value_info(h, TensorProto.FLOAT, [1, mh]) for h in hidden],
    )
    model = ModelWrapper(qonnx_make_model(graph, producer_name="test"))
    model.set_initializer("W", weights)
    model.set_initializer("T", thresholds)
    model.set_tensor_datatype("x", DataType["BINARY"])
    model.set_tensor_datatype("W", DataType["BINARY"])
    return model


def _run(model: ModelWrapper, xs: np.ndarray) -> np.ndarray:
    return np.concatenate([execute_onnx(model, {"x": x[None]})["y"] for x in xs])


# ----------------------------------------------------------------------------- the transformation
def test_clamping_is_exact_on_every_popcount_of_a_hand_built_graph():
    model = _xnor_mt_graph(_weights(), THRESHOLDS)
    xs = _all_inputs(MW)
    before = _run(model, xs)
    popcounts = xnorpopcountmatmul(xs, _weights())
    assert set(np.unique(popcounts)) == set(range(MW + 1))  # every popcount value is exercised
    clamped = model.transform(ClampXnorPopcountThresholds())
    t = clamped.get_initializer("T")
    assert t.min() >= 0 and t.max() <= MW + 1 and np.array_equal(t, np.rint(t)), t
    assert t.tolist() == [[0, 0, 3], [0, 3, 5], [5, 6, 6], [0, 6, 6]]
    assert np.array_equal(_run(clamped, xs), before)
    # idempotent; transform() worked on a copy
    again = clamped.transform(ClampXnorPopcountThresholds())
    assert np.array_equal(again.get_initializer("T"), t)
    assert np.array_equal(model.get_initializer("T"), THRESHOLDS)


def test_other_multithresholds_are_left_alone():
    """Only thresholds fed by a popcount are in [0, MW]; a MultiThreshold on the graph input is not."""
    model = _xnor_mt_graph(_weights(), THRESHOLDS)
    pre = helper.make_node("MultiThreshold", ["x0", "T0"], ["x"], domain="qonnx.custom_op.general",
                           out_dtype="BINARY")
    model.graph.node.insert(0, pre)
    model.graph.input[0].name = "x0"
    model.set_initializer("T0", np.float32([[-3.0]]))
    out = model.transform(ClampXnorPopcountThresholds())
    assert out.get_initializer("T0").tolist() == [[-3.0]]
    assert out.get_initializer("T").min() == 0


@settings(max_examples=80, deadline=None)
@given(
    mw=st.integers(1, 40),
    thresholds=st.lists(st.floats(-100, 100, allow_nan=False, width=32), min_size=1, max_size=6),
)
def test_clamped_thresholds_decide_every_popcount_alike(mw, thresholds):
    t = np.sort(np.float32(thresholds))[None, :]
    popcounts = np.arange(mw + 1, dtype=np.float32)[None, :].T  # [mw + 1, 1]: one channel
    clamped = clamp_popcount_thresholds(t, mw)
    assert clamped.min() >= 0 and clamped.max() <= mw + 1
    assert np.array_equal(multithreshold(popcounts, t), multithreshold(popcounts, clamped))
    assert popcount_datatype(mw).allowed(mw) and not popcount_datatype(mw).allowed(-1)


# ----------------------------------------------------------------------------- FINN's MVAU
def _xnor_mvau_model(weights: np.ndarray, thresholds: np.ndarray) -> ModelWrapper:
    """One MVAU_hls with binaryXnorMode=1 and thresholds, as FINN's convert_to_hw + specialize make it."""
    mw, mh = weights.shape
    node = helper.make_node(
        "MVAU_hls", ["x", "W", "T"], ["y"], domain="finn.custom_op.fpgadataflow.hls", backend="fpgadataflow",
        MW=mw, MH=mh, SIMD=1, PE=1, inputDataType="BINARY", weightDataType="BINARY", outputDataType="BIPOLAR",
        ActVal=0, binaryXnorMode=1, noActivation=0, numInputVectors=[1], name="MVAU_hls_0",
    )
    return _binary_model([node], weights, thresholds)


def _mvau_outputs(model: ModelWrapper, xs: np.ndarray) -> np.ndarray:
    """What the XNOR MVAU computes (FINN's python semantics): popcount, then its thresholds."""
    return multithreshold(xnorpopcountmatmul(xs, model.get_initializer("W")), model.get_initializer("T"), 2.0, -1.0)


@pytest.fixture
def finn_settings(tmp_path):
    from finn_transforms.finn_env import finn_session

    with finn_session(tmp_path / "finn_build_dir"):
        yield


@pytest.mark.needs_finn
def test_finn_minimize_bit_width_on_an_xnor_mvau_crashes_or_clips_and_the_wrapper_is_exact(finn_settings):
    from qonnx.custom_op.registry import getCustomOp

    import finn.custom_op.fpgadataflow.hls  # noqa: F401
    from finn_transforms.finn_env import import_builder
    from finn_transforms.steps import step_minimize_bit_width_initial, xnor_exact_step

    finn_step = import_builder().steps.step_minimize_bit_width_initial

    # every column: three +1 and two -1 weights. FINN's accumulator range [-2, 3] -> INT3, so it
    # clips thresholds to [-4, 4] although the popcount reaches MW = 5.
    weights = np.zeros((MW, MH), dtype=np.float32)
    weights[:3] = 1
    cfg = SimpleNamespace(minimize_bit_width=True)
    xs = _all_inputs(MW)
    negative = np.float32([[-2.0], [1.0], [2.0], [3.0]])  # channel 0 always +1
    high = np.float32([[5.0], [9.0], [2.0], [3.0]])  # channel 0 on at popcount 5 only, channel 1 never

    # The upstream bug. If these checks fail, FINN fixed it and the workaround may go.
    with pytest.raises(AssertionError):  # MVAU.get_hw_compatible_threshold_tensor: thresholds >= 0
        finn_step(_xnor_mvau_model(weights, negative), cfg)
    plain = finn_step(_xnor_mvau_model(weights, high), cfg)
    assert getCustomOp(plain.graph.node[0]).get_nodeattr("accDataType") == "INT3"
    assert plain.get_initializer("T")[:2].tolist() == [[4.0], [4.0]]
    assert not np.array_equal(_mvau_outputs(plain, xs), _mvau_outputs(_xnor_mvau_model(weights, high), xs))

    for thresholds in (negative, high):
        model = _xnor_mvau_model(weights, thresholds)
        want = _mvau_outputs(model, xs)
        for step in (step_minimize_bit_width_initial, xnor_exact_step(finn_step)):
            out = step(model, cfg)
            inst = getCustomOp(out.graph.node[0])
            assert inst.get_nodeattr("accDataType") == "UINT3"  # popcounts 0..5
            t = out.get_initializer("T")
            assert t.min() >= 0 and t.max() <= MW + 1, t
            inst.get_hw_compatible_threshold_tensor(t)  # FINN's HW export accepts them
            tdt = out.get_tensor_datatype("T")
            assert not tdt.signed() and tdt.bitwidth() >= 3 and all(tdt.allowed(v) for v in t.flat), tdt
            assert np.array_equal(_mvau_outputs(out, xs), want)


# ----------------------------------------------------------------------------- through FINN HW layers
def _bn_sign_model(bn_bias, *, layers: int = 1, seed: int = 0):
    """Sign -> binary conv (channel scales) -> BatchNorm -> sign [-> binary conv -> sign]."""
    torch.manual_seed(seed)
    mods = [
        qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
        qnn.QuantConv2d(2, 8, 3, bias=False, weight_quant=syq_weight_quant("binary", "channel", scale_bits=4)),
        torch.nn.BatchNorm2d(8),
        qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
    ]
    if layers == 2:
        mods += [
            qnn.QuantConv2d(8, 4, 3, bias=False, weight_quant=syq_weight_quant("binary", "layer", scale_bits=4)),
            qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
        ]
    model = torch.nn.Sequential(*mods)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 2, 6, 6))
        model[2].bias.copy_(torch.tensor(bn_bias))
        model[2].weight.copy_(torch.linspace(0.5, 2, 8) * torch.tensor([1, -1, 1, 1, -1, 1, 1, 1.0]))
    model.eval()
    x = torch.randn(8, 2, 6, 6)
    w0 = model[1].quant_weight().value.detach()[0]
    x[0, :, :3, :3] = torch.sign(w0)  # all 18 bits of channel 0 match: popcount 18 = MW
    x[1] = -x[0]  # popcount 0
    return model, x


@pytest.mark.needs_finn
def test_bn_shifted_sign_activations_after_xnor_layer_are_exact_in_finn_hw(tmp_path):
    """Channel 0 is always -1 (popcount threshold far above MW=18, where FINN clipped it to 16: its
    all-matching patch turned on), the last channel always +1 (negative popcount threshold: FINN's
    step_minimize_bit_width died on an AssertionError)."""
    from qonnx.custom_op.registry import getCustomOp

    from finn_transforms.verify import verify
    from tests.helpers import mvau_attrs

    model, x = _bn_sign_model([-60.0, -2, -1, 0, 1, 2, 3, 60])
    report = verify(model, x, tmp_path)
    assert report.ok, report.summary()
    mvaus = mvau_attrs(report)
    assert [(m["binaryXnorMode"], m["MW"], m["inputDataType"], m["weightDataType"]) for m in mvaus.values()] == [
        (1, 18, "BINARY", "BINARY")
    ], mvaus
    hw = ModelWrapper(str(report.estimates.hw_graph_path))
    (mvau,) = [n for n in hw.graph.node if n.op_type.startswith("MVAU")]
    t = hw.get_initializer(mvau.input[2])
    assert t.min() == 0 and t.max() == 19, t  # always on / never on, in the popcount's terms
    assert getCustomOp(mvau).get_nodeattr("accDataType") == "UINT5"  # popcounts 0..18


@pytest.mark.needs_finn
@pytest.mark.parametrize("bn_bias", [[-3.0, -2, -1, 0, 1, 2, 3, 60], [-60.0, -40, -1, 0, 1, 2, 40, 60]])
def test_two_xnor_layers_with_bn_shifts_through_finn_hw(tmp_path, bn_bias):
    from finn_transforms.verify import verify

    model, x = _bn_sign_model(bn_bias, layers=2)
    report = verify(model, x, tmp_path)
    assert report.ok, report.summary()
