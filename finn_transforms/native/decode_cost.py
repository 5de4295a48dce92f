"""LUT / FF of an ``OrdinalLUT`` layer: Yosys synthesis of its RTL, or a count from its table.

``ordinal_lut_cost(fmt, pe)`` answers fast enough for a FINN build (the op's ``lut_estimation``):
a cached synthesis of exactly this layer if there is one, else `table_cost`, a count of the LUT6
the decode table needs, computed from the table itself in microseconds. ``synthesize_ordinal_lut``
runs the project's Yosys flow (`brevitas_minifloat.hw.cost`, ``synth_xilinx -family xcup``) on
the generated layer (`finn_transforms.native.decode_rtl`) and caches the result as plain JSON.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from brevitas_minifloat.formats import MinifloatFormat, as_format
from brevitas_minifloat.hw.cache import JsonCache, default_cache_dir
from brevitas_minifloat.hw.cost import SYNTH_SCRIPT, summarize_cells, synthesize, yosys_missing, yosys_version
from finn_transforms.native.decode_rtl import OrdinalLutRtl
from finn_transforms.native.spec import ordinal_embedded

__all__ = ["CONTROL_LUTS", "LUT_FEATURES", "fit", "ordinal_lut_cost", "synthesize_ordinal_lut", "table_cost", "table_features"]

FAMILY = "xcup"


def _rtl(fmt: MinifloatFormat | str, pe: int) -> OrdinalLutRtl:
    """The layer synthesized for ``(fmt, pe)``: the cost does not depend on ``NumChannels``."""
    return OrdinalLutRtl(fmt, pe, pe, top=f"ordinal_lut_pe{pe}")


def _cache_key(rtl: OrdinalLutRtl) -> dict:
    return {
        "layer": {"format": rtl.fmt.name, "pe": rtl.pe},
        "verilog_sha256": hashlib.sha256(rtl.verilog.encode()).hexdigest(),
        "family": FAMILY,
        "script": SYNTH_SCRIPT,
        "yosys": yosys_version(),
    }


def _cache(cache_dir: str | Path | None) -> JsonCache:
    return JsonCache(Path(cache_dir if cache_dir is not None else default_cache_dir()) / "ordinal_luts")


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


def _cached(fmt: MinifloatFormat, pe: int, cache_dir: str | Path | None) -> dict | None:
    if yosys_missing():
        return None
    rtl = _rtl(fmt, pe)
    return _cache(cache_dir).get(_cache_key(rtl), rtl.fmt.name)


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


def ordinal_lut_cost(fmt: MinifloatFormat | str, pe: int = 1, *, cache_dir: str | Path | None = None) -> dict:
    """``dict(lut=, ff=, bram=, dsp=, source=)`` of one decode layer: ``source="synthesis"`` when a
    cached synthesis of this layer exists, else ``"table"`` (`table_cost`; no tool needed)."""
    return dict(_lookup(as_format(fmt), int(pe), None if cache_dir is None else str(cache_dir)))


@lru_cache(maxsize=1024)
def _lookup(fmt: MinifloatFormat, pe: int, cache_dir: str | None) -> tuple:
    """Memoised: FINN's folding calls the estimates many times per layer."""
    found = _cached(fmt, pe, cache_dir)
    if found is not None:
        return tuple(({k: found[k] for k in ("lut", "ff", "bram", "dsp")} | {"source": "synthesis"}).items())
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
