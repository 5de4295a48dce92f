"""Estimate-only FINN builds, Python execution of FINN HW graphs, and the FINN+ workarounds."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from finn_transforms import finn_env
from finn_transforms.build import (
    EstimateReport,
    FinnBuildError,
    build_estimates,
    load_onnx_model,
)
from finn_transforms.finn_env import FinnNotAvailableError, require_finn
from finn_transforms.hw_exec import (
    HwExecutionError,
    execute_build,
    execute_hw_graph,
    list_intermediate_models,
    load_hw_graph,
    to_generic_hw_graph,
)

_FINN_ENV = ("FINN_SETTINGS", "FINN_BUILD_DIR", "XILINX_VIVADO", "FINN_DEPS", "NUM_DEFAULT_WORKERS")


# ----------------------------------------------------------------------------- models


def _brevitas():
    import brevitas.nn as qnn
    from brevitas.export import export_qonnx

    return qnn, export_qonnx


class TFC(nn.Module):
    """TFC-shaped MLP 784-64-64-10: 8-bit input, 4-bit weights and activations."""

    def __init__(self):
        super().__init__()
        qnn, _ = _brevitas()
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(784, 64, bias=False, weight_bit_width=4)
        self.act1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(64, 64, bias=False, weight_bit_width=4)
        self.act2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.fc3 = qnn.QuantLinear(64, 10, bias=False, weight_bit_width=4)
        self.head = self.fc3

    def forward(self, x):
        x = self.act1(self.fc1(self.inp(x)))
        return self.fc3(self.act2(self.fc2(x)))


class TinyCNV(nn.Module):
    """CNV-like: conv-BN-ReLU-maxpool, conv-BN-ReLU, linear head, on 3x10x10 inputs."""

    def __init__(self):
        super().__init__()
        qnn, _ = _brevitas()
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv1 = qnn.QuantConv2d(3, 8, 3, bias=False, weight_bit_width=4)
        self.bn1 = nn.BatchNorm2d(8)
        self.act1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = qnn.QuantConv2d(8, 8, 3, bias=False, weight_bit_width=4)
        self.bn2 = nn.BatchNorm2d(8)
        self.act2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(8 * 2 * 2, 10, bias=False, weight_bit_width=4)
        self.head = self.fc
        gen = torch.Generator().manual_seed(1)
        for bn in (self.bn1, self.bn2):  # non-trivial BN, folded into thresholds by FINN
            bn.weight.data = torch.rand(8, generator=gen) + 0.5
            bn.bias.data = torch.randn(8, generator=gen) * 0.2
            bn.running_mean.data = torch.randn(8, generator=gen) * 0.2
            bn.running_var.data = torch.rand(8, generator=gen) + 0.5

    def forward(self, x):
        x = self.pool(self.act1(self.bn1(self.conv1(self.inp(x)))))
        x = self.act2(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


class SinInside(nn.Module):
    """A float Sin between two quantized layers: nothing in FINN maps it to hardware."""

    def __init__(self):
        super().__init__()
        qnn, _ = _brevitas()
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(16, 16, bias=False, weight_bit_width=4)
        self.act = qnn.QuantIdentity(bit_width=4, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(16, 4, bias=False, weight_bit_width=4)

    def forward(self, x):
        return self.fc2(self.act(torch.sin(self.fc1(self.inp(x)))))


class Fp8Input(nn.Module):
    """An OCP FP8 input quantizer: exports a FloatQuant, which FINN cannot map."""

    def __init__(self):
        super().__init__()
        qnn, _ = _brevitas()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from brevitas.quant.experimental.float_quant_ocp import Fp8e4m3OCPActPerTensorFloat
        self.inp = qnn.QuantIdentity(
            act_quant=Fp8e4m3OCPActPerTensorFloat, return_quant_tensor=True
        )
        self.fc1 = qnn.QuantLinear(16, 8, bias=False, weight_bit_width=4)
        self.act = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(8, 4, bias=False, weight_bit_width=4)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(self.inp(x))))


def _export(model: nn.Module, shape, path) -> str:
    _, export_qonnx = _brevitas()
    torch.manual_seed(0)
    model.eval()
    # TorchScript export: ~20x faster than the dynamo exporter for these models.
    export_qonnx(model, torch.randn(*shape), str(path), dynamo=False)
    return str(path)


def _quantized_inputs(model: nn.Module, shape, n: int, seed: int) -> list[np.ndarray]:
    """Random inputs already on the input quantizer's grid (re-quantizing them is exact)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return [model.inp(torch.randn(*shape, generator=gen) * 2).value.numpy() for _ in range(n)]


