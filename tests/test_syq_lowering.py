"""SYQ codebook models through the lowering and FINN: verify() chains and `LowerSyqGroupScales`.

Per-layer / per-channel SYQ scales are folded by FINN's own ConvertQONNXtoFINN; per-row / per-pixel
scales need `LowerSyqGroupScales`, which is exact when the scales share a fixed-point grid
(``scale_bits``) and refuses otherwise. Exactness is checked with `finn_transforms.verify.verify`
on the model output's integer codes (torch == QONNX == lowered [== streamlined == FINN HW]).

Integer activations use Brevitas' float-scaled quantizers here: with power-of-two activation
scales *and* fixed-point SYQ scales, accumulator values can land exactly on a rounding tie of an
integer activation quantizer, where Brevitas rounds half to even and FINN's MultiThreshold
(from its own ``Quant`` conversion, not ours) rounds up (docs/design.md, "Upstream workarounds"). Minifloat
activations are lowered by our tie-exact thresholds, so they are used with power-of-two scales.
"""

from __future__ import annotations

import math

import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from brevitas.quant import Int8ActPerTensorFloat, SignedBinaryActPerTensorConst, Uint8ActPerTensorFloat
from hypothesis import given, settings
from hypothesis import strategies as st
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from brevitas_minifloat import export_qonnx, minifloat_act_quant, syq_weight_quant
from finn_transforms.steps import lower_minifloat, make_step_lower_minifloat
from finn_transforms.transformation import LoweringError
from finn_transforms.transformation.lower_syq_group_scales import LowerSyqGroupScales, fixed_point_grid
from finn_transforms.verify import verify
from tests.helpers import mvau_attrs


Uint4Act = Uint8ActPerTensorFloat.let(bit_width=4)


def _calibrate(model: torch.nn.Module, x: torch.Tensor, steps: int = 3) -> torch.nn.Module:
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    return model.eval()


def _conv_model(levels, groups, scale_bits=None, *, bias=True, act="int", seed=0):
    torch.manual_seed(seed)
    wq = lambda: syq_weight_quant(levels, groups, scale_bits=scale_bits)  # noqa: E731
    if act == "int":
        a_in, a_mid, a_out = (dict(act_quant=Int8ActPerTensorFloat), dict(act_quant=Uint4Act),
                              dict(act_quant=Int8ActPerTensorFloat))
    else:  # minifloat, power-of-two scales
        a_in = dict(act_quant=minifloat_act_quant("E2M3", power_of_two=True))
        a_mid = dict(act_quant=minifloat_act_quant("E2M2_U", power_of_two=True))
        a_out = dict(act_quant=minifloat_act_quant("E3M2", power_of_two=True))
    model = torch.nn.Sequential(
        qnn.QuantIdentity(**a_in),
        qnn.QuantConv2d(2, 4, 3, bias=bias, weight_quant=wq()),
        qnn.QuantReLU(**a_mid),
        qnn.QuantConv2d(4, 3, 3, bias=False, weight_quant=wq()),
        qnn.QuantIdentity(**a_out),
    )
    x = torch.randn(4, 2, 6, 6)
    return _calibrate(model, torch.randn(32, 2, 6, 6)), x


def _linear_model(levels, groups, scale_bits=None, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat),
        qnn.QuantLinear(12, 8, bias=True, weight_quant=syq_weight_quant(levels, groups, scale_bits=scale_bits)),
        qnn.QuantReLU(act_quant=Uint4Act),
        qnn.QuantLinear(8, 5, bias=False, weight_quant=syq_weight_quant(levels, groups, scale_bits=scale_bits)),
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat),
    )
    return _calibrate(model, torch.randn(32, 12)), torch.randn(6, 12)


def _export(model, x, tmp_path, name="m.onnx"):
    return export_qonnx(model, x[:1], tmp_path / name)


def _weight_quant_nodes(model):
    return [n for n in model.graph.node if n.op_type in ("Quant", "BipolarQuant") and model.get_initializer(n.input[0]) is not None]


