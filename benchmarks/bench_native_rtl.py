"""RTL simulation speed of native MVAU layers: simulated cycles per second, Icarus vs Verilator.

For each layer size (E4M3 x E4M3, random weights and inputs, no back-pressure) it simulates a batch
with `finn_transforms.native.sim.verify_layer` (every output checked against `reference_mvau`) in
Icarus Verilog and in Verilator, and prints the simulator's own run time (build excluded), the
build time and cycles per second side by side, with the Verilator / Icarus speed ratio. Wall times on a shared machine include the neighbours' load.

    python benchmarks/bench_native_rtl.py [--sizes small|all] [--batch 4] [--no-verilator] [--write-doc]

``--write-doc`` puts the table into docs/native_layer_cost.md between the markers below
(``scripts/native_layer_cost_table.py`` keeps that block when it regenerates the document).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from brevitas_minifloat.hw.operands import finite_codes  # noqa: E402
from finn_transforms.native.rtl import NativeMvauRtl  # noqa: E402
from finn_transforms.native.sim import layer_simulator_missing, verify_layer  # noqa: E402
from finn_transforms.native.spec import NativeMvauSpec  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "native_layer_cost.md"
START, END = "<!-- bench_native_rtl:start -->", "<!-- bench_native_rtl:end -->"
SMALL = [(16, 16, 1, 1), (64, 64, 4, 4), (64, 64, 8, 8)]  # (MW, MH, PE, SIMD)
ALL = SMALL + [(256, 64, 16, 16), (576, 64, 16, 32)]


def run(spec: NativeMvauSpec, batch: int, simulator: str) -> dict:
    rng = np.random.default_rng(0)
    w = rng.choice(np.array(finite_codes(spec.weight_format)), size=(spec.mh, spec.mw))
    x = rng.integers(0, len(spec.input_format.values()), size=(batch, spec.mw))
    t0 = time.perf_counter()
    result = verify_layer(NativeMvauRtl(spec, w), x, simulator=simulator)
    total = time.perf_counter() - t0
    return {"cycles": result.cycles, "run_s": result.seconds, "build_s": total - result.seconds,
            "cps": result.cycles_per_second}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", choices=["small", "all"], default="small")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--no-verilator", action="store_true")
    ap.add_argument("--write-doc", action="store_true")
    args = ap.parse_args()
    sims = ["icarus"] + ([] if args.no_verilator or layer_simulator_missing("verilator") else ["verilator"])
    lines = [
        f"RTL simulation speed (`benchmarks/bench_native_rtl.py --sizes {args.sizes} --batch {args.batch}`, E4M3 x E4M3,",
        f"every output checked; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: wall times include the neighbours).",
        "",
        "| MW x MH, PE x SIMD | cycles | " + " | ".join(f"{s} run s | {s} build s | {s} cycles/s" for s in sims)
        + (" | Verilator / Icarus |" if len(sims) == 2 else " |"),
        "| --- " * (2 + 3 * len(sims) + (len(sims) == 2)) + "|",
    ]
    print("\n".join(lines), flush=True)
    for mw, mh, pe, simd in SMALL if args.sizes == "small" else ALL:
        spec = NativeMvauSpec("E4M3", "E4M3", mw, mh, pe, simd)
        res = {s: run(spec, args.batch, s) for s in sims}
        row = f"| {mw} x {mh}, {pe} x {simd} | {res[sims[0]]['cycles']} | "
        row += " | ".join(f"{res[s]['run_s']:.2f} | {res[s]['build_s']:.1f} | {res[s]['cps']:.0f}" for s in sims)
        row += f" | {res['verilator']['cps'] / res['icarus']['cps']:.0f}x |" if len(sims) == 2 else " |"
        lines.append(row)
        print(row, flush=True)
    if args.write_doc:
        block = f"{START}\n" + "\n".join(lines) + f"\n{END}"
        doc = DOC.read_text() if DOC.exists() else ""
        if START in doc and END in doc:
            doc = doc.split(START, 1)[0] + block + doc.split(END, 1)[1]
        else:
            doc = doc.rstrip() + "\n\n## Simulation speed\n\n" + block + "\n"
        DOC.write_text(doc)


if __name__ == "__main__":
    main()
