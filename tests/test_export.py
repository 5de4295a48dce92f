"""export_qonnx: QONNX execution equals torch, formats survive cleanup, unrepresentable layers refused."""

import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from brevitas.quant.float_quant_ocp import Fp8e4m3OCPActPerTensorFloat
from hypothesis import given, settings
from hypothesis import strategies as st
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.general.floatquant import float_quant
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.util.cleanup import cleanup_model

from brevitas_minifloat import ExportRefused, MinifloatFormat, export_qonnx, minifloat_act_quant, minifloat_weight_quant
from finn_transforms.annotations import read_weight_format
from finn_transforms.custom_op.minifloat_quant import MinifloatQuant  # noqa: F401


def _run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    inp, out = model.graph.input[0].name, model.graph.output[0].name
    return execute_onnx(model, {inp: x})[out]


def _calibrated(model: torch.nn.Module, shape, steps: int = 4) -> torch.nn.Module:
    model.train()
    for _ in range(steps):
        model(torch.randn(*shape))
    return model.eval()


def _mlp(wfmt, afmt, out_fmt, *, scaling="stats", per_channel=True, power_of_two=False):
    return torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=minifloat_act_quant("E4M3", scaling=scaling, power_of_two=power_of_two)),
        qnn.QuantLinear(16, 12, bias=True, weight_quant=minifloat_weight_quant(
            wfmt, per_channel=per_channel, scaling=scaling, power_of_two=power_of_two)),
        qnn.QuantReLU(act_quant=minifloat_act_quant(afmt, scaling=scaling, power_of_two=power_of_two)),
        qnn.QuantLinear(12, 6, bias=False, weight_quant=minifloat_weight_quant(wfmt, per_channel=per_channel, scaling=scaling)),
        qnn.QuantIdentity(act_quant=minifloat_act_quant(out_fmt, scaling=scaling)),
    )


@settings(max_examples=12, deadline=None)
@given(
    wfmt=st.sampled_from(["E2M1", "E3M2", "E2M3_NOSUB", "E4M3_FN", "E1M2", "E3M0"]),
    afmt=st.sampled_from(["E2M1_U", "E3M2_U_NOSUB", "E2M3", "E5M2_IEEE", "E2M2_NOSUB"]),
    out_fmt=st.sampled_from(["E2M1", "E3M2", "E4M3_FNUZ", "E2M2_NOSUB"]),
    scaling=st.sampled_from(["stats", "mse", "learned"]),
    per_channel=st.booleans(),
    power_of_two=st.booleans(),
)
def test_export_round_trip_is_bit_exact(tmp_path_factory, wfmt, afmt, out_fmt, scaling, per_channel, power_of_two):
    torch.manual_seed(0)
    model = _calibrated(_mlp(wfmt, afmt, out_fmt, scaling=scaling, per_channel=per_channel, power_of_two=power_of_two), (32, 16))
    x = torch.randn(1, 16) * 2
    path = tmp_path_factory.mktemp("exp") / "m.onnx"
    exported = export_qonnx(model, x, path)
    with torch.no_grad():
        expected = model(x).numpy()
    # the last layer is a quantizer: outputs are quantized values, so equality is exact
    np.testing.assert_array_equal(_run(exported, x.numpy()), expected)
    np.testing.assert_array_equal(_run(ModelWrapper(str(path)), x.numpy()), expected)
    ops = [n.op_type for n in exported.graph.node]
    assert ops.count("FloatQuant") + ops.count("MinifloatQuant") == 5
    assert model.training is False