# ----------------------------------------------------------------------------- the fixed-point grid
@settings(max_examples=60, deadline=None)
@given(
    odd=st.integers(0, 200).map(lambda i: 2 * i + 1),
    exp=st.integers(-40, 10),
    ks=st.lists(st.integers(1, 2**12 - 1), min_size=1, max_size=12),
)
def test_grid_recovers_any_exact_integer_grid(odd, exp, ks):
    unit = math.ldexp(odd, exp)
    scales = np.asarray([unit * k for k in ks], dtype=np.float64)
    if not np.array_equal(scales.astype(np.float32).astype(np.float64), scales):
        return  # not a float32 grid: nothing to recover
    grid = fixed_point_grid(scales.astype(np.float32))
    assert grid is not None
    # exact in real arithmetic, and the coarsest such grid (k has no common factor)
    assert all(grid.unit * int(k) == s for k, s in zip(grid.k, scales))
    assert math.gcd(*map(int, grid.k)) == 1
    assert grid.k_max <= max(ks)
    assert np.float32(grid.unit) == grid.unit


def test_grid_examples():
    g = fixed_point_grid(np.float32([7 / 64, 9 / 64, 6 / 64]))
    assert g.describe_unit() == "2^-6" and g.k.tolist() == [7, 9, 6]
    g = fixed_point_grid(np.float32([3 / 256 * 5, 3 / 256 * 7]))  # a common non-power-of-two unit
    assert g.describe_unit() == "3 * 2^-8" and g.k.tolist() == [5, 7]
    g = fixed_point_grid(np.float32([0.1, 0.2, 0.3]))  # fl32(0.3) is not 3 * fl32(0.1)
    assert g.k_max > 2**24
    assert fixed_point_grid(np.float32([2.0**-126, 1.0])) is None  # 126 binades apart
    with pytest.raises(ValueError):
        fixed_point_grid(np.float32([0.5, 0.0]))


# ----------------------------------------------------------------------------- torch == QONNX == lowered
FIXED = dict(row=3, pixel=4)
CASES = [(lv, g, "conv") for lv in ("ternary", "binary") for g in ("layer", "channel", "row", "pixel")] + [
    (lv, g, "linear") for lv in ("ternary", "binary") for g in ("layer", "channel")
]


@pytest.mark.parametrize("levels,groups,kind", CASES)
def test_every_group_kind_lowers_exactly(tmp_path, levels, groups, kind):
    sb = FIXED.get(groups)
    model, x = _conv_model(levels, groups, sb) if kind == "conv" else _linear_model(levels, groups, sb)
    report = verify(model, x, tmp_path, build=False)
    assert report.ok and report.output_quantum, report.summary()
    lowered = ModelWrapper(str(tmp_path / "lowered.onnx"))  # what verify lowered and executed
    left = _weight_quant_nodes(lowered)
    if groups in FIXED:
        # integer weights c * k_g (k_g < 2^scale_bits) + one scalar Mul per layer; no weight quantizer left
        assert not left
        convs = lowered.get_nodes_by_op_type("Conv")
        for conv in convs:
            w = lowered.get_initializer(conv.input[1])
            dt = lowered.get_tensor_datatype(conv.input[1])
            assert np.array_equal(w, np.rint(w)) and np.abs(w).max() <= 2**sb - 1
            assert dt.is_integer() and dt.bitwidth() <= sb + 1 and dt.allowed(w.min()) and dt.allowed(w.max())
            mul = lowered.find_consumer(conv.output[0])
            assert mul.op_type == "Mul" and lowered.get_initializer(mul.input[1]).size == 1
    else:  # per layer / per channel: left for FINN's own ConvertQONNXtoFINN
        assert len(left) == 2


def test_conv1d_pixel_lowers_exactly(tmp_path):
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat),
        qnn.QuantConv1d(3, 4, 5, bias=True, weight_quant=syq_weight_quant("ternary", "pixel", scale_bits=5)),
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat),
    )
    _calibrate(model, torch.randn(16, 3, 12))
    report = verify(model, torch.randn(6, 3, 12), tmp_path, build=False)
    assert report.ok, report.summary()


