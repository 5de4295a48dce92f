"""Regenerate docs/dse.md (and its PNGs) from design-space sweeps on the embedded workload.

    python scripts/dse_tables.py [--cache out/dse] [--work out/dse_tables] [--workers 2] [--measured-mac]

Four sweeps share the JSON cache of `brevitas-minifloat dse` (``out/dse/cache``), so points computed
by ``make dse`` are not recomputed:

1. ``default``: the CLI's default preset with FINN estimates (plots, frontier, its calibration spread);
2. ``weights``: every width 3..8, ``INTn`` and the minifloat splits E2..E4 as weights, activations INT8;
3. ``activations``: the same formats as activations, weights INT8;
4. ``techniques``: each PTQ technique alone and the combinations at W4A4 and W3A3, integer and
   minifloat, each point calibrated on 3 calibration samples.

The claims section compares points with McNemar's exact test on the same 10,000 test images.
Takes about an hour on 2 busy cores from an empty cache.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from brevitas_minifloat.dse import (  # noqa: E402
    TECHNIQUE_STUDY,
    Point,
    analytic_mac_cost,
    default_workload,
    pareto_front,
    preset,
    run_dse,
    technique_label,
)
from brevitas_minifloat.ptq import DEFAULT_TECHNIQUES, QuantSpec, formats_for_bits  # noqa: E402

DEFAULT = technique_label(tuple(DEFAULT_TECHNIQUES))
ALPHA = 0.05
TECH_PAIRS = (("INT4", "INT4"), ("E2M1", "E2M1"), ("INT3", "INT3"), ("E2M0", "E2M0"))


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def num(x, fmt="{:.0f}") -> str:
    return "-" if x is None else fmt.format(x)


def acc_ci(r: dict | None) -> str:
    """``87.3 [86.6, 87.9]``: accuracy % with its 95 % Wilson interval."""
    if r is None or r.get("accuracy") is None:
        return "-"
    return f"{pct(r['accuracy'])} [{pct(r['acc_lo'])}, {pct(r['acc_hi'])}]"


def calib(r: dict) -> str:
    return "-" if r.get("calib_min") is None else f"{pct(r['calib_min'])}-{pct(r['calib_max'])}"


def p_text(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 1e-3 else f"{p:.3f}"


def verdict(delta: float, p: float | None, better: str, worse: str) -> str:
    if p is None:
        return "-"
    if p >= ALPHA:
        return "no detectable difference"
    return better if delta > 0 else worse


def hw_cell(r: dict) -> str:
    if r.get("finn_lut") is not None:
        return f"{r['finn_lut']:.0f}"
    status = r.get("hw_status") or "-"
    return status


def width_points(bits: int, max_exponent: int = 4) -> list[str]:
    """``INTn`` and the signed minifloat splits E2..E``max_exponent`` of ``bits`` bits (E1 = the INT grid)."""
    return formats_for_bits(bits, ("int", "minifloat"), min_exponent=2, max_exponent=max_exponent)


def compare(result, a: dict | None, b: dict | None) -> tuple[float | None, float | None]:
    """``(accuracy b - a, McNemar p)`` on the same test images (``None`` rows: the float model)."""
    if (a is not None and a.get("accuracy") is None) or (b is not None and b.get("accuracy") is None):
        return None, None
    acc = [result.fp32_accuracy if r is None else r["accuracy"] for r in (a, b)]
    test = result.paired_test(a, b)
    return acc[1] - acc[0], None if test is None else test["p"]


def best_minifloat(rows: list[dict], role: str, bits: int) -> dict | None:
    pool = [r for r in rows if r[role] != f"INT{bits}" and r[f"{role[0]}_bits"] == bits and r.get("accuracy") is not None]
    return max(pool, key=lambda r: (r["accuracy"], -(r.get("output_mse") or 0)), default=None)


def width_claims(result, role: str, fixed: str) -> tuple[list[str], list[tuple[int, float, float]]]:
    """Per width 3..8: INTn vs the most accurate minifloat split in the ``role`` ("weights"/"activations")."""
    other = "activations" if role == "weights" else "weights"
    lines = [f"| bits | INT{{n}} {role} | accuracy % [95% CI] | best minifloat | accuracy % [95% CI] "
             f"| minifloat - INT | McNemar p | every split (accuracy %) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    found = []
    for bits in range(3, 9):
        rows = [r for r in result.rows if r[other] == fixed and r[f"{role[0]}_bits"] == bits]
        i = next((r for r in rows if r[role] == f"INT{bits}"), None)
        m = best_minifloat(rows, role, bits)
        if i is None or m is None:
            continue
        delta, p = compare(result, i, m)
        splits = ", ".join(f"{r[role]} {pct(r['accuracy'])}" for r in rows if r[role] != f"INT{bits}")
        lines.append(f"| {bits} | INT{bits} | {acc_ci(i)} | {m[role]} | {acc_ci(m)} | {100 * delta:+.1f} "
                     f"| {p_text(p)} | {splits} |")
        found.append((bits, delta, p))
    return lines, found


def claim_summary(found: list[tuple[int, float, float]]) -> str:
    better = [b for b, d, p in found if p is not None and p < ALPHA and d > 0]
    worse = [b for b, d, p in found if p is not None and p < ALPHA and d < 0]
    same = [b for b, d, p in found if p is None or p >= ALPHA]
    parts = []
    for label, bits in (("minifloat more accurate", better), ("integer more accurate", worse),
                        ("no detectable difference", same)):
        if bits:
            parts.append(f"{label} at {', '.join(map(str, bits))} bits")
    return "; ".join(parts) or "no data"


def technique_rows(result) -> tuple[list[str], list[str]]:
    """Accuracy per technique and format pair (with the range over calibration samples), and per
    technique its effect vs calibration only with McNemar's p."""
    head = "| techniques | " + " | ".join(f"W/A {w}" for w, _ in TECH_PAIRS) + " |"
    table = [head, "| --- |" + " --- |" * len(TECH_PAIRS)]
    effect = [head.replace("techniques", "technique vs none"), table[1]]
    for t in TECHNIQUE_STUDY:
        cells, deltas = [], []
        for w, a in TECH_PAIRS:
            r, none = result.row(w, a, t), result.row(w, a, ())
            cells.append("-" if r is None or r.get("accuracy") is None else f"{acc_ci(r)} ({calib(r)})")
            if t and r is not None and none is not None:
                d, p = compare(result, none, r)
                mean_d = None
                if r.get("calib_accuracies") and none.get("calib_accuracies") and None not in (
                        r["calib_accuracies"] + none["calib_accuracies"]):
                    mean_d = (sum(r["calib_accuracies"]) - sum(none["calib_accuracies"])) / len(r["calib_accuracies"])
                deltas.append("-" if d is None else f"{100 * d:+.1f}, p {p_text(p)}"
                              + ("" if mean_d is None else f"; mean of 3 samples {100 * mean_d:+.1f}"))
        table.append(f"| {technique_label(t)} | " + " | ".join(cells) + " |")
        if t:
            effect.append(f"| {technique_label(t)} | " + " | ".join(deltas) + " |")
    return table, effect


