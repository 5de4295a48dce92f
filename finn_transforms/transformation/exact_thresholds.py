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
    comparison. Raises ``ValueError`` when a result is not a float32 value (beyond 2^24 with more than
    24 significant bits: no float32 then lies in ``(t - 1, t]`` in general; FINN's threshold tensors
    are float32). Integers beyond 2^24 that float32 holds (power-of-two windows over wide inputs, e.g.
    E5M2's embedded integers) are kept.
    """
    if divisor <= 0:
        raise ValueError(f"the input factor must be positive, got {divisor}")
    t = np.asarray(thresholds, dtype=np.float32)
    values, inverse = np.unique(t, return_inverse=True)
    out = np.empty(values.shape, dtype=np.float64)
    for i, value in enumerate(values.tolist()):
        if math.isinf(value):
            out[i] = lo if value < 0 else hi + 1
            continue
        out[i] = min(max(math.ceil(Fraction(value) / divisor), lo), hi + 1)
    inexact = out[out.astype(np.float32).astype(np.float64) != out]
    if inexact.size:
        raise ValueError(
            f"integer threshold {int(inexact[0])} (beyond 2^24, more than 24 significant bits) cannot be held "
            "exactly in a float32 threshold tensor"
        )
    return out[inverse].reshape(t.shape).astype(np.float32)
