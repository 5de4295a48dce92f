"""Exact lowering of minifloat quantizers (QONNX) to integer weights and MultiThresholds (FINN-ONNX).

"Exact" means ``np.array_equal`` of the executed graphs, on inputs built to hit ties, saturation,
zero and tiny values. Where a graph's own float arithmetic differs between the forms (a float32
MatMul of fake-quantized values vs an integer MatMul and one Mul), bit-exactness is asserted with
power-of-two scales, whose products and sums float32 holds exactly; see `test_mlp_float_scales`.
"""

from __future__ import annotations

import contextlib

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model
from qonnx.util.cleanup import cleanup_model

import finn_transforms.custom_op  # noqa: F401
from brevitas_minifloat.formats import MinifloatFormat
from finn_transforms.annotations import read_weight_format, record_weight_format
from finn_transforms.steps import (
    MINIFLOAT_STEP,
    REPLACED_FINN_STEPS,
    lower_minifloat,
    make_step_lower_minifloat,
    minifloat_estimate_steps,
    step_lower_minifloat,
)
from finn_transforms.thresholds import pair_thresholds, threshold_count
from finn_transforms.transformation import LowerMinifloatActivations, LowerMinifloatWeights, LoweringError
from tests.helpers import assert_exact_equal, exact_rows, finn_available

F32 = np.float32
HYP = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)



# ----------------------------------------------------------------------------- graph building
def quant_node(model, kind, x, out, fmt, scale, name, **attrs):
    """``FloatQuant`` (qonnx; signed formats with subnormals) or our ``MinifloatQuant`` node."""
    model.set_initializer(f"{name}_scale", np.asarray(scale, F32))
    if kind == "FloatQuant":
        assert fmt.signed and fmt.subnormals
        ins = [x, f"{name}_scale"]
        for suffix, v in (("e", fmt.exponent_bits), ("m", fmt.mantissa_bits), ("b", fmt.bias), ("max", fmt.max_value)):
            model.set_initializer(f"{name}_{suffix}", np.asarray(attrs.pop(suffix, v), F32))
            ins.append(f"{name}_{suffix}")
        kw = dict(has_inf=int(fmt.has_inf), has_nan=int(fmt.has_nan), has_subnormal=1, rounding_mode="ROUND", saturation=1)
        kw.update(attrs)
        return helper.make_node("FloatQuant", ins, [out], domain="qonnx.custom_op.general", name=name, **kw)
    return helper.make_node(
        "MinifloatQuant",
        [x, f"{name}_scale"],
        [out],
        domain="finn_transforms.custom_op",
        name=name,
        exponent_bitwidth=fmt.exponent_bits,
        mantissa_bitwidth=fmt.mantissa_bits,
        exponent_bias=fmt.bias,
        signed=int(fmt.signed),
        has_subnormal=int(fmt.subnormals),
        specials=fmt.specials,
    )


def int_quant_node(model, x, out, scale, bits, signed, name, narrow=False):
    for suffix, v in (("scale", scale), ("zp", 0.0), ("bits", bits)):
        model.set_initializer(f"{name}_{suffix}", np.asarray(v, F32))
    return helper.make_node(
        "Quant",
        [x, f"{name}_scale", f"{name}_zp", f"{name}_bits"],
        [out],
        domain="qonnx.custom_op.general",
        name=name,
        signed=int(signed),
        narrow=int(narrow),
        rounding_mode="ROUND",
    )


def new_model(inputs: dict, outputs: dict) -> ModelWrapper:
    graph = helper.make_graph(
        [],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
    )
    return ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def finish(model: ModelWrapper, nodes) -> ModelWrapper:
    model.graph.node.extend(nodes)
    return model.transform(InferShapes())


def run(model: ModelWrapper, x: np.ndarray, full=False):
    ctx = execute_onnx(model, {model.graph.input[0].name: x}, full)
    return ctx if full else ctx[model.graph.output[0].name]


def kind_for(fmt, data) -> str:
    if fmt.signed and fmt.subnormals and fmt.specials in ("none", "fn", "ieee"):
        return data.draw(st.sampled_from(["FloatQuant", "MinifloatQuant"]), label="op")
    return "MinifloatQuant"


@contextlib.contextmanager
def unchanged(model: ModelWrapper):
    before = model.model.SerializeToString()
    yield
    assert model.model.SerializeToString() == before, "the caller's model was modified"


# ----------------------------------------------------------------------------- strategies
@st.composite
def formats(draw, min_bits=3, max_bits=8, max_thresholds=4096, max_int_bits=16):
    """Formats of ``min_bits..max_bits`` bits, drawn as feasible sign/E/M splits."""
    bits = draw(st.integers(min_bits, max_bits), label="bits")
    signed = draw(st.booleans(), label="signed")
    e = draw(st.integers(1, min(5, bits - int(signed))), label="E")
    m = bits - int(signed) - e
    specials = draw(st.sampled_from(["none", "none", "fn", "ieee"]), label="specials")
    try:
        fmt = MinifloatFormat(e, m, signed=signed, subnormals=draw(st.booleans(), label="sub"), specials=specials)
    except ValueError:
        assume(False)
    assume(threshold_count(fmt) <= max_thresholds and fmt.integer_bit_width <= max_int_bits)
    return fmt


