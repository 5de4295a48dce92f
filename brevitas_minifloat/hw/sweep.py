"""Sweep `mac_cost` over format pairs: the measured MAC table behind docs/mac_cost.md.

A *record* is a plain dict per (weight, act, arch, simd, dsp): the `mac_cost` counts plus
``finn_per_MAC`` (FINN's analytic estimate for the integer MVAU our lowering produces) or a
``skipped`` reason. ``scripts/mac_cost_table.py`` renders the records.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import Executor
from pathlib import Path

from brevitas_minifloat.hw.cost import finn_mvau_lut_estimate, mac_costs, yosys_version
from brevitas_minifloat.hw.operands import Operand, as_operand, formats_of_width, is_minifloat
from brevitas_minifloat.hw.rtl import GENERATOR_VERSION, MacUnit

__all__ = ["SIDE_PAIRS", "build", "cross_pairs", "equal_width_pairs", "is_int_pair", "run_jobs", "sweep_jobs"]

# Pairs for the DSP and SIMD side tables.
SIDE_PAIRS = [("INT4", "INT4"), ("E2M1", "E2M1"), ("INT8", "INT8"), ("E4M3", "INT8"), ("E4M3", "E4M3"), ("E5M2", "E5M2")]


def is_int_pair(w: Operand, a: Operand) -> bool:
    """Integer x integer: both architectures are the same circuit."""
    return not is_minifloat(w) and not is_minifloat(a)


def sweep_jobs(
    pairs: Iterable[tuple[Operand | str, Operand | str]],
    *,
    fan_in: int = 64,
    simd: int = 1,
    dsp: bool = False,
    max_decode_product_bits: int = 72,
    cache_dir: str | Path | None = None,
    timeout: float | None = None,
) -> tuple[list[dict], list[dict]]:
    """``(jobs, skipped)``: `mac_cost` keyword dicts for both architectures of every pair, and
    records for the units not synthesized (decode units whose integer multiplier would exceed
    ``max_decode_product_bits``). Integer x integer pairs run once (both architectures are the
    same circuit). Jobs are ordered most expensive first, which packs a worker pool better."""
    jobs, skipped = [], []
    for w, a in pairs:
        w, a = as_operand(w), as_operand(a)
        for arch in ("decode", "shift"):
            if arch == "shift" and is_int_pair(w, a):
                continue
            unit = MacUnit(w, a, fan_in=fan_in, simd=simd, arch=arch)
            base = {"weight": w.name, "act": a.name, "arch": arch, "fan_in": fan_in, "simd": simd, "dsp": dsp}
            if arch == "decode" and unit.product_bits > max_decode_product_bits:
                skipped.append({**base, "skipped": f"{unit.product_bits}-bit integer product (> {max_decode_product_bits})",
                                "acc_bits": unit.acc_bits, "product_bits": unit.product_bits})
                continue
            jobs.append({**base, "cache_dir": cache_dir, "timeout": timeout, "_cost": unit.product_bits + unit.acc_bits})
    jobs.sort(key=lambda j: -j["_cost"])
    for j in jobs:
        del j["_cost"]
    return jobs, skipped


def run_jobs(jobs: list[dict], *, workers: int = 2, executor: Executor | None = None) -> list[dict]:
    """Synthesize (or read from cache) every job; returns records with FINN's estimate attached."""
    results = mac_costs(jobs, workers=workers, executor=executor)
    records = []
    for job, res in zip(jobs, results, strict=True):
        rec = {k: v for k, v in job.items() if k not in ("cache_dir", "timeout")}
        if "error" in res:
            rec["skipped"] = res["error"]
        else:
            rec.update({k: v for k, v in res.items() if k not in ("key", "cells")})
        rec["finn_per_MAC"] = finn_mvau_lut_estimate(job["weight"], job["act"], fan_in=job["fan_in"], simd=job["simd"],
                                                     res_type="dsp" if job["dsp"] else "lut")["per_MAC"]
        records.append(rec)
    return records


def equal_width_pairs(bits: Iterable[int]) -> list[tuple[Operand, Operand]]:
    return [(w, a) for n in bits for w in formats_of_width(n) for a in formats_of_width(n)]


def cross_pairs(bits: Iterable[int]) -> list[tuple[Operand, Operand]]:
    fmts = [f for n in bits for f in formats_of_width(n)]
    return [(w, a) for w in fmts for a in fmts]


def build(
    bits: Iterable[int] = range(3, 9),
    *,
    cross: bool = False,
    side_tables: bool = True,
    fan_in: int = 64,
    workers: int = 2,
    cache_dir: str | Path | None = None,
    max_decode_product_bits: int = 72,
    timeout: float | None = None,
    executor: Executor | None = None,
) -> dict:
    """Run the whole sweep; returns ``{"main": records, "dsp": records, "simd": records, "meta": ...}``."""
    bits = list(bits)
    t0 = time.perf_counter()
    pairs = cross_pairs(bits) if cross else equal_width_pairs(bits)
    kw = {"fan_in": fan_in, "cache_dir": cache_dir, "timeout": timeout, "max_decode_product_bits": max_decode_product_bits}
    jobs, skipped = sweep_jobs(pairs, **kw)
    side_jobs = {}
    if side_tables:
        side = [(w, a) for w, a in SIDE_PAIRS if as_operand(w).bit_width in bits and as_operand(a).bit_width in bits]
        side_jobs["dsp"] = sweep_jobs(side, dsp=True, **kw)[0]
        side_jobs["simd"] = sweep_jobs(side, simd=4, **kw)[0]
    everything = jobs + [j for js in side_jobs.values() for j in js]
    records = run_jobs(everything, workers=workers, executor=executor)
    out = {"main": records[: len(jobs)] + skipped}
    pos = len(jobs)
    for name, js in side_jobs.items():
        out[name] = records[pos : pos + len(js)]
        pos += len(js)
    out["meta"] = {
        "seconds": time.perf_counter() - t0,
        "synthesized": sum(1 for r in records if not r.get("cached") and "skipped" not in r),
        "cached": sum(1 for r in records if r.get("cached")),
        "yosys": yosys_version(),
        "generator_version": GENERATOR_VERSION,
        "fan_in": fan_in,
        "bits": bits,
        "cross": cross,
        "max_decode_product_bits": max_decode_product_bits,
    }
    return out
