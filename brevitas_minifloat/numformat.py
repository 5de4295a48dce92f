"""One number-format vocabulary: a format is a `MinifloatFormat` or an :class:`IntegerFormat`.

Everything that names formats (the zoo, PTQ specs, the hardware cost models, the DSE) goes through
this module, so there is one parser (:func:`parse_format`: ``"INT4"``, ``"UINT8"``, ``"E2M1_U"``,
``"float8_e4m3fn"``), one unsigned rule (:func:`unsigned`) and one list of the formats of a width
(:func:`formats_of_width`). Which minifloat codes are NaN/Inf is decided by
`MinifloatFormat.special_kind` alone.

The unsigned rule keeps the bit width: the sign bit goes to the mantissa, ``INTn -> UINTn`` and
``ExMy -> ExM(y+1)_U`` (the same dynamic range with twice the resolution, as ``UINTn`` has twice the
resolution of ``INTn`` on the positive side). It is what a non-negative activation (an image, a ReLU
output) gets; docs/design.md, "Semantics", says why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from brevitas_minifloat.formats import MinifloatFormat

__all__ = [
    "FORMAT_KINDS",
    "IntegerFormat",
    "NumberFormat",
    "formats_of_width",
    "is_integer_name",
    "parse_format",
    "signed",
    "unsigned",
]

_INT_RE = re.compile(r"^(?P<u>U?)INT(?P<n>\d+)$")
FORMAT_KINDS = ("int", "minifloat")


@dataclass(frozen=True)
class IntegerFormat:
    """An integer format: ``bits``-bit two's complement (``signed``) or unsigned binary.

    ``IntegerFormat.parse("INT4")``, ``IntegerFormat.parse("UINT8")``; the name round-trips.
    """

    bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or self.bits < 1:
            raise ValueError(f"an integer format needs bits >= 1, got {self.bits!r}")
        if self.signed and self.bits < 2:
            raise ValueError("a signed integer format needs at least 2 bits (INT1 would be {-1, 0})")
        if self.bits > 32:
            raise ValueError(f"integer formats wider than 32 bits are not supported, got {self.bits}")

    @classmethod
    def parse(cls, text: str | IntegerFormat) -> IntegerFormat:
        if isinstance(text, IntegerFormat):
            return text
        match = _INT_RE.match(str(text).strip().upper())
        if match is None:
            raise ValueError(f"cannot parse integer format {text!r}: expected e.g. 'INT4' or 'UINT8'")
        return cls(int(match.group("n")), signed=not match.group("u"))

    @property
    def name(self) -> str:
        return f"{'' if self.signed else 'U'}INT{self.bits}"

    def __str__(self) -> str:
        return self.name

    @property
    def bit_width(self) -> int:
        return self.bits

    @property
    def integer_min(self) -> int:
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def integer_max(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1


NumberFormat = MinifloatFormat | IntegerFormat


def is_integer_name(text: str) -> bool:
    """True for ``INTn`` / ``UINTn`` names (any case), whether or not ``n`` is a valid width."""
    return _INT_RE.match(text.strip().upper()) is not None


def parse_format(fmt: str | NumberFormat) -> NumberFormat:
    """A `MinifloatFormat` or :class:`IntegerFormat` as is, or parsed from its name: ``"INT4"``,
    ``"UINT8"``, ``"E4M3"``, ``"E2M1_U_NOSUB"``, ``"float8_e4m3fn"``. Raises ``ValueError``."""
    if isinstance(fmt, (MinifloatFormat, IntegerFormat)):
        return fmt
    if not isinstance(fmt, str):
        raise ValueError(f"a number format is a MinifloatFormat, an IntegerFormat or a name, got {fmt!r}")
    if is_integer_name(fmt):
        return IntegerFormat.parse(fmt)
    try:
        return MinifloatFormat.parse(fmt)
    except ValueError as err:
        raise ValueError(f"cannot parse number format {fmt!r}: not 'INT<n>'/'UINT<n>' and {err}") from None


def unsigned(fmt: str | NumberFormat) -> NumberFormat:
    """The unsigned format of the same bit width (``fmt`` itself if already unsigned): ``INTn -> UINTn``,
    ``ExMy -> ExM(y+1)_U`` with the same bias (unless default), subnormal setting and specials
    (``none`` where the specials convention has no unsigned form, e.g. ``fnuz``, whose NaN is -0)."""
    fmt = parse_format(fmt)
    if not fmt.signed:
        return fmt
    if isinstance(fmt, IntegerFormat):
        return IntegerFormat(fmt.bits, signed=False)
    bias = None if fmt.bias == fmt.default_bias else fmt.bias
    for specials in dict.fromkeys((fmt.specials, "none")):
        try:
            return MinifloatFormat(fmt.exponent_bits, fmt.mantissa_bits + 1, bias=bias, signed=False,
                                   subnormals=fmt.subnormals, specials=specials)
        except ValueError:
            continue
    raise ValueError(f"{fmt.name} has no unsigned variant of the same width")  # pragma: no cover


def signed(fmt: str | NumberFormat) -> NumberFormat:
    """The inverse of :func:`unsigned`: the signed format of the same bit width (``UINTn -> INTn``,
    ``ExMy_U -> ExM(y-1)``; ``fmt`` itself if already signed). ``ValueError`` for ``ExM0_U``."""
    fmt = parse_format(fmt)
    if fmt.signed:
        return fmt
    if isinstance(fmt, IntegerFormat):
        return IntegerFormat(fmt.bits, signed=True)
    if fmt.mantissa_bits == 0:
        raise ValueError(f"{fmt.name} has no signed variant of the same width (it would need M = -1)")
    bias = None if fmt.bias == fmt.default_bias else fmt.bias
    return MinifloatFormat(fmt.exponent_bits, fmt.mantissa_bits - 1, bias=bias, signed=True,
                           subnormals=fmt.subnormals, specials=fmt.specials)


def formats_of_width(
    bits: int, kinds: Sequence[str] = FORMAT_KINDS, *, min_exponent: int = 1, max_exponent: int | None = None
) -> list[NumberFormat]:
    """Every signed format of ``bits`` bits: ``INT<bits>``, then each split ``E<e>M<bits-1-e>``
    (``min_exponent <= e <= max_exponent``, default bias, subnormals on, all codes finite) by
    exponent width."""
    unknown = set(kinds) - set(FORMAT_KINDS)
    if unknown:
        raise ValueError(f"unknown format kinds {sorted(unknown)}; use 'int' and/or 'minifloat'")
    out: list[NumberFormat] = []
    if "int" in kinds:
        out.append(IntegerFormat(bits))
    if "minifloat" in kinds:
        top = bits - 1 if max_exponent is None else min(max_exponent, bits - 1)
        out.extend(MinifloatFormat(e, bits - 1 - e) for e in range(max(1, min_exponent), top + 1))
    return out