def test_float_quant_used_only_where_qonnx_is_exact(tmp_path):
    model = _calibrated(_mlp("E2M1", "E2M1_U", "E3M2_NOSUB"), (32, 16))
    exported = export_qonnx(model, torch.randn(1, 16), tmp_path / "m.onnx")
    by_fmt = {}
    from finn_transforms.quant_nodes import minifloat_format_of

    for node in exported.graph.node:
        if node.op_type in ("FloatQuant", "MinifloatQuant"):
            fmt = minifloat_format_of(exported, node)
            by_fmt[fmt.name] = node.op_type
            assert (node.op_type == "FloatQuant") == (fmt.signed and fmt.subnormals)
    assert by_fmt == {"E4M3": "FloatQuant", "E2M1": "FloatQuant", "E2M1_U": "MinifloatQuant", "E3M2_NOSUB": "MinifloatQuant"}


@settings(max_examples=40, deadline=None)
@given(fmt=st.sampled_from(["E2M1", "E3M2", "E2M3", "E4M3", "E5M2", "E4M3_FN", "E3M4", "E2M1_B2"]), seed=st.integers(0, 1000))
def test_minifloat_quant_op_agrees_with_qonnx_float_quant(fmt, seed):
    """qonnx's own FloatQuant execution is an independent oracle for signed formats with subnormals."""
    f = MinifloatFormat.parse(fmt)
    rng = np.random.default_rng(seed)
    scale = np.float32(rng.uniform(0.01, 10))
    v = f.values()
    x = np.concatenate([rng.standard_normal(2000) * f.max_value, v, (v[1:] + v[:-1]) / 2]).astype(np.float32) * scale
    ref = float_quant(x, scale, f.exponent_bits, f.mantissa_bits, f.bias, max_val=f.max_value, has_subnormal=True)
    ours = (f.quantize(torch.from_numpy(x / scale)) * torch.tensor(scale)).numpy()
    np.testing.assert_array_equal(ours, ref.astype(np.float32))


def test_weight_format_survives_qonnx_cleanup(tmp_path):
    model = _calibrated(_mlp("E2M3_NOSUB", "E2M1_U", "E3M2"), (32, 16))
    exported = export_qonnx(model, torch.randn(1, 16), tmp_path / "m.onnx")
    cleaned = cleanup_model(exported)
    quantizers = [n for n in cleaned.graph.node if n.op_type in ("FloatQuant", "MinifloatQuant")]
    assert all(cleaned.get_initializer(n.input[0]) is None for n in quantizers)  # qonnx folded the weights ...
    layers = [n for n in cleaned.graph.node if n.op_type in ("MatMul", "Gemm")]
    assert len(layers) == 2
    for node in layers:
        w = cleaned.get_initializer(node.input[1])
        record = read_weight_format(cleaned, node.input[1])  # ... but each weight's format is recorded
        assert record is not None and record.fmt == MinifloatFormat.parse("E2M3_NOSUB")
        q = record.fmt.quantize(torch.from_numpy(w / record.scale)).numpy() * record.scale
        np.testing.assert_array_equal(w, q)


def test_conv_model_exports_exactly(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=minifloat_act_quant("E3M2")),
        qnn.QuantConv2d(2, 4, 3, weight_quant=minifloat_weight_quant("E2M1", power_of_two=True)),
        torch.nn.BatchNorm2d(4),
        qnn.QuantReLU(act_quant=minifloat_act_quant("E2M2_U", per_channel=True, channels=4)),
        torch.nn.MaxPool2d(2),
        qnn.QuantIdentity(act_quant=minifloat_act_quant("E2M2")),
    )
    _calibrated(model, (8, 2, 8, 8))
    x = torch.randn(1, 2, 8, 8)
    exported = export_qonnx(model, x, tmp_path / "c.onnx")
    with torch.no_grad():
        np.testing.assert_array_equal(_run(exported, x.numpy()), model(x).numpy())


def test_custom_op_infers_shapes_and_datatypes(tmp_path):
    model = _calibrated(_mlp("E2M1", "E2M1_U", "E2M2_NOSUB"), (32, 16))
    exported = export_qonnx(model, torch.randn(1, 16), tmp_path / "m.onnx").transform(InferDataTypes())
    node = next(n for n in exported.graph.node if n.op_type == "MinifloatQuant")
    assert exported.get_tensor_shape(node.output[0]) == exported.get_tensor_shape(node.input[0])
    assert exported.get_tensor_datatype(node.output[0]) == DataType["FLOAT32"]


