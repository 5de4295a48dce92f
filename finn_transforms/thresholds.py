"""Exact MultiThreshold thresholds for a scaled minifloat quantizer.

A quantizer ``y = s * Q(fl(x / s))`` (``Q`` = `MinifloatFormat.quantize`, ``fl`` = float32
division) is lowered to a MultiThreshold whose output is the embedded integer
``k = Q(fl(x / s)) / delta`` (docs/design.md, "Semantics"), followed by ``Mul(s * delta)``.

MultiThreshold outputs ``out_bias + #{j : x >= T_j}`` with ``out_bias = integer_min``. Between two
consecutive grid values ``v_i < v_{i+1}`` the integer jumps by ``k_{i+1} - k_i`` (more than 1 in the
upper binades), so that pair's threshold is repeated that many times. The threshold is the smallest
float32 ``x`` with ``Q(fl(x / s)) >= v_{i+1}``: found by starting at ``fl(midpoint * s)`` and
stepping with ``np.nextafter`` under the exact quantizer, so ties (round half to even), flush to zero
with subnormals off, unsigned clamping and the float32 division are all honoured bit for bit.
``x -> Q(fl(x / s))`` is monotone, so the thresholds are sorted and the threshold function equals the
quantizer on every float32 input (NaN excepted: it counts as below every threshold).
"""

from __future__ import annotations

import numpy as np
import torch

from brevitas_minifloat.formats import MinifloatFormat, as_format

_MAX_STEPS = 4096


def threshold_count(fmt: MinifloatFormat | str) -> int:
    """Thresholds per channel: ``integer_max - integer_min`` (one per unit step of the embedding)."""
    fmt = as_format(fmt)
    return fmt.integer_max - fmt.integer_min


def _check_scale(scale) -> np.ndarray:
    s = np.asarray(scale, dtype=np.float32)  # the quantizer divides by a float32 scale
    if s.size == 0:
        raise ValueError("scale is empty")
    if not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise ValueError(f"scale must be finite and positive, got min {s.min()} max {s.max()}")
    return s.reshape(-1)


def quantize_scaled(fmt: MinifloatFormat, x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``Q(fl(x / s))`` on float32 numpy arrays (broadcasting), as the quantizer computes it."""
    with np.errstate(over="ignore"):  # x / s may overflow to inf: Q saturates it, as the quantizer does
        scaled = np.ascontiguousarray(np.asarray(x, dtype=np.float32) / np.asarray(scale, dtype=np.float32))
    return fmt.quantize(torch.from_numpy(scaled)).numpy()


def pair_thresholds(fmt: MinifloatFormat | str, scale) -> tuple[np.ndarray, np.ndarray]:
    """The distinct thresholds: ``(T, jumps)`` with ``T`` of shape ``(C, P)`` float32, one per pair of
    consecutive grid values (``P = len(fmt.values()) - 1``), and ``jumps`` (``P``,) int64, how many
    times each is repeated in the MultiThreshold (``sum(jumps) == threshold_count(fmt)``).

    ``T[c, i]`` is the smallest float32 ``x`` with ``fmt.quantize(fl(x / s_c)) >= values()[i + 1]``.
    """
    fmt = as_format(fmt)
    s = _check_scale(scale)[:, None]  # (C, 1)
    vals = fmt.values()  # float64, sorted, exact
    kint = fmt.integer_values()
    lo, hi = vals[:-1], vals[1:]
    jumps = np.diff(kint)
    target = hi.astype(np.float32)[None, :]  # exact: every grid value is a float32 normal (or 0)
    with np.errstate(over="ignore"):
        x = (((lo + hi) / 2)[None, :] * s.astype(np.float64)).astype(np.float32)  # (C, P)

    def reaches(v: np.ndarray) -> np.ndarray:
        return quantize_scaled(fmt, v, s) >= target  # -0.0 >= 0.0 holds, as it should

    up, down = np.float32(np.inf), np.float32(-np.inf)
    for _ in range(_MAX_STEPS):
        ok = reaches(x)
        with np.errstate(over="ignore"):  # nextafter(inf) when a midpoint overflowed; refused below
            below = np.nextafter(x, down)
        move_down = ok & reaches(below)
        move_up = ~ok
        if not (move_down.any() or move_up.any()):
            break
        x = np.where(move_down, below, np.where(move_up, np.nextafter(x, up), x))
    else:  # pragma: no cover - the start is within a few ulps of the answer
        raise RuntimeError(f"threshold search for {fmt.name} did not converge")
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{fmt.name}: thresholds overflow float32 for scale max {float(s.max())}: the quantizer's "
            "upper grid values are unreachable by finite inputs"
        )
    if np.any(np.diff(x, axis=1) < 0):  # pragma: no cover - Q(fl(x/s)) is monotone in x
        raise RuntimeError(f"thresholds for {fmt.name} are not monotone")
    return x, jumps


def minifloat_thresholds(fmt: MinifloatFormat | str, scale) -> np.ndarray:
    """Thresholds, shape ``(C, threshold_count(fmt))`` float32, ``C = scale.size`` (one row per channel).

    With ``out_bias = fmt.integer_min``, MultiThreshold over these rows outputs exactly
    ``fmt.quantize(fl(x / s_c)) / fmt.delta`` for every float32 ``x`` of channel ``c``.
    Raises ``ValueError`` for non-positive/non-finite scales and when a threshold would overflow
    float32 (a scale so large that the grid's midpoints leave float32's range).
    """
    x, jumps = pair_thresholds(fmt, scale)
    return np.repeat(x, jumps, axis=1)


def multithreshold_reference(x: np.ndarray, thresholds: np.ndarray, out_bias: float = 0.0) -> np.ndarray:
    """Channels-first MultiThreshold on ``x`` of shape ``(N, C)`` (thresholds ``(C or 1, T)``): a
    small independent reference (count of ``x >= T``) used by the tests."""
    x = np.asarray(x, dtype=np.float32)
    return (x[..., None] >= thresholds[None, :, :]).sum(axis=-1).astype(np.float32) + np.float32(out_bias)