def draw_scale(data, shape, pot: bool):
    if pot:
        exps = data.draw(st.lists(st.integers(-12, 8), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        return (2.0 ** np.asarray(exps, np.float64)).astype(F32).reshape(shape)
    vals = data.draw(st.lists(st.floats(2.0**-12, 2.0**8, width=32), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.asarray(vals, F32).reshape(shape)


def probe_points(fmt: MinifloatFormat, s: np.float32) -> np.ndarray:
    """Float32 inputs of one channel: every threshold and its +-2 ulp neighbours, the scaled grid,
    zeros, float32 subnormals, saturation, infinities."""
    T, _ = pair_thresholds(fmt, s)
    pts = [T[0]]
    up = down = T[0]
    for _ in range(2):
        up, down = np.nextafter(up, F32(np.inf)), np.nextafter(down, F32(-np.inf))
        pts += [up, down]
    grid = (fmt.values() * np.float64(s)).astype(F32)
    extra = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-39, -1e-39, np.inf, -np.inf], F32)
    sat = (np.array([1.5, 1e3, -1.5, -1e3]) * fmt.max_value * np.float64(s)).astype(F32)
    return np.concatenate(pts + [grid, -grid, extra, sat])


def probe_tensor(fmt, scale_per_channel: np.ndarray, C: int) -> np.ndarray:
    """``(N, C)`` with channel c probed at its own scale's points (shorter columns padded by repeats)."""
    cols = [probe_points(fmt, scale_per_channel[c if scale_per_channel.size > 1 else 0]) for c in range(C)]
    n = max(len(c) for c in cols)
    return np.stack([np.resize(c, n) for c in cols], axis=1)


# ----------------------------------------------------------------------------- activations
@settings(max_examples=150, **HYP)
@given(fmt=formats(), data=st.data())
def test_activation_lowering_is_bit_exact(fmt, data):
    kind = kind_for(fmt, data)
    layout = data.draw(st.sampled_from(["NC", "NCHW", "NHWC", "NCW"]), label="layout")
    C = data.draw(st.integers(1, 4), label="C")
    per_channel = data.draw(st.booleans(), label="per_channel")
    pot = data.draw(st.booleans(), label="pot")
    relu = data.draw(st.booleans(), label="relu")
    rank = len(layout)
    caxis = layout.index("C")
    if per_channel:
        sshape = [1] * rank
        sshape[caxis] = C
        if layout == "NC" and data.draw(st.booleans(), label="1-D scale"):
            sshape = [C]
    else:
        sshape = data.draw(st.sampled_from([[], [1], [1] * rank]), label="scalar shape")
    scale = draw_scale(data, sshape, pot)
    probes = probe_tensor(fmt, scale.reshape(-1), C)  # (N, C)
    if kind == "FloatQuant":  # qonnx's FloatQuant maps +-inf to NaN (see test_activation_ties_saturation_tiny)
        probes = np.where(np.isinf(probes), F32(0), probes)
    x = np.moveaxis(probes.reshape(probes.shape + (1,) * (rank - 2)), 1, caxis)
    model = new_model({"x": list(x.shape)}, {"y": list(x.shape)})
    nodes = [quant_node(model, kind, "r" if relu else "x", "y", fmt, scale, "q")]
    if relu:
        nodes.insert(0, helper.make_node("Relu", ["x"], ["r"], name="relu"))
    model = finish(model, nodes)

    with unchanged(model):
        lowered = model.transform(LowerMinifloatActivations())
    assert [n.op_type for n in lowered.graph.node] == ["MultiThreshold", "Mul"]
    mt = getCustomOp(lowered.graph.node[0])
    thresholds = lowered.get_initializer(lowered.graph.node[0].input[1])
    if relu:
        # unsigned after an absorbed Relu; a single positive level is qonnx's BINARY (UINT1)
        assert mt.get_nodeattr("out_bias") == 0 and mt.get_nodeattr("out_dtype").startswith(("UINT", "BINARY"))
    else:
        assert mt.get_nodeattr("out_bias") == fmt.integer_min
        assert mt.get_nodeattr("out_dtype") == fmt.integer_datatype
        assert thresholds.shape == (C if per_channel and C > 1 else 1, threshold_count(fmt))
    if per_channel and C > 1:
        assert mt.get_nodeattr("data_layout") == {"NC": "NC", "NCHW": "NCHW", "NHWC": "NHWC", "NCW": "NCW"}[layout]

    want, got = run(model, x), run(lowered, x)
    np.testing.assert_array_equal(got, want)  # -0.0 comes out as +0.0 (k = 0 has no sign)
    assert got.dtype == want.dtype == F32


def test_activation_ties_saturation_tiny():
    """Hand-picked E2M1 cases (grid 0 .5 1 1.5 2 3 4 6), scale 0.1 (not a power of two)."""
    fmt, s = MinifloatFormat.parse("E2M1"), F32(0.1)
    model = new_model({"x": [1, 11]}, {"y": [1, 11]})
    model = finish(model, [quant_node(model, "FloatQuant", "x", "y", fmt, s, "q")])
    lowered = model.transform(LowerMinifloatActivations())
    ties = (np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]) * np.float64(s)).astype(F32)
    x = np.concatenate([ties, np.array([1e-45, -1e-45, 7.0, -1e6], F32)])[None]
    with np.errstate(invalid="ignore"):
        want = run(model, x)
    np.testing.assert_array_equal(run(lowered, x), want)
    # qonnx's FloatQuant turns +-inf into NaN (inf / inf while finding the binade); the lowered form
    # saturates them, as MinifloatQuant and the Brevitas quantizers of this package do.
    inf = np.array([[np.inf, -np.inf, np.inf, 0, 0, 0, 0, 0, 0, 0, 0]], F32)
    with np.errstate(invalid="ignore"):
        assert np.isnan(run(model, inf)[0, :3]).all()
    np.testing.assert_array_equal(run(lowered, inf)[0, :3], F32(6 * s) * np.array([1, -1, 1], F32))
    np.testing.assert_array_equal(np.rint(want[0, :7] / s), [0, 1, 1, 2, 2, 4, 4])  # ties to even


