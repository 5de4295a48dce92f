"""Sweep throughput of the design-space exploration: points per minute with 1 and 2 local workers.

    python benchmarks/bench_dse.py [--no-finn] [--workers 1,2]

The same sweep (the embedded CNN; W3A3..W6A6 with INTn, E2 and E3 formats: 11 points, the default
PTQ techniques, FINN estimates unless --no-finn) runs once per worker count on a fresh local process
pool (worker start-up included; the imports the parent does before forking are done once up front),
without the cache, and the wall times are printed side
by side with the load average before and after each run: on a shared machine, other processes'
load changes the result. The float model is trained once beforehand (cached in out/dse), not timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brevitas_minifloat.dse import Space, default_workload, run_dse  # noqa: E402
from brevitas_minifloat.ptq import DEFAULT_TECHNIQUES  # noqa: E402

SPACE = Space(weight_bits=(3, 4, 5, 6), act_bits=(3, 4, 5, 6), bit_pairs="diagonal", min_exponent=2, max_exponent=3,
              mixed_kinds=False, pairing="same_exponent", techniques=(tuple(DEFAULT_TECHNIQUES),))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-finn", action="store_true", help="accuracy jobs only")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    ap.add_argument("--model-dir", default="out/dse", help="where the trained float model is cached")
    args = ap.parse_args()
    workload, _ = default_workload(args.model_dir)
    points = SPACE.points()
    finn = not args.no_finn
    print(f"sweep: {len(points)} points ({', '.join(p.weights + '/' + p.activations for p in points)}), "
          f"FINN estimates {'on' if finn else 'off'}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    from brevitas_minifloat.dse.runner import _preload

    _preload(workload, finn)  # what run_dse does before forking workers; once here, so no run pays it alone
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        load_before = os.getloadavg()[0]
        t = time.perf_counter()
        result = run_dse(workload, points, None, workers=workers, finn=finn, progress=False)
        seconds = time.perf_counter() - t
        ok = sum(r["status"] == "ok" for r in result.rows)
        rows.append((workers, seconds, len(points) / seconds * 60, result.stats["jobs_run"], ok, load_before,
                     os.getloadavg()[0]))
    print(f"{'workers':>8}{'seconds':>10}{'points/min':>12}{'jobs':>7}{'ok':>5}{'speed-up':>10}{'load before/after':>20}")
    for workers, seconds, ppm, jobs, ok, lb, la in rows:
        print(f"{workers:>8}{seconds:>10.1f}{ppm:>12.1f}{jobs:>7}{ok:>5}{rows[0][1] / seconds:>10.2f}"
              f"{lb:>13.1f} / {la:.1f}")


if __name__ == "__main__":
    main()
