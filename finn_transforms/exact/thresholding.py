"""Step functions on exact values: the float32 boundaries of a quantizer, and exact counting.

A quantizer node computes, on a float32 input ``x``, an integer code ``f(x)`` through float32
operations (``x / s``, ``+ z``, a rounding, a clamp, a minifloat rounding): ``f`` is monotone in ``x``.
Its *boundaries* are ``T_j = min{float32 x : f(x) >= c_j}`` for every code ``c_j`` above the lowest,
found by bisection over the ordered float32 bit patterns, evaluating ``f`` itself. For any real ``z``
the code is then ``c_{#{j : z >= T_j}}``: on float32 inputs this is ``f`` bit for bit (ties, the
float32 division, saturation included), and on the exact pre-activation of a layer it is the value
the quantizer defines for it (``f`` applied to ``z`` rounded down to float32). A MultiThreshold node
states its boundaries directly. `count_reached` compares exact values with the boundaries in integer
arithmetic: ``num * scale >= T  <=>  num >= ceil(T / scale)``.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np

from finn_transforms.exact.tensor import Exact, ExactError, as_fraction_array

__all__ = ["count_reached", "float32_boundaries", "group_index", "integer_boundaries", "threshold_container"]

_KEY_INF = 0x7F800000  # ordered key of +inf (keys of -inf, +-0, +inf: -_KEY_INF, 0, _KEY_INF)


def _key(x: np.ndarray) -> np.ndarray:
    bits = np.asarray(x, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.where(bits >= 0, bits, -(bits & 0x7FFFFFFF))


def _from_key(k: np.ndarray) -> np.ndarray:
    bits = np.where(k >= 0, k, (-k) | 0x80000000).astype(np.uint32)
    return bits.view(np.float32)


def float32_boundaries(code_fn: Callable[[np.ndarray], np.ndarray], targets: np.ndarray) -> np.ndarray:
    """``T[..., j] = min{float32 x : code_fn(x) >= targets[..., j]}`` (float32, same shape as targets).

    ``code_fn`` maps a float32 array of ``targets``' shape to codes and must be monotone
    non-decreasing along x. ``-inf`` marks a code every input reaches, ``+inf`` one no finite input
    reaches.
    """
    targets = np.asarray(targets)
    lo = np.full(targets.shape, -_KEY_INF, dtype=np.int64)
    hi = np.full(targets.shape, _KEY_INF, dtype=np.int64)
    always = code_fn(_from_key(lo)) >= targets
    never = ~(code_fn(_from_key(hi)) >= targets)
    for _ in range(34):  # the key range has 2^32 entries
        if not np.any(hi - lo > 1):
            break
        mid = (lo + hi) // 2
        ok = code_fn(_from_key(mid)) >= targets
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    out = _from_key(hi)
    out = np.where(always, np.float32(-np.inf), out)
    return np.where(never, np.float32(np.inf), out).astype(np.float32)


def threshold_container(thresholds) -> np.ndarray:
    """A threshold tensor as FINN holds it: float64 when stored as float64 (integer thresholds beyond
    2^24 that no float32 holds, `finn_transforms.transformation.exact_absorbed_thresholds`), Python ints
    when exact beyond 2^53 (`finn_transforms.wide_thresholds.join`), else float32."""
    arr = np.asarray(thresholds)
    return arr if arr.dtype in (np.float64, object) else arr.astype(np.float32)


def group_index(shape: tuple[int, ...], params: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Elements of a tensor of ``shape`` grouped by their (broadcast) parameter values.

    Returns ``(inverse, uniques)``: ``inverse`` (shape ``shape``, int64) is the group of each element,
    ``uniques[i][g]`` the value of ``params[i]`` in group ``g``.
    """
    try:
        arrays = np.broadcast_arrays(*[np.asarray(p, dtype=np.float32) for p in params])
        np.broadcast_shapes(arrays[0].shape, shape)
    except ValueError as err:
        raise ExactError(f"quantizer parameters of shapes {[np.shape(p) for p in params]} do not broadcast to {shape}") from err
    if len(arrays[0].shape) > len(shape):
        raise ExactError(f"quantizer parameters of rank {len(arrays[0].shape)} for an input of shape {shape}")
    stacked = np.stack([a.ravel() for a in arrays], axis=1)
    uniq, inv = np.unique(stacked, axis=0, return_inverse=True)
    inv = np.broadcast_to(inv.reshape(arrays[0].shape), shape)
    return inv, [uniq[:, i] for i in range(len(params))]