def test_exports_brevitas_integer_layers_alongside(tmp_path):
    from brevitas.quant import Int8ActPerTensorFloat, Int4WeightPerTensorFloatDecoupled

    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat),
        qnn.QuantLinear(16, 8, weight_quant=minifloat_weight_quant("E2M1")),
        qnn.QuantReLU(act_quant=minifloat_act_quant("E2M1_U")),
        qnn.QuantLinear(8, 4, weight_quant=Int4WeightPerTensorFloatDecoupled),
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat),
    )
    _calibrated(model, (32, 16))
    x = torch.randn(1, 16)
    exported = export_qonnx(model, x, tmp_path / "mixed.onnx")
    assert {"Quant", "FloatQuant", "MinifloatQuant"} <= {n.op_type for n in exported.graph.node}
    with torch.no_grad():
        np.testing.assert_array_equal(_run(exported, x.numpy()), model(x).numpy())


def test_refuses_non_saturating_float_quantizer(tmp_path):
    class NonSaturating(Fp8e4m3OCPActPerTensorFloat):
        saturating = False

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), qnn.QuantIdentity(act_quant=NonSaturating))
    with pytest.raises(ExportRefused, match=r"layer '1\..*non-saturating"):
        export_qonnx(model, torch.randn(1, 4), tmp_path / "bad.onnx")


def test_refuses_bad_example_input(tmp_path):
    model = _mlp("E2M1", "E2M1_U", "E3M2")
    with pytest.raises(TypeError, match="input_t"):
        export_qonnx(model, [1.0] * 16, tmp_path / "m.onnx")


def test_layers_sharing_a_deduplicated_scale_export_exactly(tmp_path):
    """Equal power-of-two per-channel scales of two bias-free layers become one initializer in the
    exported file; folding each layer's Transpose must not transpose the shared tensor twice."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=minifloat_act_quant("E2M1", power_of_two=True)),
        qnn.QuantLinear(5, 3, bias=False, weight_quant=minifloat_weight_quant("E2M1", power_of_two=True)),
        qnn.QuantReLU(act_quant=minifloat_act_quant("E2M1_U", power_of_two=True)),
        qnn.QuantLinear(3, 3, bias=False, weight_quant=minifloat_weight_quant("E2M1", power_of_two=True)),
        qnn.QuantIdentity(act_quant=minifloat_act_quant("E2M3", power_of_two=True)),
    )
    _calibrated(model, (64, 5))
    assert torch.equal(model[1].quant_weight().scale, model[3].quant_weight().scale)  # the shared-constant case
    x = torch.randn(1, 5)
    exported = export_qonnx(model, x, tmp_path / "shared.onnx")
    with torch.no_grad():
        np.testing.assert_array_equal(_run(exported, x.numpy()), model(x).numpy())
    from finn_transforms.steps import lower_minifloat

    np.testing.assert_array_equal(_run(lower_minifloat(exported), x.numpy()), model(x).detach().numpy())


def test_export_declares_our_domain_only_when_used(tmp_path):
    """torch prints a C++ warning for a declared but unused custom domain (see docs/design.md)."""
    from brevitas_minifloat.export.ops import OUR_DOMAIN

    def domains(act: str) -> set[str]:
        model = torch.nn.Sequential(qnn.QuantIdentity(act_quant=minifloat_act_quant(act)),
                                    qnn.QuantLinear(8, 4, bias=False, weight_quant=minifloat_weight_quant("E2M1")))
        model(torch.randn(16, 8))
        exported = export_qonnx(model.eval(), torch.randn(1, 8), tmp_path / f"{act}.onnx")
        return {o.domain for o in exported.model.opset_import}

    assert OUR_DOMAIN not in domains("E2M1")  # FloatQuant only
    assert OUR_DOMAIN in domains("E2M1_U")  # unsigned: our MinifloatQuant
