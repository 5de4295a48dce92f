"""README runs as written (issue 16): its Python blocks in order, and every ``brevitas-minifloat`` line.

Fast settings are textual substitutions listed here; each must still match README (a substitution
that stops applying fails the test instead of silently running the slow or a different code).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from brevitas_minifloat import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
BASH_BLOCKS = re.findall(r"```bash\n(.*?)```", README, re.S)

#: (README text, fast replacement) applied to every Python block
FAST = [
    ('default_workload("out/dse")', 'default_workload("out/dse", epochs=1)'),
    ("Space(weight_bits=(4, 6), act_bits=(4, 6),", "Space(weight_bits=(4,), act_bits=(4,),"),
    ('measured_mac="shift"', "measured_mac=None"),
    ('"out/my_sweep", workers=2,', '"out/my_sweep", workers=2, finn=False,'),
    ('"out/my_sweep", executor=client.get_executor()', '"out/my_sweep", executor=client.get_executor(), finn=False'),
]

SMALL_CNN = """import torch.nn as nn

def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))
"""


def _fast(code: str) -> str:
    for old, new in FAST:
        code = code.replace(old, new)
    return code


def _run(args: list[str], cwd: Path, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_fast_substitutions_still_match_readme():
    for old, _ in FAST:
        assert any(old in block for block in PYTHON_BLOCKS), old


def test_python_blocks_run_in_order(tmp_path):
    """The tour (Ten lines -> lowering, build, verify -> own FINN build -> PTQ) as one script; the DSE
    block is a script of its own (it says so: its Dask workers re-import the script)."""
    *tour, dse = PYTHON_BLOCKS
    assert 'if __name__ == "__main__":' in dse
    script = tmp_path / "readme_tour.py"
    script.write_text(_fast("\n".join(tour)))
    p = _run([sys.executable, str(script)], tmp_path)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    assert "7.5 [-7.5 -7.  -6.5 -6. ] INT7" in p.stdout  # the Ten lines comment's claim
    assert re.search(r"^hw\s+exact\s+0\s+0 / \d+\s+exact$", p.stdout, re.M), p.stdout  # verify: HW layers exact
    assert (tmp_path / "out/own_build/report/estimate_layer_resources.json").is_file()

    script = tmp_path / "readme_dse.py"
    script.write_text(_fast(dse))
    p = _run([sys.executable, str(script)], tmp_path)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    assert "'weights': 'E2M1'" in p.stdout and (tmp_path / "out/my_sweep/results.csv").is_file()


def _cli_lines() -> list[str]:
    lines = []
    for block in BASH_BLOCKS:
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("brevitas-minifloat"):
                lines.append(line)
    return lines


CLI_LINES = _cli_lines()
#: appended to `dse` lines so they take seconds (later options override earlier ones)
DSE_FAST = ["--space", "tiny", "--no-finn", "--w-bits", "4", "--a-bits", "4", "--techniques", "none",
            "--epochs", "1", "--eval-size", "100", "--executor", "inline", "--quiet"]


def test_readme_shows_the_cli():
    assert len(CLI_LINES) >= 8 and {line.split()[1] for line in CLI_LINES} == {"dse", "export", "build", "verify"}


def test_every_cli_line_parses_and_runs(tmp_path, monkeypatch, capsys):
    """Every line parses with the real parser as written; then runs in this process from a folder
    holding README's ``mypkg.nets:small_cnn`` and ``small_cnn.pt`` (dse with DSE_FAST appended, the
    Dask-scheduler line as --help, build/verify without FINN when FINN+ is missing)."""
    import torch

    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg/__init__.py").write_text("")
    (tmp_path / "mypkg/nets.py").write_text(SMALL_CNN)
    namespace: dict = {}
    exec(SMALL_CNN, namespace)
    torch.manual_seed(0)
    torch.save(namespace["small_cnn"]().state_dict(), tmp_path / "small_cnn.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])  # main() adds the cwd
    for name in ("mypkg", "mypkg.nets"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    parser = cli.build_parser()
    finn = cli._finn_missing() is None
    for line in CLI_LINES:
        argv = shlex.split(line)[1:]
        parser.parse_args(argv)  # as written: options exist, values are valid
        if "--scheduler" in argv:
            argv = [argv[0], "--help"]  # needs a running Dask scheduler
        elif argv[0] == "dse":
            argv = argv + DSE_FAST
        elif argv[0] == "build" and not finn:
            continue
        elif argv[0] == "verify":
            argv = argv + ["--samples", "2"] + ([] if finn else ["--no-build"])
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # --help
            code = exit_.code
        out = capsys.readouterr()
        if "fashion-mnist" in argv and "is not available" in out.err:
            continue  # the Debian data set package is not installed here
        assert code == 0, (line, out.out[-1500:], out.err[-1500:])
