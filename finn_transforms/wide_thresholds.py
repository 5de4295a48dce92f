"""Integer thresholds beyond 2^53, held exactly: a float64 tensor plus an int64 residual input.

FINN keeps thresholds as float tensors, and float64 holds every integer only up to 2^53. E5M2 native
accumulators reach 2^72, and after a BatchNorm is absorbed the next layer's integer thresholds need
up to ~72 significant bits. Such a node keeps FINN's float64 tensor (the nearest float64 of every
threshold, input 1: what FINN's own passes read) and gains a third input, an int64 initializer of
the same shape with ``residual = t - int(float64(t))`` (at most 2^19 in magnitude for 72-bit
thresholds), so that ``t = int(hi) + residual`` exactly. A ``MultiThreshold`` carries it from
`finn_transforms.transformation.ExactAbsorbedThresholds` to FINN's HW conversion, where its
``Thresholding`` becomes our ``WideThresholding`` (`finn_transforms.native.wide_thresholding`; FINN's
``Thresholding`` passes, RTL generation and execution would drop the residual). The exact evaluators
compare with ``int(hi) + residual`` (`exact_thresholds`).

FINN's HW conversion builds a new ``Thresholding`` node from ``MultiThreshold`` inputs 0 and 1 only;
`saved_residuals` / `restore_residuals` run around it (``step_convert_to_hw``) and re-attach every
residual to the node that now reads its float64 tensor, or raise naming the node that lost it.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto
from qonnx.core.modelwrapper import ModelWrapper

__all__ = [
    "FLOAT64_EXACT",
    "WIDE_OP_TYPE",
    "WideThresholdError",
    "attach_residual",
    "count_wide",
    "exact_thresholds",
    "join",
    "restore_residuals",
    "saved_residuals",
    "split",
]

FLOAT64_EXACT = 2**53  # every integer of at most this magnitude is a float64
WIDE_OP_TYPE = "WideThresholding"  # FINN's Thresholding with the residual (finn_transforms.native.wide_thresholding)
_RESIDUAL_SUFFIX = "_residual"


class WideThresholdError(RuntimeError):
    """A FINN step dropped or changed the exact thresholds of a node (names the node and the step)."""


def split(thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hi, residual)`` of integer thresholds (any array of Python or numpy integers): ``hi`` the
    nearest float64 of each, ``residual = t - int(hi)`` (int64), so ``int(hi) + residual == t``."""
    t = np.asarray(thresholds, dtype=object)
    hi = np.array([float(int(v)) for v in t.flat], dtype=np.float64).reshape(t.shape)
    residual = np.array([int(v) - int(h) for v, h in zip(t.flat, hi.flat)], dtype=np.int64).reshape(t.shape)
    return hi, residual


def join(hi: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """The exact integer thresholds ``int(hi) + residual`` (object array of Python ints)."""
    hi = np.asarray(hi, dtype=np.float64)
    residual = np.asarray(residual)
    if hi.shape != residual.shape:
        raise ValueError(f"threshold residual of shape {residual.shape} for thresholds of shape {hi.shape}")
    if not np.isfinite(hi).all() or (np.floor(hi) != hi).any():
        raise ValueError("thresholds with a residual must be finite integers")
    return np.array([int(h) + int(r) for h, r in zip(hi.flat, residual.flat)], dtype=object).reshape(hi.shape)


def exact_thresholds(hi: np.ndarray, residual: np.ndarray | None) -> np.ndarray:
    """A node's thresholds as the exact evaluators compare with them: ``join(hi, residual)`` when the
    node has a residual input, else its float tensor as stored."""
    return np.asarray(hi) if residual is None else join(hi, residual)


def attach_residual(model: ModelWrapper, node: NodeProto, residual: np.ndarray) -> None:
    """Make ``residual`` the node's input 2 (an int64 initializer named after its thresholds)."""
    name = node.input[1] + _RESIDUAL_SUFFIX
    model.set_initializer(name, np.asarray(residual, dtype=np.int64))
    if len(node.input) > 2:
        node.input[2] = name
    else:
        node.input.append(name)


def saved_residuals(model: ModelWrapper) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """``threshold tensor -> (float64 thresholds, residual, node name)`` of every node with a residual."""
    out = {}
    for node in model.graph.node:
        if node.op_type == "MultiThreshold" or node.op_type.startswith(WIDE_OP_TYPE):
            if len(node.input) > 2 and model.get_initializer(node.input[2]) is not None:
                hi = model.get_initializer(node.input[1])
                out[node.input[1]] = (hi.copy(), model.get_initializer(node.input[2]).copy(), node.name)
    return out


def restore_residuals(model: ModelWrapper, saved: dict[str, tuple[np.ndarray, np.ndarray, str]], step: str) -> ModelWrapper:
    """After FINN's ``step``: attach each saved residual to the node reading its float64 tensor; FINN's
    ``Thresholding`` there becomes ``WideThresholding``. Raises `WideThresholdError` when the tensor
    has no reader any more, a reader we cannot carry it into (an MVAU that absorbed the thresholds),
    or different values (FINN changed the thresholds)."""
    readers: dict[str, list[NodeProto]] = {}
    for node in model.graph.node:
        if len(node.input) > 1:
            readers.setdefault(node.input[1], []).append(node)
    for name, (hi, residual, origin) in saved.items():
        nodes = readers.get(name, [])
        if len(nodes) != 1:
            raise WideThresholdError(
                f"{step} left {len(nodes)} readers of the exact thresholds of {origin!r} (tensor {name!r}): "
                "they lie beyond 2^53 and would lose their exact value"
            )
        node = nodes[0]
        current = model.get_initializer(name)
        if current is None or current.shape != hi.shape or not np.array_equal(current, hi):
            raise WideThresholdError(f"{step} changed the exact thresholds of {origin!r} (now read by {node.name!r})")
        if node.op_type == "Thresholding":
            node.op_type = WIDE_OP_TYPE
        elif node.op_type not in ("MultiThreshold", WIDE_OP_TYPE):
            raise WideThresholdError(
                f"{step} moved the exact thresholds of {origin!r} into {node.op_type} {node.name!r}, which "
                "stores thresholds as float tensors only (beyond 2^53 they would be rounded)"
            )
        attach_residual(model, node, residual)
    return model


def count_wide(model: ModelWrapper) -> dict | None:
    """``{"count": thresholds beyond 2^53, "layers": nodes}`` held exactly by the model's
    ``WideThresholding`` layers (None: there are none)."""
    count, layers = 0, 0
    for node in model.graph.node:
        if node.op_type.startswith(WIDE_OP_TYPE) and len(node.input) > 2:
            t = join(model.get_initializer(node.input[1]), model.get_initializer(node.input[2]))
            count += sum(abs(int(v)) > FLOAT64_EXACT for v in t.flat)
            layers += 1
    return {"count": count, "layers": layers} if layers else None
