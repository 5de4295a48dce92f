"""PTQ (`brevitas_minifloat.ptq.quantize`): structure, formats, and that every technique improves (or at
least does not harm) the output error of the quantized model vs the float model on held-out data,
on a model built so that the technique should help."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from brevitas import nn as qnn
from torch import nn

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.ptq import TECHNIQUES, QuantSpec, formats_for_bits, output_mse, quantize
from brevitas_minifloat.ptq.rounding import grid_neighbours, gptq, learned_round, round_to_grid, rtn


# tiny tensors: on a shared 2-core machine torch's thread pool costs far more than it saves
# (learned rounding ran 30x slower with 2 threads under load)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mlp(seed: int = 0, d_in: int = 16, hidden: int = 32, d_out: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out)).eval()


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 3 * 3, 5),
    )
    with torch.no_grad():  # non-trivial BN statistics, merged into the conv by quantize
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 1.5)
    return model.eval()


def weights_on_grid(layer, spec: QuantSpec) -> bool:
    qw = layer.quant_weight()
    scale = qw.scale.detach().reshape(-1, *([1] * (layer.weight.dim() - 1)))
    units = (qw.value.detach() / scale).numpy().ravel()
    grid = spec.weight_grid
    return bool(np.all(np.min(np.abs(units[:, None] - grid[None, :]), axis=1) < 1e-4 * np.max(np.abs(grid))))


# ------------------------------------------------------------------------------------------- structure
def test_formats_for_bits_and_specs():
    assert formats_for_bits(4) == ["INT4", "E1M2", "E2M1", "E3M0"]
    assert formats_for_bits(6, ("minifloat",), max_exponent=2) == ["E1M4", "E2M3"]
    assert QuantSpec.parse("INT4").unsigned().name == "UINT4"
    assert QuantSpec.parse("E2M3").unsigned().name == "E2M4_U"  # same 6 bits, one more mantissa bit
    assert QuantSpec.parse("E2M3").unsigned().bits == 6
    assert QuantSpec.parse(MinifloatFormat(3, 2)).name == "E3M2"
    assert list(QuantSpec.parse("INT3").weight_grid) == [-3, -2, -1, 0, 1, 2, 3]
    with pytest.raises(ValueError, match="2..16"):
        QuantSpec.parse("INT40")
    with pytest.raises(ValueError, match="cannot parse"):
        QuantSpec.parse("float")


def test_quantize_copies_and_replaces_layers():
    model = small_cnn()
    before = copy.deepcopy(model.state_dict())
    x = torch.rand(64, 1, 8, 8)
    q = quantize(model, x, weights="E2M1", activations="E2M1", techniques=TECHNIQUES[:3] + ("gptq", "bias_correction"))
    for k, v in model.state_dict().items():  # the user's float model is untouched
        assert torch.equal(v, before[k]), k
    assert not any(isinstance(m, nn.BatchNorm2d) for m in q.modules())  # merged
    convs = [m for m in q.modules() if isinstance(m, qnn.QuantConv2d)]
    linears = [m for m in q.modules() if isinstance(m, qnn.QuantLinear)]
    assert len(convs) == 1 and len(linears) == 1
    info = q.ptq_info
    # image input >= 0 and the ReLU output: both get the unsigned 4-bit variant E2M2_U
    assert info.unsigned_activations == "E2M2_U"
    assert sorted(info.quantizers.values()) == ["E2M2_U", "E2M2_U"]
    assert [li.input_format for li in info.layers] == ["E2M2_U", "E2M2_U"]
    assert info.layers[0].fan_in == 9 and info.layers[0].macs == 4 * 6 * 6 * 9
    assert not q.training
    for layer in convs + linears:
        assert weights_on_grid(layer, QuantSpec.parse("E2M1"))


def test_signed_input_gets_signed_quantizer_and_int_formats():
    q = quantize(mlp(), torch.randn(128, 16), weights="INT4", activations="INT6")
    info = q.ptq_info
    assert info.quantizers == {"input_1_quant": "INT6", "1": "UINT6"}
    assert [li.input_format for li in info.layers] == ["INT6", "UINT6"]
    for layer in (m for m in q.modules() if isinstance(m, qnn.QuantLinear)):
        assert weights_on_grid(layer, QuantSpec.parse("INT4"))
        assert layer.quant_weight().bit_width.item() == 4


def test_calibration_data_forms_give_the_same_model():
    model, x = mlp(), torch.randn(96, 16)
    ref = quantize(model, x, techniques=())
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(96)), batch_size=96)
    for data in ([x], loader):
        q = quantize(model, data, techniques=())
        assert torch.equal(q(x), ref(x))


def test_errors_are_clear():
    model, x = mlp(), torch.randn(8, 16)
    with pytest.raises(ValueError, match="unknown PTQ technique"):
        quantize(model, x, techniques=("adaround",))
    with pytest.raises(ValueError, match="one of them"):
        quantize(model, x, techniques=("gptq", "learned_round"))
    with pytest.raises(ValueError, match="signed"):
        quantize(model, x, weights="E2M1_U")
    with pytest.raises(ValueError, match="no tensor batches"):
        quantize(model, [], techniques=())

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else -self.fc(x)  # data-dependent control flow

    with pytest.raises(ValueError, match="traceable"):
        quantize(Branchy(), x)


def test_export_of_a_ptq_model_matches_torch(tmp_path):
    from qonnx.core.onnx_exec import execute_onnx

    from brevitas_minifloat import export_qonnx

    q = quantize(small_cnn(), torch.rand(64, 1, 8, 8), weights="E2M1", activations="E3M2")
    x = torch.rand(4, 1, 8, 8)
    exported = export_qonnx(q, x[:1], tmp_path / "q.onnx")
    inp, out = exported.graph.input[0].name, exported.graph.output[0].name
    for i in range(len(x)):
        got = execute_onnx(exported, {inp: x[i : i + 1].numpy()})[out]
        np.testing.assert_allclose(got, q(x[i : i + 1]).detach().numpy(), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------- grid rounding
def test_grid_helpers():
    grid = torch.tensor(MinifloatFormat.parse("E2M1").values(), dtype=torch.float32)
    x = torch.tensor([-9.0, -2.4, 0.2, 0.26, 1.1, 2.9, 5.0, 7.0])
    assert round_to_grid(x, grid).tolist() == [-6.0, -2.0, 0.0, 0.5, 1.0, 3.0, 4.0, 6.0]
    lo, hi = grid_neighbours(x, grid)
    assert lo.tolist() == [-6.0, -3.0, 0.0, 0.0, 1.0, 2.0, 4.0, 6.0]
    assert hi.tolist() == [-6.0, -2.0, 0.5, 0.5, 1.5, 3.0, 6.0, 6.0]


@pytest.mark.parametrize("fmt", ["INT4", "E2M1"])
def test_gptq_and_learned_round_reduce_layer_error(fmt):
    torch.manual_seed(0)
    spec = QuantSpec.parse(fmt)
    grid = torch.tensor(spec.weight_grid, dtype=torch.float32)
    # correlated inputs: where GPTQ's error feedback pays off
    mix = torch.randn(24, 24)
    x, x_test = torch.randn(512, 24) @ mix + 0.5, torch.randn(512, 24) @ mix + 0.5
    w = torch.randn(16, 24)
    scale = w.abs().amax(1) / float(grid.max())
    base = rtn(w, scale, grid)
    for q in (gptq(w, x, scale, grid), learned_round(w, x, scale, grid, iters=200)):
        units = q / scale[:, None]
        assert torch.allclose(round_to_grid(units, grid), units, atol=1e-5)  # on the grid
        err = ((x_test @ (w - q).T) ** 2).mean()
        err_rtn = ((x_test @ (w - base).T) ** 2).mean()
        assert err < 0.9 * err_rtn, (float(err), float(err_rtn))


# ------------------------------------------------------------------------ techniques on whole models
def _mse(model, x_cal, x_test, **kwargs) -> float:
    return output_mse(quantize(model, x_cal, **kwargs), model, x_test)


def outlier_mlp() -> nn.Module:
    """Hidden channel 0 is 30x larger than the others and the next layer divides it back:
    per-tensor activation scales crush every other channel unless equalized."""
    model = mlp(1)
    with torch.no_grad():
        model[0].weight[0] *= 30
        model[0].bias[0] = model[0].bias[0].abs() * 30
        model[2].weight[:, 0] /= 30
    return model


@pytest.mark.parametrize("technique", ["equalize", "smoothquant"])
@pytest.mark.parametrize("fmt", ["INT4", "E2M1"])
def test_equalization_helps_an_outlier_channel(technique, fmt):
    model = outlier_mlp()
    torch.manual_seed(2)
    x_cal, x_test = torch.randn(256, 16), torch.randn(1000, 16)
    base = _mse(model, x_cal, x_test, weights="INT8", activations=fmt, techniques=())
    better = _mse(model, x_cal, x_test, weights="INT8", activations=fmt, techniques=(technique,))
    assert better < 0.7 * base, (better, base)


@pytest.mark.parametrize("fmt", ["INT3", "E2M0"])
def test_bias_correction_removes_a_systematic_error(fmt):
    """Inputs with a large common mean: the weight-rounding error of each output channel times that
    mean is a systematic output offset, which bias correction estimates and removes."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(64, 16)).eval()
    x_cal, x_test = torch.rand(512, 64) + 2.0, torch.rand(1000, 64) + 2.0
    base = _mse(model, x_cal, x_test, weights=fmt, activations="INT8", techniques=())
    corrected = _mse(model, x_cal, x_test, weights=fmt, activations="INT8", techniques=("bias_correction",))
    assert corrected < 0.5 * base, (corrected, base)


