"""Sweep `mac_cost` over format pairs and render the results (``scripts/mac_cost_table.py``).

A *record* is a plain dict per (weight, act, arch, simd, dsp): the `mac_cost` counts plus
``finn_per_MAC`` (FINN's analytic estimate for the integer MVAU our lowering produces) or a
``skipped`` reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import Executor
from pathlib import Path

from brevitas_minifloat.hw.cost import (
    SYNTH_SCRIPT,
    finn_mvau_lut_estimate,
    mac_costs,
    yosys_version,
)
from brevitas_minifloat.hw.operands import Operand, as_operand, formats_of_width, is_minifloat
from brevitas_minifloat.hw.rtl import GENERATOR_VERSION, MacUnit

# Pairs for the DSP and SIMD side tables.
SIDE_PAIRS = [("INT4", "INT4"), ("E2M1", "E2M1"), ("INT8", "INT8"), ("E4M3", "INT8"), ("E4M3", "E4M3"), ("E5M2", "E5M2")]


def _is_int_pair(w: Operand, a: Operand) -> bool:
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
            if arch == "shift" and _is_int_pair(w, a):
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


# ------------------------------------------------------------------------------ rendering
def _fmt_num(x) -> str:
    if x is None:
        return "—"
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.1f}"


def _index(records: list[dict]) -> dict:
    return {(r["weight"], r["act"], r["arch"]): r for r in records}


def _lut(idx: dict, w: str, a: str, arch: str):
    r = idx.get((w, a, arch)) or (idx.get((w, a, "decode")) if _is_int_pair(as_operand(w), as_operand(a)) else None)
    if r is None or "skipped" in r:
        return None
    return r["LUT_per_MAC"]


def render_markdown(result: dict) -> str:
    meta, main = result["meta"], result["main"]
    idx = _index(main)
    bits = meta["bits"]
    lines = [
        "# Hardware cost of minifloat vs integer MACs (Yosys, measured)",
        "",
        "Generated by `scripts/mac_cost_table.py` (do not edit by hand). Every number below is a",
        "synthesis result, not an estimate, except the FINN column.",
        "",
        "## What was measured",
        "",
        "- **Unit**: one MVAU processing element from `brevitas_minifloat.hw.rtl` (generator version "
        f"{meta['generator_version']}): weight code x activation code, exact product, a product register, and an",
        f"  exact accumulator sized for fan-in {meta['fan_in']} (`accumulator_bits`). SIMD 1 unless stated. Inputs are",
        "  codes; the output is the exact dot product in units of delta_w * delta_a. Every unit is verified bit-exact",
        "  in RTL simulation (`tests/test_rtl.py`).",
        "- **decode**: each minifloat code becomes its embedded integer (value / delta), then an integer multiplier.",
        "  This is the circuit FINN builds from our exact lowering (integer MVAU on the INTn embedding) plus decoders.",
        "- **shift**: multiply the (M+2)-bit signed significands, shift the product by the summed exponents, accumulate",
        "  in the same exact fixed-point accumulator. Integer x integer units are identical in both columns.",
        f"- **Synthesis**: `yosys -p \"{SYNTH_SCRIPT.format(verilog='unit.v', family='xcup', nodsp=' -nodsp', top='<top>', stat='stat.json')}\"`",
        f"  ({meta['yosys']}). LUT = LUT1..LUT6 (+INV); MUXF7/8/9 and CARRY4 are counted separately (see the full",
        "  table). Yosys 0.23 has no Booth multiplier and maps soft multipliers less compactly than Vivado: compare",
        "  formats with each other, not with Vivado reports.",
        f"- **FINN**: `MVAU_hls.lut_estimation` of FINN+ 1.6.1 for the integer datatypes our lowering gives FINN (the",
        "  minifloat's INTn embedding, e.g. INT5 for E2M1), arithmetic part per MAC (without its 300-LUT constant),",
        "  accumulator set to the exact width. See `cost.finn_mvau_lut_estimate`.",
        "",
    ]
    skipped = [r for r in main if "skipped" in r]
    if skipped:
        lines += [
            f"Not synthesized ({len(skipped)} decode units): the embedded integers of wide-exponent formats",
            f"(E6M0, E6M1, E7M0: up to 128 bits) make integer multipliers over {meta['max_decode_product_bits']} bits;",
            "Yosys takes very long on them and nobody would build them. Their shift units are measured.",
            "",
        ]
    # --- LUT per MAC matrices
    lines += ["## LUTs per MAC, weights x activations of equal bit width", "",
              "Each cell: **decode / shift** LUTs (SIMD 1, no DSP). Rows: weight format; columns: activation format.", ""]
    for n in bits:
        fmts = [f.name for f in formats_of_width(n)]
        if not any((w, a, "decode") in idx or (w, a, "shift") in idx for w in fmts for a in fmts):
            continue
        lines += [f"### {n} bits", "", "| w \\ a | " + " | ".join(fmts) + " |", "|---" * (len(fmts) + 1) + "|"]
        for w in fmts:
            cells = []
            for a in fmts:
                d, s = _lut(idx, w, a, "decode"), _lut(idx, w, a, "shift")
                cells.append(_fmt_num(d) if _is_int_pair(as_operand(w), as_operand(a)) else f"{_fmt_num(d)} / {_fmt_num(s)}")
            lines.append(f"| **{w}** | " + " | ".join(cells) + " |")
        lines.append("")
    # --- same format for both operands, with FINN
    lines += ["## Same format for weights and activations, against FINN's estimate", "",
              "| format | embedding | acc bits | decode LUT | shift LUT | FINN est. | decode / FINN | shift / FINN |",
              "|---|---|---|---|---|---|---|---|"]
    ratios = []
    for n in bits:
        for f in formats_of_width(n):
            w = f.name
            d, s = _lut(idx, w, w, "decode"), _lut(idx, w, w, "shift")
            rec = idx.get((w, w, "decode")) or idx.get((w, w, "shift"))
            if rec is None:
                continue
            finn = finn_mvau_lut_estimate(w, w, fan_in=meta["fan_in"])
            emb = f"INT{finn['W']}"
            lines.append(
                f"| {w} | {emb} | {rec['acc_bits']} | {_fmt_num(d)} | {_fmt_num(s)} | {_fmt_num(finn['per_MAC'])} | "
                f"{_ratio(d, finn['per_MAC'])} | {_ratio(s, finn['per_MAC'])} |"
            )
    lines.append("")
    for r in main:
        if "skipped" not in r:
            ratios.append((r["LUT_per_MAC"] / r["finn_per_MAC"], r))
    lines += _finn_discussion(ratios)
    lines += _findings(idx, meta)
    for name, title in (("dsp", "With DSP inference (no `-nodsp`)"), ("simd", "SIMD 4 (LUTs per MAC = LUT / 4)")):
        recs = result.get(name) or []
        if not recs:
            continue
        lines += [f"## {title}", "", "| weight | act | arch | LUT/MAC | DSP | CARRY | FF | FINN est./MAC |", "|---|---|---|---|---|---|---|---|"]
        for r in sorted(recs, key=lambda r: (as_operand(r["weight"]).bit_width, r["weight"], r["act"], r["arch"])):
            if "skipped" in r:
                lines.append(f"| {r['weight']} | {r['act']} | {r['arch']} | {r['skipped']} | | | | |")
                continue
            lines.append(f"| {r['weight']} | {r['act']} | {r['arch']} | {_fmt_num(r['LUT_per_MAC'])} | {r['DSP']} | "
                         f"{r['CARRY']} | {r['FF']} | {_fmt_num(r['finn_per_MAC'])} |")
        lines.append("")
    # --- full table
    lines += ["## Full results", "", "| weight | act | arch | LUT | MUXF | CARRY | FF | product bits | acc bits | Yosys CPU s | FINN est. |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(main, key=lambda r: (as_operand(r["weight"]).bit_width, as_operand(r["act"]).bit_width,
                                         r["weight"], r["act"], r["arch"])):
        if "skipped" in r:
            lines.append(f"| {r['weight']} | {r['act']} | {r['arch']} | not synthesized: {r['skipped']} | | | | "
                         f"{r.get('product_bits', '')} | {r.get('acc_bits', '')} | | |")
            continue
        lines.append(f"| {r['weight']} | {r['act']} | {r['arch']} | {r['LUT']} | {r['MUXF']} | {r['CARRY']} | {r['FF']} | "
                     f"{r['product_bits']} | {r['acc_bits']} | {r.get('cpu_seconds', r['seconds']):.1f} | {_fmt_num(r['finn_per_MAC'])} |")
    lines += ["", "Yosys CPU s: user + system CPU seconds of the Yosys process (wall time on a shared machine is larger)."]
    return "\n".join(lines) + "\n"


def _ratio(x, y) -> str:
    return "—" if x is None or not y else f"{x / y:.2f}"


def _range(xs: list[float], fmt: str = "{:.2f}") -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "—"
    lo, hi = min(xs), max(xs)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}–{fmt.format(hi)}"


def _exponent_class(name: str) -> str:
    f = as_operand(name)
    if not is_minifloat(f):
        return "INT"
    return f"E{f.exponent_bits}" if f.exponent_bits <= 3 else "E>=4"


def _findings(idx: dict, meta: dict) -> list[str]:
    """Data-driven summary lines: per bit width, integer vs minifloat costs (same-format pairs)."""
    lines = ["## Findings (computed from the tables)", ""]
    for n in meta["bits"]:
        fmts = formats_of_width(n)
        ints = _lut(idx, f"INT{n}", f"INT{n}", "decode")
        mini = [f.name for f in fmts if is_minifloat(f)]
        shift = {m: _lut(idx, m, m, "shift") for m in mini}
        decode = {m: _lut(idx, m, m, "decode") for m in mini}
        measured = {m: v for m, v in shift.items() if v is not None}
        if ints is None or not measured:
            continue
        best = min(measured, key=measured.get)
        pairs = [_lut(idx, w.name, a.name, "shift") for w in fmts for a in fmts
                 if is_minifloat(w) or is_minifloat(a)]
        cheaper = sum(1 for v in pairs if v is not None and v <= ints)
        lines.append(
            f"- **{n} bits**: INT{n} x INT{n} {_fmt_num(ints)} LUTs. Same-format minifloat units: shift "
            f"{_range(list(shift.values()), '{:.0f}')} (cheapest {best}, {measured[best] / ints:.2f}x INT), decode "
            f"{_range(list(decode.values()), '{:.0f}')}. {cheaper} of {len(pairs)} pairs with a minifloat operand "
            f"are no more expensive than INT{n} x INT{n} in the shift architecture."
        )
    lines += ["", "Measured / FINN estimate on same-format pairs, by exponent width:", "",
              "| formats | decode / FINN | shift / FINN |", "|---|---|---|"]
    classes: dict[str, tuple[list, list]] = {}
    for n in meta["bits"]:
        for f in formats_of_width(n):
            finn = finn_mvau_lut_estimate(f.name, f.name, fan_in=meta["fan_in"])["per_MAC"]
            d, sh = _lut(idx, f.name, f.name, "decode"), _lut(idx, f.name, f.name, "shift")
            c = classes.setdefault(_exponent_class(f.name), ([], []))
            c[0].append(None if d is None else d / finn)
            c[1].append(None if sh is None else sh / finn)
    for name in ("INT", "E1", "E2", "E3", "E>=4"):
        if name in classes:
            d, sh = classes[name]
            lines.append(f"| {name} | {_range(d)} | {_range(sh)} |")
    lines.append("")
    return lines


def _finn_discussion(ratios: list[tuple[float, dict]]) -> list[str]:
    if not ratios:
        return []
    lines = ["### Where FINN's formula and the synthesized units disagree", ""]
    for arch in ("decode", "shift"):
        rs = sorted(((q, r) for q, r in ratios if r["arch"] == arch
                     and not _is_int_pair(as_operand(r["weight"]), as_operand(r["act"]))), key=lambda qr: qr[0])
        if not rs:
            continue
        lo, hi = rs[0], rs[-1]
        lines.append(
            f"- **{arch}** (all pairs with a minifloat operand, {len(rs)} units): measured / FINN ranges from "
            f"{lo[0]:.2f} ({lo[1]['weight']} x {lo[1]['act']}) to {hi[0]:.2f} ({hi[1]['weight']} x {hi[1]['act']}); "
            f"{sum(1 for q, _ in rs if q > 1.5)} units over 1.5x, {sum(1 for q, _ in rs if q < 1 / 1.5)} under 1/1.5."
        )
    ints = sorted(((q, r) for q, r in ratios if _is_int_pair(as_operand(r["weight"]), as_operand(r["act"]))),
                  key=lambda qr: as_operand(qr[1]["weight"]).bit_width)
    if ints:
        lines.append("- **integer x integer**: measured / FINN " + ", ".join(
            f"{r['weight']} {q:.2f}" for q, r in ints if r["weight"] == r["act"]) + ".")
    lines += [
        "",
        "Structural reasons: FINN's model sees only the integer widths W and A",
        "(`(2 ceil((W+A)/6) - 1)(W+A)` LUTs per multiplier, about (W+A)^2/3), so it charges a minifloat for its",
        "full embedding width (INT19 for E4M3, INT34 for E5M2) and grows quadratically in it, while a shift unit",
        "multiplies only (M_w+2) x (M_a+2) significand bits and pays for the exponent range with a barrel shifter",
        "and a wider accumulator, which grow far more slowly: FINN overestimates shift units of wide-exponent",
        "formats many times over. It also ignores the decoders (sign-magnitude to two's complement, implicit one, shift):",
        "for E1/E2 formats, whose embedding is barely wider than the code, that overhead makes the real unit",
        "dearer than FINN's estimate for the same INTn. The decode units, built as the estimate assumes, mostly",
        "come out well above FINN's number (see the table in Findings). For plain integers measured / FINN grows",
        "from 0.8 to 1.7 with width, most likely because Yosys 0.23 maps soft multipliers without Booth recoding",
        "while FINN's constants were fitted to Vivado results.",
        "",
    ]
    return lines


def plot(result: dict, path: str | Path) -> None:
    """Two panels: same-format pairs (decode, shift, FINN) by format; all equal-width pairs by bit width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, main = result["meta"], result["main"]
    idx = _index(main)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [1.6, 1]})
    names, dec, shf, finn = [], [], [], []
    for n in meta["bits"]:
        for f in formats_of_width(n):
            if (f.name, f.name, "decode") not in idx and (f.name, f.name, "shift") not in idx:
                continue
            names.append(f.name)
            dec.append(_lut(idx, f.name, f.name, "decode"))
            shf.append(_lut(idx, f.name, f.name, "shift"))
            finn.append(finn_mvau_lut_estimate(f.name, f.name, fan_in=meta["fan_in"])["per_MAC"])
    x = list(range(len(names)))
    ax1.plot([i for i, v in zip(x, dec) if v], [v for v in dec if v], "o--", label="decode (measured)")
    ax1.plot([i for i, v in zip(x, shf) if v], [v for v in shf if v], "s-", label="shift (measured)")
    ax1.plot(x, finn, "^:", color="gray", label="FINN estimate on INTn embedding")
    ints = [i for i, nm in enumerate(names) if nm.startswith("INT")]
    ax1.plot(ints, [dec[i] for i in ints], "k*", markersize=12, label="INT x INT")
    ax1.set_xticks(x)
    ax1.set_xticklabels(names, rotation=70, fontsize=8)
    ax1.set_yscale("log")
    ax1.set_ylabel("LUTs per MAC")
    ax1.set_title(f"Same format for weights and activations (fan-in {meta['fan_in']}, no DSP)")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8)
    for arch, marker, dx in (("decode", "o", -0.12), ("shift", "s", 0.12)):
        pts = [(as_operand(r["weight"]).bit_width + dx, r["LUT_per_MAC"]) for r in main
               if r["arch"] == arch and "skipped" not in r and not _is_int_pair(as_operand(r["weight"]), as_operand(r["act"]))]
        if pts:
            ax2.scatter(*zip(*pts), marker=marker, alpha=0.5, label=f"minifloat pairs, {arch}")
    ipts = [(as_operand(r["weight"]).bit_width, r["LUT_per_MAC"]) for r in main
            if "skipped" not in r and _is_int_pair(as_operand(r["weight"]), as_operand(r["act"]))]
    if ipts:
        ax2.plot(*zip(*sorted(ipts)), "k*-", markersize=12, label="INT x INT")
    ax2.set_yscale("log")
    ax2.set_xlabel("bits per operand (weights and activations)")
    ax2.set_ylabel("LUTs per MAC")
    ax2.set_title("Every equal-width pair")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(f"Yosys synth_xilinx -family xcup -nodsp, {meta['yosys'].split('(')[0].strip()}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
