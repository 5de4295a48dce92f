"""The design space: weight format x activation format x PTQ technique combination."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from brevitas_minifloat.ptq.core import DEFAULT_TECHNIQUES, check_techniques
from brevitas_minifloat.ptq.spec import as_spec, formats_for_bits


def technique_label(techniques: tuple[str, ...]) -> str:
    return "+".join(techniques) if techniques else "none"


@dataclass(frozen=True)
class Point:
    """One design point. ``weights``/``activations`` are format names (``"INT4"``, ``"E2M1"``); the
    activation format is the signed one, non-negative activations use its unsigned variant."""

    weights: str
    activations: str
    techniques: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"W={self.weights} A={self.activations} T={technique_label(self.techniques)}"

    @property
    def hw_key(self) -> str:
        """Hardware depends on the formats only (the techniques change weight values, not widths)."""
        return f"W={self.weights} A={self.activations}"

    def to_dict(self) -> dict:
        return {"weights": self.weights, "activations": self.activations, "techniques": list(self.techniques)}

    @classmethod
    def from_dict(cls, d: dict) -> Point:
        return cls(d["weights"], d["activations"], tuple(d.get("techniques") or ()))


def kind_of(fmt: str) -> str:
    return "minifloat" if as_spec(fmt).is_minifloat else "int"


@dataclass(frozen=True)
class Space:
    """A sweep: for each (weight bits, activation bits) pair, every format pair of those widths
    (``INTn`` and every signed split ``E<e>M<n-1-e>`` with ``min_exponent <= e <= max_exponent``),
    times every technique combination. (``E1`` splits have a uniform grid: ``E1M<n-2>`` holds exactly
    the values of ``INTn``'s weights, so ``min_exponent=2`` loses little.)

    ``bit_pairs="all"`` crosses ``weight_bits`` with ``act_bits``; ``"diagonal"`` keeps equal widths.
    ``pairing="all"`` crosses every weight split with every activation split; ``"same_exponent"``
    keeps minifloat pairs with equal exponent widths (one format family per exponent width).
    ``mixed_kinds=False`` pairs integers with integers and minifloats with minifloats only.
    ``extra`` adds explicit points.
    """

    weight_bits: tuple[int, ...] = (3, 4, 5, 6, 7, 8)
    act_bits: tuple[int, ...] = (3, 4, 5, 6, 7, 8)
    kinds: tuple[str, ...] = ("int", "minifloat")
    bit_pairs: str = "all"
    pairing: str = "all"
    mixed_kinds: bool = True
    min_exponent: int = 1
    max_exponent: int | None = None
    techniques: tuple[tuple[str, ...], ...] = ((),)
    extra: tuple[Point, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.bit_pairs not in ("all", "diagonal"):
            raise ValueError(f"bit_pairs must be 'all' or 'diagonal', got {self.bit_pairs!r}")
        if self.pairing not in ("all", "same_exponent"):
            raise ValueError(f"pairing must be 'all' or 'same_exponent', got {self.pairing!r}")
        for bits in (*self.weight_bits, *self.act_bits):
            if not 2 <= bits <= 16:
                raise ValueError(f"bit widths must be 2..16, got {bits}")
        object.__setattr__(self, "techniques", tuple(check_techniques(t) for t in self.techniques))

    def format_pairs(self) -> list[tuple[str, str]]:
        if self.bit_pairs == "diagonal":
            bit_pairs = [(b, b) for b in self.weight_bits if b in self.act_bits]
        else:
            bit_pairs = list(itertools.product(self.weight_bits, self.act_bits))
        pairs = []
        for wb, ab in bit_pairs:
            wf = formats_for_bits(wb, self.kinds, min_exponent=self.min_exponent, max_exponent=self.max_exponent)
            af = formats_for_bits(ab, self.kinds, min_exponent=self.min_exponent, max_exponent=self.max_exponent)
            for w, a in itertools.product(wf, af):
                if not self.mixed_kinds and kind_of(w) != kind_of(a):
                    continue
                if self.pairing == "same_exponent" and kind_of(w) == kind_of(a) == "minifloat" and \
                        as_spec(w).fmt.exponent_bits != as_spec(a).fmt.exponent_bits:
                    continue
                pairs.append((w, a))
        return pairs

    def points(self) -> list[Point]:
        pts = [Point(w, a, t) for w, a in self.format_pairs() for t in self.techniques]
        seen, out = set(), []
        for p in [*pts, *self.extra]:
            if p.key not in seen:
                seen.add(p.key)
                out.append(p)
        return out

    def __len__(self) -> int:
        return len(self.points())


#: Technique combinations worth comparing: none, each alone, and the PTQ default.
TECHNIQUE_STUDY = ((), ("equalize",), ("smoothquant",), ("mse",), ("bias_correction",), ("gptq",),
                   ("learned_round",), ("mse", "bias_correction"), tuple(DEFAULT_TECHNIQUES))

PRESETS: dict[str, Space] = {
    # seconds: a handful of points, for tests and smoke runs
    "tiny": Space(weight_bits=(4,), act_bits=(4,), max_exponent=2, mixed_kinds=False,
                  techniques=((), tuple(DEFAULT_TECHNIQUES))),
    # the `brevitas-minifloat dse` default: < 10 minutes on 2 cores with FINN estimates on the embedded
    # Fashion-MNIST CNN (10,000 test images per point): INTn and the E2 minifloat of each width, crossed
    "default": Space(weight_bits=(3, 4, 6, 8), act_bits=(3, 4, 6, 8), min_exponent=2, max_exponent=2,
                     mixed_kinds=False, techniques=(tuple(DEFAULT_TECHNIQUES),)),
    # everything the brief asks for: every split 3..8 bits, int/minifloat crossed, technique study
    "full": Space(techniques=TECHNIQUE_STUDY),
}


def preset(name: str) -> Space:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown space preset {name!r}; choose one of {sorted(PRESETS)}") from None
