"""Helpers shared by several test modules (test modules never import each other).

The ``*_missing`` functions return ``None`` when the tool is usable, else the reason it is not; the
markers of ``tests/conftest.py`` skip tests with that reason.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


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


def exact_rows(model, x, *, hw: bool = False):
    """Exact outputs (`finn_transforms.exact.Exact`) of ``model`` for each row of ``x`` (batch-1 graphs),
    by the reference evaluator or (``hw``) the exact HW executor."""
    from finn_transforms.exact import evaluate, execute_exact_hw
    from finn_transforms.exact.reference import concat

    run, cache = (execute_exact_hw if hw else evaluate), {}
    return concat([next(iter(run(model, x[i : i + 1], cache=cache).values())) for i in range(len(x))], 0)


def assert_exact_equal(got, want) -> None:
    """Two `Exact` tensors hold the same values, element for element."""
    diff = got.with_num(got.num.reshape(want.shape)) - want
    bad = int(np.count_nonzero(diff.num))
    assert bad == 0, f"{bad} of {want.num.size} values differ from the exact reference"


def assert_float32_matches_reference(model, x, got) -> None:
    """A float32 execution (torch, ``execute_onnx``) of the QONNX ``model`` on ``x`` equals the exact
    reference up to float32 rounding of each value (``fl32(q * s)``), except outputs explained as
    float32 rounding near a quantizer boundary (`finn_transforms.exact.explain`)."""
    from finn_transforms.exact.explain import near_boundaries

    for i in range(len(x)):
        nb = near_boundaries(model, x[i : i + 1])
        want = next(iter(nb.outputs.values())).to_float64()
        tainted = next(iter(nb.tainted.values())).reshape(want.shape)
        value = np.asarray(got[i : i + 1], dtype=np.float64).reshape(want.shape)
        rounding_only = np.abs(value - want) <= 2.0**-23 * np.abs(want)
        bad = ~rounding_only & ~tainted
        assert not bad.any(), f"row {i}: {int(bad.sum())} outputs differ from the exact reference, unexplained"
