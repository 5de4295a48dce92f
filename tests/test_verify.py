"""verify(): every stage against the exact reference (lowered, streamlined, HW exact; torch and QONNX
float32 differences explained)."""

import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brevitas_minifloat import MinifloatFormat
from brevitas_minifloat import minifloat_act_quant as act
from brevitas_minifloat import minifloat_weight_quant as weight
from finn_transforms import verify as verify_module
from finn_transforms.verify import VerificationError, verify


def _mlp(fin, hidden, fout, in_fmt, w_fmt, h_fmt, out_fmt, *, pot=True, per_channel=True):
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=act(in_fmt, power_of_two=pot)),
        qnn.QuantLinear(fin, hidden, bias=False, weight_quant=weight(w_fmt, power_of_two=pot, per_channel=per_channel)),
        qnn.QuantReLU(act_quant=act(h_fmt, power_of_two=pot)),
        qnn.QuantLinear(hidden, fout, bias=False, weight_quant=weight(w_fmt, power_of_two=pot, per_channel=per_channel)),
        qnn.QuantIdentity(act_quant=act(out_fmt, power_of_two=pot)),
    )
    model.train()
    for _ in range(4):
        model(torch.randn(64, fin))
    return model.eval()


def _ties_and_saturation(model, fmt_name: str, n: int, fin: int, seed: int = 0) -> torch.Tensor:
    """Inputs on every rounding tie of the input quantizer, plus saturating and tiny values."""
    fmt = MinifloatFormat.parse(fmt_name)
    scale = float(model[0].act_quant.scale())
    v = fmt.values()
    specials = np.concatenate([(v[1:] + v[:-1]) / 2, v, [fmt.max_value * 3, -fmt.max_value * 3, fmt.min_subnormal / 4]])
    rng = np.random.default_rng(seed)
    x = rng.choice(specials, size=(n, fin)).astype(np.float32) * np.float32(scale)
    return torch.from_numpy(x)


def test_mlp_chain_is_exact_through_finn_hw_layers_on_ties(tmp_path):
    torch.manual_seed(0)
    model = _mlp(24, 16, 8, "E2M3", "E2M1", "E2M2_U", "E3M2")
    x = torch.cat([_ties_and_saturation(model, "E2M3", 12, 24), torch.randn(4, 24) * 3])
    report = verify(model, x, tmp_path)
    assert [s.stage for s in report.stages] == ["torch", "qonnx", "lowered", "streamlined", "hw", "hw_float32"]
    # power-of-two scales: torch's float32 arithmetic is exact here, so every stage equals the reference
    assert report.ok and all(s.mismatches == 0 for s in report.stages), report.summary()
    assert report.output_quantum is not None
    assert report.estimates.total_lut > 0 and report.estimates.max_cycles > 0
    assert model.training is False


@settings(max_examples=15, deadline=None)
@given(
    in_fmt=st.sampled_from(["E2M1", "E2M3", "E3M2", "E1M2", "E2M2_NOSUB"]),
    w_fmt=st.sampled_from(["E2M1", "E3M2", "E2M2", "E1M1", "E3M0", "E2M3_NOSUB", "E4M3_FN"]),
    h_fmt=st.sampled_from(["E2M1_U", "E2M2_U", "E3M2_U_NOSUB", "E2M3", "E1M3_U"]),
    out_fmt=st.sampled_from(["E2M3", "E3M2", "E2M2_U"]),
    fin=st.integers(2, 20), hidden=st.integers(1, 12), fout=st.integers(1, 6),
    per_channel=st.booleans(), seed=st.integers(0, 100),
)
def test_random_models_lower_exactly(tmp_path_factory, in_fmt, w_fmt, h_fmt, out_fmt, fin, hidden, fout, per_channel, seed):
    torch.manual_seed(seed)
    model = _mlp(fin, hidden, fout, in_fmt, w_fmt, h_fmt, out_fmt, per_channel=per_channel)
    x = torch.cat([_ties_and_saturation(model, in_fmt, 6, fin, seed), torch.randn(4, fin) * 2])
    report = verify(model, x, tmp_path_factory.mktemp("v"), build=False, max_weight_bits=24)  # E4M3 weights: INT19
    assert report.ok, report.summary()


