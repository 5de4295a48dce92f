"""Helpers shared by several test modules (test modules never import each other).

The ``*_missing`` functions return ``None`` when the tool is usable, else the reason it is not; the
markers of ``tests/conftest.py`` skip tests with that reason.
"""

from __future__ import annotations

import sys
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
    sys.modules[spec.name] = module  # dataclasses look their module up there
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


def topology_act_quant(spec: str, unsigned: bool = False, per_channel: bool = False, channels: int | None = None, pot: bool = True):
    """Activation quantizer of the topology tests: power-of-two scales, short calibration."""
    from brevitas_minifloat.zoo import parse_spec

    fs = parse_spec(spec)
    if per_channel:
        from brevitas_minifloat import minifloat_act_quant

        return minifloat_act_quant(fs.minifloat if not unsigned else fs.unsigned_name(), power_of_two=pot,
                                   per_channel=True, channels=channels, collect_stats_steps=4)
    return fs.act_quant(unsigned=unsigned, power_of_two=True, collect_stats_steps=4)


def topology_weight_quant(spec: str):
    """Weight quantizer of the topology tests: power-of-two scales."""
    from brevitas_minifloat.zoo import parse_spec

    return parse_spec(spec).weight_quant(power_of_two=True)


def residual_block(act: str, weight: str, *, down: bool = False, shortcut_act: str | None = None, c: int = 4):
    """One ResNet block + GAP head (a Brevitas module, ``input_shape`` (1, c, 8, 8)); ``shortcut_act`` set:
    separate quantizer of that format at the add."""
    import brevitas.nn as qnn
    from torch import nn

    class ResidualBlock(nn.Module):
        def __init__(self):
            super().__init__()
            out = 2 * c if down else c
            self.inp = qnn.QuantIdentity(act_quant=topology_act_quant(act))
            self.body = nn.Sequential(
                qnn.QuantConv2d(c, c, 3, padding=1, bias=False, weight_quant=topology_weight_quant(weight)),
                nn.BatchNorm2d(c),
                qnn.QuantReLU(act_quant=topology_act_quant(act, True)),
                qnn.QuantConv2d(c, out, 3, padding=1, stride=2 if down else 1, bias=False,
                                weight_quant=topology_weight_quant(weight)),
            )
            self.shortcut = (qnn.QuantConv2d(c, out, 1, stride=2, bias=False, weight_quant=topology_weight_quant(weight))
                             if down else nn.Identity())
            self.q_add = qnn.QuantIdentity(act_quant=topology_act_quant(act))
            self.q_short = self.q_add if shortcut_act is None else qnn.QuantIdentity(act_quant=topology_act_quant(shortcut_act))
            self.relu = qnn.QuantReLU(act_quant=topology_act_quant(act, True))
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), qnn.QuantIdentity(act_quant=topology_act_quant(act, True)), nn.Flatten(),
                qnn.QuantLinear(out, 3, bias=False, weight_quant=topology_weight_quant(weight)),
                qnn.QuantIdentity(act_quant=topology_act_quant(act)),
            )
            self.input_shape = (1, c, 8, 8)

        def forward(self, x):
            x = self.inp(x)
            return self.head(self.relu(self.q_add(self.body(x)) + self.q_short(self.shortcut(x))))

    return ResidualBlock()