def test_common_non_power_of_two_unit_and_bipolar_weights(tmp_path):
    """Scales 3*2^-8*k: the unit is not a power of two; equal binary scales give BIPOLAR weights."""
    model, x = _conv_model("ternary", "pixel")
    model2, _ = _conv_model("binary", "row")
    k = torch.tensor([5.0, 7.0, 2.0, 9.0, 1.0, 4.0, 6.0, 3.0, 8.0]).reshape(1, 1, 3, 3)
    with torch.no_grad():
        for conv in (model[1], model[3]):
            conv.weight_quant.tensor_quant.scale.copy_(k * 3 / 256)
        for conv in (model2[1], model2[3]):
            conv.weight_quant.tensor_quant.scale.fill_(0.046875)  # one value for every row
    assert verify(model, x, tmp_path / "a", build=False).ok
    assert verify(model2, x, tmp_path / "b", build=False).ok
    lowered = lower_minifloat(_export(model, x, tmp_path))
    units = [float(lowered.get_initializer(lowered.find_consumer(c.output[0]).input[1]))
             for c in lowered.get_nodes_by_op_type("Conv")]
    assert units == [3 / 256, 3 / 256]
    lowered2 = lower_minifloat(_export(model2, x, tmp_path, "b.onnx"))
    assert {lowered2.get_tensor_datatype(c.input[1]) for c in lowered2.get_nodes_by_op_type("Conv")} == {DataType["BIPOLAR"]}


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("levels,groups", [("ternary", "row"), ("binary", "pixel")])
def test_float_row_pixel_scales_are_refused_with_advice(tmp_path, levels, groups):
    model, x = _conv_model(levels, groups, None)
    qonnx = _export(model, x, tmp_path)
    with pytest.raises(LoweringError) as err:
        lower_minifloat(qonnx)
    msg = str(err.value)
    quant = _weight_quant_nodes(qonnx)[0]
    assert quant.name in msg and "Conv" in msg
    assert f"per {groups}" in msg and "reduction axis" in msg
    assert f"syq_weight_quant({levels!r}, {groups!r}, scale_bits=n)" in msg
    assert "wider than max_weight_bits=16" in msg
    # the builder step refuses the same way (before FINN sees the graph)
    with pytest.raises(LoweringError, match="scale_bits"):
        make_step_lower_minifloat()(qonnx, object())


def test_weight_bit_limit_applies_to_syq(tmp_path):
    model, x = _conv_model("ternary", "pixel", 4)
    qonnx = _export(model, x, tmp_path)
    with pytest.raises(LoweringError, match="max_weight_bits=3"):
        lower_minifloat(qonnx, max_weight_bits=3)
    with pytest.raises(ValueError, match="max_weight_bits"):
        LowerSyqGroupScales(1)


def test_lowering_leaves_the_input_model_and_other_quant_nodes_alone(tmp_path):
    model, x = _conv_model("binary", "row", 2)
    qonnx = _export(model, x, tmp_path)
    before = qonnx.model.SerializeToString()
    lowered = lower_minifloat(qonnx)
    assert qonnx.model.SerializeToString() == before
    # the 3 activation Quant nodes become MultiThresholds (LowerIntegerActivations), none is left for
    # FINN; the lowered graph executes like the QONNX one
    assert not lowered.get_nodes_by_op_type("Quant") and len(lowered.get_nodes_by_op_type("MultiThreshold")) == 3
    xs = x[:1].numpy()
    a = execute_onnx(qonnx, {qonnx.graph.input[0].name: xs})[qonnx.graph.output[0].name]
    b = execute_onnx(lowered, {lowered.graph.input[0].name: xs})[lowered.graph.output[0].name]
    assert np.array_equal(a, b)


