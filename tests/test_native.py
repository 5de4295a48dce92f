"""Native minifloat layers: ordinal thresholds, OrdinalDecode, the MVAU_minifloat HW op, the mapping
rule, conversion and FINN builds (`finn_transforms.native`).

Oracles: the format's quantizer (`MinifloatFormat.quantize`) for thresholds, exact rational
arithmetic on independently decoded codes (`tests/oracle.py`) for the layer, and qonnx's own
execution of the exported QONNX model for whole builds (power-of-two scales, where float32 is exact).
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.general.multithreshold import multithreshold
from qonnx.custom_op.registry import getCustomOp

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.hw.operands import IntegerFormat
from finn_transforms.native.mapping import check_mapping
from finn_transforms.native.ordinal import nonnegative_part, ordinal_thresholds
from finn_transforms.native.spec import ordinal_embedded
from finn_transforms.steps import lower_minifloat
from finn_transforms.transformation import LoweringError
from tests.helpers import cnv_e4m3, mixed_model
from tests import oracle
from tests.strategies import interesting_values

needs_finn = pytest.mark.needs_finn

#: The formats the issue names: OCP-like 4/6/8-bit, an M0 format, flush-to-zero, unsigned.
FORMATS = ["E2M1", "E2M3", "E3M2", "E4M3", "E5M2", "E3M0", "E2M1_NOSUB", "E2M2_U", "E4M3_FN", "E5M2_IEEE", "E3M2_U_NOSUB"]
HYP = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def oracle_args(fmt: MinifloatFormat):
    return fmt.exponent_bits, fmt.mantissa_bits, fmt.bias, fmt.signed, fmt.subnormals, fmt.specials


# ---------------------------------------------------------------------------------------- ordinals
@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("scale", [1.0, 0.375, 2.0**-7])
def test_ordinal_thresholds_equal_the_quantizer(name, scale):
    """MultiThreshold over the distinct thresholds outputs the index of ``Q(fl(x / s))`` in the
    grid, on every grid value, tie, its float32 neighbours, saturation and tiny inputs."""
    fmt = MinifloatFormat.parse(name)
    s = np.float32(scale)
    x = (interesting_values(fmt).astype(np.float64) * s).astype(np.float32)
    x = x[~np.isnan(x)]
    T = ordinal_thresholds(fmt, s)
    assert T.shape == (1, len(fmt.values()) - 1)
    got = multithreshold(x.reshape(-1, 1), T).ravel()
    q = fmt.quantize(torch.from_numpy(x / s)).numpy()
    want = np.searchsorted(fmt.values(), q.astype(np.float64))
    assert np.array_equal(got, want)


def test_e4m3_has_254_distinct_thresholds_not_491520():
    fmt = MinifloatFormat.parse("E4M3")
    assert ordinal_thresholds(fmt, 1.0).shape[1] == 254 == len(fmt.values()) - 1
    assert fmt.integer_max - fmt.integer_min == 491520


@pytest.mark.parametrize("name", FORMATS)
def test_ordinal_embedding_matches_rational_grid(name):
    fmt = MinifloatFormat.parse(name)
    grid = oracle.ordered_values(*oracle_args(fmt))
    delta = Fraction(2) ** (1 - fmt.bias - fmt.mantissa_bits)
    assert ordinal_embedded(fmt) == tuple(int(v / delta) for v in grid)


@pytest.mark.parametrize("name,expected", [("E4M3", "E4M3_U"), ("E2M1_NOSUB", "E2M1_U_NOSUB"), ("E3M2_U", "E3M2_U")])
def test_nonnegative_part(name, expected):
    assert nonnegative_part(MinifloatFormat.parse(name)) == MinifloatFormat.parse(expected)
    assert nonnegative_part(MinifloatFormat.parse("E4M3_FNUZ")) is None


def decode_node(fmt: str, scaled: bool = False):
    inputs = ["o", "s"] if scaled else ["o"]
    return helper.make_node("OrdinalDecode", inputs, ["k"], domain="finn_transforms.custom_op", format=fmt)


@pytest.mark.parametrize("name", ["E4M3", "E2M1_NOSUB", "E5M2"])
def test_ordinal_decode_executes_every_ordinal_and_refuses_others(name):
    fmt = MinifloatFormat.parse(name)
    op = getCustomOp(decode_node(name))
    n = len(fmt.values())
    ctx = {"o": np.arange(n, dtype=np.float32).reshape(1, -1), "k": None}
    op.execute_node(ctx, None)
    delta = Fraction(2) ** (1 - fmt.bias - fmt.mantissa_bits)
    assert [Fraction(float(v)) for v in ctx["k"].ravel()] == [v / delta for v in oracle.ordered_values(*oracle_args(fmt))]
    for bad in (n, -1, 0.5):
        with pytest.raises(ValueError, match="OrdinalDecode"):
            op.execute_node({"o": np.array([[bad]], dtype=np.float32), "k": None}, None)


# ------------------------------------------------------------------------------- MVAU_minifloat
def mvau_node(wfmt: str, ifmt: str, mw: int, mh: int, pe: int, simd: int, vecs=(1,)):
    from finn_transforms.native import hw_op  # noqa: F401  (registers the op)

    return helper.make_node(
        "MVAU_minifloat", ["x", "w"], ["y"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow",
        MW=mw, MH=mh, PE=pe, SIMD=simd, inputDataType="UINT8", weightDataType="UINT8", outputDataType="INT64",
        accDataType="INT128", noActivation=1, numInputVectors=list(vecs), weightFormat=wfmt, inputFormat=ifmt,
    )


def finite_codes(fmt: MinifloatFormat) -> list[int]:
    return [c for c in range(2**fmt.bit_width) if oracle.decode(*oracle_args(fmt), c) is not None]


@needs_finn
@settings(max_examples=40, **HYP)
@given(data=st.data())
def test_mvau_execution_equals_rational_dot_products(data):
    """Python execution of the HW op == exact rational dot products / (delta_w * delta_a), over
    formats, integer inputs, shapes and PE/SIMD foldings (the result never depends on folding)."""
    wfmt = MinifloatFormat.parse(data.draw(st.sampled_from(FORMATS), label="weights"))
    iname = data.draw(st.sampled_from(FORMATS + ["INT4", "UINT8"]), label="inputs")
    simd, pe = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    mw, mh = simd * data.draw(st.integers(1, 4)), pe * data.draw(st.integers(1, 3))
    batch = data.draw(st.integers(1, 3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    codes = rng.choice(finite_codes(wfmt), size=(mh, mw))
    if iname.startswith(("INT", "UINT")):
        ifmt = IntegerFormat.parse(iname)
        x = rng.integers(ifmt.integer_min, ifmt.integer_max + 1, size=(batch, mw))
        x_val, d_a = [[Fraction(int(v)) for v in row] for row in x], Fraction(1)
    else:
        ifmt = MinifloatFormat.parse(iname)
        grid = oracle.ordered_values(*oracle_args(ifmt))
        x = rng.integers(0, len(grid), size=(batch, mw))
        x_val, d_a = [[grid[int(v)] for v in row] for row in x], Fraction(2) ** (1 - ifmt.bias - ifmt.mantissa_bits)
    d_w = Fraction(2) ** (1 - wfmt.bias - wfmt.mantissa_bits)
    w_val = [[oracle.decode(*oracle_args(wfmt), int(c)) for c in row] for row in codes]
    want = [[sum(w * a for w, a in zip(w_row, x_row)) / (d_w * d_a) for w_row in w_val] for x_row in x_val]

    op = getCustomOp(mvau_node(wfmt.name, ifmt.name, mw, mh, pe, simd))
    ctx = {"x": x.astype(np.float32), "w": codes.T.astype(np.float32), "y": np.zeros((batch, mh), dtype=np.float32)}
    op.execute_node(ctx, None)
    got = ctx["y"]
    # FINN's execution context holds floats: exact up to 2^53, beyond that the correctly rounded
    # float64 (E5M2 x E5M2 sums reach 2^64); the exact executor (finn_transforms.exact) is exact there.
    assert all(
        Fraction(float(g)) == (w if abs(w) <= 2**53 else Fraction(float(w)))
        for g_row, w_row in zip(got, want)
        for g, w in zip(g_row, w_row)
    )
    assert op.get_exp_cycles() == (mw // simd) * (mh // pe)
    assert op.get_instream_width(0) == 8 * simd and op.get_outstream_width() == 64 * pe


@needs_finn
def test_mvau_execution_beyond_float64_is_correctly_rounded():
    """E5M2 x E5M2: max x max + min x min is not a float64; FINN's float execution context gets
    the correctly rounded value (the exact HW executor in finn_transforms.exact keeps the integer)."""
    fmt = MinifloatFormat.parse("E5M2")
    grid = oracle.ordered_values(*oracle_args(fmt))
    codes = np.array([[0x7B, 0x01]])  # max, min subnormal
    x = np.array([[len(grid) - 1, (len(grid) + 1) // 2]])  # max, min subnormal
    d = Fraction(2) ** (1 - fmt.bias - fmt.mantissa_bits)
    w_val = [oracle.decode(*oracle_args(fmt), int(c)) for c in codes[0]]
    want = sum(w * grid[int(a)] for w, a in zip(w_val, x[0])) / (d * d)
    assert want.denominator == 1 and abs(want) > 2**53 and Fraction(float(want)) != want
    op = getCustomOp(mvau_node(fmt.name, fmt.name, 2, 1, 1, 1))
    ctx = {"x": x.astype(np.float32), "w": codes.T.astype(np.float32), "y": np.zeros((1, 1), dtype=np.float32)}
    op.execute_node(ctx, None)
    assert Fraction(float(ctx["y"][0, 0])) == Fraction(float(want))


@needs_finn
def test_mvau_refuses_nan_codes_and_out_of_range_ordinals():
    op = getCustomOp(mvau_node("E4M3_FN", "E2M1", 2, 1, 1, 1))
    nan = 0x7F  # S.1111.111 is NaN in OCP E4M3
    with pytest.raises(ValueError, match="not finite codes"):
        op.execute_node({"x": np.zeros((1, 2), np.float32), "w": np.array([[nan], [0]], np.float32), "y": np.zeros((1, 1))}, None)
    with pytest.raises(ValueError, match="ordinals of E2M1"):
        op.execute_node({"x": np.full((1, 2), 15, np.float32), "w": np.zeros((2, 1), np.float32), "y": np.zeros((1, 1))}, None)


# ---------------------------------------------------------------------------------- the mapping
def test_mapping_names_are_checked():
    assert check_mapping("native") == "native"
    with pytest.raises(ValueError, match="'auto', 'native', 'embedding'"):
        check_mapping("fp8")


def small_mlp(weights, activations, input_fmt, *, hidden=8, features=16, layers=1, seed=0):
    from brevitas_minifloat import zoo

    torch.manual_seed(seed)
    return zoo.calibrate(
        zoo.tfc_mlp(weights, activations, hidden=hidden, in_features=features, layers=layers,
                    input_bits_or_fmt=input_fmt, power_of_two=True, batchnorm=False),
        seed=seed,
    )


def exported(model, shape):
    import tempfile
    from pathlib import Path

    from brevitas_minifloat.export import export_qonnx

    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        return export_qonnx(model, torch.randn(shape), Path(tmp) / "model.onnx")


def op_types(model: ModelWrapper) -> list[str]:
    return [n.op_type for n in model.graph.node]


def outputs_equal(a: ModelWrapper, b: ModelWrapper, x: np.ndarray) -> bool:
    inp, out = a.graph.input[0].name, a.graph.output[0].name
    return all(
        np.array_equal(execute_onnx(a, {inp: x[i : i + 1]})[out], execute_onnx(b, {b.graph.input[0].name: x[i : i + 1]})[b.graph.output[0].name])
        for i in range(len(x))
    )


def test_auto_keeps_the_embedding_where_it_fits_and_goes_native_for_e4m3():
    narrow = exported(small_mlp("E2M1", "E2M1", "INT4"), (1, 16))
    assert "OrdinalDecode" not in op_types(lower_minifloat(narrow))
    wide = exported(small_mlp("E4M3", "E4M3", "E4M3"), (1, 16))
    with pytest.raises(LoweringError, match="E4M3 weights need INT19"):
        lower_minifloat(wide, mapping="embedding")
    low = lower_minifloat(wide)
    assert op_types(low).count("OrdinalDecode") == 3  # input, hidden and output quantizers
    x = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32) * 3
    assert outputs_equal(wide, low, x)


def test_native_mapping_keeps_the_lowered_graph_exact_for_narrow_formats():
    model = exported(small_mlp("E2M1", "E3M2", "E2M3"), (1, 16))
    low = lower_minifloat(model, mapping="native")
    assert op_types(low).count("OrdinalDecode") == 3
    x = np.random.default_rng(2).standard_normal((6, 16)).astype(np.float32) * 2
    assert outputs_equal(model, low, x)


def test_ordinal_activation_into_integer_weights_keeps_ordinals_and_a_decode():
    model = exported(small_mlp("INT4", "E4M3", "INT8"), (1, 16))
    # after the ReLU the zoo uses E4M3's unsigned variant of the same width, E4M4_U: 507,904 thresholds
    # as integers; as ordinals (255) with a decode the integer layer reads (in hardware: OrdinalLUT)
    with pytest.raises(LoweringError, match=r"E4M4_U needs 507904 thresholds per channel"):
        lower_minifloat(model, mapping="embedding")
    low = lower_minifloat(model)
    assert "OrdinalDecode" in op_types(low)
    x = np.random.default_rng(3).standard_normal((6, 16)).astype(np.float32) * 3
    assert outputs_equal(model, low, x)


# --------------------------------------------------------------------------------- FINN builds
def build_and_compare(model, out_dir, x, **build_kwargs):
    from finn_transforms.build import build_estimates
    from finn_transforms.hw_exec import execute_build
    from finn_transforms.native import hw_op  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = build_estimates(model, out_dir, **build_kwargs)
    inp, out = model.graph.input[0].name, model.graph.output[0].name
    for i in range(len(x)):
        want = execute_onnx(model, {inp: x[i : i + 1]})[out]
        for step in ("step_streamline", None):
            got = next(iter(execute_build(out_dir, x[i : i + 1], step=step).values()))
            assert np.array_equal(got, want), (step, i)
    return report


@needs_finn
def test_e4m3_mlp_builds_native_with_no_override_and_matches_qonnx(tmp_path):
    from finn_transforms.steps import MINIFLOAT_STEP

    model = exported(small_mlp("E4M3", "E4M3", "E4M3", layers=2), (1, 16))
    x = np.random.default_rng(3).standard_normal((3, 16)).astype(np.float32) * 4
    report = build_and_compare(model, tmp_path, x, extra_steps_before=[MINIFLOAT_STEP], target_fps=200000)
    native = [layer for layer in report.layers if layer.op_type == "MVAU_minifloat_rtl"]
    assert len(native) == 3 and all(layer.cycles and layer.lut > 0 for layer in native)
    assert report.max_cycles <= 500  # target_fps folded the native layers too
    assert not any(layer.op_type in ("MVAU_hls", "MVAU_rtl") for layer in report.layers)


@needs_finn
def test_e5m2_cnn_with_wide_accumulators_builds(tmp_path):
    from brevitas_minifloat import zoo
    from finn_transforms.steps import MINIFLOAT_STEP

    torch.manual_seed(0)
    model = zoo.calibrate(zoo.cnv_cnn("E5M2", "E5M2", channels=(2, 4), image_size=10, input_bits_or_fmt="E5M2", power_of_two=True))
    q = exported(model, (1, 1, 10, 10))
    x = np.random.default_rng(4).standard_normal((2, 1, 10, 10)).astype(np.float32)
    report = build_and_compare(q, tmp_path, x, extra_steps_before=[MINIFLOAT_STEP])
    hw = ModelWrapper(str(report.hw_graph_path))
    widths = [getCustomOp(n).get_accumulator_datatype().bitwidth() for n in hw.graph.node if n.op_type == "MVAU_minifloat_rtl"]
    assert len(widths) == 3 and max(widths) > 64


def native_thresholding_graph(codes: np.ndarray, thresholds: np.ndarray) -> ModelWrapper:
    """``MVAU_minifloat`` (E5M2 x E5M2, no activation; ``codes`` ``(mh, mw)``) -> FINN's ``Thresholding``
    (``thresholds`` float64 ``(mh, n)``), annotated as after ``step_convert_to_hw``."""
    from onnx import TensorProto
    from qonnx.core.datatype import DataType
    from qonnx.util.basic import qonnx_make_model

    from finn_transforms.finn_defaults import HW_DOMAIN

    (mh, mw), n = codes.shape, thresholds.shape[1]
    mvau = mvau_node("E5M2", "E5M2", mw, mh, 1, 1)
    thr = helper.make_node("Thresholding", ["y", "thr"], ["t"], domain=HW_DOMAIN, backend="fpgadataflow", name="thr",
                           NumChannels=mh, PE=1, numSteps=n, inputDataType="INT128", weightDataType="FLOAT32",
                           outputDataType=f"UINT{n.bit_length()}", ActVal=0, numInputVectors=[1])
    info = {k: helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in {"x": [1, mw], "y": [1, mh], "t": [1, mh]}.items()}
    graph = helper.make_graph([mvau, thr], "wide", [info["x"]], [info["t"]], value_info=[info["y"]])
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    model.set_initializer("w", codes.T.astype(np.float32))
    model.set_initializer("thr", thresholds.astype(np.float64))
    for name, dt in (("x", "UINT8"), ("y", "INT128"), ("t", f"UINT{n.bit_length()}")):
        model.set_tensor_datatype(name, DataType[dt])
    return model


@needs_finn
def test_thresholds_clipped_to_a_wide_accumulator_stay_exact_through_minimize_bit_width():
    """E5M2 accumulators beyond 2^53 (fashion_cnv: INT70): FINN's RoundAndClipThresholds clips an
    unreachable threshold to the accumulator type's max + 1 = 2^(n-1), then FINN's
    Thresholding.minimize_weight_bit_width computes ``-max - 1`` in float64 (= -2^(n-1)) and raises
    "Thresholds can't be expressed with type INT<n>". Our step types them in exact integers: the
    decisions equal an integer oracle of the original thresholds at every t - 1 / t (beyond 2^24,
    not float32) and at the proven accumulator extremes (clipping is exact: the proven range lies
    inside the accumulator type FINN clips to)."""
    from types import SimpleNamespace

    from qonnx.core.datatype import DataType

    from finn.util.exception import FINNInternalError
    from finn_transforms.finn_env import finn_session, import_builder
    from finn_transforms.native.hw_common import accumulator_range
    from finn_transforms.steps import step_minimize_bit_width, step_minimize_bit_width_initial

    codes = np.array([[0x68, 0x01], [0x64, 0x81]])  # 2048, 1024 and +-2^-16 (subnormal): INT61 (FINN's step alone: no 64-bit limit)
    spec = getCustomOp(mvau_node("E5M2", "E5M2", 2, 2, 1, 1)).spec(acc_bits=None)
    lo, hi = accumulator_range(spec, codes)
    inside = [3 * 2**40 + 1, 2**52 + 2]  # beyond float32, exact in float64
    original = [[-(2**80), -(2**30) - 1, *inside, 2**90], [-(2**70), -5, 2**25 + 1, 2**80, 2**81]]
    assert 2**53 < hi < 2**62 and lo < -(2**53) and all(lo < t < hi for t in inside)
    cfg = SimpleNamespace(minimize_bit_width=True, _resolve_verification_steps=lambda: [])
    with finn_session():
        with pytest.raises(FINNInternalError, match=r"Thresholds can't be expressed with type INT\d+"):
            import_builder().steps.step_minimize_bit_width_initial(native_thresholding_graph(codes, np.array(original, float)), cfg)
        model = step_minimize_bit_width_initial(native_thresholding_graph(codes, np.array(original, float)), cfg)
        model = step_minimize_bit_width(model, cfg)
    acc = DataType[getCustomOp(model.graph.node[0]).get_nodeattr("accDataType")]
    assert acc.min() <= lo and hi <= acc.max()  # FINN clips to this type's range: exact
    stored = model.get_initializer("thr")
    tdt = model.get_tensor_datatype("thr")
    assert stored.dtype == np.float64 and getCustomOp(model.graph.node[1]).get_nodeattr("weightDataType") == tdt.name
    assert all(tdt.allowed(int(t)) for t in stored.flat) and stored.max() == acc.max() + 1  # 2^(n-1): INT<n+1>
    for row, kept in zip(original, stored):
        for u in {lo, hi, *(v for t in row if lo < t <= hi for v in (t - 1, t))}:
            assert sum(u >= int(t) for t in kept) == sum(u >= t for t in row), (u, row)


@needs_finn
def test_accumulator_limit_is_refused_naming_the_layer(tmp_path):
    from finn_transforms.build import FinnBuildError, build_estimates
    from finn_transforms.steps import make_step_lower_minifloat

    model = exported(small_mlp("E4M3", "E4M3", "E4M3"), (1, 16))
    with warnings.catch_warnings(), pytest.raises(FinnBuildError, match=r"MatMul.*needs \d+ bits, more than max_acc_bits=20"):
        warnings.simplefilter("ignore")
        build_estimates(model, tmp_path, extra_steps_before=[make_step_lower_minifloat(max_acc_bits=20)])


# ------------------------------------------------------------------------------------ verify
@needs_finn
@pytest.mark.parametrize("mapping", ["auto", "native"])
def test_verify_mixed_native_and_integer_model(tmp_path, mapping):
    from finn_transforms.verify import verify

    report = verify(mixed_model(), torch.randn(8, 16) * 3, tmp_path, mapping=mapping)
    assert report.ok and [s.stage for s in report.stages] == ["torch", "qonnx", "lowered", "streamlined", "hw", "hw_float32"]
    assert all(s.mismatches == 0 for s in report.stages if s.kind == "exact"), report.summary()
    ops = {layer.op_type for layer in report.estimates.layers}
    assert {"MVAU_minifloat_rtl", "MVAU_rtl"} <= ops or {"MVAU_minifloat_rtl", "MVAU_hls"} <= ops


@needs_finn
def test_verify_native_cnv_shaped_cnn_small(tmp_path):
    from finn_transforms.verify import verify

    report = verify(cnv_e4m3((4, 8), 12), torch.randn(4, 1, 12, 12), tmp_path, mapping="native")
    assert report.ok
    assert sum(layer.op_type == "MVAU_minifloat_rtl" for layer in report.estimates.layers) == 3


@needs_finn
@pytest.mark.slow
def test_verify_native_cnv_shaped_cnn_default_size_no_overrides(tmp_path):
    """The CNV-shaped CNN at its default size (1x28x28, 16/32 channels), E4M3 weights and
    activations, default limits and mapping."""
    from finn_transforms.verify import verify

    report = verify(cnv_e4m3((16, 32), 28), torch.randn(4, 1, 28, 28), tmp_path)
    assert report.ok
    assert sum(layer.op_type == "MVAU_minifloat_rtl" for layer in report.estimates.layers) == 3


def test_cli_mapping_choices_are_the_mappings():
    from brevitas_minifloat import cli
    from finn_transforms.native.mapping import DEFAULT_MAPPING, MAPPINGS

    assert cli.MAPPINGS == MAPPINGS
    args = cli.build_parser().parse_args(["build", "m.onnx"])
    assert args.mapping == DEFAULT_MAPPING
    assert cli.build_parser().parse_args(["dse", "--mappings", "native,auto"]).mappings == ("native", "auto")


@needs_finn
def test_build_estimates_mapping_reaches_the_lowering_step(tmp_path):
    from finn_transforms.build import build_estimates
    from finn_transforms.steps import MINIFLOAT_STEP

    model = exported(small_mlp("E2M1", "E2M1", "E2M1"), (1, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = build_estimates(model, tmp_path / "auto", extra_steps_before=[MINIFLOAT_STEP])
        native = build_estimates(model, tmp_path / "native", extra_steps_before=[MINIFLOAT_STEP], mapping="native")
    assert not any(layer.op_type.startswith("MVAU_minifloat") for layer in auto.layers)  # E2M1 fits the embedding
    assert sum(layer.op_type == "MVAU_minifloat_rtl" for layer in native.layers) == 2
    with pytest.raises(ValueError, match="mapping must be one of"):
        build_estimates(model, tmp_path / "bad", mapping="fp8")


def float_quant_act(saturation: int, max_val: float) -> ModelWrapper:
    """x -> FloatQuant(E4M3) -> y, as an external QONNX file could hold it."""
    from onnx import TensorProto
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.basic import qonnx_make_model

    node = helper.make_node(
        "FloatQuant", ["x", "s", "e", "m", "b", "mx"], ["y"], domain="qonnx.custom_op.general", name="q_act",
        has_inf=0, has_nan=0, has_subnormal=1, rounding_mode="ROUND", saturation=saturation,
    )
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    for name, value in (("s", 1.0), ("e", 4.0), ("m", 3.0), ("b", 7.0), ("mx", max_val)):
        model.set_initializer(name, np.asarray(value, dtype=np.float32))
    return model.transform(InferShapes())


@pytest.mark.parametrize("mapping", ["native", "auto"])
def test_native_mapping_keeps_refusing_what_has_no_exact_mapping(mapping):
    with pytest.raises(LoweringError, match="q_act.*non-saturating"):
        lower_minifloat(float_quant_act(saturation=0, max_val=480.0), mapping=mapping)
    with pytest.raises(LoweringError, match="q_act.*max_val 500.0.*matches no special-value convention"):
        lower_minifloat(float_quant_act(saturation=1, max_val=500.0), mapping=mapping)
    low = lower_minifloat(float_quant_act(saturation=1, max_val=480.0), mapping=mapping)
    assert op_types(low) == ["MultiThreshold", "OrdinalDecode", "Mul"]
