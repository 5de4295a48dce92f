"""brevitas_minifloat.zoo: TFC/CNV-shaped model factories for integer and minifloat specs."""

from __future__ import annotations

import brevitas.nn as qnn
import pytest
import torch
from qonnx.core.onnx_exec import execute_onnx

from brevitas_minifloat import MinifloatFormat, export_qonnx
from brevitas_minifloat.zoo import calibrate, cnv_cnn, parse_spec, tfc_mlp
from finn_transforms.verify import verify

SMALL_MLP = dict(hidden=16, in_features=48, classes=5)
SMALL_CNN = dict(channels=(4, 8), image_size=14, classes=5)


def _quant_layers(model, cls):
    return [m for m in model if isinstance(m, cls)]


def test_parse_spec():
    assert parse_spec("INT4").int_bits == 4 and parse_spec("int6").name == "INT6" and parse_spec(8).int_bits == 8
    e2m1 = parse_spec("e2m1")
    assert not e2m1.is_int and e2m1.minifloat == MinifloatFormat(2, 1) and e2m1.unsigned_name() == "E2M2_U"  # same width (docs/design.md, "Semantics")
    assert parse_spec(MinifloatFormat(4, 3, specials="fn")).name == "E4M3_FN"
    assert parse_spec("float6_e3m2fn").minifloat == MinifloatFormat(3, 2)
    assert parse_spec("INT4").unsigned_name() == "UINT4"
    for bad in ("INT1", "INT17", "E9M9", "fp8", True, 2.5):
        with pytest.raises(ValueError):
            parse_spec(bad)


@pytest.mark.parametrize("weights,activations", [("INT4", "INT4"), ("INT8", "E2M3"), ("E2M1", "E2M1"), ("E4M3", "E3M2")])
def test_tfc_mlp_structure_and_forward(weights, activations):
    torch.manual_seed(0)
    model = tfc_mlp(weights, activations, **SMALL_MLP)
    assert model.training and model.input_shape == (1, 48)
    assert model.spec["weights"] == parse_spec(weights).name
    linears, relus = _quant_layers(model, qnn.QuantLinear), _quant_layers(model, qnn.QuantReLU)
    assert [(l.in_features, l.out_features) for l in linears] == [(48, 16), (16, 16), (16, 16), (16, 5)]
    assert len(relus) == 3 and len(_quant_layers(model, torch.nn.BatchNorm1d)) == 3
    relu_fmt = getattr(relus[0].act_quant, "minifloat_format", None)
    if parse_spec(activations).is_int:
        assert relu_fmt is None and int(relus[0].act_quant.bit_width()) == parse_spec(activations).int_bits
    else:
        assert relu_fmt is not None and not relu_fmt.signed  # the unsigned variant after a ReLU
        assert relu_fmt.bit_width == parse_spec(activations).minifloat.bit_width  # of the same width
        assert model[-1].act_quant.minifloat_format.signed  # the output keeps the sign
    calibrate(model, batches=2, batch_size=16)
    assert not model.training
    y = model(torch.randn(6, 48))
    assert y.shape == (6, 5) and torch.isfinite(y).all() and len(torch.unique(y)) > 1


@pytest.mark.parametrize("weights,activations", [("INT4", "INT4"), ("E2M1", "E2M2"), ("E3M2", "INT8")])
def test_cnv_cnn_structure_and_forward(weights, activations):
    torch.manual_seed(0)
    model = calibrate(cnv_cnn(weights, activations, **SMALL_CNN), batches=2, batch_size=8)
    assert model.input_shape == (1, 1, 14, 14)
    convs = _quant_layers(model, qnn.QuantConv2d)
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 4), (4, 8)]
    assert _quant_layers(model, qnn.QuantLinear)[0].in_features == 8 * 2 * 2  # 14 -> 12 -> 6 -> 4 -> 2
    assert int(model[0].act_quant.bit_width()) == 8  # first-layer inputs are 8-bit
    y = model(torch.randn(3, 1, 14, 14))
    assert y.shape == (3, 5) and torch.isfinite(y).all()


def test_default_shapes():
    assert tfc_mlp("INT4", "INT4").input_shape == (1, 784)
    cnn = cnv_cnn("E2M1", "E2M1")
    assert cnn.input_shape == (1, 1, 28, 28)
    assert _quant_layers(cnn, qnn.QuantLinear)[0].in_features == 32 * 5 * 5
    assert cnn.spec == {"weights": "E2M1", "activations": "E2M1", "hidden_activations": "E2M2_U", "input": "INT8", "output": "E2M1"}


def test_bad_arguments():
    with pytest.raises(ValueError, match="pixel"):
        cnv_cnn("INT4", "INT4", channels=(4, 4, 4, 4))
    with pytest.raises(ValueError, match="positive"):
        tfc_mlp("INT4", "INT4", hidden=0)
    with pytest.raises(ValueError, match="signed"):
        tfc_mlp("E2M1_U", "INT4")
    with pytest.raises(ValueError, match="input_shape"):
        calibrate(torch.nn.Linear(2, 2))


@pytest.mark.parametrize(
    "factory,kwargs,weights,activations",
    [
        (tfc_mlp, SMALL_MLP, "INT4", "INT4"),
        (tfc_mlp, SMALL_MLP, "E2M1", "E2M3"),
        (cnv_cnn, SMALL_CNN, "INT4", "INT4"),
        (cnv_cnn, SMALL_CNN, "E3M2", "E2M2"),
    ],
)
def test_export_and_lowering_are_exact(tmp_path, factory, kwargs, weights, activations):
    """torch == QONNX == lowered FINN-ONNX on every output, BatchNorm included (power-of-two scales)."""
    torch.manual_seed(0)
    model = calibrate(factory(weights, activations, power_of_two=True, **kwargs), batches=3, batch_size=16)
    x = torch.randn(4, *model.input_shape[1:]) * 1.5
    exported = export_qonnx(model, x[:1], tmp_path / "model.onnx")
    out = execute_onnx(exported, {exported.graph.input[0].name: x[:1].numpy()})[exported.graph.output[0].name]
    assert torch.equal(torch.from_numpy(out), model(x[:1]).detach())
    report = verify(model, x, tmp_path / "verify", build=False)
    assert report.ok and all(s.max_abs_diff == 0 for s in report.stages), report.summary()
    assert report.output_quantum is not None


def test_an_unsigned_activation_spec_names_the_hidden_format():
    """The unsigned rule keeps the width both ways: "E2M1_U" hidden after ReLUs, E2M0 (its signed
    variant of the same width) at the output; "E2M1" gives E2M2_U after ReLUs unless
    ``hidden_activations`` says otherwise."""
    explicit = tfc_mlp("INT4", "E2M1", hidden_activations="E2M1_U", **SMALL_MLP)
    assert (explicit.spec["hidden_activations"], explicit.spec["output"]) == ("E2M1_U", "E2M1")
    assert _quant_layers(explicit, qnn.QuantReLU)[-1].act_quant.minifloat_format.name == "E2M1_U"
    model = tfc_mlp("INT4", "E2M1_U", **SMALL_MLP)
    assert (model.spec["activations"], model.spec["hidden_activations"], model.spec["output"]) == ("E2M0", "E2M1_U", "E2M0")
    relu = _quant_layers(model, qnn.QuantReLU)[0]
    assert relu.act_quant.minifloat_format == MinifloatFormat(2, 1, signed=False)
    assert tfc_mlp("INT4", "E2M1", **SMALL_MLP).spec["hidden_activations"] == "E2M2_U"
