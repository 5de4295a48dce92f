"""The check that every node FINN must run in hardware became a HW layer (FINN itself only warns)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import onnx
from qonnx.core.modelwrapper import ModelWrapper

from finn_transforms.finn_defaults import is_hw_node

__all__ = ["DEFAULT_SOFTWARE_OPS", "UnmappedNodes", "make_mapping_check", "unmapped_before"]

#: Op types that may stay outside the accelerator, at the start or end of the graph, without
#: failing the build: layout changes and the final float scale/bias/arg-max that usually run on
#: the host (and ``OrdinalDecode``, the table lookup of a native minifloat output quantizer's
#: ordinals). Any other node FINN did not convert to a HW layer (a leftover ``Quant``,
#: ``FloatQuant``, ``MultiThreshold``, float ``Conv``, ...) makes ``build_estimates`` fail.
DEFAULT_SOFTWARE_OPS = frozenset(
    {
        "Transpose",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Identity",
        "Mul",
        "Div",
        "Add",
        "Sub",
        "TopK",
        "ArgMax",
        "Softmax",
        "OrdinalDecode",
    }
)


class UnmappedNodes(Exception):
    """Raised by the mapping check step: ``nodes`` are ``"name (op_type)"`` strings."""

    def __init__(self, nodes: Sequence[str]):
        super().__init__(", ".join(nodes))
        self.nodes = tuple(nodes)


def make_mapping_check(allowed: frozenset[str]) -> Callable[[ModelWrapper, Any], ModelWrapper]:
    """A builder step (run before ``step_create_dataflow_partition``) raising :class:`UnmappedNodes`."""

    def step_check_hw_mapping(model: ModelWrapper, cfg: Any) -> ModelWrapper:
        """Fail on nodes FINN did not convert to HW layers, except host-side ops in ``allowed``."""
        bad = [
            f"{node.name or '<unnamed>'} ({node.op_type})"
            for node in model.graph.node
            if not is_hw_node(node) and node.op_type not in allowed
        ]
        if bad:
            raise UnmappedNodes(bad)
        return model

    return step_check_hw_mapping


def unmapped_before(out: Path, step: str, order: Sequence[str]) -> tuple[str, ...]:
    """Nodes outside the HW domain in the model that entered the failing partition step."""
    if step != "step_create_dataflow_partition" or step not in order:
        return ()
    idx = list(order).index(step)
    if idx == 0:
        return ()
    path = out / "intermediate_models" / f"{order[idx - 1]}.onnx"
    if not path.is_file():
        return ()
    model = onnx.load(str(path), load_external_data=False)
    return tuple(f"{n.name} ({n.op_type})" for n in model.graph.node if not is_hw_node(n))