# ----------------------------------------------------------------------------- weights
def planted_weights(fmt, scale_b: np.ndarray, rng) -> np.ndarray:
    """Weights at grid values, ties (and their neighbours), saturation and tiny values, times the scale."""
    v = fmt.values()
    mids = (v[1:] + v[:-1]) / 2
    pool = np.concatenate([v, mids, [fmt.max_value * 1.7, -fmt.max_value * 3, fmt.min_subnormal / 3, 0.0]])
    if not fmt.signed:
        pool = np.concatenate([pool, -pool[:4]])
    w = (rng.choice(pool, size=scale_b.shape) * scale_b.astype(np.float64)).astype(F32)
    nudge = rng.integers(-1, 2, size=w.shape)
    return np.where(nudge > 0, np.nextafter(w, F32(np.inf)), np.where(nudge < 0, np.nextafter(w, F32(-np.inf)), w))


@settings(max_examples=80, **HYP)
@given(fmt=formats(max_thresholds=10**9), data=st.data())
def test_weight_lowering_is_bit_exact(fmt, data):
    kind = kind_for(fmt, data)
    op = data.draw(st.sampled_from(["MatMul", "Conv", "Gemm"]), label="op")
    per_channel = data.draw(st.booleans(), label="per_channel")
    pot = data.draw(st.booleans(), label="pot")
    folded = data.draw(st.booleans(), label="folded") and op != "Gemm"
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    cin, cout = data.draw(st.integers(1, 6), label="in"), data.draw(st.integers(1, 5), label="out")
    kh = kw = data.draw(st.integers(1, 2), label="k") if op == "Conv" else 1
    wshape = {"MatMul": [cin, cout], "Conv": [cout, cin, kh, kw], "Gemm": [cout, cin]}[op]
    sshape = {"MatMul": [1, cout], "Conv": [cout, 1, 1, 1], "Gemm": [cout, 1]}[op] if per_channel else []
    scale = draw_scale(data, sshape, pot)
    w = planted_weights(fmt, np.broadcast_to(scale, wshape), rng)
    # One-hot inputs pick out single weights, so the float MatMul/Conv adds one product: no rounding.
    n = cin * kh * kw
    x = np.eye(n, dtype=F32).reshape([n, cin, kh, kw] if op == "Conv" else [n, cin])
    yshape = [n, cout, 1, 1] if op == "Conv" else [n, cout]
    model = new_model({"x": list(x.shape)}, {"y": yshape})
    model.set_initializer("W", w)
    nodes = [quant_node(model, kind, "W", "Wq", fmt, scale, "wq")]
    if op == "Conv":
        ins = ["x", "Wq"]
        if data.draw(st.booleans(), label="bias"):
            model.set_initializer("B", rng.normal(size=cout).astype(F32))
            ins.append("B")
        nodes.append(helper.make_node("Conv", ins, ["y"], name="conv", kernel_shape=[kh, kw]))
    elif op == "Gemm":
        nodes.append(helper.make_node("Gemm", ["x", "Wq"], ["y"], name="gemm", transB=1))
    else:
        nodes.append(helper.make_node("MatMul", ["x", "Wq"], ["y"], name="mm"))
    model = finish(model, nodes)
    want = run(model, x)

    src = model
    if folded:
        record_weight_format(model, "Wq", fmt, scale)
        src = cleanup_model(model)
        assert not any(n.op_type in ("FloatQuant", "MinifloatQuant") for n in src.graph.node)
        np.testing.assert_array_equal(run(src, x), want)
    with unchanged(src):
        lowered = lower_minifloat(src) if op == "Gemm" else src.transform(LowerMinifloatWeights())
    assert not any(n.op_type in ("FloatQuant", "MinifloatQuant") for n in lowered.graph.node)
    np.testing.assert_array_equal(run(lowered, x), want)

    consumer = next(n for n in lowered.graph.node if n.op_type in ("MatMul", "Conv"))
    k = lowered.get_initializer(consumer.input[1])
    dt = lowered.get_tensor_datatype(consumer.input[1])
    assert np.array_equal(k, np.rint(k)) and dt.allowed(k.min()) and dt.allowed(k.max())
    smaller = DataType[f"{'INT' if fmt.signed else 'UINT'}{dt.bitwidth() - 1}"] if dt.bitwidth() > 2 else None
    assert smaller is None or not (smaller.allowed(k.min()) and smaller.allowed(k.max()))
    assert read_weight_format(lowered, consumer.input[1]) is None