def _output_scale(model: nn.Module, x: np.ndarray) -> float:
    model.head.return_quant_tensor = True
    try:
        with torch.no_grad():
            scale = model(torch.from_numpy(x)).scale
    finally:
        model.head.return_quant_tensor = False
    assert scale.numel() == 1
    return float(scale)


def _qonnx_reference(path: str, x: np.ndarray) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(path))
    (out,) = execute_onnx(model, {model.graph.input[0].name: x}).values()
    return out


def _assert_integer_equal(hw: np.ndarray, ref: np.ndarray, scale: float) -> None:
    k_hw, k_ref = hw / scale, ref / scale
    np.testing.assert_allclose(k_ref, np.round(k_ref), atol=1e-3)
    np.testing.assert_allclose(k_hw, np.round(k_hw), atol=1e-3)
    np.testing.assert_array_equal(np.round(k_hw), np.round(k_ref))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tfc(tmp_path_factory):
    model = TFC()
    return model, _export(model, (1, 784), tmp_path_factory.mktemp("tfc") / "tfc.onnx")


@pytest.fixture(scope="module")
def tfc_build(tfc, tmp_path_factory):
    _, path = tfc
    return build_estimates(path, tmp_path_factory.mktemp("tfc_build"))


@pytest.fixture(scope="module")
def cnv(tmp_path_factory):
    model = TinyCNV()
    return model, _export(model, (1, 3, 10, 10), tmp_path_factory.mktemp("cnv") / "cnv.onnx")


# ----------------------------------------------------------------------------- finn_env


def test_missing_finn_gives_install_instructions(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "finn", None)  # makes `import finn` raise ImportError
    with pytest.raises(FinnNotAvailableError) as info:
        require_finn()
    assert isinstance(info.value, ImportError)
    assert "pip install --no-deps finn-plus==1.6.1" in str(info.value)
    assert "[finn]" in str(info.value)
    assert not finn_env.finn_available()
    with pytest.raises(FinnNotAvailableError):
        build_estimates(tmp_path / "any.onnx", tmp_path / "out")


@pytest.mark.needs_finn
def test_missing_psutil_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.raises(FinnNotAvailableError, match="psutil"):
        require_finn()


@pytest.mark.needs_finn
def test_finn_session_sets_and_restores_global_state(monkeypatch, tmp_path):
    import finn.util.settings as finn_settings

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for key in _FINN_ENV:
        monkeypatch.delenv(key, raising=False)
    before = finn_settings._SETTINGS
    with finn_env.finn_session(tmp_path / "scratch") as build_dir:
        assert build_dir == (tmp_path / "scratch").resolve() and build_dir.is_dir()
        assert os.environ["FINN_BUILD_DIR"] == str(build_dir)
        assert os.path.isfile(os.environ["FINN_SETTINGS"])
        assert os.environ["XILINX_VIVADO"] == finn_env.DUMMY_VIVADO_PATH
        assert finn_settings.get_settings().finn_build_dir == build_dir
    for key in _FINN_ENV:
        assert key not in os.environ
    assert finn_settings._SETTINGS is before
    assert not (tmp_path / "home" / ".finn").exists()  # FINN's default would create ~/.finn

    with finn_env.finn_session() as temp_dir:  # no dir given: a temporary one, removed on exit
        assert temp_dir.is_dir()
    assert not temp_dir.exists()


@pytest.mark.needs_finn
def test_import_builder_unstubs_simengine():
    import finn.xsi

    with finn_env.finn_session():
        builder = finn_env.import_builder()
    assert callable(builder.build_dataflow.build_dataflow_cfg)
    if not os.path.isdir(os.environ.get("XILINX_VIVADO", "/nonexistent")):
        assert "SimEngine" not in vars(finn.xsi)  # the import-time stand-in is gone again


