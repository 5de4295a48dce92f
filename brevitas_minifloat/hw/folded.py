"""The DSE's measured hardware-cost column: Yosys-synthesized MAC units x FINN's folding.

For a format pair, `synthesize_layer_units` synthesizes (`brevitas_minifloat.hw.cost.mac_cost`,
JSON-cached) one MAC unit per compute layer: the layer's weight format x the format of the
quantizer feeding it, with the exact accumulator for the layer's fan-in. `folded_mac_lut` then
multiplies each layer's LUTs per MAC by the MACs per cycle FINN's folding gives the layer's MVAU
(``PE * SIMD``) and sums: the LUTs the arithmetic of the folded accelerator costs when built from
our minifloat MAC units, beside FINN's own (integer-embedding) estimate of the same MVAUs.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MVAU_PREFIX", "folded_mac_lut", "mean_lut_per_mac", "synthesize_layer_units"]

MVAU_PREFIX = "MVAU"


def synthesize_layer_units(weights: str, layers: Sequence[dict], *, arch: str = "shift",
                           timeout: float | None = 900.0) -> list[dict]:
    """One synthesized MAC unit per layer (``layers``: ``name``, ``input_format``, ``fan_in``, ``macs``).

    Returns the layers with ``lut_per_mac``, ``acc_bits`` and the Yosys CPU seconds spent
    (0 when the unit came from the cache). Raises ``RuntimeError`` when Yosys is missing or fails.
    """
    from brevitas_minifloat.hw.cost import mac_cost

    out = []
    for layer in layers:
        cost = mac_cost(weights, layer["input_format"], fan_in=int(layer["fan_in"]), arch=arch, timeout=timeout)
        out.append({**layer, "lut_per_mac": cost["LUT_per_MAC"], "acc_bits": cost["acc_bits"],
                    "synth_cpu_s": 0.0 if cost["cached"] else cost["cpu_seconds"]})
    return out


def mean_lut_per_mac(units: Sequence[dict]) -> float:
    """MAC-weighted mean of the layers' measured LUTs per MAC (comparable to the analytic ``mac_lut``)."""
    macs = sum(u["macs"] for u in units)
    return sum(u["lut_per_mac"] * u["macs"] for u in units) / max(macs, 1)


def folded_mac_lut(units: Sequence[dict], finn_layers: Sequence[dict]) -> tuple[float | None, str | None]:
    """Sum over layers of measured LUTs per MAC x ``PE * SIMD`` of the layer's MVAU.

    The MVAUs of FINN's HW graph are matched to the quantized model's compute layers in order;
    their count and, where FINN reports it, their fan-in (``MW``) must agree. Returns
    ``(luts, None)`` or ``(None, reason)``.
    """
    mvaus = [layer for layer in finn_layers if str(layer.get("op_type", "")).startswith(MVAU_PREFIX)]
    if len(mvaus) != len(units):
        return None, f"{len(mvaus)} MVAUs in FINN's graph for {len(units)} compute layers"
    total = 0.0
    for unit, mvau in zip(units, mvaus):
        if mvau.get("mw") is not None and int(mvau["mw"]) != int(unit["fan_in"]):
            return None, f"{mvau['name']} has MW={mvau['mw']} but layer {unit['name']} has fan-in {unit['fan_in']}"
        if not mvau.get("pe") or not mvau.get("simd"):
            return None, f"FINN reported no PE/SIMD for {mvau['name']}"
        total += unit["lut_per_mac"] * int(mvau["pe"]) * int(mvau["simd"])
    return total, None
