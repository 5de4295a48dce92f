"""Analytic LUT cost of one multiply-accumulate (MAC) unit, integer vs minifloat operands.

This is a first-order model derived here from textbook LUT counts for a 6-input-LUT FPGA fabric
with carry chains; it is *not* a synthesis result and not taken from a paper. It exists to rank
formats before anything is synthesized; a measured model (Yosys, ``brevitas_minifloat.hw.cost``)
plugs into the same hook: `brevitas_minifloat.dse.run_dse(..., mac_cost=fn)` accepts any
``fn(weight_format, act_format, *, fan_in) -> {"LUT": ..., ...}``, e.g.
``brevitas_minifloat.hw.cost.mac_cost`` (Yosys-measured, cached).

Operands. An integer ``INTn``/``UINTn`` has an ``n``-bit significand and no exponent. A minifloat
``ExMy`` has a ``y+1``-bit significand (hidden bit), an ``x``-bit exponent, and an integer embedding
of ``b`` bits (`MinifloatFormat.integer_bit_width`, docs/design.md, "Semantics"): every value is an integer
multiple of ``delta``, which is how the product is accumulated exactly in fixed point.

Integer x integer (``p_w``-bit by ``p_a``-bit)::

    LUT = p_w * p_a              array multiplier, ~1 LUT per partial-product bit incl. its adders
        + acc                    accumulator adder, 1 LUT per bit (LUT + carry chain)
    acc = p_w + p_a + ceil(log2(fan_in))

At least one minifloat operand with ``E >= 2`` (exponent widths ``e_w``, ``e_a``; an integer
operand has ``e = 0`` and its embedding is itself; an ``E1`` minifloat has a uniform grid, so it is
costed as the integer of its embedding, e.g. ``E1M2`` as ``INT4``)::

    LUT = (m_w + 1) * (m_a + 1)  significand multiplier (integer side: its full width)
        + 1                      sign (XOR)
        + [e_w, e_a > 0] * (max(e_w, e_a) + 1)    exponent adder
        + (#minifloat operands)  hidden-bit / subnormal detect (exponent == 0), one LUT each
        + P * ceil(S / 2)        alignment shifter: the product moves to its place in a P-bit
                                 fixed-point word; S = ceil(log2(R + 1)) mux stages for the
                                 R = (2^e_w - 1) + (2^e_a - 1) possible shift amounts, two stages
                                 (a 4:1 mux) per 6-LUT
        + acc                    add/subtract into the accumulator, 1 LUT per bit
    P = b_w + b_a (product of the integer embeddings), acc = P + ceil(log2(fan_in))

What is assumed: no DSP blocks; one MAC per cycle without pipelining registers (flip-flops are not
counted); the accumulator is exact (a Kulisch-style fixed-point accumulator as wide as the product
embedding plus the fan-in growth, which is also what FINN's MVAU does after our lowering);
specials (NaN/Inf) cost nothing because lowered formats have none. Minifloat MACs come out
cheaper in the multiplier and dearer in the shifter and the (wider) accumulator; E1 formats have a
tiny shifter, wide-exponent formats a very wide accumulator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from brevitas_minifloat.ptq.spec import as_spec

__all__ = ["MacCostFn", "analytic_mac_cost", "model_mac_cost"]

MacCostFn = Callable[..., Mapping[str, float]]  # fn(weight, act, *, fan_in) -> {"LUT": ...}


def _operand(name: str) -> tuple[int, int, int]:
    """``(significand bits, exponent bits, embedding bits)``; an E1 minifloat counts as the integer
    of its embedding (its grid is uniform: no shifter is needed)."""
    spec = as_spec(name)
    if not spec.is_minifloat:
        return spec.bits, 0, spec.bits
    f = spec.fmt
    if f.exponent_bits == 1:
        return f.integer_bit_width, 0, f.integer_bit_width
    return f.mantissa_bits + 1, f.exponent_bits, f.integer_bit_width


def analytic_mac_cost(weight: str, act: str, fan_in: int = 64) -> dict[str, float]:
    """LUTs of one MAC unit by the model in this module's docstring, with its terms."""
    p_w, e_w, b_w = _operand(weight)
    p_a, e_a, b_a = _operand(act)
    growth = math.ceil(math.log2(max(fan_in, 1)))
    if e_w == 0 and e_a == 0:
        mult, acc = p_w * p_a, p_w + p_a + growth
        return {"LUT": float(mult + acc), "mult": mult, "shift": 0, "exp": 0, "acc": acc, "acc_bits": acc}
    product = b_w + b_a
    acc = product + growth
    shift_range = (2**e_w - 1) + (2**e_a - 1)
    stages = math.ceil(math.log2(shift_range + 1))
    shift = product * math.ceil(stages / 2)
    exp = (max(e_w, e_a) + 1 if e_w and e_a else 0) + (e_w > 0) + (e_a > 0)
    mult = p_w * p_a
    lut = mult + 1 + exp + shift + acc
    return {"LUT": float(lut), "mult": mult, "shift": shift, "exp": exp, "acc": acc, "acc_bits": acc}


def model_mac_cost(layers: list[dict], weight: str, mac_cost: MacCostFn = analytic_mac_cost, *,
                   fps: float = 10_000.0, clock_mhz: float = 100.0) -> dict[str, float]:
    """Arithmetic cost of a whole model from per-MAC costs.

    ``layers``: ``{"input_format", "fan_in", "macs"}`` per compute layer (``macs`` per frame).
    Returns ``mac_lut``, the MAC-weighted mean LUTs of one MAC unit, and ``mac_lut_at_fps``, the
    LUTs of the MAC units needed for ``fps`` frames per second at ``clock_mhz`` (a layer needs
    ``ceil(macs * fps / f_clk)`` units, at least one): what a FINN folding sized for that throughput
    spends on arithmetic, by this model.
    """
    total_macs, weighted, at_fps = 0, 0.0, 0.0
    for layer in layers:
        lut = float(mac_cost(weight, layer["input_format"], fan_in=int(layer["fan_in"]))["LUT"])
        total_macs += layer["macs"]
        weighted += lut * layer["macs"]
        at_fps += lut * max(1, math.ceil(layer["macs"] * fps / (clock_mhz * 1e6)))
    return {"mac_lut": weighted / max(total_macs, 1), "mac_lut_at_fps": at_fps}