@pytest.mark.needs_finn
def test_builder_io_restores_stdout_logging_and_warnings(tmp_path):
    with finn_env.finn_session():
        builder = finn_env.import_builder()
        cfg = builder.config.DataflowBuildConfig(output_dir=str(tmp_path))
        stdout, stderr = sys.stdout, sys.stderr
        handlers = list(logging.getLogger().handlers)
        showwarning = warnings.showwarning
        with finn_env.builder_io(quiet=True) as sink:
            builder.build_dataflow.setup_logging(cfg)  # what build_dataflow_cfg does first
            assert type(sys.stdout).__name__ == "PrintLogger"
            print("hello from inside")
        assert sys.stdout is stdout and sys.stderr is stderr
        assert logging.getLogger().handlers == handlers
        assert all(type(h).__name__ != "RichHandler" for h in logging.getLogger().handlers)
        assert warnings.showwarning is showwarning
        assert "hello from inside" in sink.getvalue()
        assert "hello from inside" in (tmp_path / "build_dataflow.log").read_text()


# ----------------------------------------------------------------------------- inputs


@pytest.mark.needs_finn
def test_missing_and_corrupt_onnx_files(tmp_path, tfc):
    with pytest.raises(FileNotFoundError, match="not found"):
        build_estimates(tmp_path / "missing.onnx", tmp_path / "out")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(open(tfc[1], "rb").read()[:300])
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        build_estimates(truncated, tmp_path / "out")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="no nodes"):
        build_estimates(empty, tmp_path / "out")
    with pytest.raises(ValueError, match="is not a file"):
        build_estimates(tmp_path, tmp_path / "out")
    with pytest.raises(TypeError):
        build_estimates(42, tmp_path / "out")
    with pytest.raises(ValueError, match="clock_ns"):
        build_estimates(tfc[1], tmp_path / "out", clock_ns=0)


def test_load_onnx_model_copies():
    from qonnx.core.modelwrapper import ModelWrapper

    node = onnx.helper.make_node("Relu", ["x"], ["y"], name="r")
    vi = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [node], "g", [vi("x", onnx.TensorProto.FLOAT, [1])], [vi("y", onnx.TensorProto.FLOAT, [1])]
    )
    proto = onnx.helper.make_model(graph)
    copy = load_onnx_model(ModelWrapper(proto))
    copy.graph.node[0].name = "changed"
    assert proto.graph.node[0].name == "r"


# ----------------------------------------------------------------------------- builds


@pytest.mark.needs_finn
def test_tfc_estimates_are_consistent(tfc, tfc_build):
    report = tfc_build
    assert isinstance(report, EstimateReport)
    assert {layer.op_type for layer in report.layers} >= {"MVAU_hls", "Thresholding_rtl"}
    assert report.total_lut > 0
    assert report.total_lut == pytest.approx(sum(layer.lut for layer in report.layers))
    assert report.total_bram_18k == pytest.approx(sum(layer.bram_18k for layer in report.layers))
    assert report.total_dsp == pytest.approx(sum(layer.dsp for layer in report.layers))
    assert all(layer.cycles > 0 for layer in report.layers)
    # fully folded by default: the 784x64 layer needs one cycle per weight
    assert report.max_cycles == 784 * 64 and report.bottleneck_layer == "MVAU_hls_0"
    assert report.throughput_fps == pytest.approx(1e9 / 10.0 / report.max_cycles)
    assert report.latency_cycles >= report.max_cycles
    assert report.latency_ns == pytest.approx(report.latency_cycles * 10.0)
    assert report.hw_graph_path.is_file() and report.parent_graph_path.is_file()
    assert report.software_nodes == ()
    assert any("Thresholding_rtl" in note for note in report.notes)
    assert list(report.step_times_s)[-1] == "step_generate_estimate_reports"
    assert sys.stdout is sys.__stdout__ or type(sys.stdout).__name__ != "PrintLogger"
    assert EstimateReport.from_build_dir(report.output_dir) == report
    assert "total" in report.summary()


