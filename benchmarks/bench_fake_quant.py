"""Fake-quant speed, side by side in one run: ours vs Brevitas' float quantizer vs torch's native cast.

Forward and forward+backward on a float32 tensor (default 4096x4096), E4M3 (OCP "fn") at scale 1
for the kernel comparison and with a per-tensor stats scale for the quantizer comparison.
Prints milliseconds and ratios to the native ``x.to(torch.float8_e4m3fn).to(torch.float32)`` cast.

    python benchmarks/bench_fake_quant.py [--size 4096] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

warnings.filterwarnings("ignore")
import brevitas.nn as qnn  # noqa: E402
from brevitas.quant.float_quant_ocp import Fp8e4m3OCPWeightPerTensorFloat  # noqa: E402

from brevitas_minifloat import MinifloatFormat, minifloat_weight_quant  # noqa: E402
from brevitas_minifloat.quant.kernel import minifloat_fake_quant  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def native_cast(x: torch.Tensor) -> torch.Tensor:
    # straight-through so that backward is defined; forward is the plain cast pair
    return x + (x.detach().to(torch.float8_e4m3fn).to(torch.float32) - x.detach())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    torch.manual_seed(0)
    fmt = MinifloatFormat.parse("E4M3_FN")
    x = torch.randn(args.size, args.size) * 50

    def fwd_bwd(f):
        def run():
            xx = x.clone().requires_grad_(True)
            f(xx).sum().backward()
        return run

    ours_layer = qnn.QuantLinear(args.size, args.size, bias=False, weight_quant=minifloat_weight_quant(fmt, per_channel=False))
    brev_layer = qnn.QuantLinear(args.size, args.size, bias=False, weight_quant=Fp8e4m3OCPWeightPerTensorFloat)
    with torch.no_grad():
        brev_layer.weight.copy_(ours_layer.weight)
    assert torch.equal(ours_layer.quant_weight().value, brev_layer.quant_weight().value), "quantizers disagree"

    rows = [
        ("native cast x.to(float8_e4m3fn).to(float32)", lambda: native_cast(x), fwd_bwd(native_cast)),
        ("ours: minifloat_fake_quant (scale 1)", lambda: minifloat_fake_quant(x, fmt), fwd_bwd(lambda t: minifloat_fake_quant(t, fmt))),
        ("ours: QuantLinear weight quant (stats scale)", lambda: ours_layer.quant_weight(), lambda: ours_layer.quant_weight().value.sum().backward()),
        ("Brevitas Fp8e4m3OCP weight quant (stats scale)", lambda: brev_layer.quant_weight(), lambda: brev_layer.quant_weight().value.sum().backward()),
    ]
    print(f"tensor {args.size}x{args.size} float32, torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    base_f = base_b = None
    print(f"{'':50s} {'fwd ms':>8s} {'x native':>9s} {'fwd+bwd ms':>11s} {'x native':>9s}")
    for name, fwd, fb in rows:
        tf, tb = timed(fwd, args.repeats), timed(fb, args.repeats)
        base_f, base_b = base_f or tf, base_b or tb
        print(f"{name:50s} {tf:8.1f} {tf / base_f:9.2f} {tb:11.1f} {tb / base_b:9.2f}")


if __name__ == "__main__":
    main()
