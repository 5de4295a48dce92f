"""LUT / FF / BRAM / DSP of a native MVAU or VVAU layer: Yosys synthesis of its RTL, or a model fitted to it.

``native_layer_cost(spec)`` answers fast enough to be called inside a FINN build (the native HW op's
``lut_estimation`` / ``bram_estimation`` / ``dsp_estimation``): the fitted model
(`finn_transforms.native.cost_fit`; depthwise layers `finn_transforms.native.cost_fit_vvau`; regenerated with its held-out error by
``scripts/native_layer_cost_table.py``), always, so estimates never depend on which syntheses happen
to sit in this machine's cache (`cost_model_id` identifies it). ``synthesize_layer(spec)`` runs Yosys
(JSON-cached); ``native_layer_cost(spec, synthesize=True)`` asks for that explicitly.

What is counted:

- **compute**: the generated layer (``unit="mvau"``: `finn_transforms.native.rtl`; ``unit="vvau"``,
  the depthwise layer: `finn_transforms.native.vvau_rtl`) with its weight ROMs declared as
  black boxes, through the project's Yosys flow (`brevitas_minifloat.hw.cost`: ``synth_xilinx
  -family xcup -flatten -noiopad -nodsp``, every multiply in LUTs like FINN's ``resType="lut"``);
  Yosys' LUTRAM primitives (input replay buffer, output queue) are counted as the LUTs they occupy;
- **weights**: counted as FINN's MVAU (or VVAU) counts them (`weight_memory`), from the ROM's shape
  only, so the cost never depends on the weight values: depth ``MW * MH / (PE * SIMD) <= 128`` words
  in LUTRAM (``width * ceil(depth / 64)`` LUTs plus the read register), deeper ones in RAMB18 blocks;
- **DSP**: 0 (``-nodsp``).
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from brevitas_minifloat.hw.cache import JsonCache, default_cache_dir
from brevitas_minifloat.hw.cost import SYNTH_SCRIPT, summarize_cells, synthesize, yosys_missing, yosys_version
from brevitas_minifloat.hw.operands import is_minifloat, signed_bits
from finn_transforms.native.rtl import NativeMvauRtl, layer_mac
from finn_transforms.native.spec import NativeMvauSpec
from finn_transforms.native.vvau_rtl import NativeVvauRtl

FAMILY = "xcup"

# LUTs a Xilinx LUTRAM primitive occupies (UG574): RAM32M/RAM64M are 4 LUTs, RAM64X1D 2, ...
_LUTRAM_LUTS = {
    "RAM32X1S": 1, "RAM64X1S": 1, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1S": 2, "RAM128X1D": 4,
    "RAM256X1S": 4, "RAM512X1S": 8, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8,
}


#: The generator of each kind of native layer (``mvau``: dense, ``vvau``: depthwise, ``mw = K``, ``mh = C``).
UNITS = {"mvau": NativeMvauRtl, "vvau": NativeVvauRtl}


def _check_unit(unit: str) -> None:
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {sorted(UNITS)}, got {unit!r}")


def describe(spec: NativeMvauSpec, unit: str = "mvau") -> dict:
    """Plain-JSON description of a layer (cache keys, tables)."""
    out = {"weight": spec.weight_format.name, "input": spec.input_format.name, "mw": spec.mw, "mh": spec.mh,
           "pe": spec.pe, "simd": spec.simd, "acc_bits": spec.acc_bits}
    return out if unit == "mvau" else {**out, "unit": unit}


# ------------------------------------------------------------------------------ weights
def weight_memory(spec: NativeMvauSpec, weight_bits: int | None = None, unit: str = "mvau") -> dict:
    """Weight storage the way FINN+ 1.6.1's MVAU estimates it (FINN-R, Blott et al. 2018):
    ``depth = MW*MH/(PE*SIMD)`` words of ``width = PE*SIMD*W`` bits; ``depth <= 128``: LUTRAM,
    ``width * ceil(depth/64)`` LUTs (and a ``width``-bit read register); otherwise RAMB18 blocks in
    simple dual-port mode, the aspect ratio chosen by the word width (1, 2, 4, 9, 18 or 36 bits wide;
    ``unit="vvau"``: FINN's VVAU rule, which assumes HLS memories 4, 8, 16 or 32 bits wide).
    ``weight_bits``: another weight width for the same shape (e.g. FINN's integer embedding)."""
    _check_unit(unit)
    depth = spec.mw * spec.mh // (spec.pe * spec.simd)
    width = spec.pe * spec.simd * (weight_bits or spec.weight_bits)
    if depth <= 128:
        return {"lut": width * math.ceil(depth / 64), "ff": width, "bram18": 0, "depth": depth, "width": width}
    if unit == "vvau":
        return {"lut": 0, "ff": 0, "bram18": _vvau_bram18(depth, width), "depth": depth, "width": width}
    if width == 1:
        blocks = math.ceil(depth / 16384)
    elif width == 2:
        blocks = math.ceil(depth / 8192)
    elif width <= 4:
        blocks = math.ceil(depth / 4096)
    elif width <= 9:
        blocks = math.ceil(depth / 2048) * math.ceil(width / 9)
    elif width <= 18 or depth > 512:
        blocks = math.ceil(depth / 1024) * math.ceil(width / 18)
    else:
        blocks = math.ceil(depth / 512) * math.ceil(width / 36)
    return {"lut": 0, "ff": 0, "bram18": blocks, "depth": depth, "width": width}


def _vvau_bram18(depth: int, width: int) -> int:
    """FINN+ 1.6.1 ``VVAU.bram_estimation`` for ``depth > 128`` words of ``width`` bits."""
    if width == 1:
        return math.ceil(depth / 16384)
    if width == 2:
        return math.ceil(depth / 8192)
    if width <= 4:
        return math.ceil(depth / 4096) * math.ceil(width / 4)
    if width <= 9:
        return math.ceil(depth / 2048) * math.ceil(width / 8)
    if width <= 18 or depth > 512:
        return math.ceil(depth / 1024) * math.ceil(width / 16)
    return math.ceil(depth / 512) * math.ceil(width / 32)


# ------------------------------------------------------------------------------ synthesis
def _compute_rtl(spec: NativeMvauSpec, unit: str) -> NativeMvauRtl:
    _check_unit(unit)
    return UNITS[unit](spec, np.zeros((spec.mh, spec.mw), dtype=np.int64), blackbox_roms=True)


def synthesis_key(layer: dict, verilog: str) -> dict:
    """Cache key of one native layer's synthesis: its description, its Verilog and the Yosys flow."""
    return {
        "layer": layer,
        "verilog_sha256": hashlib.sha256(verilog.encode()).hexdigest(),
        "family": FAMILY,
        "script": SYNTH_SCRIPT,
        "yosys": yosys_version(),
    }


def layer_cache(folder: str, cache_dir: str | Path | None) -> JsonCache:
    """The synthesis cache ``folder`` of native layers under ``cache_dir`` (default `default_cache_dir`)."""
    return JsonCache(Path(cache_dir if cache_dir is not None else default_cache_dir()) / folder)


def _cache_key(rtl: NativeMvauRtl, unit: str) -> dict:
    return synthesis_key(describe(rtl.spec, unit), rtl.verilog)


def _cache(cache_dir: str | Path | None) -> JsonCache:
    return layer_cache("native_layers", cache_dir)


def _cache_name(key: dict) -> str:
    return f"{key['layer']['weight']}_x_{key['layer']['input']}"


def _total(compute: dict, memory: dict) -> dict:
    return {"lut": compute["lut"] + memory["lut"], "ff": compute["ff"] + memory["ff"], "bram": memory["bram18"],
            "dsp": compute["dsp"]}


def synthesize_layer(
    spec: NativeMvauSpec,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    timeout: float | None = None,
    unit: str = "mvau",
) -> dict:
    """Yosys cost of one layer (cached as plain JSON under ``cache_dir``, default
    `brevitas_minifloat.hw.cache.default_cache_dir`). Returns ``lut``, ``ff``, ``bram`` (RAMB18),
    ``dsp``, the ``compute`` and ``weights`` parts, Yosys ``cells``, ``cpu_seconds`` and ``cached``."""
    reason = yosys_missing()
    if reason:
        raise RuntimeError(reason)
    rtl = _compute_rtl(spec, unit)
    key = _cache_key(rtl, unit)
    stored = _cache(cache_dir).get(key, _cache_name(key)) if use_cache else None
    if stored is not None:
        return {**stored, "cached": True}
    raw = synthesize(rtl, family=FAMILY, dsp=False, timeout=timeout)
    cells = summarize_cells(raw["cells"])
    lutram = sum(_LUTRAM_LUTS.get(c, 0) * n for c, n in raw["cells"].items())
    unknown = sorted(c for c in raw["cells"] if c.startswith("RAM") and c not in _LUTRAM_LUTS and not c.startswith("RAMB"))
    if unknown:
        raise RuntimeError(f"no LUT count known for Yosys LUTRAM cells {unknown}")
    compute = {"lut": cells["LUT"] + lutram, "ff": cells["FF"], "dsp": cells["DSP"], "carry": cells["CARRY"],
               "muxf": cells["MUXF"], "lutram_luts": lutram, "bram18": cells["BRAM18"]}
    memory = weight_memory(spec, unit=unit)
    result = {**_total(compute, memory), "compute": compute, "weights": memory, "cells": raw["cells"],
              "cpu_seconds": raw["cpu_seconds"]}
    result["bram"] += compute["bram18"]
    if use_cache:
        _cache(cache_dir).put(key, result, _cache_name(key))
    return {**result, "cached": False}


# ------------------------------------------------------------------------------ the fitted model
def _multiplier_widths(spec: NativeMvauSpec) -> tuple[int, int]:
    """Operand widths of a lane's multiplier: unsigned magnitudes (``M + 1`` bits) in the shift
    architecture's sign-magnitude lanes, signed significands (``M + 2``) or the integer otherwise."""
    mac = layer_mac(spec)
    widths = []
    for fmt in (spec.weight_format, spec.input_format):
        if is_minifloat(fmt):
            widths.append(fmt.mantissa_bits + (1 if mac.sign_magnitude else 2))
        else:
            widths.append(signed_bits(fmt.integer_min, fmt.integer_max))
    return widths[0], widths[1]


def features(spec: NativeMvauSpec, unit: str = "mvau") -> dict[str, float]:
    """Candidate structural sizes of the layer (`_features`; the fitted model uses the ones its
    coefficients name), memoised: FINN's folding asks for many estimates."""
    _check_unit(unit)
    return dict(_features(spec, unit))


@lru_cache(maxsize=8192)
def _features(spec: NativeMvauSpec, unit: str) -> tuple:
    """Structural sizes of the layer the model is linear in (names match ``cost_fit``), read off the
    generated datapath (`finn_transforms.native.rtl`, `brevitas_minifloat.hw.rtl.MacUnit`).
    ``L = PE * SIMD`` lanes, each: decode the weight code, multiply significands, shift by the
    exponent sum, negate (sign-magnitude lanes); per PE an adder over its SIMD lanes, the accumulator
    and the output queue; per input lane the input decode and registers (MVAU: ``SIMD`` lanes shared
    by the PEs; a depthwise layer, ``unit="vvau"``: ``PE * SIMD`` distinct inputs, no replay buffer).

    - ``mul``: L x the multiplier's operand widths multiplied (array multiplier), ``mul_io``: L x
      their sum (its partial-product rows and product bits), ``mul_signed``: ``mul`` of lanes that
      multiply signed operands (integer or mixed lanes);
    - ``shift``: L x shifted product bits x shift-amount bits (a barrel shifter), ``shift_range``:
      L x the number of shift amounts (the decoded shift: where ABC flattens it), ``shift_signed``:
      ``shift_range`` of lanes shifting a signed product (mixed lanes); 0 for integers;
    - ``negate``: L x product bits in sign-magnitude lanes with a signed operand (ones' complement);
    - ``weight_decode``: L x weight code bits of a minifloat (implicit one, exponent - 1);
    - ``adder``: PE x (SIMD - 1) x lane-sum bits (the adder over the lanes), ``lane_sum``:
      L x lane-sum bits (the sign extension and the +neg of every lane);
    - ``acc``: PE x accumulator bits (the accumulator with its restart, the queue's word);
    - ``dot_reg``: PE x lane-sum bits (the registered lane sum);
    - ``input``: input lanes x stream element bits (activation register, ordinal decode),
      ``input_decode``: input lanes x input code bits of a minifloat (its unpack);
    - ``replay``: the replay buffer of a vector (NF > 1), SIMD x element bits x ceil(SF / 32)
      (LUTRAM words of 32): linear in depth, as Yosys maps the buffer (single-port LUTRAM, 64 bits
      per LUT; beyond `finn_transforms.native.rtl.REPLAY_BANK` beats in banks of 256, and a bank
      costs what 256 words of one deeper memory would: RAM256X1S 4 LUTs, RAM512X1S 8). Every
      training and held-out layer has SF <= 32, where ``replay`` equals ``input``: the fit never
      saw the depth, for SF > 32 it is extrapolated;
    - ``control``: the fold counters' bits;
    - ``const``: the rest of the control."""
    mac = layer_mac(spec)
    lanes, tree = spec.pe * spec.simd, spec.pe * (spec.simd - 1)
    w_bits, a_bits = _multiplier_widths(spec)
    max_shift = sum(2**f.exponent_bits - 2 for f in (spec.weight_format, spec.input_format) if is_minifloat(f))
    negates = mac.sign_magnitude and (spec.weight_format.signed or spec.input_format.signed)
    sf, nf = spec.input_beats, spec.output_beats
    inputs = lanes if unit == "vvau" else spec.simd
    stream = inputs * spec.input_bits
    return tuple({
        "mul": lanes * w_bits * a_bits,
        "mul_io": lanes * (w_bits + a_bits),
        "mul_signed": 0 if mac.sign_magnitude else lanes * w_bits * a_bits,
        "shift_signed": 0 if mac.sign_magnitude or not max_shift else lanes * (max_shift + 1),
        "shift": lanes * (mac.product_bits - 1) * max_shift.bit_length(),
        "shift_range": lanes * (max_shift + 1) if max_shift else 0,
        "negate": lanes * mac.product_bits if negates else 0,
        "weight_decode": lanes * spec.weight_format.bit_width if is_minifloat(spec.weight_format) else 0,
        "adder": tree * mac.dot_bits,
        "lane_sum": lanes * mac.dot_bits,
        "acc": spec.pe * mac.acc_bits,
        "dot_reg": spec.pe * mac.dot_bits,
        "input": stream,
        "input_decode": inputs * spec.input_format.bit_width if is_minifloat(spec.input_format) else 0,
        "replay": stream * math.ceil(sf / 32) if nf > 1 and unit == "mvau" else 0,
        "control": sum(max(1, n.bit_length()) for n in (sf, nf, sf * nf)),
        "const": 1.0,
    }.items())


def fitted_coefficients(unit: str = "mvau") -> dict:
    """The fitted model of ``unit``: `finn_transforms.native.cost_fit` (dense layers) or
    `finn_transforms.native.cost_fit_vvau` (depthwise layers, fitted to synthesized VVAUs)."""
    _check_unit(unit)
    if unit == "vvau":
        from finn_transforms.native.cost_fit_vvau import COEFFICIENTS
    else:
        from finn_transforms.native.cost_fit import COEFFICIENTS
    return COEFFICIENTS


def cost_model_id() -> str:
    """Identifies the native cost as builds compute it (MAC generator version + fitted coefficients, and
    the OrdinalLUT table count's, `finn_transforms.native.decode_cost`), for cache keys of results that
    contain native LUT/FF numbers (e.g. the DSE's hardware jobs)."""
    from brevitas_minifloat.hw.rtl import GENERATOR_VERSION
    from finn_transforms.native.decode_cost_fit import COEFFICIENTS as DECODE_COEFFICIENTS

    blob = f"{GENERATOR_VERSION}"
    for unit in UNITS:
        blob += f":{unit}:{sorted((k, sorted(v.items())) for k, v in fitted_coefficients(unit).items())}"
    blob += f":decode {sorted(DECODE_COEFFICIENTS.items())}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_cost(spec: NativeMvauSpec, coefficients: dict | None = None, unit: str = "mvau") -> dict:
    """The fitted model's ``lut`` / ``ff`` of the compute plus the counted weight memory (``coefficients``:
    another fit of the same features, default `fitted_coefficients` of ``unit``)."""
    if coefficients is None:
        coefficients = fitted_coefficients(unit)
    f = features(spec, unit)
    compute = {kind: sum(coefficients[kind].get(name, 0.0) * v for name, v in f.items()) for kind in ("lut", "ff")}
    compute["dsp"] = 0
    return _total({k: round(v) for k, v in compute.items()}, weight_memory(spec, unit=unit))


def fit(specs: list[NativeMvauSpec], measured: list[dict], names: list[str] | None = None, unit: str = "mvau") -> dict:
    """Non-negative least squares of each compute resource (``lut``, ``ff``) on `features` (or the
    ``names`` among them), each layer's residual relative to its total (compute + counted weight
    memory): the model's error is judged in percent, so a 200-LUT layer weighs as much as a 5000-LUT one."""
    from scipy.optimize import nnls

    names = list(features(specs[0], unit)) if names is None else list(names)
    x = np.array([[features(s, unit)[n] for n in names] for s in specs], dtype=float)
    out = {}
    for kind in ("lut", "ff"):
        y = np.array([m["compute"][kind] for m in measured], dtype=float)
        weight = 1.0 / (y + np.array([weight_memory(s, unit=unit)[kind] for s in specs], dtype=float))
        xw = x * weight[:, None]
        scale = np.abs(xw).max(axis=0)
        scale[scale == 0] = 1.0
        coef, _ = nnls(xw / scale, y * weight)
        out[kind] = {n: float(c / s) for n, c, s in zip(names, coef, scale) if c}
    return out


def native_layer_cost(
    spec: NativeMvauSpec, *, cache_dir: str | Path | None = None, synthesize: bool = False, unit: str = "mvau"
) -> dict:
    """``dict(lut=, ff=, bram=, dsp=, source=)`` of one native layer (``unit``: ``"mvau"`` or the
    depthwise ``"vvau"``): the fitted model (``source="model"``; no tool needed, microseconds, the
    same on every machine), or with ``synthesize=True`` Yosys' synthesis of this exact layer
    (``source="synthesis"``, JSON-cached under ``cache_dir``)."""
    if not isinstance(spec, NativeMvauSpec):
        raise ValueError(f"spec must be a NativeMvauSpec, got {type(spec).__name__}")
    _check_unit(unit)
    if synthesize:
        found = synthesize_layer(spec, cache_dir=cache_dir, unit=unit)
        return {k: found[k] for k in ("lut", "ff", "bram", "dsp")} | {"source": "synthesis"}
    return dict(_model_lookup(spec, unit))


@lru_cache(maxsize=4096)
def _model_lookup(spec: NativeMvauSpec, unit: str) -> tuple:
    """The model's cost, memoised: FINN's folding calls the estimates many times per layer."""
    return tuple((model_cost(spec, unit=unit) | {"source": "model"}).items())
