"""The one ONNX model loader: ModelWrapper, ModelProto or file in, an independent copy out.

Every entry point that accepts "a model" (builds, HW execution, synthesis) goes through
:func:`load_onnx_model`, so bad input fails the same way everywhere and the caller's object is
never modified.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
from google.protobuf.message import DecodeError
from qonnx.core.modelwrapper import ModelWrapper

__all__ = ["ModelLike", "bind_graph_inputs", "load_model", "load_onnx_model"]

ModelLike = ModelWrapper | onnx.ModelProto | str | os.PathLike


def load_onnx_model(model_or_path: ModelLike) -> onnx.ModelProto:
    """Return an independent ``ModelProto`` copy of a ModelWrapper, ModelProto or ONNX file.

    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` for a file that is not an
    ONNX model or has no nodes, ``TypeError`` for anything else.
    """
    if isinstance(model_or_path, ModelWrapper):
        proto = copy.deepcopy(model_or_path.model)
        source = "the given ModelWrapper"
    elif isinstance(model_or_path, onnx.ModelProto):
        proto = copy.deepcopy(model_or_path)
        source = "the given ModelProto"
    elif isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if not path.exists():
            raise FileNotFoundError(f"ONNX model file not found: {path}")
        if not path.is_file():
            raise ValueError(f"{path} is not a file")
        try:
            proto = onnx.load(str(path))
        except (DecodeError, ValueError, RuntimeError, TypeError) as exc:
            raise ValueError(
                f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}"
            ) from exc
        source = str(path)
    else:
        raise TypeError(
            "expected a qonnx ModelWrapper, an onnx ModelProto or a path, "
            f"got {type(model_or_path).__name__}"
        )
    if len(proto.graph.node) == 0:
        raise ValueError(f"{source} is not a usable ONNX model: its graph has no nodes")
    return proto


def load_model(model_or_path: ModelLike) -> ModelWrapper:
    """:func:`load_onnx_model` wrapped in a ``ModelWrapper`` (same checks, independent copy)."""
    return ModelWrapper(load_onnx_model(model_or_path))


def bind_graph_inputs(model: ModelWrapper, inputs: Mapping[str, Any] | Any, error: type[Exception] = ValueError) -> dict:
    """``inputs`` as ``{graph input name: value}``: a bare value is accepted for a single-input graph;
    missing or unknown names raise ``error`` listing the graph's inputs (initializers are not inputs)."""
    initializers = {init.name for init in model.graph.initializer}
    names = [t.name for t in model.graph.input if t.name not in initializers]
    if not isinstance(inputs, Mapping):
        if len(names) != 1:
            raise error(f"the graph has inputs {names}: pass a dict")
        return {names[0]: inputs}
    if sorted(inputs) != sorted(names):
        raise error(f"graph inputs are {names}; got {sorted(inputs)}")
    return dict(inputs)