# ----------------------------------------------------------------------------- MLPs, FINN
def mlp(rng, fa0, fw1, fa1, fw2, *, n_in=12, hidden=8, n_out=4, pot=True, act_scale_fn=None, batch=1, relu=True, kinds=None):
    """x -> Qa0 -> MatMul(Qw1(W1)) -> [Relu] -> Qa1 -> MatMul(Qw2(W2)) -> y (per-tensor activation scales,
    per-output-channel weight scales)."""
    kinds = kinds or {}

    def kind(fmt, key):
        if key in kinds:
            return kinds[key]
        return "FloatQuant" if fmt.signed and fmt.subnormals and fmt.specials != "fnuz" else "MinifloatQuant"

    def sc(shape, lo, hi):
        s = 2.0 ** rng.integers(lo, hi, size=shape)
        return (s if pot else s * rng.uniform(0.55, 0.95, size=shape)).astype(F32)

    model = new_model({"x": [batch, n_in]}, {"y": [batch, n_out]})
    model.set_initializer("W1", rng.normal(size=(n_in, hidden)).astype(F32))
    model.set_initializer("W2", rng.normal(size=(hidden, n_out)).astype(F32))
    a0 = sc((), -1, 1)
    w1 = (np.abs(model.get_initializer("W1")).max(0, keepdims=True) / fw1.max_value * (1 if pot else 1)).astype(F32)
    w1 = (2.0 ** np.ceil(np.log2(w1))).astype(F32) if pot else w1
    w2 = (np.abs(model.get_initializer("W2")).max(0, keepdims=True) / fw2.max_value).astype(F32)
    w2 = (2.0 ** np.ceil(np.log2(w2))).astype(F32) if pot else w2
    a1 = sc((), -2, 1) if act_scale_fn is None else act_scale_fn()
    nodes = [
        quant_node(model, kind(fa0, "a0"), "x", "xq", fa0, a0, "qa0"),
        quant_node(model, kind(fw1, "w1"), "W1", "W1q", fw1, w1, "qw1"),
        helper.make_node("MatMul", ["xq", "W1q"], ["h"], name="mm1"),
    ]
    if relu:
        nodes.append(helper.make_node("Relu", ["h"], ["hr"], name="relu1"))
    nodes += [
        quant_node(model, kind(fa1, "a1"), "hr" if relu else "h", "hq", fa1, a1, "qa1"),
        quant_node(model, kind(fw2, "w2"), "W2", "W2q", fw2, w2, "qw2"),
        helper.make_node("MatMul", ["hq", "W2q"], ["y"], name="mm2"),
    ]
    return finish(model, nodes)


def mlp_inputs(model, fa0, rng, n):
    s = model.get_initializer("qa0_scale")
    pts = probe_points(fa0, s)
    x = rng.choice(pts[np.isfinite(pts)], size=(n, model.get_tensor_shape("x")[1]))
    return np.concatenate([x, rng.normal(scale=2 * fa0.max_value * float(s), size=x.shape)]).astype(F32)


def exact_accumulation(fa0, fw1, fa1, fw2, n_in=12, hidden=8) -> bool:
    """With power-of-two scales every float32 sum of the MLP is exact below 2^24 units."""
    return fa0.integer_max * fw1.integer_max * n_in < 2**24 and fa1.integer_max * fw2.integer_max * hidden < 2**24


_FINN_TO_HW = ("step_qonnx_to_finn", "step_tidy_up", "step_streamline", "step_convert_to_hw")


def finn_hw(model, step=step_lower_minifloat, extra=()):
    """Our step + FINN's builder steps up to convert_to_hw (in process, no Vivado)."""
    from finn_transforms.finn_env import finn_session, import_builder

    with finn_session() as build_dir:
        finn = import_builder()
        cfg = finn.config.DataflowBuildConfig(
            output_dir=str(build_dir / "out"), synth_clk_period_ns=10.0, generate_outputs=[], steps=[]
        )
        model = step(model, cfg)
        for name in _FINN_TO_HW + tuple(extra):  # our exact replacements where we have them
            model = REPLACED_FINN_STEPS.get(name, getattr(finn.steps, name))(model, cfg)
    return model


def run_hw(model, x):
    from finn_transforms.hw_exec import execute_hw_graph

    name_in, name_out = model.graph.input[0].name, model.graph.output[0].name
    return np.concatenate([execute_hw_graph(model, {name_in: x[i : i + 1]})[name_out] for i in range(len(x))])


