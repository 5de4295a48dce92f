"""The DSE report folder: ``results.csv``/``results.json`` (every point), ``frontier.csv``,
``accuracy_vs_lut.png`` (95 % intervals, the Pareto frontier, its points not distinguishable from
their cheaper neighbour hollow) and ``heatmap.png`` (best accuracy per weight-bits x
activation-bits with its interval half-width, integer and minifloat side by side)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

CSV_COLUMNS = (
    "weights", "activations", "techniques", "mapping", "kind", "w_bits", "a_bits", "w_int_bits", "a_int_bits",
    "status", "accuracy", "acc_lo", "acc_hi", "calib_min", "calib_max", "frontier_p", "frontier_distinct",
    "accuracy_drop", "output_mse", "ptq_s", "eval_s", "build_s",
    "hw_status", "finn_lut", "finn_bram18", "finn_dsp", "finn_max_cycles", "finn_fps",
    "mac_lut", "mac_lut_at_fps", "finn_mvau_lut", "yosys_status", "yosys_mac_lut", "yosys_lut_folded",
    "hw_reason",
)
KIND_STYLE = {"int": ("tab:blue", "o"), "minifloat": ("tab:orange", "^"), "mixed": ("tab:gray", "s")}


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})


def write_report(result, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "workload": result.workload,
        "fp32_accuracy": result.fp32_accuracy,
        "fp32_interval": result.fp32_interval,
        "frontier_x": result.frontier_x,
        "stats": result.stats,
        "rows": result.rows,
        "frontier": [{k: r.get(k) for k in ("weights", "activations", "techniques", "mapping", "frontier_p",
                                            "frontier_distinct")} for r in result.frontier],
    }
    (out / "results.json").write_text(json.dumps(doc, indent=1))
    _write_csv(out / "results.csv", result.rows)
    _write_csv(out / "frontier.csv", result.frontier)
    plot_accuracy_vs_cost(result, out / "accuracy_vs_lut.png")
    plot_heatmap(result, out / "heatmap.png")
    (out / "summary.txt").write_text(summary(result) + "\n")


def _num(v, fmt="{:.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def _pct(r: dict, key: str) -> float | None:
    return None if r.get(key) is None else 100 * r[key]


def format_rows(rows: list[dict], fp32: float | None = None) -> str:
    """A fixed-width table: accuracy with its 95 % interval, the calibration-sample range where
    measured, McNemar's p against the previous (cheaper) row where marked (``*``: distinguishable)."""
    lines = [f"{'weights':<9}{'acts':<9}{'techniques':<28}{'acc %':>7}{'95% CI':>14}{'calib range':>14}"
             f"{'p prev':>9}{'FINN LUT':>10}{'BRAM18':>8}{'cycles':>9}{'MAC LUT':>9}"]
    for r in rows:
        ci = "-" if r.get("acc_lo") is None else f"{_pct(r, 'acc_lo'):.1f}-{_pct(r, 'acc_hi'):.1f}"
        calib = "-" if r.get("calib_min") is None else f"{_pct(r, 'calib_min'):.1f}-{_pct(r, 'calib_max'):.1f}"
        p = "-" if r.get("frontier_p") is None else f"{r['frontier_p']:.3f}" + ("*" if r.get("frontier_distinct") else "")
        lines.append(f"{r['weights']:<9}{r['activations']:<9}{r['techniques']:<28}{_num(_pct(r, 'accuracy'), '{:.1f}'):>7}"
                     f"{ci:>14}{calib:>14}{p:>9}{_num(r.get('finn_lut')):>10}{_num(r.get('finn_bram18')):>8}"
                     f"{_num(r.get('finn_max_cycles')):>9}{_num(r.get('mac_lut'), '{:.1f}'):>9}")
    return "\n".join(lines)


def summary(result) -> str:
    rows = result.rows
    by_status: dict[str, int] = {}
    for r in rows:
        s = r.get("hw_status") or "not built"
        by_status[s] = by_status.get(s, 0) + 1
    st = result.stats
    ci = result.fp32_interval
    head = [
        f"workload: {result.workload.get('name')} ({result.workload.get('dataset')}, "
        f"{st.get('eval_images')} held-out images); FP32 accuracy {100 * result.fp32_accuracy:.1f}%"
        + (f" (95% CI {100 * ci[0]:.1f}-{100 * ci[1]:.1f})" if ci else ""),
        f"{st.get('points')} points, {st.get('jobs_run')} jobs run, {st.get('jobs_cached')} cached, "
        f"{st.get('seconds', 0):.0f} s; FINN status: "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())),
        f"Pareto frontier (accuracy vs {result.frontier_x}); 95% CI: Wilson over the test images; calib range: "
        f"accuracy over {st.get('calibration_seeds')} calibration samples; p prev: McNemar's exact test against "
        f"the previous (cheaper) frontier point, * = distinguishable at {st.get('alpha', 0.05):g}:",
    ]
    return "\n".join(head) + "\n" + format_rows(result.frontier)


def _ci(r: dict, key: str, default: float) -> float:
    return default if r.get(key) is None else 100 * r[key]


