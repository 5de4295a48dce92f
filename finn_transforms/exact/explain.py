"""Which outputs float32 rounding may legitimately change: near-boundary pre-activations and what
depends on them.

A float32 evaluation (torch, ``execute_onnx``) of a quantized graph differs from the exact reference
only where some quantizer's float32 pre-activation lands on the other side of a boundary than the
exact one. That needs the exact pre-activation ``z`` within the float32 error bound of a boundary:
``|z - T| <= eps = 2 * n * 2^-24 * m``, with ``m`` the sum of the absolute values of every term
behind ``z`` (an abs-mode evaluation of the graph from the reference's quantized values) and ``n``
the longest accumulation in the graph (largest fan-in) plus 10 further roundings (scale Muls, bias
Add, BatchNorm's four ops, the quantizer's division): the standard bound ``gamma_n * sum |terms|``
of recursive float32 summation, doubled. An output is *explained* when it
depends (through nonzero weights, found by propagating indicator tensors in abs mode) on such a
near-boundary pre-activation; any other difference is a real disagreement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from finn_transforms.exact.reference import evaluate
from finn_transforms.exact.tensor import Exact
from finn_transforms.exact.thresholding import count_reached

__all__ = ["NearBoundary", "near_boundaries"]

_U32 = 2.0**-24


@dataclass
class NearBoundary:
    """Result of `near_boundaries` for one batch of inputs."""

    outputs: dict[str, Exact]  # the exact reference outputs
    tainted: dict[str, np.ndarray]  # per output: bool, depends on a near-boundary pre-activation
    near_counts: dict[str, int]  # per quantizer output tensor: near-boundary pre-activations
    accumulation_length: int


_FURTHER_ROUNDINGS = 10
_EXACT_IN_FLOAT32 = ("Identity", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Relu", "MaxPool")


def _rounds_in_float32(model: ModelWrapper, tensor: str) -> bool:
    """False when ``tensor`` is a graph input moved / clipped / max-pooled only: float32 computes it exactly."""
    producer = model.find_producer(tensor)
    while producer is not None and producer.op_type in _EXACT_IN_FLOAT32:
        tensor = producer.input[0]
        producer = model.find_producer(tensor)
    return producer is not None


def accumulation_length(model: ModelWrapper) -> int:
    """``n`` of the error bound: the largest fan-in of a MatMul / Gemm / Conv plus 10 roundings."""
    fan_in = 1
    for node in model.graph.node:
        w = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
        if w is None:
            shape = model.get_tensor_shape(node.input[1]) if len(node.input) > 1 else None
        else:
            shape = w.shape
        if shape is None:
            continue
        if node.op_type in ("MatMul", "Gemm") and len(shape) >= 2:
            fan_in = max(fan_in, int(max(shape[-2], shape[-1]) if node.op_type == "Gemm" else shape[-2]))
        elif node.op_type == "Conv" and len(shape) >= 3:
            fan_in = max(fan_in, int(np.prod(shape[1:])))
    return fan_in + _FURTHER_ROUNDINGS


def _nearest_distance(x: Exact, bounds: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Distance (float64) from each exact value to its group's nearest finite boundary (inf: none)."""
    idx = count_reached(x, bounds, groups)
    finite = np.where(np.isfinite(bounds), bounds.astype(np.float64), np.nan)
    padded = np.concatenate([np.full((len(finite), 1), np.nan), finite, np.full((len(finite), 1), np.nan)], axis=1)
    g = np.zeros(x.shape, dtype=np.int64) if groups is None or len(bounds) == 1 else np.asarray(groups)
    below = padded[g, idx]  # boundary just reached (idx-1 in bounds, +1 for the padding)
    above = padded[g, idx + 1]
    value = x.to_float64()
    with np.errstate(invalid="ignore"):
        d = np.fmin(np.abs(value - below), np.abs(above - value))
    return np.where(np.isnan(d), np.inf, d)


def near_boundaries(
    model: ModelWrapper, inputs: Mapping[str, np.ndarray] | np.ndarray, *, cache: dict | None = None
) -> NearBoundary:
    """Exact outputs of ``model`` and, per output element, whether float32 rounding may change it
    (``cache``: kept by the caller across calls on the same model, as for `evaluate`)."""
    cache = {} if cache is None else cache
    seen: dict[str, tuple] = {}

    def observe(node, x, bounds, groups, codes):
        seen[node.output[0]] = (node, x, bounds, groups)

    values = evaluate(model, inputs, observer=observe, return_all=True, cache=cache)
    quant_outputs = {name: abs_value(values[name]) for name in seen}
    if isinstance(inputs, Mapping):
        abs_inputs = {k: np.abs(np.asarray(v, dtype=np.float64)) for k, v in inputs.items()}
        zero_inputs = {k: np.zeros(np.shape(v)) for k, v in inputs.items()}
    else:
        abs_inputs, zero_inputs = np.abs(np.asarray(inputs, dtype=np.float64)), np.zeros(np.shape(inputs))
    mags = evaluate(model, abs_inputs, abs_mode=True, overrides=quant_outputs, return_all=True, cache=cache)
    n = accumulation_length(model)
    near = {}
    for name, (node, x, bounds, groups) in seen.items():
        if model.get_initializer(node.input[0]) is not None:  # quantized weights: a float32 constant
            continue
        if not _rounds_in_float32(model, node.input[0]):  # e.g. the input quantizer: nothing rounds before it
            near[name] = np.zeros(x.shape, dtype=bool)
            continue
        eps = 2.0 * n * _U32 * mags[node.input[0]].to_float64() + np.finfo(np.float32).tiny
        relu = model.find_producer(node.input[0])
        if relu is not None and relu.op_type == "Relu":
            # relu(z) >= T <=> z >= T for T > 0, and T <= 0 is always reached: the rounding that
            # matters is the pre-ReLU value's (a clipped 0 from z = -5 is far from every boundary)
            x = values[relu.input[0]]
            bounds = np.where(bounds > 0, bounds, np.float32(-np.inf))
        near[name] = _nearest_distance(x, bounds, groups) <= eps

    # Dependency on near-boundary elements, by two abs-mode passes from zero inputs: a baseline
    # (every quantizer output 0: only constants such as biases contribute) and the tainted pass
    # (a quantizer outputs 1 where its input rose above the baseline or it is itself near a
    # boundary); an element is tainted where the tainted pass exceeds the baseline.
    fixed = {name: quant_outputs[name] for name in seen if name not in near}  # weights keep |w|
    zeros = {name: Exact.from_ints(np.zeros(values[name].shape, dtype=np.int64)) for name in near}
    base = evaluate(model, zero_inputs, abs_mode=True, overrides={**fixed, **zeros}, return_all=True, cache=cache)
    inputs_of = {name: node.input[0] for name, (node, *_rest) in seen.items()}

    def taint(name: str, value: Exact) -> Exact:
        if name in fixed:
            return fixed[name]
        if name not in near:
            return value
        rose = (value - base[inputs_of[name]]).num > 0  # in abs mode a quantizer passes its input on
        return Exact.from_ints((rose | near[name]).astype(np.int64))

    marked = evaluate(model, zero_inputs, abs_mode=True, overrides=taint, return_all=True, cache=cache)
    tainted = {o.name: np.asarray((marked[o.name] - base[o.name]).num > 0) for o in model.graph.output}
    outputs = {o.name: values[o.name] for o in model.graph.output}
    return NearBoundary(
        outputs,
        tainted,
        {name: int(v.sum()) for name, v in near.items()},
        n,
    )


def abs_value(x: Exact) -> Exact:
    return x.with_num(np.abs(x.num))