def test_cnv_shaped_cnn_builds_and_verifies(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=act("E2M3", power_of_two=True)),
        qnn.QuantConv2d(1, 4, 3, bias=False, weight_quant=weight("E2M1", power_of_two=True)),
        qnn.QuantReLU(act_quant=act("E2M2_U", power_of_two=True)),
        qnn.QuantConv2d(4, 4, 3, bias=False, weight_quant=weight("E2M1", power_of_two=True)),
        qnn.QuantReLU(act_quant=act("E2M2_U", power_of_two=True)),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        qnn.QuantLinear(4 * 2 * 2, 4, bias=False, weight_quant=weight("E3M2", power_of_two=True)),
        qnn.QuantIdentity(act_quant=act("E3M2", power_of_two=True)),
    )
    model.train()
    for _ in range(4):
        model(torch.randn(16, 1, 8, 8))
    model.eval()
    report = verify(model, torch.randn(4, 1, 8, 8) * 2, tmp_path)
    assert report.ok, report.summary()
    types = {layer.op_type.split("_")[0] for layer in report.estimates.layers}
    assert {"MVAU", "ConvolutionInputGenerator", "Thresholding", "Pool"} <= types, types


def test_disagreeing_stage_raises_with_report(tmp_path, monkeypatch):
    real_lower = verify_module.lower_minifloat

    def broken_lower(model, **kwargs):
        lowered = real_lower(model, **kwargs)
        mul = [n for n in lowered.graph.node if n.op_type == "Mul"][-1]
        lowered.set_initializer(mul.input[1], lowered.get_initializer(mul.input[1]) * 2)
        return lowered

    monkeypatch.setattr(verify_module, "lower_minifloat", broken_lower)
    model = _mlp(8, 4, 3, "E2M3", "E2M1", "E2M2_U", "E3M2")
    with pytest.raises(VerificationError, match="lowered") as err:
        verify(model, torch.randn(4, 8) * 2, tmp_path, build=False)
    stages = {s.stage: s for s in err.value.report.stages}
    assert stages["qonnx"].agrees and not stages["lowered"].agrees and stages["lowered"].kind == "exact"


def test_bad_inputs(tmp_path):
    model = _mlp(8, 4, 3, "E2M3", "E2M1", "E2M2_U", "E3M2")
    with pytest.raises(ValueError, match="batch"):
        verify(model, torch.randn(8), tmp_path, build=False)
    with pytest.raises(ValueError, match="batch"):
        verify(model, [[0.0] * 8], tmp_path, build=False)
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.randn(3, 8)
        x[1, 2] = bad
        with pytest.raises(ValueError, match="NaN/Inf"):
            verify(model, x, tmp_path, build=False)


def test_float_scale_cnn_with_near_ties_is_exact_at_every_exact_stage(tmp_path):
    """Float scales and a fine E3M4 output grid: many pre-activations lie within float32 error of a
    boundary; the exact stages still match the reference on every output, and whatever torch /
    QONNX round differently on this host is explained."""
    from brevitas_minifloat.zoo import calibrate, cnv_cnn

    torch.manual_seed(0)
    model = calibrate(cnv_cnn("E3M2", "E3M4", channels=(8, 16), output_bits_or_fmt="E3M4"), batches=3, batch_size=16)
    report = verify(model, torch.randn(4, 1, 28, 28) * 2, tmp_path)
    assert report.near_boundary > 0, report.summary()
    stages = {s.stage: s for s in report.stages}
    assert all(stages[n].kind == "exact" and stages[n].mismatches == 0 for n in ("lowered", "streamlined", "hw"))
    assert all(stages[n].unexplained == 0 for n in ("torch", "qonnx")), report.summary()
    assert report.ok


def test_unexplained_float32_difference_fails(tmp_path, monkeypatch):
    """A float32 stage off by one output step everywhere is not rounding near a boundary."""
    real_runner = verify_module._onnx_runner

    def shifted(model):
        run = real_runner(model)
        return lambda x: run(x) + np.float32(report_quantum[0])

    model = _mlp(8, 4, 3, "E2M3", "E2M1", "E2M2_U", "E3M2")
    report_quantum = [float(verify(model, torch.randn(2, 8), tmp_path / "q", build=False).output_quantum)]
    monkeypatch.setattr(verify_module, "_onnx_runner", shifted)
    with pytest.raises(VerificationError, match="qonnx") as err:
        verify(model, torch.randn(6, 8) * 2, tmp_path / "v", build=False)
    stages = {s.stage: s for s in err.value.report.stages}
    assert stages["qonnx"].unexplained > 0 and stages["torch"].agrees and stages["lowered"].agrees