def run_rows(model, x):
    return np.concatenate([run(model, x[i : i + 1]) for i in range(len(x))])


def hw_op_types(model):
    return [n.op_type for n in model.graph.node]


small_act = formats(min_bits=3, max_bits=6, max_thresholds=512)
small_w = formats(min_bits=3, max_bits=7, max_thresholds=10**9, max_int_bits=11)


@settings(max_examples=40, **HYP)
@given(fa0=small_act, fw1=small_w, fa1=small_act, fw2=small_w, data=st.data())
def test_mlp_lowering_bit_exact_pot(fa0, fw1, fa1, fw2, data):
    """End to end (QONNX before == after lowering) with power-of-two scales, batch of probes."""
    assume(exact_accumulation(fa0, fw1, fa1, fw2))
    assume(max(fw1.integer_bit_width, fw2.integer_bit_width) <= 16)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    relu = data.draw(st.booleans(), label="relu")
    model = mlp(rng, fa0, fw1, fa1, fw2, batch=64, relu=relu)
    x = mlp_inputs(model, fa0, rng, 32)
    lowered = lower_minifloat(model)
    assert not any(n.op_type in ("FloatQuant", "MinifloatQuant", "Relu") for n in lowered.graph.node) or not relu
    want, got = run(model, x, full=True), run(lowered, x, full=True)
    for t in ("xq", "hq", "y"):
        np.testing.assert_array_equal(got[t], want[t], err_msg=t)


@pytest.mark.needs_finn
@settings(max_examples=6, **HYP)
@given(fa0=small_act, fw1=small_w, fa1=small_act, fw2=small_w, data=st.data())
def test_mlp_finn_hw_bit_exact_pot(fa0, fw1, fa1, fw2, data):
    """Lowering + FINN streamlining + conversion to HW layers; the HW graph executes (numpy) exactly
    like the QONNX model."""
    assume(exact_accumulation(fa0, fw1, fa1, fw2))
    assume(max(fw1.integer_bit_width, fw2.integer_bit_width) <= 16)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    model = mlp(rng, fa0, fw1, fa1, fw2, relu=data.draw(st.booleans(), label="relu"))
    x = mlp_inputs(model, fa0, rng, 24)
    hw = finn_hw(model)
    types = hw_op_types(hw)
    assert types.count("MVAU") == 2 and "Thresholding" in types, types
    np.testing.assert_array_equal(run_hw(hw, x), run_rows(model, x))


