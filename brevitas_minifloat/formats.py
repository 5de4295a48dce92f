"""`MinifloatFormat`: the single source of truth for a minifloat format.

A format is a handful of traits (sign, exponent bits E, mantissa bits M, bias, subnormals on/off,
special-value convention); the grid, range, integer embedding and name are all derived from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

SPECIALS = ("none", "ieee", "fn", "fnuz")
"""Special-value conventions:
- ``none``: every code is finite (the all-ones exponent is an ordinary binade);
- ``ieee``: the all-ones exponent is reserved for Inf/NaN (OCP E5M2);
- ``fn``: only the all-ones code S.1..1.1..1 is NaN (OCP E4M3);
- ``fnuz``: the single NaN sits at the negative-zero code, default bias 2^(E-1).
``ocp`` is accepted as a convenience and resolves to what the OCP spec says for the format."""

_OCP_SPECIALS = {(4, 3): "fn", (5, 2): "ieee", (3, 2): "none", (2, 3): "none", (2, 1): "none"}

# Values must be exact float32 normals so that torch fake-quant (float32) is exact.
_FLOAT32_MIN_EXP, _FLOAT32_MAX_EXP = -126, 127

# ml_dtypes names -> (E, M, specials, bias or None). ml_dtypes' "fn" suffix on FP6/FP4 means
# "finite" (our "none"); on E4M3 it means "NaN at the all-ones code" (our "fn").
_ML_DTYPES_NAMES = {
    "float8_e4m3fn": (4, 3, "fn", None),
    "float8_e5m2": (5, 2, "ieee", None),
    "float8_e4m3": (4, 3, "ieee", None),
    "float8_e3m4": (3, 4, "ieee", None),
    "float8_e4m3fnuz": (4, 3, "fnuz", None),
    "float8_e5m2fnuz": (5, 2, "fnuz", None),
    "float8_e4m3b11fnuz": (4, 3, "fnuz", 11),
    "float6_e3m2fn": (3, 2, "none", None),
    "float6_e2m3fn": (2, 3, "none", None),
    "float4_e2m1fn": (2, 1, "none", None),
}

_NAME_RE = re.compile(r"^E(?P<e>\d+)M(?P<m>\d+)(?P<opts>(_[A-Z0-9\-]+)*)$")


@dataclass(frozen=True)
class MinifloatFormat:
    """A minifloat format; see docs/design.md, "Semantics" for the semantics.

    ``bias=None`` means ``2^(E-1)-1`` (``2^(E-1)`` for ``fnuz``). Invalid combinations raise
    ``ValueError`` saying what is wrong.
    """

    exponent_bits: int
    mantissa_bits: int
    bias: int | None = field(default=None, kw_only=True)
    signed: bool = field(default=True, kw_only=True)
    subnormals: bool = field(default=True, kw_only=True)
    specials: str = field(default="none", kw_only=True)

    def __post_init__(self) -> None:
        e, m = self.exponent_bits, self.mantissa_bits
        for name, v in (("exponent_bits", e), ("mantissa_bits", m)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {v!r}")
        if e < 1:
            raise ValueError(f"exponent_bits must be >= 1, got {e}")
        if m < 0:
            raise ValueError(f"mantissa_bits must be >= 0, got {m}")
        if int(self.signed) + e + m > 16:
            raise ValueError(f"formats wider than 16 bits are not minifloats: {int(self.signed) + e + m} bits")
        specials = str(self.specials).lower()
        if specials == "ocp":
            if not self.signed or (e, m) not in _OCP_SPECIALS:
                raise ValueError(
                    f"specials='ocp' is defined only for signed E4M3, E5M2, E3M2, E2M3, E2M1, not E{e}M{m}"
                    + ("" if self.signed else " unsigned")
                )
            specials = _OCP_SPECIALS[(e, m)]
        if specials not in SPECIALS:
            raise ValueError(f"unknown specials convention {self.specials!r}; choose one of {SPECIALS + ('ocp',)}")
        if specials == "fnuz" and not self.signed:
            raise ValueError("specials='fnuz' puts NaN at the negative-zero code, so it needs a signed format")
        object.__setattr__(self, "specials", specials)
        object.__setattr__(self, "exponent_bits", int(e))
        object.__setattr__(self, "mantissa_bits", int(m))
        object.__setattr__(self, "signed", bool(self.signed))
        object.__setattr__(self, "subnormals", bool(self.subnormals))
        if self.bias is None:
            object.__setattr__(self, "bias", 2 ** (e - 1) if specials == "fnuz" else 2 ** (e - 1) - 1)
        elif isinstance(self.bias, bool) or not isinstance(self.bias, (int, np.integer)):
            raise ValueError(f"bias must be an integer or None, got {self.bias!r}")
        object.__setattr__(self, "bias", int(self.bias))
        if self._top_exponent_field < 1 and not self.subnormals:
            raise ValueError(f"E{e}M{m} with specials={specials!r} has no normal binade and subnormals are off")
        if self.max_value <= 0:
            raise ValueError(f"E{e}M{m} with specials={specials!r} leaves no finite non-zero value")
        if 1 - self.bias - m < _FLOAT32_MIN_EXP:
            raise ValueError(
                f"bias {self.bias} is too large for E{e}M{m}: the smallest value 2^{1 - self.bias - m} "
                f"underflows float32 normals (2^{_FLOAT32_MIN_EXP})"
            )
        if self._top_exponent_field - self.bias > _FLOAT32_MAX_EXP - 1:
            raise ValueError(
                f"bias {self.bias} is too small for E{e}M{m}: the largest value 2^{self._top_exponent_field - self.bias} "
                "overflows float32"
            )

    # ----------------------------------------------------------------- construction helpers
    @classmethod
    def parse(cls, text: str | MinifloatFormat) -> MinifloatFormat:
        """Parse a format name, case-insensitively.

        Grammar: ``E<e>M<m>`` followed by ``_``-separated options in any order:
        ``U`` (unsigned), ``NOSUB`` (subnormals off, flush to zero), ``B<int>`` (bias),
        ``NONE`` / ``IEEE`` / ``FN`` / ``FNUZ`` / ``OCP`` (specials). ml_dtypes names such as
        ``float8_e4m3fn`` or ``float4_e2m1fn`` are accepted as well. ``parse(fmt.name) == fmt``.
        """
        if isinstance(text, MinifloatFormat):
            return text
        if not isinstance(text, str):
            raise ValueError(f"a minifloat format is a MinifloatFormat or a name like 'E4M3', got {text!r}")
        key = text.strip().lower()
        if key in _ML_DTYPES_NAMES:
            e, m, specials, bias = _ML_DTYPES_NAMES[key]
            return cls(e, m, bias=bias, specials=specials)
        match = _NAME_RE.match(key.upper())
        if match is None:
            raise ValueError(
                f"cannot parse minifloat format {text!r}: expected e.g. 'E2M1', 'E4M3_FN', 'E3M2_U_NOSUB_B2' "
                "or an ml_dtypes name like 'float8_e4m3fn'"
            )
        kwargs: dict = {}
        for opt in filter(None, match.group("opts").split("_")):
            if opt == "U":
                kwargs["signed"] = False
            elif opt in ("NOSUB", "FTZ"):
                kwargs["subnormals"] = False
            elif opt.lower() in SPECIALS + ("ocp",):
                kwargs["specials"] = opt.lower()
            elif re.fullmatch(r"B-?\d+", opt):
                kwargs["bias"] = int(opt[1:])
            else:
                raise ValueError(f"cannot parse minifloat format {text!r}: unknown option {opt!r}")
        return cls(int(match.group("e")), int(match.group("m")), **kwargs)

    # ----------------------------------------------------------------- derived traits
    @property
    def default_bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) if self.specials == "fnuz" else 2 ** (self.exponent_bits - 1) - 1

    @property
    def name(self) -> str:
        """Canonical name; ``MinifloatFormat.parse(name)`` gives back an equal format."""
        parts = [f"E{self.exponent_bits}M{self.mantissa_bits}"]
        if not self.signed:
            parts.append("U")
        if not self.subnormals:
            parts.append("NOSUB")
        if self.specials != "none":
            parts.append(self.specials.upper())
        if self.bias != self.default_bias:
            parts.append(f"B{self.bias}")
        return "_".join(parts)

    def __str__(self) -> str:
        return self.name

    @property
    def bit_width(self) -> int:
        return int(self.signed) + self.exponent_bits + self.mantissa_bits

    @property
    def _top_exponent_field(self) -> int:
        """Largest exponent field that still holds finite values."""
        top = 2**self.exponent_bits - 1
        return top - 1 if self.specials == "ieee" else top

    @property
    def _max_mantissa_at_top(self) -> int:
        """Largest mantissa field usable in the top binade (``fn`` loses the all-ones code to NaN)."""
        if self.specials == "fn":
            return 2**self.mantissa_bits - 2
        return 2**self.mantissa_bits - 1

    @property
    def has_nan(self) -> bool:
        return self.specials != "none"

    @property
    def has_inf(self) -> bool:
        return self.specials == "ieee"

    def special_kind(self, code: int) -> str | None:
        """``"inf"``, ``"nan"`` or ``None`` (finite) for a code laid out sign | exponent | mantissa.

        The one place that decides the specials: ``ieee`` gives the all-ones exponent to Inf
        (mantissa 0) and NaN, ``fn`` only the all-ones code of that binade to NaN, ``fnuz`` the
        negative-zero code to NaN, ``none`` nothing (every code is finite)."""
        e_bits, m_bits = self.exponent_bits, self.mantissa_bits
        if not 0 <= code < 2**self.bit_width:
            raise ValueError(f"code {code} does not fit the {self.bit_width} bits of {self.name}")
        sign = (code >> (e_bits + m_bits)) & 1 if self.signed else 0
        exponent, mantissa = (code >> m_bits) & (2**e_bits - 1), code & (2**m_bits - 1)
        top = exponent == 2**e_bits - 1
        if self.specials == "ieee" and top:
            return "inf" if mantissa == 0 else "nan"
        if self.specials == "fn" and top and mantissa == 2**m_bits - 1:
            return "nan"
        if self.specials == "fnuz" and sign == 1 and exponent == 0 and mantissa == 0:
            return "nan"
        return None

    @property
    def min_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value: ``2^(1-bias-M)``, or ``min_normal`` when subnormals are off."""
        return 2.0 ** (1 - self.bias - self.mantissa_bits) if self.subnormals else self.min_normal

    @cached_property
    def max_value(self) -> float:
        top, mant = self._top_exponent_field, self._max_mantissa_at_top
        if mant < 0:  # fn with M == 0: the top binade is only NaN
            top, mant = top - 1, 0
        if top == 0:  # only subnormals remain
            return float(mant * 2.0 ** (1 - self.bias - self.mantissa_bits))
        return float((1 + mant / 2**self.mantissa_bits) * 2.0 ** (top - self.bias))

    @cached_property
    def _positive_values(self) -> np.ndarray:
        m = self.mantissa_bits
        mant = np.arange(2**m, dtype=np.float64)
        vals = [np.zeros(1)]
        if self.subnormals:
            vals.append(mant[1:] * 2.0 ** (1 - self.bias - m))
        for e in range(1, 2**self.exponent_bits):
            vals.append((1 + mant / 2**m) * 2.0 ** (e - self.bias))
        v = np.unique(np.concatenate(vals))
        return v[v <= self.max_value]

    def values(self) -> np.ndarray:
        """Every finite representable value, sorted ascending (float64; zero appears once)."""
        pos = self._positive_values
        if not self.signed:
            return pos.copy()
        return np.concatenate([-pos[:0:-1], pos])

    # ----------------------------------------------------------------- integer embedding
    @property
    def delta(self) -> float:
        """Every value is an integer multiple of ``delta = 2^(1-bias-M)`` (docs/design.md, "Semantics")."""
        return 2.0 ** (1 - self.bias - self.mantissa_bits)

    @property
    def integer_max(self) -> int:
        return int(round(self.max_value / self.delta))

    @property
    def integer_min(self) -> int:
        return -self.integer_max if self.signed else 0

    def integer_values(self) -> np.ndarray:
        """The embedded integers ``values() / delta``, sorted: int64, or Python ints (dtype object)
        when they do not fit int64 (e.g. E7M0 spans +-2^126)."""
        if self.integer_max < 2**62:
            return np.rint(self.values() / self.delta).astype(np.int64)
        # values and delta are powers-of-two multiples, so the float64 quotient is an exact integer
        return np.array([int(v / self.delta) for v in self.values()], dtype=object)

    @property
    def integer_bit_width(self) -> int:
        """Bits of the smallest two's complement (signed) or unsigned integer holding the embedding."""
        k = self.integer_max
        return k.bit_length() + 1 if self.signed else max(k.bit_length(), 1)

    @property
    def integer_datatype(self) -> str:
        """The qonnx/FINN ``DataType`` name of the embedding, e.g. ``INT5`` for E2M1."""
        return f"{'INT' if self.signed else 'UINT'}{self.integer_bit_width}"

    # ----------------------------------------------------------------- quantization
    def quantize(self, x):
        """Round ``x`` (torch tensor, scale 1) onto this format; see ``quant.kernel``."""
        from brevitas_minifloat.quant.kernel import minifloat_round

        return minifloat_round(x, self)

    def ml_dtypes_name(self) -> str | None:
        """The ml_dtypes type with exactly this format, if there is one."""
        if not self.signed or not self.subnormals:
            return None
        for name, (e, m, specials, bias) in _ML_DTYPES_NAMES.items():
            if (e, m, specials) == (self.exponent_bits, self.mantissa_bits, self.specials) and self.bias == (
                bias if bias is not None else self.default_bias
            ):
                return name
        return None


def as_format(fmt: str | MinifloatFormat) -> MinifloatFormat:
    """Accept a `MinifloatFormat` or a name; everything public takes either."""
    return MinifloatFormat.parse(fmt)
