"""Benchmark: minifloat lowering + FINN estimate build vs FINN's own flow on the integer model.

For the TFC-shaped MLP at several widths and the CNV-shaped CNN at several channel counts
(`brevitas_minifloat.zoo`, untrained, calibrated on random data), measures in one run:

- ``lower_minifloat``: our exact lowering passes alone, on the exported QONNX model;
- minifloat build: ``build_estimates(..., extra_steps_before=[MINIFLOAT_STEP])`` end to end
  (our step included; its share is reported separately);
- integer build: ``build_estimates`` without our step on the INT4 model of the same shape
  (FINN's own QONNX -> FINN conversion does the integer counterpart of the lowering).

Runs are interleaved (integer, minifloat, integer, ...) after one untimed warm-up build of each kind,
and the median of ``--repeats`` is reported.
FINN's default folding (PE = SIMD = 1) is used throughout: folding does not change build time much.

    python benchmarks/bench_lowering.py [--specs E2M3,E3M2] [--repeats 3] [--quick]
                                        [--write-doc [docs/finn_lowering.md]]

``--write-doc`` replaces the benchmark section of docs/finn_lowering.md (between its
``bench_lowering`` markers; appended if absent) with the table of this run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from brevitas_minifloat import export_qonnx  # noqa: E402
from brevitas_minifloat.zoo import calibrate, cnv_cnn, tfc_mlp  # noqa: E402
from finn_transforms.build import build_estimates  # noqa: E402
from finn_transforms.steps import MINIFLOAT_STEP, lower_minifloat  # noqa: E402
from finn_transforms.thresholds import threshold_count  # noqa: E402

BENCH_START = "<!-- bench_lowering:start -->"
BENCH_END = "<!-- bench_lowering:end -->"
INTEGER_SPEC = "INT4"

SHAPES = [
    ("MLP", "hidden 64", tfc_mlp, dict(hidden=64)),
    ("MLP", "hidden 256", tfc_mlp, dict(hidden=256)),
    ("MLP", "hidden 1024", tfc_mlp, dict(hidden=1024)),
    ("CNN", "channels 16, 32", cnv_cnn, dict(channels=(16, 32))),
    ("CNN", "channels 32, 64", cnv_cnn, dict(channels=(32, 64))),
    ("CNN", "channels 64, 128", cnv_cnn, dict(channels=(64, 128))),
]
QUICK_SHAPES = [SHAPES[0], SHAPES[3]]


def _export(factory, kwargs, spec: str, out: Path):
    torch.manual_seed(0)
    hidden = None if spec.upper().startswith("INT") else spec + "_U"  # ReLU outputs: the sign bit dropped
    model = calibrate(factory(spec, spec, hidden_activations=hidden, **kwargs), seed=0)
    return export_qonnx(model, torch.randn(model.input_shape), out)


def _build(model, out: Path, minifloat: bool):
    start = time.perf_counter()
    report = build_estimates(model, out, extra_steps_before=[MINIFLOAT_STEP] if minifloat else [])
    return time.perf_counter() - start, report


def warm_up(specs: list[str], work: Path) -> None:
    """One untimed build of each kind on a tiny MLP: the first build in a process pays for imports."""
    kwargs = dict(hidden=8, in_features=16, classes=4)
    _build(_export(tfc_mlp, kwargs, INTEGER_SPEC, work / "warm_int.onnx"), work / "warm_int", minifloat=False)
    model = _export(tfc_mlp, kwargs, specs[0], work / "warm_mf.onnx")
    lower_minifloat(model)
    _build(model, work / "warm_mf", minifloat=True)


def _median_steps(runs: list[dict]) -> dict[str, float]:
    names = {k for run in runs for k in run}
    return {k: statistics.median(run.get(k, 0.0) for run in runs) for k in names}


def measure(shapes, specs: list[str], repeats: int, work: Path) -> list[dict]:
    warm_up(specs, work)
    rows = []
    for family, label, factory, kwargs in shapes:
        tag = f"{family}_{label.replace(' ', '').replace(',', '_')}"
        int_model = _export(factory, kwargs, INTEGER_SPEC, work / f"{tag}_int.onnx")
        mf_models = {s: _export(factory, kwargs, s, work / f"{tag}_{s}.onnx") for s in specs}
        int_times, int_q2f, int_steps = [], [], []
        mf = {s: dict(lower=[], build=[], step=[], steps=[]) for s in specs}
        for rep in range(repeats):
            t, report = _build(int_model, work / f"{tag}_int_build", minifloat=False)
            int_times.append(t)
            int_q2f.append(report.step_times_s.get("step_qonnx_to_finn", 0.0))
            int_steps.append(report.step_times_s)
            for s, model in mf_models.items():
                start = time.perf_counter()
                lower_minifloat(model)
                mf[s]["lower"].append(time.perf_counter() - start)
                t, report = _build(model, work / f"{tag}_{s}_build", minifloat=True)
                mf[s]["build"].append(t)
                mf[s]["step"].append(report.step_times_s.get("step_lower_minifloat", 0.0))
                mf[s]["steps"].append(report.step_times_s)
            print(f"{family} {label}: repeat {rep + 1}/{repeats} done", flush=True)
        int_med = statistics.median(int_times)
        for s in specs:
            build = statistics.median(mf[s]["build"])
            mf_med, int_med_steps = _median_steps(mf[s]["steps"]), _median_steps(int_steps)
            top = max((k for k in mf_med if k != "step_lower_minifloat"), key=mf_med.get)
            rows.append(
                dict(
                    family=family, shape=label, spec=s, lower_s=statistics.median(mf[s]["lower"]),
                    build_s=build, step_s=statistics.median(mf[s]["step"]), int_build_s=int_med,
                    int_q2f_s=statistics.median(int_q2f), ratio=build / int_med,
                    top_step=top, top_mf_s=mf_med[top], top_int_s=int_med_steps.get(top, 0.0),
                    spread=(min(mf[s]["build"]), max(mf[s]["build"]), min(int_times), max(int_times)),
                )
            )
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | shape | minifloat W/A | `lower_minifloat` (s) | minifloat build (s) | of which our step (s) | "
        f"{INTEGER_SPEC} build, FINN only (s) | of which `step_qonnx_to_finn` (s) | build ratio minifloat / {INTEGER_SPEC} | "
        f"slowest FINN step of the minifloat build: minifloat / {INTEGER_SPEC} (s) | min-max minifloat / integer build (s) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        a, b, c, d = r["spread"]
        lines.append(
            f"| {r['family']} | {r['shape']} | {r['spec']} / {r['spec']} | {r['lower_s']:.2f} | {r['build_s']:.1f} | "
            f"{r['step_s']:.2f} | {r['int_build_s']:.1f} | {r['int_q2f_s']:.2f} | {r['ratio']:.2f} | "
            f"`{r['top_step']}` {r['top_mf_s']:.1f} / {r['top_int_s']:.1f} | {a:.1f}-{b:.1f} / {c:.1f}-{d:.1f} |"
        )
    return lines


def growth(rows: list[dict]) -> list[str]:
    """Sentences on how times grow with width (first vs last shape of each family), from the rows."""
    out = []
    for family in dict.fromkeys(r["family"] for r in rows):
        for spec in dict.fromkeys(r["spec"] for r in rows):
            fam = [r for r in rows if r["family"] == family and r["spec"] == spec]
            if len(fam) < 2:
                continue
            a, b = fam[0], fam[-1]
            out.append(
                f"- {family} {spec}, {a['shape']} -> {b['shape']}: `lower_minifloat` {a['lower_s']:.2f} -> "
                f"{b['lower_s']:.2f} s ({b['lower_s'] / a['lower_s']:.1f}x), minifloat build {a['build_s']:.1f} -> "
                f"{b['build_s']:.1f} s ({b['build_s'] / a['build_s']:.1f}x), {INTEGER_SPEC} build {a['int_build_s']:.1f} -> "
                f"{b['int_build_s']:.1f} s ({b['int_build_s'] / a['int_build_s']:.1f}x)."
            )
    return out


def section(rows: list[dict], meta: dict) -> str:
    ratios = [r["ratio"] for r in rows]
    worst = max(rows, key=lambda r: r["ratio"])
    shares = [r["step_s"] / r["build_s"] for r in rows]
    lines = [
        f"_Measured by `python benchmarks/bench_lowering.py{meta['args']} --write-doc` on {meta['date']} "
        f"({meta['cores']} cores shared with other jobs: load average {meta['load_start']:.1f} at the start, "
        f"{meta['load_end']:.1f} at the end; median of {meta['repeats']} interleaved runs after a warm-up, {meta['wall_s']:.0f} s in total)._",
        "",
        "Wall time of our lowering and of a whole estimate-only FINN build, for minifloat models against FINN's own "
        f"flow on the {INTEGER_SPEC} model of the same shape (same zoo factory, same calibration; FINN's default folding "
        "PE = SIMD = 1). The minifloat build includes our `step_lower_minifloat`; the integer build goes through FINN's "
        "`step_qonnx_to_finn`, which turns the integer `Quant` activations into MultiThresholds.",
        "",
        *table(rows),
        "",
        *growth(rows),
        "",
        f"Across these rows the minifloat build takes {min(ratios):.2f}x to {max(ratios):.2f}x the time of the integer "
        f"build; our lowering step is {100 * min(shares):.0f}% to {100 * max(shares):.0f}% of the minifloat build. "
        "The rest is FINN's own work. In the slowest case "
        f"({worst['family']} {worst['shape']}, {worst['spec']}) FINN's `{worst['top_step']}` takes {worst['top_mf_s']:.1f} s against "
        f"{worst['top_int_s']:.1f} s for {INTEGER_SPEC}"
        + (
            " (profiled: `MVAU_hls.minimize_weight_bit_width` checks every threshold value in Python, "
            "`np.vectorize(DataType.allowed)`, so its time grows with channels x thresholds per channel: "
            f"{threshold_count(worst['spec'] + '_U'):,} per channel for {worst['spec']} after a ReLU against "
            f"{2 ** int(INTEGER_SPEC[3:]) - 1} for {INTEGER_SPEC})"
            if worst["top_step"] == "step_minimize_bit_width"
            else ""
        )
        + ". Timings on a shared 2-core machine vary by tens of percent between runs (see the min-max column).",
    ]
    return "\n".join(lines)


def write_doc(path: Path, text: str) -> None:
    block = f"{BENCH_START}\n{text.strip()}\n{BENCH_END}"
    if path.is_file():
        doc = path.read_text()
        if BENCH_START in doc and BENCH_END in doc:
            head, rest = doc.split(BENCH_START, 1)
            tail = rest.split(BENCH_END, 1)[1]
            path.write_text(head + block + tail)
            return
        path.write_text(doc.rstrip("\n") + "\n\n## Lowering and build time\n\n" + block + "\n")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Minifloats in FINN: lowering and hardware cost\n\n## Lowering and build time\n\n" + block + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--specs", default="E2M3,E3M2", help="minifloat formats used for weights and activations")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="only the smallest MLP and CNN")
    p.add_argument("--work", type=Path, default=None, help="build directory (default: a temporary one)")
    p.add_argument("--write-doc", nargs="?", const=ROOT / "docs" / "finn_lowering.md", type=Path, default=None)
    args = p.parse_args(argv)
    specs = [s.strip() for s in args.specs.split(",") if s.strip()]
    shapes = QUICK_SHAPES if args.quick else SHAPES
    tmp = tempfile.TemporaryDirectory(prefix="bench_lowering_") if args.work is None else None
    work = Path(tmp.name) if tmp else args.work
    work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    rows = measure(shapes, specs, args.repeats, work)
    extra = "".join(
        f" {flag}" for flag, on in ((f"--specs {args.specs}", args.specs != "E2M3,E3M2"), (f"--repeats {args.repeats}", args.repeats != 3), ("--quick", args.quick)) if on
    )
    meta = dict(
        date=datetime.date.today().isoformat(), cores=os.cpu_count(), load_start=load_start,
        load_end=os.getloadavg()[0], repeats=args.repeats, wall_s=time.perf_counter() - start, args=extra,
    )
    text = section(rows, meta)
    print()
    print(text)
    if args.write_doc is not None:
        write_doc(args.write_doc, text)
        print(f"\nwrote the benchmark section of {args.write_doc}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
