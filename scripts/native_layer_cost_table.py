"""Regenerate docs/native_layer_cost.md and finn_transforms/native/cost_fit.py.

1. Synthesizes (Yosys, `finn_transforms.native.cost.synthesize_layer`, JSON-cached) a training set
   of native layers (format pairs x foldings), chooses the model's features by cross-validation on
   it (`select_features`) and fits the cost model (`cost.fit`), written to
   ``finn_transforms/native/cost_fit.py`` with its LUT and FF error on held-out layers (format pairs
   and foldings not in the training set, and the comparison layers).
2. For the comparison layers (INT4, INT8 and E2M1 .. E5M2 at equal weight/input format, same
   folding) it reports synthesized LUT / FF / BRAM18 / DSP, the fitted model's LUTs, FINN+'s MVAU
   estimate of the integer-embedding layer FINN would build otherwise, and cycles simulated in
   Icarus beside NF*SF; and answers whether the E4M3 layer is within 1.2x the INT8 layer's LUTs.
3. Depthwise layers (`finn_transforms.native.vvau_rtl`, ``VVAU_minifloat``): synthesized layers
   (a training grid and the comparison layers) fit their own model
   (``finn_transforms/native/cost_fit_vvau.py``, same features with the depthwise input lanes),
   its error held out by folding (each folding predicted by the fit of the others); the comparison
   layers are reported with their cycles simulated beside NF*SF. ``--vvau-only`` regenerates just
   that section of an existing document and the VVAU fit.

    python scripts/native_layer_cost_table.py [--out docs/native_layer_cost.md] [--workers 2] [--vvau-only]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from brevitas_minifloat.hw.cost import finn_datatype, finn_mvau_lut_estimate, yosys_version  # noqa: E402
from brevitas_minifloat.hw.operands import finite_codes, is_minifloat  # noqa: E402
from finn_transforms.native import cost  # noqa: E402
from finn_transforms.native.sim import verify_layer  # noqa: E402
from finn_transforms.native.spec import NativeMvauSpec  # noqa: E402

TRAIN_PAIRS = [("INT4", "INT4"), ("INT8", "INT8"), ("E2M1", "E2M1"), ("E2M3", "E2M3"), ("E3M2", "E3M2"),
               ("E4M3", "E4M3"), ("E5M2", "E5M2"), ("E3M0", "E3M0"), ("E4M3", "INT8"), ("E2M1", "UINT4"),
               ("E4M3", "E2M1"), ("E3M2", "E2M1"), ("INT4", "UINT4")]
TRAIN_FOLDINGS = [(32, 8, 1, 1), (64, 16, 2, 4), (16, 16, 4, 1), (24, 6, 3, 8), (64, 8, 1, 8), (32, 16, 8, 2)]
# (MW, MH, PE, SIMD)
UNSEEN_PAIRS = [("E2M2", "E2M2"), ("E3M1", "E3M1"), ("E4M3_FN", "E4M3_FN"), ("E5M2", "E4M3"), ("INT6", "INT6"),
                ("E3M2", "INT8")]
# held out: unseen pairs at a training folding and at an unseen one; trained pairs at unseen foldings
HELD_OUT = [(w, a, 64, 16, 2, 4) for w, a in UNSEEN_PAIRS] + [(w, a, 48, 12, 3, 2) for w, a in UNSEEN_PAIRS]
HELD_OUT += [(w, a, *f) for f in [(128, 8, 1, 8), (64, 16, 8, 4)] for w, a in [("E4M3", "E4M3"), ("INT8", "INT8"),
                                                                            ("E2M1", "E2M1")]]
TABLE_PAIRS = [("INT4", "INT4"), ("INT8", "INT8"), ("E2M1", "E2M1"), ("E2M3", "E2M3"), ("E3M2", "E3M2"),
               ("E4M3", "E4M3"), ("E5M2", "E5M2")]
TABLE_FOLDINGS = [(64, 64, 4, 4), (64, 16, 1, 1)]
VVAU_TRAIN_PAIRS = [("INT4", "INT4"), ("INT8", "INT8"), ("E2M1", "E2M1"), ("E4M3", "E4M3"), ("E5M2", "E5M2")]
VVAU_TRAIN_FOLDINGS = [(9, 16, 1, 1), (9, 16, 4, 3), (4, 16, 4, 4)]  # (K, channels, PE, SIMD)
VVAU_PAIRS = [("INT4", "INT4"), ("INT8", "INT8"), ("E2M1", "E2M1"), ("E4M3", "E4M3")]
VVAU_FOLDINGS = [(9, 64, 4, 1), (9, 32, 8, 3)]  # (K, channels, PE, SIMD): 3x3 kernels
VVAU_EXTRA = [("E2M3", "E2M3", 9, 64, 4, 1), ("E3M2", "E3M2", 9, 64, 4, 1), ("E5M2", "E5M2", 9, 64, 4, 1),
              ("E4M3", "INT8", 9, 32, 8, 3)]
GOAL = 1.2
BENCH_START, BENCH_END = "<!-- bench_native_rtl:start -->", "<!-- bench_native_rtl:end -->"
VVAU_START, VVAU_END = "<!-- vvau:start -->", "<!-- vvau:end -->"


def specs_of(rows) -> list[NativeMvauSpec]:
    return [NativeMvauSpec(w, a, mw, mh, pe, simd) for w, a, mw, mh, pe, simd in rows]


def synthesize_all(specs: list[NativeMvauSpec], workers: int, unit: str = "mvau") -> list[dict]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda s: cost.synthesize_layer(s, unit=unit), specs))


def pct_errors(specs, measured, coefficients, kind: str = "lut", unit: str = "mvau") -> list[float]:
    return [100 * (cost.model_cost(s, coefficients, unit)[kind] - m[kind]) / m[kind] for s, m in zip(specs, measured)]


def pair_of(spec: NativeMvauSpec) -> tuple:
    return spec.weight_format.name, spec.input_format.name


def folding_of(spec: NativeMvauSpec) -> tuple:
    return spec.mw, spec.mh, spec.pe, spec.simd


def cross_validated(specs, measured, names: list[str], kind: str, group) -> list[float]:
    """Percent errors of ``kind`` on each group of training layers (one format pair, or one folding)
    by the model fitted to the other groups on ``names``."""
    errors = []
    for key in dict.fromkeys(map(group, specs)):
        rest = [i for i, s in enumerate(specs) if group(s) != key]
        coefficients = cost.fit([specs[i] for i in rest], [measured[i] for i in rest], names)
        mine = [i for i, s in enumerate(specs) if group(s) == key]
        errors += pct_errors([specs[i] for i in mine], [measured[i] for i in mine], coefficients, kind)
    return errors


def cv_score(specs, measured, names: list[str], kind: str) -> float:
    """Mean absolute error, averaged over leave-one-pair-out and leave-one-folding-out."""
    return float(np.mean([np.mean(np.abs(cross_validated(specs, measured, names, kind, g))) for g in (pair_of, folding_of)]))


def select_features(specs, measured, kind: str) -> tuple[list[str], float]:
    """Backward elimination on the training layers only (held-out layers never choose): repeatedly
    drop the feature whose removal lowers `cv_score` most, while it does not rise."""
    names = list(cost.features(specs[0]))
    best = cv_score(specs, measured, names, kind)
    while len(names) > 1:
        score, drop = min((cv_score(specs, measured, [n for n in names if n != d], kind), d) for d in names)
        if score > best:
            break
        best, names = score, [n for n in names if n != drop]
    return names, best


def error_summary(errors: list[float]) -> dict:
    e = np.abs(errors)
    return {"mean_abs": round(float(e.mean()), 2), "max_abs": round(float(e.max()), 2), "layers": len(errors)}


def finn_embedding_estimate(spec: NativeMvauSpec) -> dict:
    """FINN+'s MVAU estimate of the integer layer our embedding lowering gives FINN (INT19 for E4M3)."""
    est = finn_mvau_lut_estimate(spec.weight_format, spec.input_format, fan_in=spec.mw, simd=spec.simd, pe=spec.pe)
    w_bits, _ = finn_datatype(spec.weight_format)
    a_bits, _ = finn_datatype(spec.input_format)
    memory = cost.weight_memory(spec, weight_bits=w_bits)
    return {"lut": est["LUT"] + memory["lut"], "bram": memory["bram18"], "w_bits": w_bits, "a_bits": a_bits}


