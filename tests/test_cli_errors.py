"""Every user error of ``brevitas-minifloat`` is one line naming the argument and the value (issue 16).

Each case states the mistake, the expected exit code (2: usage, 1: the model cannot be built) and
words the line must contain; the line must be the only one on stderr (no traceback).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from brevitas_minifloat import cli, cli_args

MLP = "brevitas_minifloat.dse.workload:digits_mlp"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from brevitas_minifloat.dse.workload import load_model

    d = tmp_path_factory.mktemp("cli_errors")
    torch.manual_seed(0)
    mlp = load_model(MLP)
    torch.save(mlp.state_dict(), d / "mlp_sd.pt")
    torch.save(mlp, d / "mlp_module.pt")
    torch.save(torch.nn.Linear(3, 3).state_dict(), d / "other_sd.pt")
    (d / "corrupt.pt").write_bytes(bytes(range(256)) * 4)
    (d / "model.onnx").write_bytes(b"\x08\x07onnx-ish")
    return d


def _cases(d: Path):
    mlp = ["export", MLP, "-o", str(d / "out.onnx"), "--techniques", "none"]
    return {
        "corrupt state_dict": (mlp + ["--state-dict", str(d / "corrupt.pt"), "--w-format", "E2M1"], 2,
                               ["--state-dict", "corrupt.pt", "not readable"]),
        "pickled model as state_dict": (mlp + ["--state-dict", str(d / "mlp_module.pt"), "--w-format", "E2M1"], 2,
                                        ["--state-dict", "mlp_module.pt", "not a plain state_dict"]),
        "state_dict of another model": (mlp + ["--state-dict", str(d / "other_sd.pt"), "--w-format", "E2M1"], 2,
                                        ["--state-dict", "other_sd.pt", "does not fit", "unexpected keys weight"]),
        "missing state_dict file": (mlp + ["--state-dict", str(d / "nope.pt"), "--w-format", "E2M1"], 2,
                                    ["--state-dict", "nope.pt"]),
        "ONNX file given to verify": (["verify", str(d / "model.onnx"), "--no-build"], 2,
                                      ["MODEL", "model.onnx", "ONNX file", "build"]),
        "verify --rtl without a build": (["verify", MLP, "--rtl", "--no-build"], 2, ["--rtl", "--no-build"]),
        "unknown model factory": (["export", "nosuchpkg.nets:fn", "--w-format", "E2M1"], 2,
                                  ["MODEL", "nosuchpkg.nets:fn", "No module named"]),
        # E4M3 activations need 491,520 thresholds as integers (refused with the embedding mapping)
        "lowering refusal in verify": (["verify", MLP, "--state-dict", str(d / "mlp_sd.pt"), "--w-format", "INT4",
                                        "--a-format", "E4M3", "--techniques", "none", "--no-build", "--samples", "2",
                                        "--mapping", "embedding", "-o", str(d / "verify")], 1,
                                       ["cannot verify", "MinifloatQuant", "thresholds per channel"]),
        "dse --space huge": (["dse", "--space", "huge"], 2, ["--space", "huge", "tiny"]),
        "dse --kinds int,posit": (["dse", "--kinds", "int,posit"], 2, ["--kinds", "posit"]),
        "dse --w-bits 40": (["dse", "--w-bits", "4,40"], 2, ["--w-bits", "4,40", "2..16"]),
        "dse --workers 0": (["dse", "--workers", "0"], 2, ["--workers", "'0'"]),
        "dse --scheduler without dask": (["dse", "--scheduler", "tcp://x:1"], 2, ["--scheduler", "--executor dask"]),
        "dse --state-dict without --model": (["dse", "--state-dict", str(d / "mlp_sd.pt")], 2, ["--model"]),
        "dse --mac-cost malformed": (["dse", "--mac-cost", "mymodule"], 2, ["--mac-cost", "mymodule"]),
        "input shape does not match the data": (["export", "tests.test_cli_errors:wide_mlp", "--w-format", "E2M1"], 2,
                                                ["wide_mlp", "(1, 1, 28, 28)", "--data random --input-shape"]),
        "format too wide": (mlp + ["--w-format", "E10M9"], 2, ["--w-format", "'E10M9'", "16 bits"]),
        "format misspelled": (mlp + ["--w-format", "E2M1", "--a-format", "E2M"], 2, ["--a-format", "'E2M'"]),
        "integer format too wide": (mlp + ["--w-format", "INT40"], 2, ["--w-format", "'INT40'"]),
        "unknown technique": (mlp + ["--w-format", "E2M1", "--techniques", "mse+magic"], 2,
                              ["--techniques", "magic"]),
        "unknown data set": (mlp + ["--w-format", "E2M1", "--data", "cifar"], 2, ["--data", "cifar"]),
        "bad input shape": (mlp + ["--data", "random", "--input-shape", "1,0,3"], 2, ["--input-shape", "1,0,3"]),
        "no samples": (mlp + ["--samples", "0"], 2, ["--samples", "'0'"]),
        "build: not an ONNX file": (["build", str(d / "corrupt.pt"), "-o", str(d / "b")], 1,
                                    ["corrupt.pt", "not a readable ONNX model"]),
        "build: missing file": (["build", str(d / "missing.onnx"), "-o", str(d / "b")], 2, ["missing.onnx"]),
        "build: negative clock": (["build", str(d / "model.onnx"), "--clock-ns", "-1"], 2, ["--clock-ns", "-1"]),
    }


def wide_mlp() -> torch.nn.Module:
    """A factory whose model wants 100 features, not MNIST images."""
    return torch.nn.Sequential(torch.nn.Linear(100, 10))


CASE_NAMES = list(_cases(Path("x")))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_user_error_is_one_line(case, files, capsys):
    argv, code, words = _cases(files)[case]
    if argv[0] == "build" and cli._finn_missing() is not None and case != "build: negative clock":
        pytest.skip("FINN+ is not installed")
    try:
        got = cli.main(argv)
    except SystemExit as exit_:  # argparse usage errors
        got = exit_.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert got == code, err
    assert len(lines) == 1, err
    assert lines[0].startswith("brevitas-minifloat"), err
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_format_errors_come_before_the_model_loads(monkeypatch, capsys):
    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("the model was loaded before the format was checked")

    monkeypatch.setattr("brevitas_minifloat.dse.workload.load_model", boom)
    with pytest.raises(SystemExit) as info:
        cli.main(["export", MLP, "--w-format", "E9M9"])
    assert info.value.code == 2 and "--w-format" in capsys.readouterr().err


def test_lists_of_names_match_the_package():
    from brevitas_minifloat.data.digits import DATASETS
    from brevitas_minifloat.dse.space import PRESETS
    from brevitas_minifloat.ptq.spec import QuantSpec

    assert set(cli_args.SPACE_PRESETS) == set(PRESETS)
    assert set(cli_args.DATASETS) == set(DATASETS)
    assert {QuantSpec.parse(f).kind for f in ("INT4", "E2M1")} == set(cli_args.FORMAT_KINDS)


def test_every_default_is_shown_in_help(capsys):
    parser = cli.build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        text = sub.format_help()
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False, "==SUPPRESS=="):
                shown = str(action.default) if not isinstance(action.default, tuple) else \
                    ",".join(map(str, action.default))
                assert shown in text, (name, action.dest)
        assert text.count("default") >= 2, name


def _run(args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    """The installed command as users run it (a fresh process; PYTHONPATH only names this checkout)."""
    code = "import sys; from brevitas_minifloat.cli import main; sys.exit(main())"
    # `python -c` would put the current directory on sys.path itself; -I... is too strict, so drop it here
    script = f"import sys; sys.path[:] = [p for p in sys.path if p not in ('', {str(cwd)!r})]; {code}"
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=600)


def test_help_imports_neither_torch_nor_brevitas(tmp_path):
    script = ("import sys; from brevitas_minifloat import cli\n"
              "for argv in (['--help'], ['dse', '--help'], ['export', '--help'], ['build', '--help'], "
              "['verify', '--help']):\n"
              "    try: cli.main(argv)\n    except SystemExit: pass\n"
              "print(sorted(m for m in ('torch', 'brevitas', 'qonnx', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_model_from_the_current_directory_and_no_warnings(tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text("import torch.nn as nn\n\ndef mlp():\n"
                                 "    return nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, 10))\n")
    p = _run(["export", "mypkg.nets:mlp", "--w-format", "INT4", "--a-format", "E4M3", "--techniques", "none",
              "--mapping", "embedding", "-o", "m.onnx"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "PTQ calibration data: 256 training images of mnist-5k (--data mnist-5k)" in p.stdout
    # the only stderr line: our warning that `build` refuses E4M3 activations as integers (no
    # third-party warnings)
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("warning: `brevitas-minifloat build --mapping embedding` will refuse m.onnx"), line
    assert "thresholds" in line
    verbose = _run(["export", "mypkg.nets:mlp", "--w-format", "E2M1", "--techniques", "none", "-o", "m.onnx",
                    "--verbose"], tmp_path)
    assert verbose.returncode == 0 and "fast_hadamard_transform" in verbose.stderr


def test_report_folder_per_sweep():
    parser = cli.build_parser()
    defaults = parser.parse_args(["dse"]).__dict__
    from brevitas_minifloat.dse.space import preset

    def folder(*argv):
        args = parser.parse_args(["dse", *argv])
        base = preset(args.space)
        space = base if args.w_bits is None else __import__("dataclasses").replace(base, weight_bits=args.w_bits)
        return cli._report_dir(args, defaults, space, base)[0]

    assert folder() == Path("out/dse/default")
    assert folder("--space", "tiny") == Path("out/dse/tiny")
    assert folder("--space", "tiny", "--no-finn").name.startswith("tiny-")
    assert folder("--space", "tiny", "--no-finn") != folder("--space", "tiny", "--no-finn", "--w-bits", "4,8")
    assert folder("--space", "tiny", "--workers", "1", "--quiet") == Path("out/dse/tiny")  # how, not what


def test_export_warns_when_the_chosen_mapping_cannot_build(tmp_path, capsys):
    argv = ["export", MLP, "--w-format", "E2M1", "--a-format", "E4M3", "--techniques", "none", "-o",
            str(tmp_path / "m.onnx")]
    assert cli.main(argv) == 0  # auto: E4M3 activations before E2M1 layers build as native layers
    assert capsys.readouterr().err == ""
    assert cli.main(argv + ["--mapping", "embedding"]) == 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("warning: `brevitas-minifloat build --mapping embedding` will refuse") and "4096" in line
