"""``brevitas-minifloat --help`` wall time beside the import it used to pay (torch + Brevitas).

    python benchmarks/bench_cli.py [--repeat 3]

Before issue 16 every command imported the package's ``__init__`` (torch, Brevitas) before parsing,
so ``--help`` cost at least the second column; now names are imported on first use. Each number is
the best of ``--repeat`` fresh interpreters, measured side by side in one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def best_of(code: str, repeat: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    heavy = best_of("import torch, brevitas.nn", args.repeat)
    print(f"{'command':<40}{'seconds':>9}{'import torch+brevitas':>24}{'ratio':>8}")
    for sub in ("", "dse ", "export ", "build ", "verify "):
        code = ("import sys; from brevitas_minifloat.cli import main\n"
                f"try: main({(sub.split() + ['--help'])!r})\nexcept SystemExit: pass")
        t = best_of(code, args.repeat)
        print(f"{'brevitas-minifloat ' + sub + '--help':<40}{t:>9.2f}{heavy:>24.2f}{heavy / t:>7.1f}x")
    print(f"(load average {os.getloadavg()[0]:.1f}; the old --help took at least the torch+brevitas column)")


if __name__ == "__main__":
    main()