@pytest.mark.needs_finn
def test_tfc_hw_graph_executes_integer_exact(tfc, tfc_build):
    model, path = tfc
    hw_graph = load_hw_graph(tfc_build.output_dir)
    assert any(node.domain.endswith(".hls") for node in hw_graph.graph.node)
    op_types = [node.op_type for node in hw_graph.graph.node]
    generic = to_generic_hw_graph(hw_graph)
    assert [node.op_type for node in hw_graph.graph.node] == op_types  # caller's graph untouched
    assert "MVAU" in {node.op_type for node in generic.graph.node}
    for x in _quantized_inputs(model, (1, 784), n=3, seed=0):
        scale = _output_scale(model, x)
        ref = _qonnx_reference(path, x)
        (hw,) = execute_hw_graph(hw_graph, x).values()  # TFC: the partition is the whole graph
        _assert_integer_equal(hw, ref, scale)
        (full,) = execute_build(tfc_build.output_dir, {"global_in": x}).values()
        np.testing.assert_array_equal(full, hw)
    # an earlier, not yet partitioned graph with generic HW nodes executes too
    steps = list(list_intermediate_models(tfc_build.output_dir))
    assert steps.index("step_convert_to_hw") < steps.index("step_create_dataflow_partition")
    (early,) = execute_build(tfc_build.output_dir, x, step="step_convert_to_hw").values()
    _assert_integer_equal(early, ref, scale)


@pytest.mark.needs_finn
def test_cnv_build_and_execution(cnv, tmp_path):
    model, path = cnv
    report = build_estimates(path, tmp_path / "build", clock_ns=5.0)
    op_types = {layer.op_type for layer in report.layers}
    assert {"ConvolutionInputGenerator_rtl", "MVAU_hls", "Pool_hls"} <= op_types
    assert report.total_lut > 0
    assert report.total_lut == pytest.approx(sum(layer.lut for layer in report.layers))
    assert report.total_cycles > 0 and report.latency_cycles > 0
    assert report.latency_ns == pytest.approx(report.latency_cycles * 5.0)
    assert report.software_nodes == ("Transpose_0 (Transpose)",)  # NCHW -> NHWC on the host
    for x in _quantized_inputs(model, (1, 3, 10, 10), n=3, seed=1):
        (hw,) = execute_build(report.output_dir, x).values()
        _assert_integer_equal(hw, _qonnx_reference(path, x), _output_scale(model, x))


@pytest.mark.needs_finn
def test_target_fps_hooks_and_folding_config(tfc, tmp_path):
    _, path = tfc
    calls = []

    def step_count_nodes(model, cfg):
        calls.append((len(model.graph.node), cfg.synth_clk_period_ns))
        return model

    fast = build_estimates(path, tmp_path / "fast", target_fps=50_000, mvau_wwidth_max=10_000)
    assert fast.throughput_fps >= 50_000
    assert any((layer.pe or 1) * (layer.simd or 1) > 1 for layer in fast.layers)

    folded = build_estimates(
        path,
        tmp_path / "folded",
        extra_steps_before=["finn_transforms.build.step_qonnx_cleanup", step_count_nodes],
        folding_config={"MVAU_hls_0": {"PE": 4, "SIMD": 16}},
    )
    assert calls and calls[0][1] == 10.0
    assert list(folded.step_times_s)[:5] == [
        "step_qonnx_cleanup",
        "step_count_nodes",
        "step_lower_minifloat",  # build_estimates(lower=True), the default: our lowering after the hooks
        "step_check_topology",
        "step_qonnx_to_finn",
    ]
    layer = folded.layer("MVAU_hls_0")
    assert (layer.pe, layer.simd) == (4, 16)
    assert layer.cycles == 784 * 64 // (4 * 16)


