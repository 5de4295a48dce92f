"""Benchmark: lowering + FINN estimate build of the native E4M3 CNN vs FINN's INT8 build of the same shape.

The CNV-shaped CNN of `brevitas_minifloat.zoo` (1x28x28, 16/32 channels, power-of-two scales,
calibrated on random data) is exported twice: E4M3 weights and activations, built with our
lowering step (default ``mapping="auto"``: every layer native), and INT8, built by FINN's own flow
(no lowering step). One untimed warm-up build of each, then ``--repeats`` interleaved timed builds;
the medians and their ratio are printed side by side.

    python benchmarks/bench_native.py [--repeats 1] [--target-fps 10000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from brevitas_minifloat import export_qonnx
from brevitas_minifloat.zoo import calibrate, cnv_cnn
from finn_transforms.build import build_estimates
from finn_transforms.steps import MINIFLOAT_STEP


def exported(fmt: str, path: Path):
    torch.manual_seed(0)
    model = calibrate(cnv_cnn(fmt, fmt, input_bits_or_fmt=fmt, power_of_two=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_qonnx(model, torch.randn(1, 1, 28, 28), path)


def timed_build(model, out: Path, native: bool, target_fps: float | None) -> float:
    start = time.perf_counter()
    build_estimates(model, out, target_fps=target_fps, extra_steps_before=[MINIFLOAT_STEP] if native else [])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--target-fps", type=float, default=None)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
