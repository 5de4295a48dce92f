"""Execute a FINN build's HW graph with its native layers simulated as RTL: ``verify``'s ``rtl`` stage.

Every ``MVAU_minifloat`` node runs its generated Verilog (`finn_transforms.native.rtl`) in a
simulator (`finn_transforms.native.sim.execute_native_layer_rtl`, compiled once per layer and
process); every other node executes as in the ``hw`` stage (`finn_transforms.hw_exec`), so native
layers are checked layer by layer inside the chain: each one consumes what the previous layers
computed and its RTL outputs feed the next ones. The simulated cycles of each native layer are
recorded beside FINN's expected count for the same vectors (``NF * SF`` per vector).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from qonnx.custom_op.registry import add_op_to_domain

from finn_transforms.finn_defaults import HW_DOMAIN
from finn_transforms.native.hw_op import MVAU_minifloat, store_output
from finn_transforms.native.sim import execute_native_layer_rtl

__all__ = ["RtlExecution", "execute_build_rtl"]

_RECORDS: list[dict] = []  # the active executions' cycle logs (innermost last)


class MVAU_minifloat_rtlsim(MVAU_minifloat):  # noqa: N801 - FINN-style op type name
    """``MVAU_minifloat`` whose execution simulates the layer's RTL (Icarus; Verilator for long runs)."""

    def execute_node(self, context, graph):
        node = self.onnx_node
        spec = self.spec()
        x = np.asarray(context[node.input[0]]).reshape(-1, spec.mw).astype(np.int64)
        codes = np.asarray(context[node.input[1]]).T.astype(np.int64)
        y, cycles = execute_native_layer_rtl(spec, codes, x)
        if _RECORDS:
            simulated, expected = _RECORDS[-1].get(node.name, (0, 0))
            _RECORDS[-1][node.name] = (simulated + cycles, expected + len(x) * spec.output_beats * spec.input_beats)
        store_output(context, node, y)


add_op_to_domain(HW_DOMAIN, MVAU_minifloat_rtlsim)


@dataclass
class RtlExecution:
    """Graph outputs, and per native layer ``(simulated cycles, expected NF * SF cycles)`` summed
    over the calls."""

    outputs: dict[str, np.ndarray]
    cycles: dict[str, tuple[int, int]] = field(default_factory=dict)


def execute_build_rtl(
    build_dir: str | os.PathLike, inputs: Mapping[str, np.ndarray] | np.ndarray, *, step: str | None = None
) -> RtlExecution:
    """The end-to-end graph of a FINN build (`finn_transforms.hw_exec.load_full_graph`) executed
    with every native layer simulated as RTL."""
    from finn_transforms.hw_exec import execute_hw_graph, load_full_graph

    log: dict[str, tuple[int, int]] = {}
    _RECORDS.append(log)
    try:
        outputs = execute_hw_graph(load_full_graph(build_dir, step), inputs,
                                   op_types={"MVAU_minifloat": "MVAU_minifloat_rtlsim"})
    finally:
        _RECORDS.pop()
    return RtlExecution(outputs, log)