def integer_boundaries(bounds: np.ndarray, scale: Fraction, lo: int, hi: int) -> np.ndarray:
    """``ceil(T / scale)`` clipped into ``[lo, hi + 1]`` (same counts for values in ``[lo, hi]``),
    ``-inf -> lo``, ``+inf -> hi + 1``; int64 when ``lo``/``hi`` fit, else Python ints. Vectorised:
    a power-of-two scale is an exact float64 ``ldexp``; any other scale goes through exact integer
    numerators (``T = n * s_T`` from `as_fraction_array`). Python-int bounds (exact thresholds beyond
    2^53, `threshold_container`) are divided exactly."""
    if np.asarray(bounds).dtype == object:
        p, q = scale.numerator, scale.denominator  # ceil(T * q / p), p > 0
        k = np.array([min(max(-((-int(v) * q) // p), lo), hi + 1) for v in np.asarray(bounds).flat], dtype=object)
        k = k.reshape(np.shape(bounds))
        return k.astype(np.int64) if max(abs(lo), abs(hi) + 1) < 2**62 else k
    t = np.asarray(bounds, dtype=np.float64)
    p, q = scale.numerator, scale.denominator
    shift = q.bit_length() - p.bit_length()
    if p & (p - 1) == 0 and q & (q - 1) == 0 and max(abs(lo), abs(hi) + 1) < 2**52 and abs(shift) < 900:
        with np.errstate(over="ignore", invalid="ignore"):
            k = np.ceil(np.ldexp(t, shift))  # exact: a power-of-two factor, no under/overflow here
        return np.clip(k, lo, hi + 1).astype(np.int64)
    out = np.empty(t.shape, dtype=object)
    out[t == -np.inf] = lo
    out[t == np.inf] = hi + 1
    finite = np.isfinite(t)
    if finite.any():
        n_t, s_t = as_fraction_array(t[finite])
        r = s_t / scale
        k = -((-(n_t.astype(object) * r.numerator)) // r.denominator)
        out[finite] = np.minimum(np.maximum(k, lo), hi + 1)
    return out.astype(np.int64) if max(abs(lo), abs(hi) + 1) < 2**62 else out


def count_reached(x: Exact, boundaries: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """``#{j : x >= boundaries[g, j]}`` per element, exactly (int64, shape of ``x``).

    ``boundaries`` is ``(G, J)`` float32 (or float64, `threshold_container`), sorted along ``j``; ``groups`` (shape of ``x``, values in
    ``range(G)``) picks each element's row (``None``: one row for all).
    """
    boundaries = threshold_container(boundaries)
    if boundaries.ndim != 2:
        raise ExactError(f"boundaries must be (groups, count), got shape {boundaries.shape}")
    if np.any(boundaries[:, 1:] < boundaries[:, :-1]):
        raise ExactError("thresholds are not sorted along their last axis: a threshold count is not monotone")
    num = x.num
    if num.size == 0 or boundaries.shape[1] == 0:
        return np.zeros(num.shape, dtype=np.int64)
    lo, hi = int(num.min()), int(num.max())
    ints = integer_boundaries(boundaries, x.scale, lo, hi)
    if ints.dtype == np.int64:
        num = num.astype(np.int64)
    if groups is None or ints.shape[0] == 1:
        return np.searchsorted(ints[0], num.ravel(), side="right").reshape(num.shape).astype(np.int64)
    flat_groups = np.asarray(groups).ravel()
    flat = num.ravel()
    out = np.empty(flat.shape, dtype=np.int64)
    order = np.argsort(flat_groups, kind="stable")
    cuts = np.searchsorted(flat_groups[order], np.arange(ints.shape[0] + 1))
    for g in range(ints.shape[0]):
        sel = order[cuts[g] : cuts[g + 1]]
        if sel.size:
            out[sel] = np.searchsorted(ints[g], flat[sel], side="right")
    return out.reshape(num.shape)
