"""Execute a FINN HW graph with its native layers simulated as RTL: ``verify``'s ``rtl`` stage.

The graph runs in the exact HW executor (`finn_transforms.exact.execute_exact_hw`: integers of any
width for FINN's own layers, no float32), except that every ``MVAU_minifloat`` and depthwise
``VVAU_minifloat`` node's dot products come from simulating its generated Verilog
(`finn_transforms.native.sim.execute_native_layer_rtl`, `NativeMvauRtl` / `NativeVvauRtl`, compiled
once per layer and process; the VVAU is fed FINN's hardware VVAU stream of its windows) and every
``OrdinalLUT`` node's decoded integers from its
(`finn_transforms.native.decode_rtl.execute_ordinal_lut_rtl`), and every ``WideThresholding`` node's
counts from its (`finn_transforms.native.threshold_rtl.execute_wide_thresholding_rtl`; FINN's own
``Thresholding`` layers run exactly). Native layers are thus checked layer
by layer inside an exact chain: each one consumes what the previous layers computed and its RTL
outputs feed the next ones. The simulated cycles of each native layer are recorded beside FINN's
expected count for the same vectors (MVAU: ``NF * SF`` per vector; VVAU: per output pixel;
OrdinalLUT / WideThresholding: ``NumChannels / PE``).

Native layers without RTL (`WITHOUT_RTL`, empty now that every native layer has a generator) would
run their exact implementation instead, listed by name in ``RtlExecution.not_simulated``
(``verify`` reports them beside the ``rtl`` stage): never silently.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from finn_transforms.exact import Exact, execute_exact_hw
from finn_transforms.exact.hw_executor import _const, _inst, _integers, hw_op_registry
from finn_transforms.exact.native_ops import native_mvau, native_vvau, ordinal_decode
from finn_transforms.native.decode_rtl import execute_ordinal_lut_rtl
from finn_transforms.native.rtl import NativeMvauRtl
from finn_transforms.native.sim import execute_native_layer_rtl
from finn_transforms.native.spec import NativeMvauSpec
from finn_transforms.native.threshold_rtl import execute_wide_thresholding_rtl
from finn_transforms.native.vvau_rtl import NativeVvauRtl
from finn_transforms.wide_thresholds import join

__all__ = ["WITHOUT_RTL", "RtlExecution", "execute_build_rtl", "execute_rtl"]


@dataclass
class RtlExecution:
    """Exact graph outputs, and per native layer ``(simulated cycles, expected NF * SF cycles)``
    summed over the layer's calls."""

    outputs: dict[str, Exact]
    cycles: dict[str, tuple[int, int]] = field(default_factory=dict)
    not_simulated: set[str] = field(default_factory=set)  # native layers without RTL, executed exactly


#: Generic op types of native layers that have no RTL generator (none: a new native layer without one goes here).
WITHOUT_RTL: tuple[str, ...] = ()


def execute_rtl(
    model: ModelWrapper, inputs: Mapping[str, np.ndarray] | np.ndarray, *, cache: dict | None = None
) -> RtlExecution:
    """Exact outputs of a FINN graph (partitions included) with every native layer simulated as RTL
    (``cache``: as for `execute_exact_hw`, per model)."""
    log: dict[str, tuple[int, int]] = {}

    def simulate(name: str, generator: type[NativeMvauRtl]):
        def layer(spec: NativeMvauSpec, codes: np.ndarray, x: np.ndarray) -> np.ndarray:
            y, cycles = execute_native_layer_rtl(spec, codes, x, layer=generator)
            simulated, expected = log.get(name, (0, 0))
            log[name] = (simulated + cycles, expected + len(x) * spec.output_beats * spec.input_beats)
            return y

        return layer

    def rtl_mvau(ins, ctx):
        return native_mvau(simulate(ctx.node.name, NativeMvauRtl))(ins, ctx)

    def rtl_vvau(ins, ctx):
        return native_vvau(simulate(ctx.node.name, NativeVvauRtl))(ins, ctx)

    def rtl_decode(fmt, ctx, ordinals: np.ndarray) -> np.ndarray:
        pe = _inst(ctx)[0].get_nodeattr("PE")
        flat = ordinals.reshape(-1, ordinals.shape[-1])
        k, cycles = execute_ordinal_lut_rtl(fmt, pe, flat)
        simulated, expected = log.get(ctx.node.name, (0, 0))
        log[ctx.node.name] = (simulated + cycles, expected + flat.size // pe)
        return k.reshape(ordinals.shape)

    not_simulated: set[str] = set()

    def exact_instead(op_type: str):
        exact = hw_op_registry()[op_type]

        def run(ins, ctx):
            not_simulated.add(ctx.node.name)
            return exact(ins, ctx)

        return run

    def rtl_wide(ins, ctx):
        inst, _ = _inst(ctx)
        if inst.get_nodeattr("outputDataType") == "BIPOLAR":
            raise ctx.fail("the WideThresholding RTL has no BIPOLAR output")
        x = _integers(ins[0], ctx, "inputDataType", inst)
        flat = x.reshape(-1, x.shape[-1])
        thresholds = np.sort(join(_const(ctx, 1), _const(ctx, 2)), axis=1)
        pe = inst.get_nodeattr("PE")
        y, cycles = execute_wide_thresholding_rtl(thresholds, pe, flat, inst.get_input_datatype(0),
                                                  inst.get_output_datatype(), inst.get_nodeattr("ActVal"))
        simulated, expected = log.get(ctx.node.name, (0, 0))
        log[ctx.node.name] = (simulated + cycles, expected + flat.size // pe)
        return [Exact.from_ints(np.asarray(y, dtype=object).reshape(x.shape))]

    import finn_transforms.exact.native_ops  # noqa: F401  (registers the exact native ops)
    import finn_transforms.native.wide_thresholding  # noqa: F401  (registers WideThresholding with qonnx)

    ops = {"MVAU_minifloat": rtl_mvau, "VVAU_minifloat": rtl_vvau, "OrdinalLUT": ordinal_decode(rtl_decode),
           "WideThresholding": rtl_wide}
    ops |= {op: exact_instead(op) for op in WITHOUT_RTL}
    outputs = execute_exact_hw(model, inputs, cache=cache, ops=ops)
    return RtlExecution(outputs, log, not_simulated)


def execute_build_rtl(
    build_dir: str | os.PathLike, inputs: Mapping[str, np.ndarray] | np.ndarray, *, step: str | None = None
) -> RtlExecution:
    """`execute_rtl` of the end-to-end graph of a FINN build (`finn_transforms.hw_exec.load_full_graph`)."""
    from finn_transforms.hw_exec import load_full_graph

    return execute_rtl(load_full_graph(build_dir, step), inputs)
