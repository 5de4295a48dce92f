"""Fast, exact minifloat rounding of torch tensors (scale 1) and its straight-through autograd.

Semantics (docs/design.md, "Semantics"): round the significand within the binade of x to nearest, ties to
even; saturate to +-max_value; NaN stays NaN; with subnormals off, |x| below min_normal becomes the
nearest of {0, min_normal} with ties to 0; unsigned formats clamp negatives to 0.

float32 uses magic-number rounding driven by the IEEE exponent bits (about as fast as torch's native
float8 cast); float64 and float16/bfloat16 use an equivalent frexp formulation in float64.
"""

from __future__ import annotations

import torch

from brevitas_minifloat.formats import MinifloatFormat


def _round_float32(a: torch.Tensor, fmt: MinifloatFormat) -> torch.Tensor:
    """Round non-negative float32 ``a <= max_value`` (NaN allowed) onto the format's grid, in place.

    Magic-number rounding: with C = 2^(e + 23 - M), where e is the binade of ``a`` (pinned to the
    smallest normal binade below it), float32's own round-half-to-even in ``a + C`` snaps ``a`` to a
    multiple of the format's ulp 2^(e - M); subtracting C is then exact. The binade is read straight
    from the exponent bits, so there is no log2/exp2 and only a handful of elementwise passes.
    """
    emin_bits = (127 + 1 - fmt.bias) << 23
    c = a.view(torch.int32).bitwise_and(0x7F800000).clamp_(min=emin_bits)
    c = c.add_((23 - fmt.mantissa_bits) << 23).view(torch.float32)
    rounded = (a + c).sub_(c)
    if not fmt.subnormals:
        rounded = torch.where(a < fmt.min_normal, _flush(a, fmt), rounded)
    return rounded


def _flush(a: torch.Tensor, fmt: MinifloatFormat) -> torch.Tensor:
    """Subnormals off: the nearest of {0, min_normal}, ties to 0."""
    return torch.where(a > 0.5 * fmt.min_normal, fmt.min_normal, 0.0).to(a.dtype)


def _round_float64(a: torch.Tensor, fmt: MinifloatFormat) -> torch.Tensor:
    """Same as `_round_float32` for float64 ``a`` via frexp: exact for every finite input."""
    _, exp = torch.frexp(a)
    binade = torch.clamp(exp - 1, min=1 - fmt.bias)  # floor(log2 a), subnormal binade pinned
    ulp = torch.ldexp(torch.ones_like(a), binade - fmt.mantissa_bits)
    rounded = torch.round(a / ulp) * ulp  # torch.round is round-half-to-even
    if not fmt.subnormals:
        rounded = torch.where(a < fmt.min_normal, _flush(a, fmt), rounded)
    return rounded


def minifloat_round(x: torch.Tensor, fmt: MinifloatFormat) -> torch.Tensor:
    """Round ``x`` onto ``fmt`` (scale 1). Not differentiable: see `MinifloatRoundSte`."""
    if not torch.is_floating_point(x):
        raise TypeError(f"minifloat rounding needs a floating-point tensor, got {x.dtype}")
    if not fmt.signed:
        x = torch.clamp(x, min=0.0)  # NaN propagates through clamp
    a = x.abs().clamp_(max=fmt.max_value)  # saturate; NaN stays NaN
    if x.dtype == torch.float32:
        q = _round_float32(a, fmt)
    else:
        q = _round_float64(a.to(torch.float64), fmt).to(x.dtype)
    return q.copysign_(x) if fmt.signed else q


class MinifloatRoundSte(torch.autograd.Function):
    """Minifloat rounding with a straight-through gradient inside the range and zero where saturated
    (as Brevitas does: STE through rounding, no STE through the clamp)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, fmt: MinifloatFormat) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.fmt = fmt
        return minifloat_round(x, fmt)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        fmt = ctx.fmt
        saturated = x.abs() > fmt.max_value if fmt.signed else (x < 0) | (x > fmt.max_value)
        return grad.masked_fill(saturated, 0.0), None


def minifloat_fake_quant(x: torch.Tensor, fmt: MinifloatFormat, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """``scale * round(x / scale)`` on the minifloat grid, differentiable in x and scale."""
    return MinifloatRoundSte.apply(x / scale, fmt) * scale
