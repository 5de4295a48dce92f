"""Helpers shared by several test modules (test modules never import each other).

The ``*_missing`` functions return ``None`` when the tool is usable, else the reason it is not; the
markers of ``tests/conftest.py`` skip tests with that reason.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any


@lru_cache(maxsize=1)
def finn_missing() -> str | None:
    """``None`` if FINN+ can be used (``finn_transforms.finn_env.require_finn`` succeeds)."""
    from finn_transforms.finn_env import FinnNotAvailableError, require_finn

    try:
        require_finn()
    except FinnNotAvailableError as exc:
        return str(exc).splitlines()[0]
    return None


def finn_available() -> bool:
    """True if FINN+ is installed (for tests that check more when it is)."""
    return finn_missing() is None


def yosys_missing(variant: str | None = None) -> str | None:
    """Debian ``yosys``; ``variant="slang"`` also needs the yosys-slang SystemVerilog front end."""
    from brevitas_minifloat.hw.cost import yosys_missing as missing

    if variant not in (None, "slang"):
        raise ValueError(f"needs_yosys: unknown variant {variant!r} (None or 'slang')")
    reason = missing()
    if reason is None and variant == "slang":
        from finn_transforms.synth import slang_missing

        reason = slang_missing()
    return reason


def simulator_missing(tool: str | None = None) -> str | None:
    """Icarus Verilog (default) or ``tool="verilator"`` (the linter)."""
    from brevitas_minifloat.hw import sim

    if tool not in (None, "iverilog", "verilator"):
        raise ValueError(f"needs_simulator: unknown tool {tool!r} ('iverilog' or 'verilator')")
    return sim.lint_missing() if tool == "verilator" else sim.simulator_missing()


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as a module (scripts are not a package), e.g. to test a renderer."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mvau_attrs(report: Any) -> dict[str, dict[str, Any]]:
    """Datatype / XNOR attributes of every MVAU in the final HW graph of a ``verify`` report."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    import finn.custom_op.fpgadataflow  # noqa: F401  (registers FINN's HW ops)

    hw = ModelWrapper(str(report.estimates.hw_graph_path))
    out = {}
    for n in hw.graph.node:
        if n.op_type.startswith("MVAU"):
            inst = getCustomOp(n)
            out[n.name] = {k: inst.get_nodeattr(k) for k in ("inputDataType", "weightDataType", "binaryXnorMode", "MW")}
    return out
