"""SYQ weight quantizers: semantics against an independent numpy reference, state, export, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv1d, QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8ActPerTensorFloat, Int8BiasPerTensorFloatInternalScaling
from brevitas.quant import Int32Bias, Uint8ActPerTensorFixedPoint
from hypothesis import given, settings
from hypothesis import strategies as st
from qonnx.core.onnx_exec import execute_onnx
from qonnx.util.cleanup import cleanup_model

from brevitas_minifloat import ExportRefused, export_qonnx, syq_weight_quant
from brevitas_minifloat.export.syq_handlers import check_codes, syq_codebook
from brevitas_minifloat.quant.syq import ReductionScaledIntQuantTensor

# --------------------------------------------------------------------------------------------------
# Independent numpy reference (float64 except where float32 decides a code)
# --------------------------------------------------------------------------------------------------

# Weight axes that keep their size in the scale, per (groups, weight ndim); PyTorch layouts
# Linear (out, in), Conv1d (out, in, k), Conv2d (out, in, kh, kw).
GROUP_AXES = {
    ("layer", 2): (), ("channel", 2): (0,),
    ("layer", 3): (), ("channel", 3): (0,), ("pixel", 3): (2,),
    ("layer", 4): (), ("channel", 4): (0,), ("row", 4): (2,), ("pixel", 4): (2, 3),
}


def ref_shared_axes(groups, ndim):
    keep = GROUP_AXES[(groups, ndim)]
    return tuple(i for i in range(ndim) if i not in keep)


def ref_threshold(w, eta):
    return np.float32(np.abs(w).max()) * np.float32(eta)


def ref_codes(w, levels, eta):
    t = ref_threshold(w, eta)
    if levels == "ternary":
        return np.where(np.abs(w) > t, np.sign(w), 0.0).astype(np.float32)
    return np.where(w >= 0, 1.0, -1.0).astype(np.float32)


def ref_init_scale(w, groups):
    return np.abs(w.astype(np.float64)).mean(axis=ref_shared_axes(groups, w.ndim), keepdims=True)


def ref_fixed_point(a, bits):
    kmax = 2.0**bits - 1
    s = 2.0 ** np.ceil(np.log2(a.max() / kmax))
    return s * np.clip(np.round(a / s), 1, kmax), s


def ref_grads(w, a, g, levels, eta, groups):
    """dL/dw and dL/da for L = sum(Q * g)."""
    t = ref_threshold(w, eta)
    m = np.where(np.abs(w) > t, a, 1.0)
    codes = ref_codes(w, levels, eta).astype(np.float64)
    ga = (codes * g).sum(axis=ref_shared_axes(groups, w.ndim), keepdims=True)
    return m * g, ga


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------

def make_layer(kind, groups, levels, shape=None, **kw):
    wq = syq_weight_quant(levels, groups, **{k: v for k, v in kw.items() if k in ("eta", "scale_bits")})
    layer_kw = {k: v for k, v in kw.items() if k not in ("eta", "scale_bits")}
    if kind == "linear":
        o, i = shape or (6, 10)
        return QuantLinear(i, o, weight_quant=wq, **layer_kw)
    if kind == "conv1d":
        o, i, k = shape or (6, 3, 5)
        return QuantConv1d(i, o, k, weight_quant=wq, **layer_kw)
    o, i, kh, kw_ = shape or (6, 3, 3, 4)
    return QuantConv2d(i, o, (kh, kw_), weight_quant=wq, **layer_kw)


CASES = [(kind, g) for kind, nd in (("linear", 2), ("conv1d", 3), ("conv2d", 4))
         for g in ("layer", "channel", "row", "pixel") if (g, nd) in GROUP_AXES]


def check_against_reference(layer, levels, groups, eta=0.05, scale_bits=None, seed=0):
    tq = layer.weight_quant.tensor_quant
    w = layer.weight.detach().numpy().copy()
    qt = layer.quant_weight()  # first forward initialises the scales
    p = tq.scale.detach().numpy().astype(np.float64)
    # initial scales: mean |w| over the whole group
    np.testing.assert_allclose(p, ref_init_scale(w, groups), rtol=2e-6)
    a = np.abs(p)
    if scale_bits is not None:
        a, s = ref_fixed_point(a, scale_bits)
        k = a / s
        assert np.all(k == np.round(k)) and k.min() >= 1 and k.max() <= 2**scale_bits - 1
        assert np.log2(s) == np.round(np.log2(s))
    a_t = qt.scale.detach().numpy()
    np.testing.assert_allclose(a_t, a, rtol=1e-6)
    assert a_t.shape == tuple(w.shape[i] if i in GROUP_AXES[(groups, w.ndim)] else 1 for i in range(w.ndim))
    # forward: codes exactly, Q = code * a exactly
    codes = ref_codes(w, levels, eta)
    q = qt.value.detach().numpy()
    np.testing.assert_array_equal(q, codes * a_t)
    assert float(qt.bit_width) == (2.0 if levels == "ternary" else 1.0)
    assert qt.signed and float(qt.zero_point) == 0.0
    # gradients of L = sum(Q * g)
    g = np.random.default_rng(seed).standard_normal(w.shape).astype(np.float32)
    gw, gp = torch.autograd.grad((qt.value * torch.from_numpy(g)).sum(), [layer.weight, tq.scale])
    ref_gw, ref_ga = ref_grads(w, a_t.astype(np.float64), g.astype(np.float64), levels, eta, groups)
    np.testing.assert_allclose(gw.numpy(), ref_gw, rtol=1e-6, atol=1e-7)
    # parameter gradient = dL/da (straight through |p| and the rounding of k) for positive p
    np.testing.assert_allclose(gp.numpy(), ref_ga, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# semantics
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("levels", ["ternary", "binary"])
@pytest.mark.parametrize("kind,groups", CASES)
def test_matches_reference(kind, groups, levels):
    torch.manual_seed(1)
    layer = make_layer(kind, groups, levels)
    check_against_reference(layer, levels, groups)


@pytest.mark.parametrize("levels", ["ternary", "binary"])
@pytest.mark.parametrize("groups,bits", [("pixel", 3), ("row", 1), ("channel", 4), ("layer", 2)])
def test_scale_bits_matches_reference(groups, bits, levels):
    torch.manual_seed(2)
    layer = make_layer("conv2d", groups, levels, shape=(8, 4, 3, 3), scale_bits=bits)
    check_against_reference(layer, levels, groups, scale_bits=bits)


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(["linear", "conv1d", "conv2d"]),
    groups=st.sampled_from(["layer", "channel", "row", "pixel"]),
    levels=st.sampled_from(["ternary", "binary"]),
    dims=st.lists(st.integers(1, 6), min_size=4, max_size=4),
    eta=st.floats(0.0, 0.9),
    scale_bits=st.sampled_from([None, None, 1, 2, 5]),
    seed=st.integers(0, 2**31 - 1),
)
def test_reference_over_shapes(kind, groups, levels, dims, eta, scale_bits, seed):
    nd = {"linear": 2, "conv1d": 3, "conv2d": 4}[kind]
    torch.manual_seed(seed)
    if (groups, nd) not in GROUP_AXES:
        with pytest.raises(ValueError, match="groups that fit"):
            make_layer(kind, groups, levels, shape=tuple(dims[:nd]), eta=eta)
        return
    layer = make_layer(kind, groups, levels, shape=tuple(dims[:nd]), eta=eta, scale_bits=scale_bits)
    check_against_reference(layer, levels, groups, eta=eta, scale_bits=scale_bits, seed=seed % 1000)


def test_sign_of_zero_and_threshold():
    layer = make_layer("linear", "layer", "binary", shape=(1, 5), eta=0.5)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, -0.0, 0.2, -0.5, 1.0]]))
    q = layer.quant_weight()
    assert (q.value / q.scale).flatten().tolist() == [1, 1, 1, -1, 1]  # sign(0) = +1 for binary
    tern = make_layer("linear", "layer", "ternary", shape=(1, 5), eta=0.5)
    with torch.no_grad():
        tern.weight.copy_(torch.tensor([[0.0, 0.5, 0.50001, -0.6, 1.0]]))
    q = tern.quant_weight()
    assert (q.value / q.scale).flatten().tolist() == [0, 0, 1, -1, 1]  # |w| > 0.5 * max strictly
    # eta = 0: only exact zeros map to code 0
    tern0 = make_layer("linear", "layer", "ternary", shape=(1, 3), eta=0.0)
    with torch.no_grad():
        tern0.weight.copy_(torch.tensor([[0.0, 1e-30, -3.0]]))
    q = tern0.quant_weight()
    assert (q.value / q.scale).flatten().tolist() == [0, 1, -1]


def test_scale_positive_and_learned():
    layer = make_layer("conv2d", "pixel", "ternary")
    tq = layer.weight_quant.tensor_quant
    layer.quant_weight()
    with torch.no_grad():
        tq.scale[0, 0, 0, 0] = -0.25
        tq.scale[0, 0, 0, 1] = 0.0
    a = layer.quant_weight().scale
    assert a[0, 0, 0, 0] == 0.25 and a[0, 0, 0, 1] > 0
    assert isinstance(tq.scale, torch.nn.Parameter)
    assert any(p is tq.scale for p in layer.parameters())


def test_layer_forward_backward_and_training_reduces_loss():
    torch.manual_seed(0)
    conv = make_layer("conv2d", "row", "ternary", shape=(4, 2, 3, 3), padding=1)
    target = torch.nn.Conv2d(2, 4, 3, padding=1)
    x = torch.randn(16, 2, 6, 6)
    y = target(x).detach()
    opt = torch.optim.Adam(conv.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.mse_loss(conv(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert conv.weight_quant.tensor_quant.scale.grad is not None
    assert losses[-1] < 0.7 * losses[0]


def test_reduction_groups_with_quant_input_and_bias():
    """Row/pixel scales lie along the reduction: the layer output is a plain tensor, bias works."""
    torch.manual_seed(0)
    conv = QuantConv2d(3, 5, 3, weight_quant=syq_weight_quant("ternary", "row"), bias=True,
                       input_quant=Int8ActPerTensorFloat)
    x = torch.randn(2, 3, 7, 7)
    y = conv(x)
    qw = conv.quant_weight()
    assert isinstance(qw, ReductionScaledIntQuantTensor)
    xq = conv.input_quant(x).value
    ref = torch.nn.functional.conv2d(xq, qw.value, conv.bias)
    torch.testing.assert_close(y, ref)
    # per-channel groups keep Brevitas' output scale propagation
    conv = QuantConv2d(3, 5, 3, weight_quant=syq_weight_quant("binary", "channel"), bias=False,
                       input_quant=Int8ActPerTensorFloat, return_quant_tensor=True)
    out = conv(x)
    torch.testing.assert_close(out.scale.flatten(), (conv.input_quant(x).scale * conv.quant_weight().scale).flatten())


# --------------------------------------------------------------------------------------------------
# state
# --------------------------------------------------------------------------------------------------

def test_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    a = make_layer("conv2d", "pixel", "ternary", scale_bits=3)
    keys = set(a.state_dict())
    assert {"weight_quant.tensor_quant.scale", "weight_quant.tensor_quant.initialized"} <= keys
    opt = torch.optim.SGD(a.parameters(), lr=0.1)
    for _ in range(3):
        loss = a(torch.randn(2, 3, 6, 6)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(a.state_dict(), tmp_path / "a.pt")
    b = make_layer("conv2d", "pixel", "ternary", scale_bits=3)
    assert str(b.load_state_dict(torch.load(tmp_path / "a.pt"))) == "<All keys matched successfully>"
    torch.testing.assert_close(b.weight_quant.tensor_quant.scale, a.weight_quant.tensor_quant.scale)
    qa, qb = a.quant_weight(), b.quant_weight()
    assert torch.equal(qa.value, qb.value) and torch.equal(qa.scale, qb.scale)
    # scales are kept, not re-initialised from the weights
    assert not torch.allclose(b.weight_quant.tensor_quant.scale,
                              b.weight.detach().abs().mean(dim=(0, 1), keepdim=True))


def test_load_float_weights_then_lazy_init():
    torch.manual_seed(0)
    f = torch.nn.Conv2d(3, 6, 3)
    q = make_layer("conv2d", "channel", "binary", shape=(6, 3, 3, 3))
    res = q.load_state_dict(f.state_dict(), strict=False)
    assert set(res.missing_keys) == {"weight_quant.tensor_quant.scale", "weight_quant.tensor_quant.initialized"}
    torch.testing.assert_close(q.quant_weight().scale.flatten(), f.weight.detach().abs().mean(dim=(1, 2, 3)))


# --------------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------------

class Net(torch.nn.Module):
    def __init__(self, levels, groups, scale_bits=None, conv1d=False):
        super().__init__()
        self.conv1d = conv1d
        self.inp = QuantIdentity(Int8ActPerTensorFloat, return_quant_tensor=True)
        conv_cls = QuantConv1d if conv1d else QuantConv2d
        self.conv = conv_cls(3, 4, 3, bias=True, weight_quant=syq_weight_quant(levels, groups, scale_bits=scale_bits))
        self.act = QuantReLU(return_quant_tensor=True)
        n = 4 * 4 if conv1d else 4 * 4 * 4
        self.fc = QuantLinear(n, 5, bias=False, weight_quant=syq_weight_quant(levels, "channel", scale_bits=scale_bits))

    def forward(self, x):
        return self.fc(torch.flatten(self.act(self.conv(self.inp(x))), 1))


def _export_and_run(model, x, path):
    model.eval()
    with torch.no_grad():
        ref = model(x)
    wrapped = export_qonnx(model, x, path)
    ctx = execute_onnx(wrapped, {wrapped.graph.input[0].name: x.numpy()}, return_full_exec_context=True)
    return wrapped, ctx, ref


EXPORT_CASES = [(lv, g) for g in ("layer", "channel", "row", "pixel") for lv in ("ternary", "binary")]


@pytest.mark.parametrize("levels,groups", EXPORT_CASES)
def test_export_round_trip(levels, groups, tmp_path):
    torch.manual_seed(0)
    model = Net(levels, groups)
    x = torch.randn(2, 3, 6, 6)
    wrapped, ctx, ref = _export_and_run(model, x, tmp_path / "m.onnx")
    op = "Quant" if levels == "ternary" else "BipolarQuant"
    nodes = [n for n in wrapped.graph.node if n.op_type == op and wrapped.get_initializer(n.input[0]) is not None]
    assert len(nodes) == 2
    for n in nodes:
        w_init = wrapped.get_initializer(n.input[0])
        layer = model.conv if w_init.ndim == 4 else model.fc
        qt = layer.quant_weight()
        # the initializer is the quantized weight and the node reproduces it bit for bit
        np.testing.assert_array_equal(w_init, qt.value.detach().numpy())
        np.testing.assert_array_equal(ctx[n.output[0]], qt.value.detach().numpy())
        np.testing.assert_array_equal(wrapped.get_initializer(n.input[1]), qt.scale.detach().numpy())
        cb = syq_codebook(wrapped, n)
        assert cb.levels == levels
        expect_axes = {"layer": (), "channel": (0,), "row": (2,), "pixel": (2, 3)}[groups if layer is model.conv else "channel"]
        assert cb.group_axes == expect_axes
        np.testing.assert_array_equal(cb.values, qt.value.detach().numpy())
        if levels == "ternary":
            assert [wrapped.get_initializer(n.input[i]).item() for i in (2, 3)] == [0.0, 2.0]
            attrs = {a.name: a.i for a in n.attribute if a.name in ("signed", "narrow")}
            assert attrs == {"signed": 1, "narrow": 1}
    out = ctx[wrapped.graph.output[0].name]
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-6)
    # qonnx clean-up (constant folding) keeps the weight quantizers for the lowering passes
    cleaned = cleanup_model(wrapped)
    assert sum(n.op_type == op for n in cleaned.graph.node) >= 2


def test_export_bit_exact_with_power_of_two_grid(tmp_path):
    """With fixed-point weight scales, power-of-two activation scales and dyadic inputs every float32
    product and sum is exact: the whole QONNX output equals torch's bit for bit."""
    torch.manual_seed(0)
    model = Net("ternary", "pixel", scale_bits=3, conv1d=True)
    model.inp = QuantIdentity(Int8ActPerTensorFixedPoint, return_quant_tensor=True)
    model.act = QuantReLU(Uint8ActPerTensorFixedPoint, return_quant_tensor=True)
    model.eval()
    x = torch.randint(-64, 64, (2, 3, 6)).float() / 64
    with torch.no_grad():
        model(x)
    for proxy in (model.inp.act_quant, model.act.act_quant):
        assert float(torch.log2(proxy.scale())).is_integer()
    wrapped, ctx, ref = _export_and_run(model, x, tmp_path / "m.onnx")
    np.testing.assert_array_equal(ctx[wrapped.graph.output[0].name], ref.numpy())
    n = next(n for n in wrapped.graph.node if n.op_type == "Quant" and wrapped.get_initializer(n.input[0]) is not None
             and wrapped.get_initializer(n.input[0]).ndim == 3)
    cb = syq_codebook(wrapped, n)
    assert cb.group_axes == (2,) and cb.scale.shape == (1, 1, 3)


