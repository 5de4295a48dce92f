"""`QuantSpec`: one number format for PTQ and the DSE, integer (``INTn``) or minifloat (``ExMy``).

A spec knows which Brevitas quantizer implements it for weights and for activations, the grid its
weights lie on (in units of the per-channel scale, used by GPTQ and learned rounding), and its
unsigned variant of the same bit width (used after ReLU, where the sign bit would be wasted), by
the one rule of `brevitas_minifloat.numformat.unsigned`: ``INTn -> UINTn``, ``ExMy -> ExM(y+1)_U``.
Names are parsed by `brevitas_minifloat.numformat.parse_format`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from brevitas_minifloat import numformat
from brevitas_minifloat.formats import MinifloatFormat


@dataclass(frozen=True)
class QuantSpec:
    """A number format: ``kind`` ``"int"`` (``bits``, ``signed``) or ``"minifloat"`` (``fmt``)."""

    kind: str
    bits: int
    signed: bool = True
    fmt: MinifloatFormat | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def parse(cls, spec: str | MinifloatFormat | QuantSpec) -> QuantSpec:
        """``"INT4"``, ``"UINT8"``, a minifloat name (``"E2M3"``, ``"E3M2_U"``, ``"float8_e4m3fn"``)
        or a `MinifloatFormat`. Integers are 2..16 bits; raises ``ValueError`` otherwise."""
        if isinstance(spec, QuantSpec):
            return spec
        if not isinstance(spec, (str, MinifloatFormat, numformat.IntegerFormat)):
            raise ValueError(f"a format is 'INTn', 'UINTn', a minifloat name or a MinifloatFormat, got {spec!r}")
        integer = isinstance(spec, numformat.IntegerFormat) or numformat.is_integer_name(str(spec))
        try:
            fmt = numformat.parse_format(spec)  # a ValueError naming the accepted grammar
        except ValueError:
            if not integer:
                raise
            fmt = None
        if integer:
            if fmt is None or not 2 <= fmt.bits <= 16:  # what Brevitas' integer quantizers take
                raise ValueError(f"integer formats need 2..16 bits, got {spec!r}")
            return cls("int", fmt.bits, fmt.signed)
        return cls("minifloat", fmt.bit_width, fmt.signed, fmt)

    @property
    def name(self) -> str:
        if self.kind == "int":
            return f"{'' if self.signed else 'U'}INT{self.bits}"
        return self.fmt.name

    def __str__(self) -> str:
        return self.name

    @property
    def is_minifloat(self) -> bool:
        return self.kind == "minifloat"

    def unsigned(self) -> QuantSpec:
        """The unsigned format of the same bit width (itself if already unsigned); see module doc."""
        return QuantSpec.parse(numformat.unsigned(self.number_format))

    @property
    def number_format(self) -> numformat.NumberFormat:
        """The `MinifloatFormat` or `IntegerFormat` this spec quantizes to."""
        return self.fmt if self.kind == "minifloat" else numformat.IntegerFormat(self.bits, self.signed)

    # ------------------------------------------------------------------ grids
    @cached_property
    def weight_grid(self) -> np.ndarray:
        """Sorted values a weight takes in units of its scale (float64): the narrow-range signed
        integers ``-(2^(n-1)-1)..2^(n-1)-1`` of Brevitas' ``Int8WeightPerChannelFloat`` family, or
        every finite value of the minifloat format."""
        if self.kind == "int":
            if not self.signed:
                raise ValueError("weights need a signed format")
            top = 2 ** (self.bits - 1) - 1
            return np.arange(-top, top + 1, dtype=np.float64)
        return self.fmt.values()

    # ------------------------------------------------------------------ Brevitas quantizers
    def weight_quant(self, *, mse: bool = False) -> type:
        """Per-output-channel weight quantizer whose scale is a parameter (abs-max init, or MSE search
        with ``mse=True``), so that it stays fixed once initialised: GPTQ and learned rounding place
        weights on the grid of that scale."""
        if not self.signed:
            raise ValueError(f"weights need a signed format, got {self.name}")
        if self.kind == "int":
            from brevitas.inject.enum import ScalingImplType
            from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerChannelFloatMSE

            if mse:
                return Int8WeightPerChannelFloatMSE.let(bit_width=self.bits)
            return Int8WeightPerChannelFloat.let(
                bit_width=self.bits, scaling_impl_type=ScalingImplType.PARAMETER_FROM_STATS
            )
        from brevitas_minifloat.quant.minifloat import minifloat_weight_quant

        return minifloat_weight_quant(self.fmt, per_channel=True, scaling="mse" if mse else "learned")

    def act_quant(self, *, mse: bool = False) -> type:
        """Per-tensor activation quantizer calibrated from statistics (Brevitas' percentile for
        integers, abs-max for minifloats) or by MSE search with ``mse=True``."""
        if self.kind == "int":
            from brevitas.quant import (
                Int8ActPerTensorFloat,
                Int8ActPerTensorFloatMSE,
                Uint8ActPerTensorFloat,
                Uint8ActPerTensorFloatMSE,
            )

            if self.signed:
                base = Int8ActPerTensorFloatMSE if mse else Int8ActPerTensorFloat
            else:
                base = Uint8ActPerTensorFloatMSE if mse else Uint8ActPerTensorFloat
            return base.let(bit_width=self.bits)
        from brevitas_minifloat.quant.minifloat import minifloat_act_quant

        return minifloat_act_quant(self.fmt, scaling="mse" if mse else "stats")


def as_spec(spec: str | MinifloatFormat | QuantSpec) -> QuantSpec:
    return QuantSpec.parse(spec)


def formats_for_bits(bits: int, kinds: tuple[str, ...] = ("int", "minifloat"), *, min_exponent: int = 1,
                     max_exponent: int | None = None) -> list[str]:
    """Every signed format of ``bits`` bits: ``INT<bits>`` and each split ``E<e>M<bits-1-e>``
    (``min_exponent <= e <= max_exponent``, ``M >= 0``), integer first, then by exponent width: the
    names of `brevitas_minifloat.numformat.formats_of_width`."""
    fmts = numformat.formats_of_width(bits, kinds, min_exponent=min_exponent, max_exponent=max_exponent)
    return [f.name for f in fmts]
