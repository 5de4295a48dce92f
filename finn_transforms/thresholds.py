"""Exact MultiThreshold thresholds for scaled minifloat and integer quantizers.

A quantizer is a monotone float32 code function ``f(x)`` followed by a scale: minifloat
``Q(fl(x / s)) / delta`` (``Q`` = `MinifloatFormat.quantize`, ``fl`` = float32 division; value
``k * s * delta``, docs/design.md, "Semantics"), or integer ``Quant`` ``clip(R(fl(fl(x / s) + z)),
lo, hi)`` (`brevitas_minifloat.qonnx_contract.int_quant`; value ``(k - z) * s``). Either is lowered to
a MultiThreshold that outputs ``out_bias + #{j : x >= T_j}``, followed by a ``Mul``.

Each threshold is the smallest float32 ``x`` with ``f(x) >= c`` for the next code ``c``, found by
bisection over the ordered float32 values evaluating ``f`` itself
(`finn_transforms.exact.thresholding.float32_boundaries`, the search the exact reference uses), so
ties (round half to even, or whichever rounding mode), flush to zero with subnormals off, unsigned
clamping, zero points and the float32 division are all honoured bit for bit. ``f`` is monotone, so
the thresholds are sorted and the threshold function equals the quantizer on every float32 input
(NaN excepted: it counts as below every threshold). For a minifloat, the integer ``k`` jumps by
``k_{i+1} - k_i`` between consecutive grid values (more than 1 in the upper binades), so that
pair's threshold is repeated that many times.
"""

from __future__ import annotations

import numpy as np
import torch

from brevitas_minifloat.formats import MinifloatFormat, as_format
from brevitas_minifloat.qonnx_contract.int_quant import int_quant_code
from finn_transforms.exact.thresholding import float32_boundaries


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
    target = np.broadcast_to(hi.astype(np.float32)[None, :], (s.shape[0], hi.size))  # grid values are float32
    x = _boundaries(lambda v: quantize_scaled(fmt, v, s), target, fmt.name, s)
    return x, jumps


def _boundaries(code_fn, targets: np.ndarray, what: str, scale: np.ndarray) -> np.ndarray:
    """`float32_boundaries`, refusing codes no finite input reaches (``ValueError``)."""
    x = float32_boundaries(code_fn, targets)
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{what}: thresholds overflow float32 for scale max {float(np.max(scale))}: the quantizer's "
            "upper codes are unreachable by finite inputs"
        )
    if np.any(np.diff(x, axis=1) < 0):  # pragma: no cover - Q(fl(x/s)) is monotone in x
        raise RuntimeError(f"thresholds for {what} are not monotone")
    return x


def int_quant_thresholds(lo: int, hi: int, scale, zero_point=0.0, rounding_mode: str = "ROUND") -> np.ndarray:
    """Thresholds of an integer ``Quant`` with codes ``lo..hi``: shape ``(C, hi - lo)`` float32, one row
    per element of ``scale`` and ``zero_point`` broadcast together and flattened.

    ``T[c, j]`` is the smallest float32 ``x`` with ``int_quant_code(x, s_c, z_c, lo, hi, mode) >= lo + j + 1``,
    so MultiThreshold over row ``c`` with ``out_bias = lo - z_c`` outputs exactly ``code - z_c``
    for every float32 ``x``. Raises ``ValueError`` for non-positive/non-finite scales, unknown rounding
    modes and thresholds beyond float32's range.
    """
    if hi <= lo:
        raise ValueError(f"a quantizer with a single code ([{lo}, {hi}]) is a constant, not a threshold function")
    s, z = np.broadcast_arrays(np.asarray(scale, dtype=np.float32), np.asarray(zero_point, dtype=np.float32))
    s, z = _check_scale(s)[:, None], z.reshape(-1)[:, None]
    int_quant_code(np.float32(0), 1, 0, lo, hi, rounding_mode)  # unknown modes raise here
    targets = np.broadcast_to(np.arange(lo + 1, hi + 1, dtype=np.float64)[None, :], (s.shape[0], hi - lo))
    return _boundaries(lambda v: int_quant_code(v, s, z, lo, hi, rounding_mode), targets, f"Quant [{lo}, {hi}]", s)


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