def simulate_cycles(spec: NativeMvauSpec, batch: int = 2, unit: str = "mvau") -> tuple[int, int]:
    """Simulated / expected cycles of ``batch`` random vectors (MVAU) or windows (VVAU), every output checked."""
    rng = np.random.default_rng(0)
    w = rng.choice(np.array(finite_codes(spec.weight_format)), size=(spec.mh, spec.mw))
    shape = (batch, spec.mw) if unit == "mvau" else (batch, spec.mw, spec.mh)
    if is_minifloat(spec.input_format):
        x = rng.integers(0, len(spec.input_format.values()), size=shape)
    else:
        x = rng.integers(spec.input_format.integer_min, spec.input_format.integer_max + 1, size=shape)
    run = verify_layer(cost.UNITS[unit](spec, w), x)
    return run.cycles, run.expected_cycles


def vvau_section(workers: int, fit_out: Path) -> list[str]:
    """Fit the depthwise model (written to ``fit_out``) and return the document's VVAU section
    (between `VVAU_START` / `VVAU_END`): synthesized layers beside the fit of the other foldings."""
    grid = specs_of([(w, a, *f) for f in VVAU_TRAIN_FOLDINGS for w, a in VVAU_TRAIN_PAIRS])
    specs = specs_of([(w, a, *f) for f in VVAU_FOLDINGS for w, a in VVAU_PAIRS] + VVAU_EXTRA)
    train = grid + specs
    m_train = synthesize_all(train, workers, unit="vvau")
    measured = m_train[len(grid) :]
    coefficients = cost.fit(train, m_train, unit="vvau")
    err_train = pct_errors(train, m_train, coefficients, unit="vvau")

    def folding(s: NativeMvauSpec) -> tuple:
        return s.mw, s.mh, s.pe, s.simd

    held_lut = {}  # each layer's LUT by the fit of the other foldings
    for f in {folding(s) for s in train}:
        rest = [(s, m) for s, m in zip(train, m_train) if folding(s) != f]
        other = cost.fit([s for s, _ in rest], [m for _, m in rest], unit="vvau")
        held_lut |= {i: cost.model_cost(s, other, unit="vvau")["lut"] for i, s in enumerate(train) if folding(s) == f}
    held_err = [100 * (held_lut[i] - m["lut"]) / m["lut"] for i, m in enumerate(m_train)]
    errors = held_err[len(grid) :]
    summary = {"mean_abs": round(float(np.mean(np.abs(held_err))), 2), "max_abs": round(float(np.max(np.abs(held_err))), 2),
               "layers": len(held_err)}
    write_fit(fit_out, coefficients, {"lut": summary}, len(train), kind="depthwise (VVAU) layers", unit="vvau",
              held_what="each folding predicted by the fit of the other foldings")
    out = [
        VVAU_START,
        "## Depthwise layers (VVAU)",
        "",
        "`finn_transforms.native.vvau_rtl` (the same datapath on FINN's VVAU stream: PE over channels, SIMD over",
        "the kernel, PE x SIMD distinct inputs per beat, no input replay), synthesized the same way; weights counted",
        "as FINN's VVAU counts them. K = kernel elements, C = channels. `VVAU_minifloat`'s estimates are their own",
        "linear model (`cost.features(spec, \"vvau\")`: the MVAU's features with PE x SIMD input lanes;",
        "`native/cost_fit_vvau.py`), fitted on"
        f" {len(train)} synthesized depthwise layers: {len(VVAU_TRAIN_PAIRS)} format pairs x {len(VVAU_TRAIN_FOLDINGS)}"
        f" foldings (K, C, PE, SIMD = {', '.join(map(str, VVAU_TRAIN_FOLDINGS))}) and the {len(specs)} layers below;"
        f" training LUT error mean {np.mean(np.abs(err_train)):.1f} %, max {np.max(np.abs(err_train)):.1f} %.",
        "Held out by folding (each folding's layers predicted by the fit of the other foldings, the `model LUT`",
        f"column below): mean absolute LUT error **{summary['mean_abs']:.1f} %**, max **{summary['max_abs']:.1f} %**"
        f" over the {summary['layers']} layers.",
        "",
        "| weights x inputs | K | C | PE | SIMD | acc bits | LUT | FF | BRAM18 | DSP | model LUT | error | cycles simulated / NF*SF (2 pixels) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, (s, m, e) in enumerate(zip(specs, measured, errors)):
        sim_cycles, expected = simulate_cycles(s, unit="vvau")
        out.append(
            f"| {s.weight_format.name} x {s.input_format.name} | {s.mw} | {s.mh} | {s.pe} | {s.simd} | {s.acc_bits} |"
            f" {m['lut']} | {m['ff']} | {m['bram']} | {m['dsp']} | {held_lut[len(grid) + i]} |"
            f" {fmt_pct(e)} | {sim_cycles} / {expected} |"
        )
    lut = {(s.weight_format.name, s.input_format.name, s.mw, s.mh, s.pe, s.simd): m["lut"] for s, m in zip(specs, measured)}
    out.append("")
    for k, c, pe, simd in VVAU_FOLDINGS:
        ratio = lut[("E4M3", "E4M3", k, c, pe, simd)] / lut[("INT8", "INT8", k, c, pe, simd)]
        verdict = "met" if ratio <= GOAL else "NOT met"
        out.append(f"E4M3 / INT8 LUT ratio at K={k} C={c} PE={pe} SIMD={simd}: **{ratio:.2f}** (goal <= {GOAL}: {verdict}).")
    cpu = sum(m["cpu_seconds"] for m in m_train)
    out += [
        "",
        f"Yosys CPU time of the {len(train)} depthwise syntheses {cpu:.0f} s ({yosys_version()};"
        f" {datetime.date.today().isoformat()}).",
        VVAU_END,
    ]
    return out


def replace_section(text: str, section: list[str]) -> str:
    """``text`` with its VVAU section replaced by ``section`` (inserted before the simulation speed
    section, or appended, when it has none)."""
    block = "\n".join(section)
    if VVAU_START in text and VVAU_END in text:
        head, rest = text.split(VVAU_START, 1)
        return head + block + rest.split(VVAU_END, 1)[1]
    if "## Simulation speed" in text:
        head, rest = text.split("## Simulation speed", 1)
        return head + block + "\n\n## Simulation speed" + rest
    return text.rstrip("\n") + "\n\n" + block + "\n"


def write_fit(path: Path, coefficients: dict, held: dict, n_train: int, kind: str = "native layers",
              unit: str = "mvau", held_what: str = "unseen format pairs, unseen foldings") -> None:
    features = "`finn_transforms.native.cost.features`" + ("" if unit == "mvau" else f' (unit="{unit}")')
    selected = ", features chosen by cross-validation on those layers" if unit == "mvau" else ""
    lines = [
        f'"""Fitted cost model of {kind}. Generated by scripts/native_layer_cost_table.py: do not edit.',
        "",
        f"Compute LUT / FF = sum of coefficient x {features}, non-negative least",
        f"squares (relative residuals) on {n_train} Yosys-synthesized layers ({yosys_version()}){selected}.",
        '"""',
        "",
        f"COEFFICIENTS = {coefficients!r}",
        "",
        f"HELD_OUT_ERROR_PCT = {held!r}",
        f'"""Model error on held-out layers ({held_what}), percent of the synthesized',
        'LUT / FF (total: compute + counted weight memory)."""',
        "",
    ]
    path.write_text("\n".join(lines))


def fmt_pct(x: float) -> str:
    return f"{x:+.1f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "native_layer_cost.md"))
    ap.add_argument("--fit-out", default=str(ROOT / "finn_transforms" / "native" / "cost_fit.py"))
    ap.add_argument("--vvau-fit-out", default=str(ROOT / "finn_transforms" / "native" / "cost_fit_vvau.py"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--vvau-only", action="store_true", help="regenerate only the depthwise section of --out")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.vvau_only:
        doc = Path(args.out)
        doc.write_text(replace_section(doc.read_text(), vvau_section(args.workers, Path(args.vvau_fit_out))))
        print(doc.read_text())
        return

    train = specs_of([(w, a, *f) for w, a in TRAIN_PAIRS for f in TRAIN_FOLDINGS])
    held = specs_of(HELD_OUT)
    table = specs_of([(w, a, *f) for f in TABLE_FOLDINGS for w, a in TABLE_PAIRS])
    measured = synthesize_all(train + held + table, args.workers)
    m_train, m_held, m_table = measured[: len(train)], measured[len(train) : len(train) + len(held)], measured[len(train) + len(held) :]
    chosen = {kind: select_features(train, m_train, kind) for kind in ("lut", "ff")}
    coefficients = {kind: cost.fit(train, m_train, names)[kind] for kind, (names, _) in chosen.items()}
    cv = {kind: {g.__name__: error_summary(cross_validated(train, m_train, names, kind, g)) for g in (pair_of, folding_of)}
          for kind, (names, _) in chosen.items()}
    held_all, m_held_all = held + table, m_held + m_table
    groups = {"unseen pairs": [pair_of(s) not in TRAIN_PAIRS for s in held_all]}
    groups["unseen foldings"] = [not x for x in groups["unseen pairs"]]
    errors = {kind: pct_errors(held_all, m_held_all, coefficients, kind) for kind in ("lut", "ff")}
    summary = {kind: {"all": error_summary(e)} | {g: error_summary([x for x, keep in zip(e, mask) if keep])
                                                   for g, mask in groups.items()} for kind, e in errors.items()}
    err_train = {kind: pct_errors(train, m_train, coefficients, kind) for kind in ("lut", "ff")}
    write_fit(Path(args.fit_out), coefficients, summary, len(train))
    cpu = sum(m["cpu_seconds"] for m in measured)
    cpu_now = sum(m["cpu_seconds"] for m in measured if not m["cached"])

    out = [
        "# Native minifloat MVAU layers: synthesized cost",
        "",
        "Generated by `scripts/native_layer_cost_table.py` on "
        f"{datetime.date.today().isoformat()} ({platform.machine()}, {yosys_version()}); every number below",
        "comes from that run. Layers are `finn_transforms.native.rtl` (FINN's MVAU stream interface, one",
        "shift-datapath `MacUnit` per PE, exact accumulators), synthesized with `synth_xilinx -family xcup",
        "-nodsp` (all arithmetic in LUTs, like FINN's `resType=\"lut\"`). Weights are counted the way FINN",
        "counts its MVAU's weight memory (LUTRAM up to 128 words deep, else RAMB18), so the numbers do not",
        "depend on the weight values. LUT includes the LUTs of Yosys' LUTRAM cells.",
        "",
    ]
    for folding in TABLE_FOLDINGS:
        mw, mh, pe, simd = folding
        rows = [(s, m) for s, m in zip(table, m_table) if (s.mw, s.mh, s.pe, s.simd) == folding]
        lut = {(s.weight_format.name, s.input_format.name): m["lut"] for s, m in rows}
        out += [
            f"## MW={mw}, MH={mh}, PE={pe}, SIMD={simd}",
            "",
            "| weights x inputs | acc bits | LUT | FF | BRAM18 | DSP | model LUT | FINN MVAU estimate, embedding (W, A bits): LUT / BRAM18 | cycles simulated / NF*SF (2 vectors) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for s, m in rows:
            finn = finn_embedding_estimate(s)
            sim_cycles, expected = simulate_cycles(s)
            model = cost.model_cost(s, coefficients)["lut"]
            out.append(
                f"| {s.weight_format.name} x {s.input_format.name} | {s.acc_bits} | {m['lut']} | {m['ff']} | {m['bram']} |"
                f" {m['dsp']} | {model} | {finn['lut']} / {finn['bram']} ({finn['w_bits']}, {finn['a_bits']}) |"
                f" {sim_cycles} / {expected} |"
            )
        ratio = lut[("E4M3", "E4M3")] / lut[("INT8", "INT8")]
        verdict = "met" if ratio <= GOAL else "NOT met"
        out += [
            "",
            f"E4M3 / INT8 LUT ratio at this folding: **{ratio:.2f}** (goal <= {GOAL}: {verdict}).",
            f"E2M1 / INT4: {lut[('E2M1', 'E2M1')] / lut[('INT4', 'INT4')]:.2f}.",
            "",
        ]
    def stated(x: dict) -> str:
        return f"mean **{x['mean_abs']:.1f} %**, max **{x['max_abs']:.1f} %** ({x['layers']} layers)"

    out += [
        "## Cost model",
        "",
        "`native_layer_cost(spec)` (the native ops' `*_estimation`: FINN's estimate reports, `target_fps`",
        "folding, the DSE) returns this linear model of the compute plus the counted weight memory; it never",
        "reads the synthesis cache, so every machine reports the same numbers. Compute LUT / FF =",
        "coefficients x `cost.features`, structural sizes of the generated datapath (multiplier, shifter,",
        "negation, weight and input decode, lane adder, accumulator, replay buffer, counters); non-negative",
        "least squares of each layer's error relative to its size. Which features the model uses is chosen on",
        "the training layers only, by backward elimination on the cross-validated error (mean of",
        "leave-one-format-pair-out and leave-one-folding-out); held-out layers never fit or choose anything.",
        f"Training set: {len(train)} synthesized layers ({len(TRAIN_PAIRS)} format pairs x {len(TRAIN_FOLDINGS)} foldings"
        f" (MW, MH, PE, SIMD) {', '.join(str(f) for f in TRAIN_FOLDINGS)}).",
        "",
        "| | LUT | FF |",
        "| --- | --- | --- |",
        f"| features chosen | {', '.join(coefficients['lut'])} | {', '.join(coefficients['ff'])} |",
        f"| training error | {stated(error_summary(err_train['lut']))} | {stated(error_summary(err_train['ff']))} |",
        f"| cross-validated, leave one pair out | {stated(cv['lut']['pair_of'])} | {stated(cv['ff']['pair_of'])} |",
        f"| cross-validated, leave one folding out | {stated(cv['lut']['folding_of'])} | {stated(cv['ff']['folding_of'])} |",
        f"| **held out, unseen format pairs** | {stated(summary['lut']['unseen pairs'])} | {stated(summary['ff']['unseen pairs'])} |",
        f"| **held out, unseen foldings** (trained pairs) | {stated(summary['lut']['unseen foldings'])} |"
        f" {stated(summary['ff']['unseen foldings'])} |",
        f"| **held out, all** | {stated(summary['lut']['all'])} | {stated(summary['ff']['all'])} |",
        "",
        f"Unseen pairs: {', '.join(f'{w} x {a}' for w, a in UNSEEN_PAIRS)}, at a training folding and at an unseen one.",
        "Unseen foldings: trained pairs at foldings not in the training set, incl. the comparison layers above.",
        "",
        "| held-out layer | synthesized LUT | model LUT | error | synthesized FF | model FF | error |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s, m, e, f in zip(held_all, m_held_all, errors["lut"], errors["ff"]):
        model = cost.model_cost(s, coefficients)
        out.append(f"| {s.weight_format.name} x {s.input_format.name} MW={s.mw} MH={s.mh} PE={s.pe} SIMD={s.simd} |"
                   f" {m['lut']} | {model['lut']} | {fmt_pct(e)} | {m['ff']} | {model['ff']} | {fmt_pct(f)} |")
    out += [
        "",
        "Coefficients per unit of each feature: LUT "
        + ", ".join(f"{k} {v:.3g}" for k, v in coefficients["lut"].items()) + "; FF "
        + ", ".join(f"{k} {v:.3g}" for k, v in coefficients["ff"].items()) + ".",
        "",
        f"Yosys CPU time of the {len(measured)} syntheses behind this document: {cpu:.0f} s ({cpu_now:.0f} s of them in"
        f" this run, the rest read from the JSON cache); this run took {time.perf_counter() - t0:.0f} s.",
        "",
    ]
    out += vvau_section(args.workers, Path(args.vvau_fit_out)) + [""]
    previous = Path(args.out).read_text() if Path(args.out).exists() else ""
    if BENCH_START in previous and BENCH_END in previous:  # benchmarks/bench_native_rtl.py --write-doc
        bench = previous.split(BENCH_START, 1)[1].split(BENCH_END, 1)[0]
        out += ["## Simulation speed", "", f"{BENCH_START}{bench}{BENCH_END}", ""]
    Path(args.out).write_text("\n".join(out))
    print("\n".join(out))


if __name__ == "__main__":
    main()