def plot_accuracy_vs_cost(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from brevitas_minifloat.dse.runner import pareto_front

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, x, label in ((axes[0], "finn_lut", "FINN estimated LUTs (lowered model)"),
                         (axes[1], "mac_lut_at_fps", f"analytic MAC LUTs at {result.stats.get('cost_fps', 0):g} fps")):
        shown = 0
        for kind, (color, marker) in KIND_STYLE.items():
            pts = [r for r in result.rows if r["kind"] == kind and r.get(x) and r.get("accuracy") is not None]
            if pts:
                shown += len(pts)
                ys = [100 * r["accuracy"] for r in pts]
                err = [[y - _ci(r, "acc_lo", y) for r, y in zip(pts, ys)], [_ci(r, "acc_hi", y) - y for r, y in zip(pts, ys)]]
                ax.errorbar([r[x] for r in pts], ys, yerr=err, fmt=marker, ms=4, alpha=0.6, color=color,
                            elinewidth=0.8, capsize=1.5, label=f"{kind} ({len(pts)}; bars: 95% CI)")
        front = pareto_front(result.rows, x=x)
        if front:
            xs = [r[x] for r in front]
            ys = [100 * r["accuracy"] for r in front]
            ax.plot(xs, ys, drawstyle="steps-post", color="k", lw=1.2, label="Pareto frontier")
            same = [r.get("frontier_distinct") is False for r in front] if x == result.frontier_x else [False] * len(front)
            ax.scatter([v for v, s in zip(xs, same) if not s], [v for v, s in zip(ys, same) if not s], s=70,
                       facecolors="none", edgecolors="k", lw=1.2)
            if any(same):
                ax.scatter([v for v, s in zip(xs, same) if s], [v for v, s in zip(ys, same) if s], s=70, marker="x",
                           color="k", lw=1.2, label="frontier, not distinguishable from its cheaper neighbour")
            for r in front[-6:]:
                ax.annotate(f"{r['weights']}/{r['activations']}", (r[x], 100 * r["accuracy"]), fontsize=7,
                            xytext=(3, -9), textcoords="offset points")
        ax.axhline(100 * result.fp32_accuracy, color="tab:green", ls="--", lw=1, label="FP32")
        xs_all = [r[x] for r in result.rows if r.get(x)]
        if xs_all and max(xs_all) > 5 * min(xs_all):
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy %")
        accs = [_ci(r, "acc_lo", 100 * r["accuracy"]) for r in result.rows if r.get("accuracy") is not None and r.get(x)]
        if accs:
            lo = max(min(accs), 100 * result.fp32_accuracy - 25)
            ax.set_ylim(lo - 1, 100 * result.fp32_accuracy + 1.5)
        missing = sum(1 for r in result.rows if r.get("accuracy") is not None and not r.get(x))
        ax.set_title(f"{shown} points" + (f" ({missing} without {x})" if missing else ""), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{result.workload.get('name')}: accuracy vs cost", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_heatmap(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    wb = sorted({r["w_bits"] for r in result.rows})
    ab = sorted({r["a_bits"] for r in result.rows})
    kinds = [k for k in ("int", "minifloat") if any(r["kind"] == k for r in result.rows)] or ["mixed"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds) + 1, 3.8), squeeze=False)
    accs = [100 * r["accuracy"] for r in result.rows if r.get("accuracy") is not None]
    vmin = min(min(accs, default=0), 100 * result.fp32_accuracy - 1)
    for ax, kind in zip(axes[0], kinds):
        grid = np.full((len(wb), len(ab)), np.nan)
        names = [["" for _ in ab] for _ in wb]
        halves = [["" for _ in ab] for _ in wb]
        for i, w in enumerate(wb):
            for j, a in enumerate(ab):
                best = result.best(kind=kind, w_bits=w, a_bits=a)
                if best is not None:
                    grid[i, j] = 100 * best["accuracy"]
                    names[i][j] = f"{best['weights']}\n{best['activations']}" if kind != "int" else ""
                    if best.get("acc_lo") is not None:
                        halves[i][j] = f"±{50 * (best['acc_hi'] - best['acc_lo']):.1f}"
        im = ax.imshow(grid, origin="lower", cmap="viridis", vmin=vmin, vmax=100 * result.fp32_accuracy)
        for i in range(len(wb)):
            for j in range(len(ab)):
                if not math.isnan(grid[i, j]):
                    color = "white" if grid[i, j] < vmin + 0.4 * (100 * result.fp32_accuracy - vmin) else "black"
                    ax.text(j, i, f"{grid[i, j]:.1f}{halves[i][j]}" + (f"\n{names[i][j]}" if names[i][j] else ""),
                            ha="center", va="center", fontsize=6.5, color=color)
        ax.set_xticks(range(len(ab)), [str(a) for a in ab])
        ax.set_yticks(range(len(wb)), [str(w) for w in wb])
        ax.set_xlabel("activation bits")
        ax.set_ylabel("weight bits")
        ax.set_title(f"best {kind} accuracy % (± half the 95% CI)", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
