"""FINN builder steps for the topologies FPGA users build: residual blocks, pooling heads, Conv1d.

``step_streamline`` replaces FINN's step of the same name (same name, so intermediate models and
`finn_transforms.verify` find it): it turns 3D (Conv1d) graphs into 4D ones with qonnx's
``Change3DTo4DTensors`` (FINN+'s ``LowerConvsToMatMul`` raises ``IndexError`` on 3D convolutions)
and runs `StreamlineTopologies` (residual blocks, average pooling heads). ``build_estimates`` and
``minifloat_estimate_steps`` use it in place of FINN's (`TOPOLOGY_STEPS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qonnx.core.modelwrapper import ModelWrapper

from finn_transforms.transformation.change_3d_to_4d_with_pools import Change3DTo4DTensorsWithPools
from finn_transforms.transformation.streamline_topologies import StreamlineTopologies

__all__ = ["TOPOLOGY_STEPS", "is_3d_graph", "step_streamline"]


def is_3d_graph(model: ModelWrapper) -> bool:
    """True when the graph input is 3D (N, C, L): a Conv1d model."""
    shape = model.get_tensor_shape(model.graph.input[0].name)
    return shape is not None and len(shape) == 3


def step_streamline(model: ModelWrapper, cfg: Any) -> ModelWrapper:
    """FINN's ``step_streamline`` for residual, pooling-head and Conv1d graphs (module docstring)."""
    model = model.transform(Change3DTo4DTensorsWithPools())
    return model.transform(StreamlineTopologies())


#: FINN step name -> ours (same name).
TOPOLOGY_STEPS: dict[str, Callable[[ModelWrapper, Any], ModelWrapper]] = {"step_streamline": step_streamline}
