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


def mixed_model():
    """E4M3 weights/activations into an INT4 layer: native and FINN's own MVAU in one model."""
    import brevitas.nn as qnn
    import torch

    from brevitas_minifloat.zoo import calibrate, parse_spec

    e4m3, int4 = parse_spec("E4M3"), parse_spec("INT4")
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=e4m3.act_quant(power_of_two=True)),
        qnn.QuantLinear(16, 8, bias=False, weight_quant=e4m3.weight_quant(power_of_two=True)),
        qnn.QuantReLU(act_quant=int4.act_quant(unsigned=True, power_of_two=True)),
        qnn.QuantLinear(8, 4, bias=False, weight_quant=int4.weight_quant(power_of_two=True)),
        qnn.QuantIdentity(act_quant=e4m3.act_quant(power_of_two=True)),
    )
    model.input_shape = (1, 16)
    torch.manual_seed(5)
    return calibrate(model)


def cnv_e4m3(channels, image_size):
    """The CNV-shaped CNN with E4M3 weights, activations and input, power-of-two scales, calibrated."""
    import torch

    from brevitas_minifloat import zoo

    torch.manual_seed(0)
    model = zoo.cnv_cnn("E4M3", "E4M3", channels=channels, image_size=image_size, input_bits_or_fmt="E4M3", power_of_two=True)
    return zoo.calibrate(model)
