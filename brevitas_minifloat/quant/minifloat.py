"""Brevitas quantizers for arbitrary minifloat formats.

`minifloat_weight_quant` / `minifloat_act_quant` return ordinary Brevitas injector classes built on
Brevitas' own scaled float quantizers (so scaling, per-channel statistics, MSE search, learned and
power-of-two scales, PTQ hooks and ``state_dict`` all behave as users know them), with the rounding
core replaced by `MinifloatTensorQuant`: exact for every format (unsigned, flush-to-zero, any bias,
any special-value convention) and about as fast as torch's native float8 cast.
"""

from __future__ import annotations

from typing import Literal

import torch
from brevitas.core.function_wrapper import CeilSte, Identity
from brevitas.inject.enum import RestrictValueType, ScalingImplType, ScalingPerOutputType
from brevitas.proxy import ActFloatQuantProxyFromInjector, WeightFloatQuantProxyFromInjector
from brevitas.quant.base import MSESymmetricScale
from brevitas.quant.float_base import ScaledFloatActBase, ScaledFloatWeightBase
from torch import nn

from brevitas_minifloat.formats import MinifloatFormat, as_format
from brevitas_minifloat.quant.kernel import MinifloatRoundSte

Scaling = Literal["stats", "mse", "learned"]
SCALINGS = ("stats", "mse", "learned")


def _special_codes(fmt: MinifloatFormat) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """Brevitas' description of specials: the mantissa bit strings of the (positive) top-exponent
    codes that are Inf / NaN, from `MinifloatFormat.special_kind`."""
    m = fmt.mantissa_bits
    top = (2**fmt.exponent_bits - 1) << m
    kinds = [(format(f, f"0{m}b") if m else "", fmt.special_kind(top | f)) for f in range(2**m)]
    inf = tuple(bits for bits, kind in kinds if kind == "inf")
    nan = tuple(bits for bits, kind in kinds if kind == "nan")
    return inf or None, nan or None


class FormatMaxValue(nn.Module):
    """Stands in for Brevitas' ``FloatScaling``: the format's largest finite value, so that stats
    scaling maps the statistic (e.g. abs-max) onto ``max_value``."""

    def __init__(self, minifloat_format: MinifloatFormat, dtype: torch.dtype | None = None, device=None):
        super().__init__()
        self.register_buffer("value", torch.tensor(minifloat_format.max_value, dtype=dtype, device=device), persistent=False)

    def forward(self, *args) -> torch.Tensor:
        return self.value