# ----------------------------------------------------------------------------- through FINN HW layers
@pytest.mark.needs_finn
def test_mixed_syq_cnn_through_finn_hw(tmp_path):
    """Every group kind in one CNN (integer activations, a Conv bias, max-pool, a final Linear)."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat),
        qnn.QuantConv2d(1, 4, 3, bias=True, weight_quant=syq_weight_quant("ternary", "pixel", scale_bits=4)),
        qnn.QuantReLU(act_quant=Uint4Act),
        qnn.QuantConv2d(4, 4, 3, bias=False, weight_quant=syq_weight_quant("binary", "row", scale_bits=3)),
        qnn.QuantReLU(act_quant=Uint4Act),
        torch.nn.MaxPool2d(2),
        qnn.QuantConv2d(4, 6, 2, bias=False, weight_quant=syq_weight_quant("ternary", "channel")),
        qnn.QuantReLU(act_quant=Uint4Act),
        torch.nn.Flatten(),
        qnn.QuantLinear(6, 5, bias=False, weight_quant=syq_weight_quant("binary", "layer")),
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat),
    )
    _calibrate(model, torch.randn(32, 1, 9, 9))
    report = verify(model, torch.randn(8, 1, 9, 9), tmp_path)
    print(report.summary())
    # float scales: torch / QONNX may round near a tie (explained); the exact stages must match exactly
    stages = {s.stage: s for s in report.stages}
    assert all(stages[name].mismatches == 0 for name in ("lowered", "streamlined", "hw")), report.summary()
    assert report.ok, report.summary()
    # MVAUs by their reduction length MW: conv1 1*3*3, conv2 4*3*3, conv3 4*2*2, linear 6
    weights = {m["MW"]: m["weightDataType"] for m in mvau_attrs(report).values()}
    assert sorted(weights) == [6, 9, 16, 36], weights
    # pixel (k <= 15): INT5 at most; row (k <= 7): INT4 at most; channel / layer: 2 bits
    assert DataType[weights[9]].bitwidth() <= 5 and DataType[weights[36]].bitwidth() <= 4, weights
    assert weights[16] == "INT2" and weights[6] == "INT2", weights  # FINN+ stores binary layer weights as INT2 too
    assert report.estimates.total_lut > 0 and report.estimates.max_cycles > 0


@pytest.mark.needs_finn
def test_binary_weights_with_bipolar_activations_use_xnor_popcount(tmp_path):
    """Sign activations after binary layers see exact zeros (ties: sign(0) = +1 everywhere) only when
    torch's float32 sums of +-a_c are exact, hence fixed-point scales (float ones round n * a_c)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
        qnn.QuantConv2d(2, 8, 3, bias=False, weight_quant=syq_weight_quant("binary", "channel", scale_bits=4)),
        qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
        qnn.QuantConv2d(8, 4, 3, bias=False, weight_quant=syq_weight_quant("binary", "layer", scale_bits=4)),
        qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
    )
    _calibrate(model, torch.randn(16, 2, 6, 6))
    report = verify(model, torch.randn(8, 2, 6, 6), tmp_path)
    assert report.ok, report.summary()
    mvaus = mvau_attrs(report)
    assert len(mvaus) == 2 and all(m["binaryXnorMode"] == 1 for m in mvaus.values()), mvaus
    assert all(m["inputDataType"] == m["weightDataType"] == "BINARY" for m in mvaus.values()), mvaus


@pytest.mark.needs_finn
def test_minifloat_activations_with_syq_row_weights_through_finn_hw(tmp_path):
    """No integer Quant node is left after our lowering: the step runs FINN's conversion itself."""
    model, x = _conv_model("ternary", "row", 3, act="minifloat", seed=2)
    report = verify(model, torch.cat([x, 3 * x]), tmp_path)
    assert report.ok, report.summary()
    weights = [m["weightDataType"] for m in mvau_attrs(report).values()]
    assert len(weights) == 2 and all(DataType[w].bitwidth() <= 4 for w in weights), weights


@pytest.mark.slow
@pytest.mark.needs_finn
@pytest.mark.parametrize("levels,groups,kind", CASES)
def test_every_group_kind_through_finn_hw(tmp_path, levels, groups, kind):
    sb = FIXED.get(groups)
    model, x = _conv_model(levels, groups, sb) if kind == "conv" else _linear_model(levels, groups, sb)
    report = verify(model, x, tmp_path)
    assert report.ok, report.summary()


@pytest.mark.slow
@pytest.mark.needs_finn
@pytest.mark.parametrize("levels,groups", [(lv, g) for lv in ("ternary", "binary") for g in ("layer", "channel", "row", "pixel")])
def test_every_group_kind_with_minifloat_activations_through_finn_hw(tmp_path, levels, groups):
    model, x = _conv_model(levels, groups, FIXED.get(groups), act="minifloat", seed=4)
    report = verify(model, torch.cat([x, 3 * x]), tmp_path)
    assert report.ok, report.summary()
