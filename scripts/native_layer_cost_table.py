"""Regenerate docs/native_layer_cost.md and finn_transforms/native/cost_fit.py.

1. Synthesizes (Yosys, `finn_transforms.native.cost.synthesize_layer`, JSON-cached) a training set
   of native layers (format pairs x foldings) and fits the cost model (`cost.fit`), written to
   ``finn_transforms/native/cost_fit.py`` with its error on held-out layers (pairs and foldings not
   in the training set, and the larger comparison layers).
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
               ("E4M3", "E2M1")]
TRAIN_FOLDINGS = [(32, 8, 1, 1), (64, 16, 2, 4), (16, 16, 4, 1), (24, 6, 3, 8)]  # (MW, MH, PE, SIMD)
HELD_OUT = [(w, a, 48, 12, 3, 2) for w, a in [("E2M2", "E2M2"), ("E3M1", "E3M1"), ("E4M3_FN", "E4M3_FN"),
                                              ("E5M2", "E4M3"), ("INT6", "INT6"), ("E3M2", "INT8")]]
HELD_OUT += [(w, a, 128, 8, 1, 8) for w, a in [("E4M3", "E4M3"), ("INT8", "INT8"), ("E2M1", "E2M1")]]
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


def pct_errors(specs, measured, coefficients, unit: str = "mvau") -> list[float]:
    return [100 * (cost.model_cost(s, coefficients, unit)["lut"] - m["lut"]) / m["lut"] for s, m in zip(specs, measured)]


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
    write_fit(fit_out, coefficients, summary, len(train), kind="depthwise (VVAU) layers", unit="vvau")
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
              unit: str = "mvau") -> None:
    features = "`finn_transforms.native.cost.features`" + ("" if unit == "mvau" else f' (unit="{unit}")')
    lines = [
        f'"""Fitted cost model of {kind}. Generated by scripts/native_layer_cost_table.py: do not edit.',
        "",
        f"Compute LUT / FF = sum of coefficient x {features}, non-negative least",
        f"squares on {n_train} Yosys-synthesized layers ({yosys_version()}).",
        '"""',
        "",
        f"COEFFICIENTS = {coefficients!r}",
        "",
        f"HELD_OUT_LUT_ERROR_PCT = {held!r}",
        '"""Model LUT error on held-out layers, percent of the synthesized LUTs."""',
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
    coefficients = cost.fit(train, m_train)
    err_train = pct_errors(train, m_train, coefficients)
    err_held = pct_errors(held + table, m_held + m_table, coefficients)
    summary = {"mean_abs": round(float(np.mean(np.abs(err_held))), 2), "max_abs": round(float(np.max(np.abs(err_held))), 2),
               "layers": len(err_held)}
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
    out += [
        "## Cost model",
        "",
        "`native_layer_cost(spec)` (the native ops' `*_estimation`, FINN's reports and folding) returns",
        "this linear model of the compute (coefficients x `cost.features`: multiplier, shifter, adder tree,",
        "accumulator, output queue and input sizes; non-negative least squares) plus the counted weight memory.",
        f"Fitted on {len(train)} synthesized layers ({len(TRAIN_PAIRS)} format pairs x {len(TRAIN_FOLDINGS)} foldings):",
        f"training LUT error mean {np.mean(np.abs(err_train)):.1f} %, max {np.max(np.abs(err_train)):.1f} %.",
        f"Held out ({summary['layers']} layers: unseen pairs, unseen foldings, and the comparison layers above):",
        f"mean absolute LUT error **{summary['mean_abs']:.1f} %**, max **{summary['max_abs']:.1f} %**.",
        "",
        "| held-out layer | synthesized LUT | model LUT | error |",
        "| --- | --- | --- | --- |",
    ]
    for s, m, e in zip(held + table, m_held + m_table, err_held):
        out.append(f"| {s.weight_format.name} x {s.input_format.name} MW={s.mw} MH={s.mh} PE={s.pe} SIMD={s.simd} |"
                   f" {m['lut']} | {cost.model_cost(s, coefficients)['lut']} | {fmt_pct(e)} |")
    out += [
        "",
        "Coefficients (LUT per unit of each feature): "
        + ", ".join(f"{k} {v:.3g}" for k, v in coefficients["lut"].items()) + ".",
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
