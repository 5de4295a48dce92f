"""Execute FINN HW graphs in Python (numpy), and fetch the graphs a FINN build left behind.

FINN's generic HW ops (``MVAU``, ``Thresholding``, ``ConvolutionInputGenerator``, ``Pool``,
``ElementwiseMul``, ...) in domain ``finn.custom_op.fpgadataflow`` execute in numpy. After
``step_specialize_layers`` the nodes become ``MVAU_hls``, ``Thresholding_rtl``, ... in the
``.hls`` / ``.rtl`` sub-domains, whose ``execute_node`` only drives cppsim or rtlsim (a C++
compiler with the HLS headers, or Vivado XSI). :func:`execute_hw_graph` maps them back to their
generic op in a copy of the graph, keeping all attributes (folding, data types, weights and
thresholds are the same), so the folded, specialized graph runs with ``execute_onnx``. This
checks the graph transformations (streamlining, conversion to HW, folding, bit-width
minimization); it does not simulate the HLS or RTL code. Measured: integer-exact against Brevitas
for W4A4 and W2A2 MLPs (docs/design.md, "Upstream workarounds") and for the TFC / CNV-like test models
(tests/test_build.py), except inputs lying exactly on a float32 threshold (Brevitas rounds half to
even, FINN compares ``x >= T``).

A FINN build with ``save_intermediate_models`` writes ``intermediate_models/<step>.onnx`` after
every step. From ``step_create_dataflow_partition`` on, those are the *partition* (the HW graph);
``dataflow_parent.onnx`` holds a ``StreamingDataflowPartition`` node pointing at it plus the nodes
left on the host (e.g. a leading ``Transpose``). :func:`load_full_graph` rebuilds the end-to-end
graph for any step so it can be compared with the QONNX model on the same inputs.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from qonnx.core.modelwrapper import ModelWrapper

from finn_transforms.finn_defaults import HW_DOMAIN as GENERIC_HW_DOMAIN
from finn_transforms.model_io import bind_graph_inputs, load_model

__all__ = [
    "GENERIC_HW_DOMAIN",
    "HwExecutionError",
    "execute_build",
    "execute_hw_graph",
    "list_intermediate_models",
    "load_full_graph",
    "load_hw_graph",
    "to_generic_hw_graph",
]

_BACKENDS = ("hls", "rtl")
_PARTITION_STEP = "step_create_dataflow_partition"
_SDP = "StreamingDataflowPartition"


class HwExecutionError(RuntimeError):
    """The graph holds nodes that cannot be executed in Python."""


def to_generic_hw_graph(model: ModelWrapper | onnx.ModelProto | str | os.PathLike) -> ModelWrapper:
    """Copy of ``model`` with every ``X_hls`` / ``X_rtl`` node turned back into generic ``X``.

    Only the op type and domain change. Also drops a model-level ``exec_mode`` metadata entry
    (``rtlsim`` would send FINN's ``execute_onnx`` to XSI). Raises :class:`HwExecutionError`
    naming the nodes whose generic op does not exist (e.g. ``IODMA_hls``). Does not descend into
    ``StreamingDataflowPartition`` children (:func:`execute_hw_graph` does).
    """
    from qonnx.custom_op.registry import is_custom_op

    model = load_model(model)
    missing = []
    for node in model.graph.node:
        for backend in _BACKENDS:
            if node.domain != f"{GENERIC_HW_DOMAIN}.{backend}":
                continue
            suffix = f"_{backend}"
            generic = node.op_type
            if generic.endswith(suffix):
                generic = generic[: -len(suffix)]
            if is_custom_op(GENERIC_HW_DOMAIN, generic):
                node.domain, node.op_type = GENERIC_HW_DOMAIN, generic
            else:
                missing.append(f"{node.name} ({node.op_type})")
    if missing:
        raise HwExecutionError(
            "no generic FINN HW op to execute in Python for: " + ", ".join(missing)
        )
    props = [p for p in model.model.metadata_props if p.key != "exec_mode"]
    del model.model.metadata_props[:]
    model.model.metadata_props.extend(props)
    return model


def execute_hw_graph(
    model: ModelWrapper | onnx.ModelProto | str | os.PathLike,
    inputs: Mapping[str, np.ndarray] | np.ndarray,
    *,
    return_full_context: bool = False,
) -> dict[str, np.ndarray]:
    """Execute a FINN graph in numpy with specialized HW nodes mapped back to generic ones.

    ``model`` is a HW graph (after ``convert_to_hw``, before or after ``specialize_layers`` and
    folding), or a graph containing ``StreamingDataflowPartition`` nodes (their child models are
    mapped too, in temporary copies), or any FINN-ONNX/QONNX graph. ``inputs`` maps graph input
    names to arrays; a bare array is accepted for single-input graphs. The caller's model and
    files are not modified. Returns the graph outputs by name (or the whole execution context).
    """
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.custom_op.registry import getCustomOp

    import finn_transforms.native.hw_op  # noqa: F401  (registers MVAU_minifloat with qonnx)
    import finn_transforms.native.wide_thresholding  # noqa: F401  (registers WideThresholding with qonnx)

    model = to_generic_hw_graph(model)
    input_dict = _input_dict(model, inputs)
    with tempfile.TemporaryDirectory(prefix="hw_exec_") as tmp:
        for i, node in enumerate(model.get_nodes_by_op_type(_SDP)):
            inst = getCustomOp(node)
            child = to_generic_hw_graph(inst.get_nodeattr("model"))
            child_path = Path(tmp) / f"partition_{i}.onnx"
            child.save(str(child_path))
            inst.set_nodeattr("model", str(child_path))
        return execute_onnx(model, input_dict, return_full_context)


def _input_dict(model: ModelWrapper, inputs) -> dict[str, np.ndarray]:
    out = {}
    for name, value in bind_graph_inputs(model, inputs).items():
        value = np.asarray(value)
        elem_type = next(t for t in model.graph.input if t.name == name).type.tensor_type.elem_type
        if elem_type == onnx.TensorProto.FLOAT and value.dtype != np.float32:
            value = value.astype(np.float32)
        out[name] = value
    return out


def list_intermediate_models(build_dir: str | os.PathLike) -> dict[str, Path]:
    """``{step name: intermediate model path}`` of a FINN build, in build order.

    The order comes from the build's ``report/build_estimates.json`` (written by
    :func:`finn_transforms.build.build_estimates`) or FINN's ``report/time_per_step.json``;
    models of unknown position (e.g. left by an earlier build into the same directory) follow,
    oldest first. ``dataflow_parent.onnx`` is not a step.
    """
    build_dir = Path(build_dir)
    models_dir = build_dir / "intermediate_models"
    if not models_dir.is_dir():
        raise FileNotFoundError(
            f"{models_dir} does not exist (was the build run with save_intermediate_models?)"
        )
    files = {p.stem: p for p in models_dir.glob("*.onnx") if p.stem != "dataflow_parent"}
    ordered = {}
    for name in _step_order(build_dir):
        if name in files:
            ordered[name] = files.pop(name)
    for path in sorted(files.values(), key=lambda p: p.stat().st_mtime_ns):
        ordered[path.stem] = path
    return ordered


def _step_order(build_dir: Path) -> list[str]:
    for name, key in (("build_estimates.json", "steps"), ("time_per_step.json", None)):
        path = build_dir / "report" / name
        if path.is_file():
            data = json.loads(path.read_text())
            steps = data.get(key) if key else [k for k in data if k != "total_build_time"]
            if steps:
                return list(steps)
    return []


def _step_path(build_dir: str | os.PathLike, step: str | None) -> tuple[str, Path, list[str]]:
    models = list_intermediate_models(build_dir)
    if not models:
        models_dir = Path(build_dir) / "intermediate_models"
        raise FileNotFoundError(f"no intermediate models in {models_dir}")
    names = list(models)
    if step is None:
        # The last step of the recorded build order; files of unknown position may be left over
        # from an earlier build into the same directory, so they only count without an order.
        recorded = [name for name in _step_order(Path(build_dir)) if name in models]
        step = recorded[-1] if recorded else names[-1]
    if step not in models:
        raise FileNotFoundError(f"no intermediate model for step {step!r}; available: {names}")
    return step, models[step], names


def load_hw_graph(build_dir: str | os.PathLike, step: str | None = None) -> ModelWrapper:
    """The model a FINN build saved after ``step`` (default: its last step).

    From ``step_create_dataflow_partition`` on this is the HW graph (the dataflow partition);
    before it, the whole FINN-ONNX graph.
    """
    _, path, _ = _step_path(build_dir, step)
    return ModelWrapper(str(path))


def load_full_graph(build_dir: str | os.PathLike, step: str | None = None) -> ModelWrapper:
    """End-to-end graph of a build after ``step`` (default: its last step).

    For steps from ``step_create_dataflow_partition`` on, this is ``dataflow_parent.onnx`` with its
    ``StreamingDataflowPartition`` pointing at that step's saved HW graph (by absolute path), so it
    takes the original graph inputs and includes the nodes left on the host. For earlier steps it
    is the saved model itself.
    """
    from qonnx.custom_op.registry import getCustomOp

    step, path, names = _step_path(build_dir, step)
    partitioned = _PARTITION_STEP in names and names.index(step) >= names.index(_PARTITION_STEP)
    if not partitioned:
        return ModelWrapper(str(path))
    parent_path = Path(build_dir) / "intermediate_models" / "dataflow_parent.onnx"
    if not parent_path.is_file():
        raise FileNotFoundError(f"{parent_path} is missing: cannot rebuild the full graph")
    parent = ModelWrapper(str(parent_path))
    sdps = parent.get_nodes_by_op_type(_SDP)
    if len(sdps) != 1:
        raise HwExecutionError(
            f"expected one StreamingDataflowPartition in {parent_path}, found {len(sdps)}"
        )
    getCustomOp(sdps[0]).set_nodeattr("model", str(path.resolve()))
    return parent


def execute_build(
    build_dir: str | os.PathLike,
    inputs: Mapping[str, np.ndarray] | np.ndarray,
    *,
    step: str | None = None,
    return_full_context: bool = False,
) -> dict[str, np.ndarray]:
    """Execute the end-to-end graph of a FINN build after ``step`` (default: the last step)."""
    return execute_hw_graph(
        load_full_graph(build_dir, step), inputs, return_full_context=return_full_context
    )