@pytest.mark.needs_finn
def test_cnn_finn_hw_bit_exact():
    """Conv layers: per-output-channel weight scales ([out, 1, 1, 1]) lower to Conv + Mul [1, out, 1, 1];
    FINN lowers the convolutions to Im2Col + MatMul and maps them to MVAUs; still bit-exact."""
    rng = np.random.default_rng(1)
    f = MinifloatFormat.parse
    conv = dict(kernel_shape=[3, 3], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
    model = new_model({"x": [1, 2, 6, 6]}, {"y": [1, 3, 2, 2]})
    model.set_initializer("W1", rng.normal(size=(4, 2, 3, 3)).astype(F32))
    model.set_initializer("W2", rng.normal(size=(3, 4, 3, 3)).astype(F32))
    model = finish(
        model,
        [
            quant_node(model, "FloatQuant", "x", "xq", f("E2M1"), F32(0.5), "qa0"),
            quant_node(model, "FloatQuant", "W1", "W1q", f("E3M2"), (2.0 ** rng.integers(-6, -3, (4, 1, 1, 1))).astype(F32), "qw1"),
            helper.make_node("Conv", ["xq", "W1q"], ["h"], name="conv1", **conv),
            helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
            quant_node(model, "MinifloatQuant", "hr", "hq", f("E2M2_U"), F32(0.25), "qa1"),
            quant_node(model, "MinifloatQuant", "W2", "W2q", f("E2M3_NOSUB"), (2.0 ** rng.integers(-5, -2, (3, 1, 1, 1))).astype(F32), "qw2"),
            helper.make_node("Conv", ["hq", "W2q"], ["y"], name="conv2", **conv),
        ],
    )
    x = np.concatenate([rng.choice(probe_points(f("E2M1"), F32(0.5))[:-12], size=(5, 2, 6, 6)), rng.normal(size=(3, 2, 6, 6)) * 3]).astype(F32)
    want = run_rows(model, x)
    np.testing.assert_array_equal(run_rows(lower_minifloat(model), x), want)
    hw = finn_hw(model)
    assert hw_op_types(hw).count("MVAU") == 2 and hw_op_types(hw).count("ConvolutionInputGenerator") == 2, hw_op_types(hw)
    np.testing.assert_array_equal(run_hw(hw, x), want)


@pytest.mark.needs_finn
@pytest.mark.parametrize("fmt, scale", [("E1M7", 0.5), ("E3M4", 1e-9)])
def test_requant_guard(fmt, scale):
    """FINN's Requant conversion of wide MultiThresholds is not exact for uniform grids (E1: ties)
    or for thresholds closer than its 1e-8 tolerance; the step keeps them as Thresholding layers."""
    rng = np.random.default_rng(5)
    f = MinifloatFormat.parse
    model = mlp(rng, f(fmt), f("E3M2"), f("E2M2_U"), f("E3M2"))
    model.set_initializer("qa0_scale", F32(scale))
    x = mlp_inputs(model, f(fmt), rng, 30)
    with pytest.warns(UserWarning, match="requant_bitwidth_threshold"):
        hw = finn_hw(model)
    assert "Requant" not in hw_op_types(hw) and "Thresholding" in hw_op_types(hw)
    np.testing.assert_array_equal(run_hw(hw, x), run_rows(model, x))


@pytest.mark.needs_finn
def test_mlp_float_scales_finn_hw():
    """Non-power-of-two scales through FINN: streamlining re-associates the float scale products and
    absorbs them into thresholds in float32; our step_streamline recomputes the thresholds exactly,
    so the lowered and the HW graph, executed exactly, equal the exact reference on every row."""
    rng = np.random.default_rng(21)
    f = MinifloatFormat.parse
    model = mlp(rng, f("E2M1"), f("E3M2"), f("E2M2_U"), f("E2M3"), pot=False, n_in=32, hidden=16, n_out=8)
    y = model.graph.node[-1].output[0]
    model.graph.node[-1].output[0] = "y_raw"
    model.graph.node.append(quant_node(model, "MinifloatQuant", "y_raw", y, f("E3M2"), F32(0.0371), "qout"))
    model = model.transform(InferShapes())
    x = (rng.normal(size=(100, 32)) * 2).astype(F32)
    want = exact_rows(model, x)
    assert_exact_equal(exact_rows(lower_minifloat(model), x), want)
    assert_exact_equal(exact_rows(finn_hw(model), x, hw=True), want)


@pytest.mark.needs_finn
def test_mixed_integer_and_minifloat_finn():
    """Integer ``Quant`` layers next to minifloat ones: activations lowered by us, FINN converts the integer weights."""
    rng = np.random.default_rng(7)
    fw1, fa1 = MinifloatFormat.parse("E3M2"), MinifloatFormat.parse("E2M2_U")
    model = new_model({"x": [1, 10]}, {"y": [1, 3]})
    model.set_initializer("W1", rng.normal(size=(10, 6)).astype(F32))
    model.set_initializer("W2", rng.normal(size=(6, 3)).astype(F32))
    model = finish(
        model,
        [
            int_quant_node(model, "x", "xq", F32(2.0**-4), 8, True, "qa0"),  # INT8 input
            quant_node(model, "FloatQuant", "W1", "W1q", fw1, (2.0 ** rng.integers(-6, -3, (1, 6))).astype(F32), "qw1"),
            helper.make_node("MatMul", ["xq", "W1q"], ["h"], name="mm1"),
            helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
            quant_node(model, "MinifloatQuant", "hr", "hq", fa1, F32(0.25), "qa1"),
            int_quant_node(model, "W2", "W2q", F32(2.0**-2), 4, True, "qw2", narrow=True),  # INT4 weights
            helper.make_node("MatMul", ["hq", "W2q"], ["h2"], name="mm2"),
            helper.make_node("Relu", ["h2"], ["h2r"], name="relu2"),
            # UINT4 output at a power-of-two scale: this graph hits its ties, which FINN's own conversion
            # (half-step thresholds) rounded up; LowerIntegerActivations rounds them to even, as Quant does.
            int_quant_node(model, "h2r", "y", F32(0.125), 4, False, "qa2"),
        ],
    )
    x = np.concatenate([(rng.integers(-128, 128, size=(16, 10)) / 16), rng.normal(size=(16, 10)) * 4]).astype(F32)
    lowered = lower_minifloat(model)
    # integer weights stay Quant nodes for FINN; every activation quantizer is a MultiThreshold
    assert [n.input[0] for n in lowered.graph.node if n.op_type == "Quant"] == ["W2"]
    assert [n.op_type for n in lowered.graph.node].count("MultiThreshold") == 3
    np.testing.assert_array_equal(run_rows(lowered, x), run_rows(model, x))
    hw = finn_hw(model)
    assert hw_op_types(hw).count("MVAU") == 2, hw_op_types(hw)
    np.testing.assert_array_equal(run_hw(hw, x), run_rows(model, x))


@pytest.mark.needs_finn
def test_build_estimates_with_our_step(tmp_path):
    """The full estimate-only FINN build (specialize layers, folding, bit-width minimisation,
    threshold rounding) with our step; the final HW graph still executes exactly."""
    from finn_transforms.build import build_estimates
    from finn_transforms.hw_exec import execute_build

    rng = np.random.default_rng(3)
    fa0, fw, fa1 = MinifloatFormat.parse("E2M1"), MinifloatFormat.parse("E3M2"), MinifloatFormat.parse("E2M3_U")
    model = mlp(rng, fa0, fw, fa1, fw)
    report = build_estimates(model, tmp_path / "build", extra_steps_before=[MINIFLOAT_STEP])
    assert "step_lower_minifloat" in report.step_times_s
    types = sorted(layer.op_type for layer in report.layers)
    assert types.count("MVAU_hls") + types.count("MVAU_rtl") == 2 and any(t.startswith("Thresholding") for t in types), types
    x = mlp_inputs(model, fa0, rng, 12)
    outs = []
    for i in range(len(x)):
        res = execute_build(tmp_path / "build", x[i : i + 1])
        outs.append(next(iter(res.values())))
    got = np.concatenate(outs)
    np.testing.assert_array_equal(got, run_rows(model, x))


def test_mlp_float_scales():
    """Non-power-of-two scales: float32 executions of the source and the lowered graph round their
    MatMuls differently (fake-quantized float weights vs integer weights + Mul), so they may differ
    near a threshold; the exact evaluations of both agree on every quantized tensor."""
    from finn_transforms.exact import evaluate

    rng = np.random.default_rng(11)
    f = MinifloatFormat.parse
    model = mlp(rng, f("E2M1"), f("E3M2"), f("E2M2_U"), f("E2M3"), batch=512, pot=False)
    x = mlp_inputs(model, f("E2M1"), rng, 256)
    lowered = lower_minifloat(model)
    want, got = evaluate(model, x, return_all=True), evaluate(lowered, x, return_all=True)
    for tensor in ("xq", "hq", "y"):
        assert_exact_equal(got[tensor], want[tensor])
    assert lowered is not model


# ----------------------------------------------------------------------------- Brevitas
def test_brevitas_export_lowers_exactly():
    from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU

    from brevitas_minifloat import export_qonnx, minifloat_act_quant, minifloat_weight_quant

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        QuantIdentity(act_quant=minifloat_act_quant("E2M1", power_of_two=True)),
        QuantLinear(16, 12, bias=False, weight_quant=minifloat_weight_quant("E3M2", power_of_two=True)),
        QuantReLU(act_quant=minifloat_act_quant("E2M2_U_NOSUB", power_of_two=True)),
        QuantLinear(12, 4, bias=False, weight_quant=minifloat_weight_quant("E2M3", power_of_two=True)),
    )
    net.train()
    for _ in range(35):
        net(torch.randn(64, 16) * 2)
    net.eval()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model = export_qonnx(net, torch.randn(1, 16), f"{tmp}/net.onnx")
    lowered = lower_minifloat(model)
    assert {n.op_type for n in lowered.graph.node} == {"MultiThreshold", "Mul", "MatMul"}
    x = np.concatenate([np.random.default_rng(0).normal(size=(40, 16)) * 3, np.zeros((1, 16))]).astype(F32)
    want = run_rows(model, x)
    np.testing.assert_array_equal(run_rows(lowered, x), want)
    with torch.no_grad():
        np.testing.assert_array_equal(net(torch.from_numpy(x)).numpy(), want)
    if finn_available():
        np.testing.assert_array_equal(run_hw(finn_hw(model), x), want)


