"""What a QONNX integer ``Quant`` node computes, in one place (the exact reference and the lowering
both read it from here).

``Quant(x, scale, zeropt, bitwidth; signed, narrow, rounding_mode)`` gives the code
``clip(R(fl(fl(x / scale) + zeropt)), lo, hi)`` and the value ``(code - zeropt) * scale``, all in
float32 (qonnx 1.0's ``int_quant``, Brevitas' ``IntQuant``; clamping before or after rounding is the
same since the bounds are integers). ``R`` is one of qonnx's rounding modes, each monotone
non-decreasing, so the code is a step function of ``x``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["ROUNDING_MODES", "int_quant_code", "int_quant_range"]

#: qonnx's rounding modes (``resolve_rounding_mode``), upper case, as numpy functions on float32.
ROUNDING_MODES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "ROUND": np.round,  # numpy rounds half to even, as torch.round
    "HALF_EVEN": np.round,
    "CEIL": np.ceil,
    "FLOOR": np.floor,
    "DOWN": np.trunc,
    "UP": lambda v: np.sign(v) * np.ceil(np.abs(v)),
    "HALF_UP": lambda v: np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)),
    "HALF_DOWN": lambda v: np.sign(v) * np.ceil(np.abs(v) - np.float32(0.5)),
}


def int_quant_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """``(lo, hi)`` codes of a ``bits``-bit Quant (qonnx's ``min_int`` / ``max_int``)."""
    if signed:
        return -(2 ** (bits - 1)) + int(bool(narrow)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1 - int(bool(narrow))


def int_quant_code(x: np.ndarray, scale, zero_point, lo: int, hi: int, rounding_mode: str = "ROUND") -> np.ndarray:
    """The code ``clip(R(fl(fl(x / scale) + zero_point)), lo, hi)`` on float32 ``x`` (broadcasting).

    Raises ``ValueError`` for a rounding mode qonnx does not define."""
    try:
        rnd = ROUNDING_MODES[str(rounding_mode).upper()]
    except KeyError:
        raise ValueError(f"unknown rounding mode {rounding_mode!r} (qonnx defines {sorted(ROUNDING_MODES)})") from None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # x / s may overflow: clip saturates it
        y = np.asarray(x, dtype=np.float32) / np.asarray(scale, dtype=np.float32) + np.asarray(zero_point, dtype=np.float32)
        return np.clip(rnd(y), lo, hi)