def test_check_codes_refuses_inexact():
    with pytest.raises(ExportRefused, match="not exactly"):
        check_codes(torch.tensor([0.3, 0.1]), torch.tensor(0.3), ternary=True)
    with pytest.raises(ExportRefused):
        check_codes(torch.tensor([0.0, 0.3]), torch.tensor(0.3), ternary=False)
    check_codes(torch.tensor([0.0, -0.3]), torch.tensor(0.3), ternary=True)


# --------------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    (dict(levels="quaternary"), "levels must be one of"),
    (dict(groups="kernel"), "groups must be one of"),
    (dict(eta=-0.1), "0 <= eta < 1"),
    (dict(eta=1.0), "0 <= eta < 1"),
    (dict(eta=float("nan")), "0 <= eta < 1"),
    (dict(eta="0.1"), "0 <= eta < 1"),
    (dict(eta=True), "0 <= eta < 1"),
    (dict(scale_bits=0), "scale_bits must be None or an integer"),
    (dict(scale_bits=17), "scale_bits must be None or an integer"),
    (dict(scale_bits=2.0), "scale_bits must be None or an integer"),
    (dict(scale_bits=True), "scale_bits must be None or an integer"),
])
def test_bad_arguments(kwargs, match):
    args = dict(levels="ternary", groups="channel") | kwargs
    with pytest.raises(ValueError, match=match):
        syq_weight_quant(args.pop("levels"), args.pop("groups"), **args)