@pytest.mark.parametrize("technique", ["gptq", "learned_round"])
@pytest.mark.parametrize("fmt", ["INT4", "E2M1"])
def test_weight_rounding_helps_a_random_mlp(technique, fmt):
    model = mlp(4, d_in=32, hidden=64, d_out=10)
    torch.manual_seed(5)
    mix = torch.randn(32, 32)  # correlated inputs
    x_cal, x_test = torch.randn(512, 32) @ mix, torch.randn(1000, 32) @ mix
    base = _mse(model, x_cal, x_test, weights=fmt, activations="INT8", techniques=())
    better = _mse(model, x_cal, x_test, weights=fmt, activations="INT8", techniques=(technique,),
                  learned_round_iters=200)
    assert better < 0.9 * base, (better, base)


@pytest.mark.parametrize("fmt", ["INT4", "E2M1"])
def test_mse_scales_help_when_an_outlier_sets_the_range(fmt):
    """One calibration value 10x the typical range sets the max-statistics scale; the MSE-optimal
    scale clips it and keeps the resolution the other values need."""
    torch.manual_seed(6)
    model = mlp(6)
    x_cal, x_test = torch.randn(512, 16), torch.randn(1000, 16)
    x_cal[0, 0] = 40.0
    base = _mse(model, x_cal, x_test, weights="INT8", activations=fmt, techniques=())
    better = _mse(model, x_cal, x_test, weights="INT8", activations=fmt, techniques=("mse",))
    assert better < 0.5 * base, (better, base)


def test_default_techniques_do_not_harm_a_trained_mlp():
    """Real digits, a briefly trained MLP: the defaults are no worse than calibration alone."""
    from brevitas_minifloat.data import load_dataset
    from brevitas_minifloat.dse.workload import digits_mlp
    from brevitas_minifloat.training import train_classifier

    torch.manual_seed(0)
    (xtr, ytr), (xte, _) = load_dataset("mnist-5k")
    model = train_classifier(digits_mlp(), xtr[:2000], ytr[:2000], epochs=1)
    for fmt in ("INT4", "E2M1"):
        base = _mse(model, xtr[:256], xte[:500], weights=fmt, activations=fmt, techniques=())
        default = output_mse(quantize(model, xtr[:256], weights=fmt, activations=fmt), model, xte[:500])
        assert default <= base * 1.02, (fmt, default, base)