# ----------------------------------------------------------------------------- refusals
def single_act(fmt, kind="FloatQuant", scale=F32(0.5), shape=(1, 4), **attrs):
    model = new_model({"x": list(shape)}, {"y": list(shape)})
    return finish(model, [quant_node(model, kind, "x", "y", fmt, scale, "q_act", **attrs)])


def single_weight(fmt, scale, wshape=(4, 3), kind="FloatQuant", op="MatMul", **attrs):
    model = new_model({"x": [1, wshape[0]] if op == "MatMul" else [1, wshape[1], 3, 3]}, {"y": None})
    model.set_initializer("W", np.random.default_rng(0).normal(size=wshape).astype(F32))
    return finish(
        model,
        [quant_node(model, kind, "W", "Wq", fmt, scale, "q_w", **attrs), helper.make_node(op, ["x", "Wq"], ["y"], name="consumer")],
    )


E2M1, E4M3 = MinifloatFormat.parse("E2M1"), MinifloatFormat.parse("E4M3_FN")


@pytest.mark.parametrize(
    "model, transform, match",
    [
        (lambda: single_act(E2M1, saturation=0), LowerMinifloatActivations(), "q_act.*non-saturating"),
        (lambda: single_act(E2M1, max=5.0), LowerMinifloatActivations(), "q_act.*max_val 5.0.*matches no"),
        (lambda: single_act(E2M1, rounding_mode="FLOOR"), LowerMinifloatActivations(), "q_act.*rounding"),
        (lambda: single_act(E4M3), LowerMinifloatActivations(), "q_act.*E4M3_FN needs 458752 thresholds.*max_thresholds=4096"),
        (lambda: single_act(E2M1), LowerMinifloatActivations(max_thresholds=16), "q_act.*24 thresholds.*max_thresholds=16"),
        (lambda: single_act(E2M1, scale=F32(-1)), LowerMinifloatActivations(), "q_act.*finite and positive"),
        (lambda: single_act(E2M1, scale=np.ones((1, 1, 3, 1), F32), shape=(1, 2, 3, 4)), LowerMinifloatActivations(), "q_act.*axis 2"),
        (lambda: single_act(E2M1, scale=np.ones((1, 2, 3, 1), F32), shape=(1, 2, 3, 4)), LowerMinifloatActivations(), "q_act.*several axes"),
        (lambda: single_act(E2M1, scale=F32(1e38)), LowerMinifloatActivations(), "q_act.*overflow"),
        (lambda: single_weight(E2M1, np.full((1, 3), 0.1, F32), saturation=0), LowerMinifloatWeights(), "q_w.*non-saturating"),
        (lambda: single_weight(E2M1, np.linspace(0.1, 1, 4, dtype=F32).reshape(4, 1)), LowerMinifloatWeights(), "q_w.*reduction axis"),
        (
            lambda: single_weight(E2M1, np.linspace(0.1, 1, 2, dtype=F32).reshape(1, 2, 1, 1), wshape=(3, 2, 3, 3), op="Conv"),
            LowerMinifloatWeights(),
            "q_w.*reduction axis",
        ),
        (lambda: single_weight(E4M3, F32(0.01)), LowerMinifloatWeights(), "q_w.*E4M3_FN weights need INT\\d+.*max_weight_bits=16"),
        (lambda: single_weight(E2M1, F32(0.3)), LowerMinifloatWeights(max_weight_bits=4), "q_w.*INT5.*max_weight_bits=4"),
        (lambda: single_weight(MinifloatFormat.parse("E3M2"), F32(2.0**-125)), LowerMinifloatWeights(), "q_w.*float32's normal range"),
    ],
)
def test_refusals(model, transform, match):
    model = model()
    with unchanged(model), pytest.raises(LoweringError, match=match):
        model.transform(transform)