def test_numpy_scalars_accepted():
    wq = syq_weight_quant("binary", "layer", eta=np.float32(0.1), scale_bits=np.int64(3))
    assert wq.syq_scale_bits == 3 and isinstance(wq.syq_scale_bits, int)
    assert QuantLinear(4, 3, weight_quant=wq).quant_weight().bit_width == 1


@pytest.mark.parametrize("groups", ["row", "pixel"])
def test_row_pixel_on_linear(groups):
    with pytest.raises(ValueError, match=r"QuantLinear: groups='%s' does not fit a Linear.*'layer', 'channel'" % groups):
        QuantLinear(4, 3, weight_quant=syq_weight_quant("ternary", groups))


def test_row_on_conv1d():
    with pytest.raises(ValueError, match=r"single row.*'layer', 'channel', 'pixel'"):
        QuantConv1d(4, 3, 3, weight_quant=syq_weight_quant("binary", "row"))


def test_reduction_groups_refuse_undefined_output_scales():
    x = torch.randn(1, 3, 5, 5)
    conv = QuantConv2d(3, 4, 3, bias=True, weight_quant=syq_weight_quant("ternary", "pixel"),
                       input_quant=Int8ActPerTensorFloat, bias_quant=Int32Bias)
    with pytest.raises(ValueError, match="bias quantizer"):
        conv(x)
    conv = QuantConv2d(3, 4, 3, bias=False, weight_quant=syq_weight_quant("ternary", "row"),
                       input_quant=Int8ActPerTensorFloat, return_quant_tensor=True)
    with pytest.raises(ValueError, match="return_quant_tensor"):
        conv(x)
    # a bias quantizer with its own scale is fine
    conv = QuantConv2d(3, 4, 3, bias=True, weight_quant=syq_weight_quant("ternary", "row"),
                       input_quant=Int8ActPerTensorFloat, bias_quant=Int8BiasPerTensorFloatInternalScaling)
    assert conv(x).shape == (1, 4, 3, 3)


def test_shared_quantizer_refused():
    a = QuantConv2d(3, 4, 3, weight_quant=syq_weight_quant("ternary", "channel"))
    with pytest.raises(ValueError, match="cannot be shared"):
        QuantConv2d(3, 4, 3, weight_quant=a.weight_quant)
