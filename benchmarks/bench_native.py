"""Benchmark: lowering + FINN estimate build of the native E4M3 CNN vs FINN's INT8 build of the same shape.

The CNV-shaped CNN of `brevitas_minifloat.zoo` (1x28x28, 16/32 channels, power-of-two scales,
calibrated on random data) is exported twice: E4M3 weights and activations, built with our
lowering step (default ``mapping="auto"``: every layer native), and INT8, built by FINN's own flow
(``lower=False``). One untimed warm-up build of each, then ``--repeats`` interleaved timed builds;
the medians and their ratio are printed side by side.

    python benchmarks/bench_native.py [--repeats 1] [--target-fps 10000] [--write-doc [docs/native_minifloat.md]]

``--write-doc`` puts the table of this run into docs/native_minifloat.md between its
``bench_native`` markers (appended if absent; `scripts/native_minifloat_table.py` keeps the section).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from brevitas_minifloat import export_qonnx
from brevitas_minifloat.zoo import calibrate, cnv_cnn
from finn_transforms.build import build_estimates

BENCH_START = "<!-- bench_native:start -->"
BENCH_END = "<!-- bench_native:end -->"


def exported(fmt: str, path: Path):
    torch.manual_seed(0)
    model = calibrate(cnv_cnn(fmt, fmt, input_bits_or_fmt=fmt, power_of_two=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_qonnx(model, torch.randn(1, 1, 28, 28), path)


def timed_build(model, out: Path, native: bool, target_fps: float | None) -> float:
    start = time.perf_counter()
    build_estimates(model, out, target_fps=target_fps, lower=native)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--target-fps", type=float, default=None)
    ap.add_argument("--write-doc", nargs="?", const="docs/native_minifloat.md", default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_native_") as tmp:
        tmp = Path(tmp)
        e4m3, int8 = exported("E4M3", tmp / "e4m3.onnx"), exported("INT8", tmp / "int8.onnx")
        timed_build(e4m3, tmp / "warm_native", True, args.target_fps)
        timed_build(int8, tmp / "warm_int8", False, args.target_fps)
        native_s, int8_s = [], []
        for i in range(args.repeats):
            int8_s.append(timed_build(int8, tmp / f"int8_{i}", False, args.target_fps))
            native_s.append(timed_build(e4m3, tmp / f"native_{i}", True, args.target_fps))
    n, m = statistics.median(native_s), statistics.median(int8_s)
    print(f"{'build (median of ' + str(args.repeats) + ')':<40}{'seconds':>10}")
    print(f"{'E4M3 native (lowering + FINN)':<40}{n:>10.2f}")
    print(f"{'INT8 (FINN flow)':<40}{m:>10.2f}")
    print(f"{'ratio native / INT8':<40}{n / m:>10.2f}")
    if args.write_doc:
        write_section(Path(args.write_doc), n, m, args)
    return 0


def write_section(doc: Path, native_s: float, int8_s: float, args) -> None:
    fps = "fully folded" if args.target_fps is None else f"target_fps {args.target_fps:g}"
    section = "\n".join([
        BENCH_START,
        "## Benchmark: build time",
        "",
        f"`python benchmarks/bench_native.py --repeats {args.repeats}"
        + ("" if args.target_fps is None else f" --target-fps {args.target_fps:g}")
        + f" --write-doc` on {datetime.date.today()} ({platform.machine()}, shared 2-core machine), CNV-shaped",
        f"CNN (1x28x28, 16/32 channels), {fps}, median of {args.repeats} after one warm-up build each:",
        "",
        "| build | seconds |",
        "| --- | ---: |",
        f"| E4M3, native layers (our lowering + FINN) | {native_s:.2f} |",
        f"| INT8, FINN's own flow | {int8_s:.2f} |",
        f"| ratio native / INT8 | {native_s / int8_s:.2f} |",
        BENCH_END,
    ])
    text = doc.read_text() if doc.is_file() else ""
    if BENCH_START in text and BENCH_END in text:
        head, _, rest = text.partition(BENCH_START)
        text = head + section + rest.partition(BENCH_END)[2]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text)
    print(f"wrote the benchmark section of {doc}")


if __name__ == "__main__":
    raise SystemExit(main())