class MinifloatTensorQuant(nn.Module):
    """Drop-in for Brevitas' ``FloatQuant`` core: ``y = round_fmt(x / scale) * scale``.

    Gradients: straight-through inside the format's range, zero where saturated; the scale
    receives its gradient through the division and multiplication (LSQ-style).
    """

    def __init__(
        self,
        minifloat_format: MinifloatFormat,
        scaling_impl: nn.Module,
        float_scaling_impl: nn.Module,
        input_view_impl: nn.Module = Identity(),
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__()
        self.minifloat_format = minifloat_format
        self.scaling_impl = scaling_impl
        self.float_scaling_impl = float_scaling_impl
        self.input_view_impl = input_view_impl
        fmt = minifloat_format
        kw = {"dtype": dtype, "device": device}
        for name, val in (
            ("zero_point", 0.0),
            ("exponent_bit_width", fmt.exponent_bits),
            ("mantissa_bit_width", fmt.mantissa_bits),
            ("exponent_bias", fmt.bias),
        ):
            self.register_buffer(name, torch.tensor(float(val), **kw), persistent=False)
        self.inf_values, self.nan_values = _special_codes(fmt)
        self.observer_only = False

    def forward(self, x: torch.Tensor):
        x = self.input_view_impl(x)
        scale = self.scaling_impl(x, self.float_scaling_impl())
        if self.observer_only:
            y = x
        else:
            y = MinifloatRoundSte.apply(x / scale, self.minifloat_format) * scale
        return (
            y, scale, self.zero_point, self.exponent_bit_width, self.mantissa_bit_width, self.exponent_bias,
            True, self.inf_values, self.nan_values,
        )


class MinifloatWeightQuantProxy(WeightFloatQuantProxyFromInjector):
    """Weight proxy of our quantizers; its own class so our QONNX export handler can claim it."""

    @property
    def minifloat_format(self) -> MinifloatFormat:
        return self.quant_injector.minifloat_format


class MinifloatActQuantProxy(ActFloatQuantProxyFromInjector):
    """Activation proxy of our quantizers; its own class so our QONNX export handler can claim it."""

    @property
    def minifloat_format(self) -> MinifloatFormat:
        return self.quant_injector.minifloat_format


def _check(scaling: str) -> None:
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")


def _class_name(fmt: MinifloatFormat, kind: str, per_channel: bool, scaling: str, power_of_two: bool) -> str:
    """A readable class name, e.g. ``E2M1WeightPerChannelSTATS``, for reprs and error messages."""
    return f"{fmt.name}{kind}{'PerChannel' if per_channel else 'PerTensor'}{scaling.upper()}{'PoT' if power_of_two else ''}"


def _format_attrs(fmt: MinifloatFormat, power_of_two: bool) -> dict:
    inf_values, nan_values = _special_codes(fmt)
    attrs = dict(
        tensor_quant=MinifloatTensorQuant,
        minifloat_format=fmt,
        float_scaling_impl=FormatMaxValue,
        max_available_float=fmt.max_value,
        bit_width=fmt.bit_width,
        exponent_bit_width=fmt.exponent_bits,
        mantissa_bit_width=fmt.mantissa_bits,
        exponent_bias=fmt.bias,
        signed=fmt.signed,
        saturating=True,
        inf_values=inf_values,
        nan_values=nan_values,
    )
    if power_of_two:
        # Round the scale's log2 up, so the largest statistic never saturates.
        attrs.update(restrict_scaling_type=RestrictValueType.POWER_OF_TWO, restrict_value_float_to_int_impl=CeilSte)
    return attrs


def minifloat_weight_quant(
    fmt: MinifloatFormat | str,
    *,
    per_channel: bool = True,
    scaling: Scaling = "stats",
    power_of_two: bool = False,
) -> type:
    """A Brevitas weight quantizer (for ``weight_quant=``) on the minifloat grid of ``fmt``.

    ``scaling``: ``"stats"`` abs-max / max_value recomputed from the weights, ``"mse"`` Brevitas'
    MSE scale search (then a learnable parameter), ``"learned"`` a parameter initialised from
    abs-max. ``power_of_two`` restricts scales to powers of two (rounded up).
    """
    fmt = as_format(fmt)
    _check(scaling)
    bases = (MSESymmetricScale, ScaledFloatWeightBase) if scaling == "mse" else (ScaledFloatWeightBase,)
    attrs = _format_attrs(fmt, power_of_two)
    attrs.update(
        proxy_class=MinifloatWeightQuantProxy,
        scaling_per_output_type=ScalingPerOutputType.CHANNEL if per_channel else ScalingPerOutputType.TENSOR,
    )
    if scaling == "learned":
        attrs["scaling_impl_type"] = ScalingImplType.PARAMETER_FROM_STATS
    return type(_class_name(fmt, "Weight", per_channel, scaling, power_of_two), bases, attrs)


def minifloat_act_quant(
    fmt: MinifloatFormat | str,
    *,
    scaling: Scaling = "stats",
    per_channel: bool = False,
    channels: int | None = None,
    ndim: int = 4,
    power_of_two: bool = False,
    collect_stats_steps: int = 30,
) -> type:
    """A Brevitas activation quantizer (for ``input_quant=``, ``act_quant=``) on ``fmt``'s grid.

    ``scaling``: ``"stats"`` a running abs-max statistic (fixed in eval mode), ``"mse"`` MSE
    search over the first ``collect_stats_steps`` batches, ``"learned"`` a parameter initialised
    from statistics of the first ``collect_stats_steps`` batches. Per-channel scales need
    ``channels`` (the size of dim 1) and the input rank ``ndim``.
    """
    fmt = as_format(fmt)
    _check(scaling)
    bases = (MSESymmetricScale, ScaledFloatActBase) if scaling == "mse" else (ScaledFloatActBase,)
    attrs = _format_attrs(fmt, power_of_two)
    attrs.update(
        proxy_class=MinifloatActQuantProxy,
        scaling_stats_op="max",
        collect_stats_steps=collect_stats_steps,
        scaling_impl_type=ScalingImplType.STATS if scaling == "stats" else ScalingImplType.PARAMETER_FROM_STATS,
    )
    if per_channel:
        if not channels or ndim < 2:
            raise ValueError("per-channel activation scales need channels=<size of dim 1> and ndim >= 2")
        attrs.update(
            scaling_per_output_type=ScalingPerOutputType.CHANNEL,
            per_channel_broadcastable_shape=(1, channels) + (1,) * (ndim - 2),
            scaling_stats_permute_dims=(1, 0) + tuple(range(2, ndim)),
        )
    else:
        attrs["scaling_per_output_type"] = ScalingPerOutputType.TENSOR
    return type(_class_name(fmt, "Act", per_channel, scaling, power_of_two), bases, attrs)
