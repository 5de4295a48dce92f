"""Exact threshold arithmetic for integer-valued MultiThreshold inputs (helpers, no transformation).

A MultiThreshold counts ``x >= T``. When ``x = q * v`` for an integer ``v`` and a positive rational
``q`` (a pool's 1/N, a power-of-two scale), ``q * v >= T`` holds exactly when ``v >= ceil(T / q)``;
for ``v`` in ``[lo, hi]`` the integer threshold can further be clipped to ``[lo, hi + 1]`` without
changing any output. Every float32 threshold is a dyadic rational, so this is computed exactly with
``fractions.Fraction`` (once per distinct threshold value), never in float arithmetic.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = ["integer_thresholds"]

def integer_thresholds(thresholds: np.ndarray, divisor: Fraction, lo: int, hi: int) -> np.ndarray:
    """``clip(ceil(T / divisor), lo, hi + 1)`` for every threshold ``T`` (float32 array, exact).

    ``divisor`` is the positive rational the integer input ``v`` is multiplied by before the
    comparison. Float32 when float32 holds every result; else float64, exact integers up to 2^53
    (a pool with an odd window over wide integers: DS-CNN's 25x5 over E5M2's 34-bit embedded
    integers; `finn_transforms.steps.float64_threshold_step` keeps them through FINN's steps, as for
    `ExactAbsorbedThresholds`). Beyond 2^24 an integer threshold ``t`` decides like a float only when
    it is that float (floats are integers there, so ``(t - 1, t]`` holds no other). Raises
    ``ValueError`` when a result is no float64 (beyond 2^53 with more than 53 significant bits).
    """
    if divisor <= 0:
        raise ValueError(f"the input factor must be positive, got {divisor}")
    t = np.asarray(thresholds, dtype=np.float32)
    values, inverse = np.unique(t, return_inverse=True)
    ints = [
        (lo if value < 0 else hi + 1) if math.isinf(value) else min(max(math.ceil(Fraction(value) / divisor), lo), hi + 1)
        for value in values.tolist()
    ]
    beyond = [k for k in ints if float(k) != k]  # Python compares int and float exactly
    if beyond:
        raise ValueError(
            f"integer threshold {beyond[0]} (beyond 2^53, more than 53 significant bits) cannot be held exactly "
            "in a float32 or float64 threshold tensor"
        )
    out = np.array([float(k) for k in ints], dtype=np.float64)
    if np.array_equal(out.astype(np.float32).astype(np.float64), out):
        out = out.astype(np.float32)
    return out[inverse].reshape(t.shape)