@pytest.mark.needs_finn
def test_failing_hook_is_named(tfc, tmp_path):
    def step_broken_lowering(model, cfg):
        raise RuntimeError("cannot lower E9M9")

    with pytest.raises(FinnBuildError, match="step_broken_lowering.*cannot lower E9M9") as info:
        build_estimates(tfc[1], tmp_path / "out", extra_steps_before=[step_broken_lowering])
    assert info.value.step == "step_broken_lowering"
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ValueError, match="no_such_module"):
        build_estimates(tfc[1], tmp_path / "out", extra_steps_before=["no_such_module.step"])
    with pytest.raises(ValueError, match="no field"):
        build_estimates(tfc[1], tmp_path / "out", config_overrides={"no_such_option": 1})


@pytest.mark.needs_finn
def test_unmappable_node_is_named(tmp_path, monkeypatch):
    path = _export(SinInside(), (1, 16), tmp_path / "sin.onnx")
    with pytest.raises(FinnBuildError, match=r"Sin_0 \(Sin\)") as info:
        build_estimates(path, tmp_path / "checked")
    assert info.value.step == "step_check_hw_mapping"
    assert info.value.unmapped_nodes == ("Sin_0 (Sin)",)
    # Without our check FINN's own partitioning fails; outside pytest FINN does not re-raise but
    # returns -1, which must end in the same error.
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    with pytest.raises(FinnBuildError, match="Sin_0") as info:
        build_estimates(path, tmp_path / "unchecked", allowed_software_ops=None)
    assert info.value.step == "step_create_dataflow_partition"
    assert "Sin_0 (Sin)" in info.value.unmapped_nodes
    assert info.value.log_path.is_file()


@pytest.mark.needs_finn
def test_leftover_floatquant_is_not_silently_dropped(tmp_path):
    path = _export(Fp8Input(), (1, 16), tmp_path / "fp8.onnx")
    with pytest.raises(FinnBuildError, match="FloatQuant") as info:  # without our lowering step
        build_estimates(path, tmp_path / "checked", lower=False)
    assert any("FloatQuant" in node for node in info.value.unmapped_nodes)
    # FINN alone only warns and leaves the FP8 layer out of the estimate:
    report = build_estimates(path, tmp_path / "unchecked", allowed_software_ops=None, lower=False)
    assert any("FloatQuant" in node for node in report.software_nodes)
    assert any("not estimated" in note for note in report.notes)


@pytest.mark.needs_finn
def test_execute_hw_graph_rejects_unknown_specialized_ops():
    node = onnx.helper.make_node(
        "IODMA_hls", ["x"], ["y"], name="dma", domain="finn.custom_op.fpgadataflow.hls"
    )
    vi = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [node], "g", [vi("x", onnx.TensorProto.FLOAT, [1])], [vi("y", onnx.TensorProto.FLOAT, [1])]
    )
    with pytest.raises(HwExecutionError, match=r"dma \(IODMA_hls\)"):
        to_generic_hw_graph(onnx.helper.make_model(graph))


def test_splice_steps_one_rule_for_step_names_and_finn_functions():
    """The splicer behind build_estimates and minifloat_estimate_steps: our steps and the topology check go
    before step_qonnx_to_finn, FINN's bit-width and streamlining steps (by name, or as FINN's own
    function) become ours."""
    from finn_transforms.build import splice_steps

    def finn_fn(model, cfg):
        return model

    def ours(model, cfg):
        return model

    from finn_transforms.topology import CHECK_STEP

    finn_fn.__name__ = "step_minimize_bit_width"
    base = ["step_tidy_up", "step_qonnx_to_finn", "step_streamline", finn_fn, "step_minimize_bit_width_initial"]
    assert splice_steps(base, [ours], finn_lookup={"step_minimize_bit_width": finn_fn}) == [
        "step_tidy_up",
        ours,
        CHECK_STEP,
        "step_qonnx_to_finn",
        "finn_transforms.steps.step_streamline",  # topology-aware and exact
        "finn_transforms.steps.step_minimize_bit_width",
        "finn_transforms.steps.step_minimize_bit_width_initial",
    ]
    assert splice_steps(base)[4] is finn_fn  # without FINN's registry a callable is the user's own
    # no step_qonnx_to_finn: prepended
    assert splice_steps(["step_tidy_up"], [ours]) == [ours, CHECK_STEP, "step_tidy_up"]
    assert base[0] == "step_tidy_up" and len(base) == 5  # input untouched
