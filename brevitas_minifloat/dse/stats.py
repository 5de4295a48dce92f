"""Statistics of accuracies measured on a finite test set: Wilson score intervals, McNemar's exact
paired test, and a compact encoding of per-image correctness so results can be compared pairwise
after the fact (the same test images for every point)."""

from __future__ import annotations

import base64
import math
from fractions import Fraction

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``correct / n`` (95 % by default): unlike the
    normal approximation it stays inside [0, 1] and keeps its coverage near 0 and 1."""
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n > 0, got correct={correct}, n={n}")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if correct == 0 else max(0.0, centre - half)  # exact bounds at 0 and n (no rounding residue)
    hi = 1.0 if correct == n else min(1.0, centre + half)
    return lo, hi


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> dict:
    """McNemar's exact test of two classifiers on the same images: under "equally accurate" the
    images only one of them gets right split 50/50, so the two-sided p-value is the binomial tail of
    the smaller discordant count. Returns ``{"a_only", "b_only", "p"}``."""
    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same images: shapes {a.shape} and {b.shape}")
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    n, k = a_only + b_only, min(a_only, b_only)
    tail = Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2 ** n) if n else Fraction(1)
    return {"a_only": a_only, "b_only": b_only, "p": float(min(Fraction(1), 2 * tail))}


def pack_correct(correct: np.ndarray) -> str:
    """Per-image correctness (bool vector) as base64 of its packed bits (10,000 images: 1,668 chars)."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode("ascii")


def unpack_correct(text: str, n: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))
    if len(bits) < n:
        raise ValueError(f"packed correctness holds {len(bits)} images, expected {n}")
    return bits[:n].astype(bool)
