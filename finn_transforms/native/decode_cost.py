"""LUT / FF of an ``OrdinalLUT`` layer: Yosys synthesis of its RTL, or a count from its table.

``ordinal_lut_cost(fmt, pe)`` answers fast enough for a FINN build (the op's ``lut_estimation``):
`table_cost`, a fitted count of the LUT6 the decode table needs, computed from the table itself in
microseconds, always, so estimates never depend on which syntheses sit in this machine's cache (as
for the MVAU, `finn_transforms.native.cost`; its ``cost_model_id`` covers these coefficients too).
``synthesize_ordinal_lut`` runs the project's Yosys flow (`brevitas_minifloat.hw.cost`,
``synth_xilinx -family xcup``) on the generated layer (`finn_transforms.native.decode_rtl`) and
caches the result as plain JSON; ``ordinal_lut_cost(..., synthesize=True)`` asks for that explicitly.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from brevitas_minifloat.formats import MinifloatFormat, as_format
from brevitas_minifloat.hw.cache import JsonCache
from brevitas_minifloat.hw.cost import summarize_cells, synthesize, yosys_missing
from finn_transforms.native.cost import FAMILY, layer_cache, synthesis_key
from finn_transforms.native.decode_rtl import OrdinalLutRtl
from finn_transforms.native.spec import ordinal_embedded

__all__ = ["CONTROL_LUTS", "LUT_FEATURES", "fit", "ordinal_lut_cost", "synthesize_ordinal_lut", "table_cost", "table_features"]


def _rtl(fmt: MinifloatFormat | str, pe: int) -> OrdinalLutRtl:
    """The layer synthesized for ``(fmt, pe)``: the cost does not depend on ``NumChannels``."""
    return OrdinalLutRtl(fmt, pe, pe, top=f"ordinal_lut_pe{pe}")


def _cache_key(rtl: OrdinalLutRtl) -> dict:
    return synthesis_key({"format": rtl.fmt.name, "pe": rtl.pe}, rtl.verilog)


def _cache(cache_dir: str | Path | None) -> JsonCache:
    return layer_cache("ordinal_luts", cache_dir)


def synthesize_ordinal_lut(
    fmt: MinifloatFormat | str, pe: int = 1, *, cache_dir: str | Path | None = None, use_cache: bool = True,
    timeout: float | None = None,
) -> dict:
    """Yosys cost of one decode layer: ``lut``, ``ff``, ``bram`` (RAMB18), ``dsp``, Yosys ``cells``,
    ``cpu_seconds`` and ``cached`` (cached under ``cache_dir``, default
    `brevitas_minifloat.hw.cache.default_cache_dir`)."""
    reason = yosys_missing()
    if reason:
        raise RuntimeError(reason)
    rtl = _rtl(fmt, pe)
    key = _cache_key(rtl)
    stored = _cache(cache_dir).get(key, rtl.fmt.name) if use_cache else None
    if stored is not None:
        return {**stored, "cached": True}
    raw = synthesize(rtl, family=FAMILY, dsp=False, timeout=timeout)
    cells = summarize_cells(raw["cells"])
    if cells["LUTRAM"] or cells["SRL"] or cells["other"]:
        raise RuntimeError(f"{rtl.top}: unexpected Yosys cells {raw['cells']}")
    result = {"lut": cells["LUT"], "ff": cells["FF"], "bram": cells["BRAM18"], "dsp": cells["DSP"],
              "cells": raw["cells"], "cpu_seconds": raw["cpu_seconds"]}
    if use_cache:
        _cache(cache_dir).put(key, result, rtl.fmt.name)
    return {**result, "cached": False}


# ------------------------------------------------------------------------------ the table count
CONTROL_LUTS = 3
"""LUTs of the handshake, whatever the format and PE (Yosys netlist: ``in0_V_TREADY``, the ROM read
enable, the reset inverter)."""


@lru_cache(maxsize=256)
def table_features(fmt: MinifloatFormat) -> dict[str, int]:
    """Sizes of one PE's decode table (``value / delta`` per ordinal, two's complement):

    - ``bits``: distinct output bits that are not constant over the ordinals (one flip-flop each;
      identical bits, e.g. sign extension, share their logic);
    - ``blocks``: the non-constant 64-ordinal blocks of those bits (a LUT6 holds 64 entries; F7/F8
      muxes join up to 4 of them for free);
    - ``mixed``: those bits with both constant and non-constant blocks (a constant cannot feed an F7
      mux: the LUT that joins them);
    - ``const``: 1 (per-PE overhead).

    The LUT count is linear in `LUT_FEATURES` (names match ``decode_cost_fit``)."""
    table = ordinal_embedded(fmt)
    width = OrdinalLutRtl(fmt, 1).output_bits
    words = [k & (2**width - 1) for k in table]
    columns = {tuple((w >> b) & 1 for w in words) for b in range(width)}
    varying = [[len(set(c[i : i + 64])) > 1 for i in range(0, len(c), 64)] for c in columns if len(set(c)) > 1]
    return {
        "bits": len(varying),
        "blocks": sum(sum(v) for v in varying),
        "mixed": sum(len(v) > 1 and not all(v) for v in varying),
        "const": 1,
    }


LUT_FEATURES = ("blocks", "mixed", "const")


def table_cost(fmt: MinifloatFormat | str, pe: int = 1, coefficients: dict | None = None) -> dict:
    """``lut`` / ``ff`` / ``bram`` / ``dsp`` of a decode layer from its table alone (microseconds):
    `CONTROL_LUTS` + ``PE`` x the fitted per-table LUTs (`LUT_FEATURES`; coefficients from
    ``scripts/ordinal_lut_cost_table.py``), ``PE x bits + 1`` flip-flops (the output registers and the
    valid bit), no BRAM (the ROM is LUT logic) or DSP."""
    if coefficients is None:
        from finn_transforms.native.decode_cost_fit import COEFFICIENTS as coefficients
    f = table_features(as_format(fmt))
    per_pe = sum(coefficients.get(name, 0.0) * f[name] for name in LUT_FEATURES)
    return {"lut": CONTROL_LUTS + round(pe * per_pe), "ff": pe * f["bits"] + 1, "bram": 0, "dsp": 0}


def ordinal_lut_cost(
    fmt: MinifloatFormat | str, pe: int = 1, *, cache_dir: str | Path | None = None, synthesize: bool = False
) -> dict:
    """``dict(lut=, ff=, bram=, dsp=, source=)`` of one decode layer: the table count
    (``source="table"``; no tool needed, microseconds, the same on every machine), or with
    ``synthesize=True`` Yosys' synthesis of this layer (``source="synthesis"``, JSON-cached under
    ``cache_dir``)."""
    if synthesize:
        found = synthesize_ordinal_lut(fmt, pe, cache_dir=cache_dir)
        return {k: found[k] for k in ("lut", "ff", "bram", "dsp")} | {"source": "synthesis"}
    return dict(_table_lookup(as_format(fmt), int(pe)))


@lru_cache(maxsize=1024)
def _table_lookup(fmt: MinifloatFormat, pe: int) -> tuple:
    """The table count, memoised: FINN's folding calls the estimates many times per layer."""
    return tuple((table_cost(fmt, pe) | {"source": "table"}).items())


def fit(formats: list[str], measured: list[int]) -> dict:
    """Non-negative least squares of the per-PE LUTs (synthesized PE = 1 layers minus `CONTROL_LUTS`)
    on `LUT_FEATURES`, each row weighted by 1 / its synthesized LUTs (relative error: the layers
    span 8 to 200 LUTs)."""
    import numpy as np
    from scipy.optimize import nnls

    x = np.array([[table_features(as_format(f))[n] for n in LUT_FEATURES] for f in formats], dtype=float)
    y = np.array(measured, dtype=float)
    coef, _ = nnls(x / y[:, None], (y - CONTROL_LUTS) / y)
    return {n: float(c) for n, c in zip(LUT_FEATURES, coef) if c}
