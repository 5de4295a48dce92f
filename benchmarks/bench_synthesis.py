"""Cost of the hardware measurements: Yosys time per MAC unit, RTL verification time per unit, and
the LUT-table sweep with a cold and a warm JSON cache.

Per unit it reports wall and CPU seconds of Yosys (CPU = user + sys of the Yosys process; on a
shared machine the wall time mostly measures the neighbours) and of the exhaustive Icarus
verification. The table sweep runs `brevitas_minifloat.hw.sweep.build` twice on a fresh cache
directory: cold (everything synthesized) and warm (everything read back from JSON).

    python benchmarks/bench_synthesis.py [--units small|all] [--table-bits 3] [--workers 2]
                                          [--no-table] [--no-units]

``--table-bits 3-8`` times the full default sweep of ``scripts/mac_cost_table.py`` (about 400
units: expect about an hour of CPU when cold).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import runpy
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from brevitas_minifloat.hw import cost, sim, sweep  # noqa: E402
from brevitas_minifloat.hw.rtl import MacUnit  # noqa: E402

#: docs/mac_cost.md's renderer, from the script that writes it (scripts are not a package).
render_markdown = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "mac_cost_table.py"))["render_markdown"]

SMALL = [
    ("INT4", "INT4", "decode"),
    ("E2M1", "E2M1", "decode"),
    ("E2M1", "E2M1", "shift"),
    ("INT8", "INT8", "decode"),
    ("E4M3", "INT8", "shift"),
    ("E4M3", "E4M3", "shift"),
]
ALL = SMALL + [
    ("E4M3", "INT8", "decode"),
    ("E4M3", "E4M3", "decode"),
    ("E5M2", "E5M2", "shift"),
    ("E5M2", "E5M2", "decode"),
    ("E7M0", "E7M0", "shift"),
]


def parse_bits(text: str) -> list[int]:
    if "-" in text:
        lo, hi = map(int, text.split("-"))
        return list(range(lo, hi + 1))
    return [int(b) for b in text.split(",")]


def bench_units(units, fan_in: int) -> None:
    print(f"{'unit':34s} {'LUT':>6s} {'synth wall s':>12s} {'synth CPU s':>11s} {'verify s':>9s} {'pairs':>7s}")
    for w, a, arch in units:
        unit = MacUnit(w, a, fan_in=fan_in, arch=arch)
        raw = cost.synthesize(unit)
        lut = cost.summarize_cells(raw["cells"])["LUT"]
        if sim.simulator_missing():
            vtime, pairs = float("nan"), 0
        else:
            t0 = time.perf_counter()
            res = sim.verify_unit(unit, random_runs=10)
            vtime, pairs = time.perf_counter() - t0, res.products
        print(f"{w + ' x ' + a + ' ' + arch:34s} {lut:6d} {raw['seconds']:12.1f} {raw['cpu_seconds']:11.1f} {vtime:9.2f} {pairs:7d}")


def bench_table(bits: list[int], workers: int, side_tables: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="mac_cost_cache_") as cache:
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            result = sweep.build(bits, cache_dir=cache, workers=workers, side_tables=side_tables)
            render_markdown(result)
            elapsed = time.perf_counter() - t0
            meta = result["meta"]
            cpu = sum(r.get("cpu_seconds", 0) for k in ("main", "dsp", "simd") for r in result.get(k, [])
                      if not r.get("cached"))
            print(f"table bits {bits} {label}: {elapsed:.1f} s wall, {meta['synthesized']} synthesized "
                  f"(Yosys CPU {cpu:.0f} s), {meta['cached']} from cache")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--units", choices=("small", "all"), default="small")
    p.add_argument("--fan-in", type=int, default=64)
    p.add_argument("--table-bits", default="3")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--side-tables", action="store_true", help="include the DSP and SIMD-4 side tables")
    p.add_argument("--no-table", action="store_true")
    p.add_argument("--no-units", action="store_true")
    args = p.parse_args(argv)
    if cost.yosys_missing():
        print(cost.yosys_missing(), file=sys.stderr)
        return 2
    print(cost.yosys_version())
    if not args.no_units:
        bench_units(SMALL if args.units == "small" else ALL, args.fan_in)
    if not args.no_table:
        bench_table(parse_bits(args.table_bits), args.workers, args.side_tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