def technique_claims(result) -> list[str]:
    """One line per technique: where it helps, hurts, or does nothing detectable, integer vs minifloat."""
    out = []
    for t in TECHNIQUE_STUDY:
        if len(t) != 1:
            continue
        verdicts = []
        for w, a in TECH_PAIRS:
            r, none = result.row(w, a, t), result.row(w, a, ())
            d, p = compare(result, none, r)
            if d is None:
                continue
            v = verdict(d, p, "helps", "hurts")
            verdicts.append(f"{w}: {v} ({100 * d:+.1f}, p {p_text(p)})")
        out.append(f"| {t[0]} | " + "; ".join(verdicts) + " |")
    return out


def run(workload, space, out, args, **kw):
    t = time.perf_counter()
    result = run_dse(workload, space, out, workers=args.workers, cache_dir=args.cache / "cache",
                     progress=not args.quiet, **kw)
    print(f"{out.name}: {len(result.rows)} points, {result.stats['jobs_run']} jobs run, "
          f"{result.stats['jobs_cached']} cached, {time.perf_counter() - t:.0f} s", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("out/dse"), help="CLI output folder holding the cache")
    ap.add_argument("--work", type=Path, default=Path("out/dse_tables"), help="reports of the sweeps")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "dse.md")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--calibration-seeds", type=int, default=3, help="calibration samples per technique point")
    ap.add_argument("--measured-mac", action="store_true", help="add the Yosys-measured MAC section (slow)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    t_all = time.perf_counter()

    workload, meta = default_workload(args.cache)
    default = run(workload, preset("default"), args.work / "default", args,
                  **({"measured_mac": "shift"} if args.measured_mac else {}))
    weights = run(workload, [Point(f, "INT8", tuple(DEFAULT_TECHNIQUES)) for b in range(3, 9) for f in width_points(b)],
                  args.work / "weights", args, finn=False, calibration_seeds=1)
    acts = run(workload, [Point("INT8", f, tuple(DEFAULT_TECHNIQUES)) for b in range(3, 9) for f in width_points(b)],
               args.work / "activations", args, finn=False, calibration_seeds=1)
    techniques = run(workload, [Point(w, a, t) for w, a in TECH_PAIRS for t in TECHNIQUE_STUDY],
                     args.work / "techniques", args, finn=False, spread="all", calibration_seeds=args.calibration_seeds)
    total_s = time.perf_counter() - t_all

    fp32, ci = default.fp32_accuracy, default.fp32_interval
    n_eval = default.stats.get("eval_images") or 0
    half = 100 * (ci[1] - ci[0]) / 2
    recipe = meta.get("recipe", {})
    lines = [
        "# Design-space exploration: integer vs minifloat formats, PTQ techniques",
        "",
        "_Generated by `python scripts/dse_tables.py` (do not edit by hand)._",
        "",
        f"Workload: `fashion_cnv` (`brevitas_minifloat/dse/embedded.py`): FINN's CNV topology narrowed for 28x28 "
        "inputs: conv3x3(8)-BN-ReLU x2, max-pool, conv3x3(16)-BN-ReLU x2, max-pool, FC 256-64-10 "
        f"({meta.get('parameters', 0):,} parameters), trained in float for {recipe.get('epochs')} epochs on the "
        f"60,000 Fashion-MNIST training images (`python scripts/train_dse_workload.py`; the weights ship in the "
        f"package, sha256 `{meta.get('sha256', '')[:16]}...` checked on load) and evaluated on all {n_eval:,} test "
        f"images. PTQ (`brevitas_minifloat.ptq.quantize`) calibrates on one batch of {workload.calibration_size} "
        "training images drawn by a seeded generator. Weights are quantized per output channel, activations per "
        "tensor; activations that are never negative (the image, ReLU outputs) use the unsigned format of the same "
        "width (`INTn -> UINTn`, `ExMy -> ExM(y+1)_U`). FINN estimates are FINN+ 1.6.1's analytic models of the "
        f"lowered model folded for {default.stats.get('target_fps'):g} frames/s at 100 MHz on an xczu3eg "
        "(estimate-only build, `finn_transforms.build.build_estimates`).",
        "",
        f"FP32 accuracy: **{pct(fp32)}%** [{pct(ci[0])}, {pct(ci[1])}].",
        "",
        "## Statistics used on this page",
        "",
        f"- Every accuracy comes with its 95 % Wilson score interval over the {n_eval:,} test images "
        f"(`brevitas_minifloat.dse.stats.wilson_interval`): about +-{half:.1f} points here.",
        "- Two points are compared with McNemar's exact test on the same test images (the binomial test of the "
        "images only one of the two classifies correctly; `mcnemar_exact`), which is much more sensitive than "
        "comparing the two intervals, because both points see the same images. \"Distinguishable\" means "
        f"p < {ALPHA}. With many comparisons on one page some p < {ALPHA} are expected by chance (about 1 in 20 "
        "true ties).",
        f"- PTQ depends on its calibration sample: frontier points (and every point of the technique study) are "
        f"quantized on {args.calibration_seeds} calibration samples (seeds 0, 1, 2 of `Workload.calibration_batch`); "
        "the range of their accuracies is shown as *calib*. A difference smaller than that range is not a property "
        "of the format or technique. McNemar's p is computed on seed 0.",
        "- \"Best minifloat\" picks the most accurate split on the test set itself, which favours minifloats "
        "slightly (the best of 2-3 draws); every split is listed beside it.",
        "",
    ]
    lines += claims_section(default, weights, acts, techniques)
    lines += ["", "## Minifloat vs integer per width", "",
              "Weights at each width (3..8 bits), activations INT8 (UINT8 after ReLU), "
              f"techniques `{DEFAULT}`:", ""]
    wl_lines, _ = width_claims(weights, "weights", "INT8")
    lines += wl_lines
    lines += ["", "Activations at each width, weights INT8:", ""]
    al_lines, _ = width_claims(acts, "activations", "INT8")
    lines += al_lines
    lines += ["", "Equal widths (weights and activations, from the default sweep):", "",
              "| bits | INT accuracy % [95% CI] | FINN LUT | E2 minifloat | accuracy % [95% CI] | FINN LUT (embedding) "
              "| minifloat - INT | McNemar p |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for bits in (3, 4, 6, 8):
        i = default.row(f"INT{bits}", f"INT{bits}", tuple(DEFAULT_TECHNIQUES))
        mf = f"E2M{bits - 3}"
        m = default.row(mf, mf, tuple(DEFAULT_TECHNIQUES))
        if i is None or m is None:
            continue
        d, p = compare(default, i, m)
        lines.append(f"| {bits} | {acc_ci(i)} | {hw_cell(i)} | {mf} | {acc_ci(m)} | {hw_cell(m)} "
                     f"| {num(None if d is None else 100 * d, '{:+.1f}')} | {p_text(p)} |")

    table, effect = technique_rows(techniques)
    lines += ["", "## Effect of each PTQ technique", "",
              f"Accuracy % [95% CI] (range over {args.calibration_seeds} calibration samples); calibration (Brevitas "
              "`calibration_mode`) always runs.", "", *table, "",
              "Effect vs calibration only (`none`), in points, McNemar's p on seed 0, and the mean effect over the "
              "calibration samples:", "", *effect, "",
              "`equalize`: cross-layer weight equalization (Brevitas `EqualizeGraph`); `smoothquant`: activation "
              "equalization fused into the previous layer (Brevitas `activation_equalization_mode`, alpha 0.5); "
              "`mse`: MSE-optimal weight and activation scales; `gptq` / `learned_round`: GPTQ and AdaRound-style "
              "rounding on the format's own grid with fixed per-channel scales (`brevitas_minifloat/ptq/rounding.py`); "
              "`bias_correction`: Brevitas `bias_correction_mode`. The unit tests show each technique helping where it "
              "should (`tests/test_ptq.py`)."]
    lines += default_section(default)
    if args.measured_mac:
        lines += measured_section(default)
    lines += cost_section(default)
    lines += [
        "",
        "## Timings",
        "",
        *cli_timing(args.cache / "default" / "results.json"),
        f"Job times measured inside the jobs (one torch thread each) for the default sweep: PTQ + evaluation "
        f"{_sum(_unique(default.rows, 'techniques'), 'ptq_s', 'eval_s'):.0f} s over {default.stats.get('points')} points, "
        f"FINN estimate builds {_sum(_unique(default.rows, 'mapping'), 'build_s'):.0f} s over "
        f"{len(_unique(default.rows, 'mapping'))} builds (format pair x mapping). "
        f"Regenerating this page took {total_s / 60:.1f} minutes this time (cached points are reused) on a machine "
        "shared with other jobs. The wall time of `brevitas-minifloat dse` from an empty folder and the sweep "
        "throughput with 1 and 2 workers: [dse_benchmark.md](dse_benchmark.md) "
        "(`python benchmarks/bench_dse.py --write-doc`).",
        "",
        "## Reproduce",
        "",
        "```bash",
        "make dse                              # or: brevitas-minifloat dse  (report in out/dse/default)",
        "python scripts/dse_tables.py          # this page; reuses out/dse/cache",
        "python scripts/train_dse_workload.py  # retrain the shipped float weights (optional)",
        "```",
    ]
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text("\n".join(lines) + "\n")
    for name, target in (("accuracy_vs_lut.png", "dse_accuracy_vs_lut.png"), ("heatmap.png", "dse_heatmap.png")):
        shutil.copyfile(args.work / "default" / name, args.doc.parent / target)
    print(f"wrote {args.doc} ({total_s / 60:.1f} min)")


def cli_timing(path: Path) -> list[str]:
    """The last `brevitas-minifloat dse` run into the cache folder, from its results.json."""
    if not path.is_file():
        return []
    st = json.loads(path.read_text()).get("stats", {})
    cold = "from an empty cache" if st.get("jobs_cached") == 0 else f"{st.get('jobs_cached')} jobs cached"
    return [f"The last `brevitas-minifloat dse` into `{path.parent}` ({cold}, {st.get('jobs_run')} jobs on "
            f"{st.get('workers')} workers): {st.get('seconds', 0) / 60:.1f} minutes in `run_dse` (without the "
            "interpreter start and imports; the full wall time is in dse_benchmark.md).", ""]


def claims_section(default, weights, acts, techniques) -> list[str]:
    """The paper's qualitative claims, one row each, and what this workload's data says."""
    lines = ["## The minifloat paper's claims, checked on this workload", "",
             "Claims of Aggarwal et al., *Shedding the Bits: Pushing the Boundaries of Quantization with Minifloats "
             "on FPGAs* (FPL 2024, arXiv 2311.12359), as stated in its abstract, and our measurement. Our workload is "
             "a narrow CNN on Fashion-MNIST, not the paper's ImageNet models: agreement or disagreement here says "
             "what holds for this model, not whether the paper is right for its models.", "",
             "| claim | our test | our data | verdict |", "| --- | --- | --- | --- |"]
    for bits in (8, 6, 4):
        mf = f"E2M{bits - 3}"
        m = default.row(mf, mf, tuple(DEFAULT_TECHNIQUES))
        d, p = compare(default, None, m)
        if d is None:
            continue
        lines.append(f"| minifloats approach full-precision accuracy ({bits} bits) | W{bits}A{bits} {mf} vs FP32, "
                     f"McNemar | {acc_ci(m)} vs {pct(default.fp32_accuracy)}: {100 * d:+.1f} points, p {p_text(p)} "
                     f"| {verdict(d, p, 'above FP32', 'below FP32')} |")
    for role, result in (("weights", weights), ("activations", acts)):
        _, found = width_claims(result, role, "INT8")
        lines.append(f"| minifloat vs integer {role}, 3..8 bits | best minifloat split vs INTn per width, other operand "
                     f"INT8, McNemar | " + ", ".join(f"{b}: {100 * d:+.1f} (p {p_text(p)})" for b, d, p in found)
                     + f" | {claim_summary(found)} |")
    lines += ["", "Integer-based PTQ techniques applied to minifloats (the paper's second question: do they carry over?), "
              "each technique alone vs calibration only, seed 0:", "",
              "| technique | effect per format pair (points, McNemar p) |", "| --- | --- |",
              *technique_claims(techniques)]
    return lines


def default_section(default) -> list[str]:
    fp32 = default.fp32_accuracy
    lines = [
        "",
        "## The default sweep (`brevitas-minifloat dse`)",
        "",
        f"{default.stats.get('points')} points ({len(default.rows)} rows): weight and activation widths 3, 4, 6, 8 crossed; `INTn` and the E2 minifloat "
        f"of each width; techniques `{DEFAULT}`; points with a minifloat are built with each mapping of "
        f"{', '.join(default.stats.get('mappings') or ['embedding'])} (a row each). "
        + ", ".join(f"{v} `{k}`" for k, v in sorted(_status_counts(default.rows).items())) + " FINN builds.",
        "",
        "![accuracy vs LUT](dse_accuracy_vs_lut.png)",
        "",
        "![best accuracy per width](dse_heatmap.png)",
        "",
        f"Pareto frontier (accuracy vs {default.frontier_x}); *p prev*: McNemar's exact test against the previous "
        f"(cheaper) frontier point; *distinct*: p < {ALPHA} (otherwise the extra cost buys no detectable accuracy):",
        "",
        "| weights | activations | mapping | accuracy % [95% CI] | calib | p prev | distinct | FINN LUT | BRAM18 | cycles |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in default.frontier:
        distinct = "-" if r.get("frontier_distinct") is None else ("yes" if r["frontier_distinct"] else "no")
        lines.append(f"| {r['weights']} | {r['activations']} | {r.get('mapping') or '-'} | {acc_ci(r)} | {calib(r)} "
                     f"| {p_text(r.get('frontier_p'))} "
                     f"| {distinct} | {num(r.get('finn_lut'))} | {num(r.get('finn_bram18'))} | {num(r.get('finn_max_cycles'))} |")
    near = [r for r in default.rows if r.get("finn_lut") and r.get("accuracy") is not None
            and (default.paired_test(None, r) or {}).get("p", 0) >= ALPHA]
    if near:
        c = min(near, key=lambda r: r["finn_lut"])
        lines += ["", f"Cheapest point not distinguishable from FP32 (McNemar p >= {ALPHA}): "
                      f"{c['weights']}/{c['activations']} ({acc_ci(c)}, {c['finn_lut']:.0f} FINN LUT)."]
    else:
        best = max((r for r in default.rows if r.get("accuracy") is not None), key=lambda r: r["accuracy"])
        lines += ["", f"Every point is distinguishable from FP32 ({pct(fp32)}%); the most accurate is "
                      f"{best['weights']}/{best['activations']} ({acc_ci(best)})."]
    return lines


def cost_section(default) -> list[str]:
    lines = [
        "",
        "## The analytic MAC cost model",
        "",
        "`brevitas_minifloat.hw.analytic.analytic_mac_cost(weight, act, fan_in)`, a first-order LUT count for a "
        "6-LUT fabric derived here (not a synthesis result, not taken from a paper): integer MAC = `p_w * p_a` "
        "(array multiplier) + accumulator (`p_w + p_a + ceil(log2 fan_in)` bits, 1 LUT/bit); minifloat MAC = "
        "`(M_w+1)(M_a+1)` significand multiplier + sign + exponent adder + hidden-bit detect + an alignment shifter "
        "(`P * ceil(S/2)` LUTs: the product moves into a `P = b_w + b_a`-bit fixed-point word, `b` = integer "
        "embedding width, `S` mux stages for the possible shifts, a 4:1 mux per LUT) + an exact `P + ceil(log2 "
        "fan_in)`-bit accumulator. E1 minifloats have uniform grids and are costed as their integer embedding. "
        "No DSPs, no pipeline registers, no specials. The model-level `MAC LUT` column is the per-MAC cost averaged "
        "over the layers weighted by their MACs; `mac_lut_at_fps` (the right-hand plot) counts the MAC units a "
        f"folding for {default.stats.get('cost_fps'):g} frames/s at 100 MHz needs. A measured model plugs into the "
        "same hook: `run_dse(..., mac_cost=fn)` / `brevitas-minifloat dse --mac-cost module:function`; the "
        "Yosys-measured `brevitas_minifloat.hw.cost.mac_cost` ([mac_cost.md](mac_cost.md)) fits it as is, and "
        "`python scripts/dse_tables.py --measured-mac` adds the measured section to this page.",
        "",
        "Per-MAC LUTs at fan-in 64, weights x unsigned activations of the same width:",
        "",
        "| bits | INT | " + " | ".join(f"E{e}" for e in (2, 3, 4)) + " |",
        "| --- | --- |" + " --- |" * 3,
    ]
    for bits in (4, 6, 8):
        cells = []
        for e in (2, 3, 4):
            fmts = [f for f in formats_for_bits(bits, ("minifloat",)) if f.startswith(f"E{e}M")]
            if not fmts:
                cells.append("-")
                continue
            act = QuantSpec.parse(fmts[0]).unsigned().name
            cells.append(f"{fmts[0]}: {analytic_mac_cost(fmts[0], act, 64)['LUT']:.0f}")
        int_cost = analytic_mac_cost(f"INT{bits}", f"UINT{bits}", 64)["LUT"]
        lines.append(f"| {bits} | {int_cost:.0f} | " + " | ".join(cells) + " |")
    return lines


def measured_section(result) -> list[str]:
    """Yosys-measured MAC units x FINN's folding beside FINN's own MVAU estimate, per format pair."""
    pairs = [r for r in _unique_hw(result.rows) if r.get("yosys_lut_folded") is not None and r.get("finn_mvau_lut")]
    lines = [
        "",
        "## Measured MAC cost (Yosys) beside FINN's estimates",
        "",
        "`run_dse(..., measured_mac=\"shift\")` / `brevitas-minifloat dse --measured-mac shift`: for every format "
        "pair each compute layer's MAC unit (weight format x the format of the quantizer feeding the layer, exact "
        "accumulator for the layer's fan-in; `brevitas_minifloat.hw`, the `shift` architecture: significand "
        "multiply + exponent shift, verified bit-exact in RTL simulation) is synthesized with Yosys "
        "(`synth_xilinx -family xcup -nodsp`, see [mac_cost.md](mac_cost.md)) and its LUTs are multiplied by the "
        "MACs per cycle of the layer's MVAU in FINN's folding for this sweep's target (PE x SIMD), then summed "
        "over the layers (`yosys_lut_folded`). `finn_mvau_lut` is FINN's estimate for the same MVAUs (its "
        "formula on the integer embedding, weight memory included); `FINN LUT` the whole accelerator. "
        "`yosys_mac_lut`: measured LUTs per MAC, MAC-weighted over the layers.",
        "",
        "| weights | activations | FINN LUT | FINN MVAU LUT | Yosys LUT/MAC | Yosys MAC LUT x PE*SIMD | measured / FINN MVAU |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(pairs, key=lambda r: (r["w_bits"], r["a_bits"], r["kind"] != "int", r["weights"], r["activations"])):
        lines.append(f"| {r['weights']} | {r['activations']} | {num(r.get('finn_lut'))} | {num(r['finn_mvau_lut'])} "
                     f"| {num(r.get('yosys_mac_lut'), '{:.1f}')} | {num(r['yosys_lut_folded'])} "
                     f"| {r['yosys_lut_folded'] / r['finn_mvau_lut']:.2f} |")
    missing = [r for r in _unique_hw(result.rows) if r.get("yosys_lut_folded") is None]
    if missing:
        lines += ["", "Without a measured column: " + ", ".join(
            f"{r['weights']}/{r['activations']} ({r.get('yosys_status') or r.get('hw_status')})" for r in missing) + "."]
    if pairs:
        ratios = sorted(r["yosys_lut_folded"] / r["finn_mvau_lut"] for r in pairs)
        ints = [r for r in pairs if r["kind"] == "int"]
        mfs = [r for r in pairs if r["kind"] == "minifloat"]
        front = pareto_front(result.rows, x="yosys_lut_folded")
        lines += [
            "",
            f"Measured / FINN MVAU ranges from {ratios[0]:.2f} to {ratios[-1]:.2f} (median "
            f"{ratios[len(ratios) // 2]:.2f}); integer pairs {_range(ints)}, minifloat pairs {_range(mfs)}. "
            "The two do not count the same thing: FINN's number includes the MVAU's weight storage and control, "
            "ours only the arithmetic, built as minifloat units instead of FINN's integer multipliers on the "
            "embedding. Pareto frontier by the measured column: "
            + ", ".join(f"{r['weights']}/{r['activations']} ({pct(r['accuracy'])}%, {r['yosys_lut_folded']:.0f} LUT)"
                        for r in front) + ".",
        ]
    return lines


def _range(rows) -> str:
    if not rows:
        return "-"
    vals = [r["yosys_lut_folded"] / r["finn_mvau_lut"] for r in rows]
    return f"{min(vals):.2f}-{max(vals):.2f}"


def _sum(rows, *keys) -> float:
    return sum(r.get(k) or 0 for r in rows for k in keys)


def _unique(rows, extra: str) -> list:
    """The first row per (weights, activations, ``extra``)."""
    seen, out = set(), []
    for r in rows:
        if (r["weights"], r["activations"], r.get(extra)) not in seen:
            seen.add((r["weights"], r["activations"], r.get(extra)))
            out.append(r)
    return out


def _unique_hw(rows) -> list:
    seen, out = set(), []
    for r in rows:
        if (r["weights"], r["activations"]) not in seen:
            seen.add((r["weights"], r["activations"]))
            out.append(r)
    return out


def _status_counts(rows) -> dict:
    out: dict[str, int] = {}
    for r in rows:
        s = r.get("hw_status") or "not built"
        out[s] = out.get(s, 0) + 1
    return out


if __name__ == "__main__":
    main()