def test_refusal_dynamic_scale_and_tampered_folded_weight():
    model = new_model({"x": [1, 4], "s": []}, {"y": [1, 4]})
    model = finish(model, [quant_node(model, "MinifloatQuant", "x", "y", E2M1, F32(1), "q_dyn")])
    model.graph.node[0].input[1] = "s"
    with pytest.raises(LoweringError, match="q_dyn.*not a constant"):
        model.transform(LowerMinifloatActivations())
    w = single_weight(E2M1, F32(0.5))
    record_weight_format(w, "Wq", E2M1, F32(0.5))
    folded = cleanup_model(w)
    name = next(n for n in folded.graph.node if n.op_type == "MatMul").input[1]
    folded.set_initializer(name, folded.get_initializer(name) + F32(0.01))
    with pytest.raises(LoweringError, match="not E2M1 values times the recorded scale"):
        folded.transform(LowerMinifloatWeights())


def test_limits_are_settable_on_steps():
    model = single_act(E2M1)
    with pytest.raises(LoweringError, match="max_thresholds=8"):
        make_step_lower_minifloat(max_thresholds=8, mapping="embedding")(model, object())

    class Cfg:
        minifloat_max_thresholds = 8
        minifloat_mapping = "embedding"

    with pytest.raises(LoweringError, match="max_thresholds=8"):
        step_lower_minifloat(model, Cfg())
    # the default mapping ("auto") lowers what the embedding refuses to ordinal thresholds instead
    lowered = make_step_lower_minifloat(max_thresholds=8)(model, object())
    assert [n.op_type for n in lowered.graph.node] == ["MultiThreshold", "OrdinalDecode", "Mul"]
    with pytest.raises(ValueError, match="mapping must be one of"):
        make_step_lower_minifloat(mapping="fp8")
    with pytest.raises(ValueError):
        make_step_lower_minifloat(max_weight_bits=40)
    assert make_step_lower_minifloat().__name__ == "step_lower_minifloat"


def test_estimate_step_list():
    from finn_transforms.topology import CHECK_STEP

    steps = minifloat_estimate_steps(["step_qonnx_to_finn", "step_tidy_up"])
    assert steps == [MINIFLOAT_STEP, CHECK_STEP, "step_qonnx_to_finn", "step_tidy_up"]
    assert minifloat_estimate_steps(["step_tidy_up"])[0] == MINIFLOAT_STEP
    if finn_available():
        full = minifloat_estimate_steps()
        assert full.index(MINIFLOAT_STEP) == full.index("step_qonnx_to_finn") - 2
        assert "finn_transforms.steps.step_streamline" in full and "step_streamline" not in full  # exact, topology-aware
    import importlib

    mod, _, fn = MINIFLOAT_STEP.rpartition(".")
    assert getattr(importlib.import_module(mod), fn) is step_lower_minifloat


def test_untouched_when_nothing_to_lower():
    model = new_model({"x": [1, 4]}, {"y": [1, 4]})
    model = finish(model, [helper.make_node("Relu", ["x"], ["y"])])
    for t in (LowerMinifloatWeights(), LowerMinifloatActivations()):
        out = model.transform(t)
        assert onnx.helper.printable_graph(out.graph) == onnx.helper.printable_graph(model.graph)
