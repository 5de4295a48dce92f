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
from brevitas_minifloat.quant.kernel import MinifloatRoundSte  # noqa: E402


def interleaved_medians(fns: list, repeats: int) -> list[float]:
    """Median ms of each function, measured round-robin so load changes hit all of them alike."""
    for fn in fns:
        fn()  # warm-up
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for fn, acc in zip(fns, samples):
            start = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - start)
    return [statistics.median(acc) * 1e3 for acc in samples]


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
        ("ours: minifloat rounding + STE (scale 1)", lambda: MinifloatRoundSte.apply(x, fmt), fwd_bwd(lambda t: MinifloatRoundSte.apply(t, fmt))),
        ("ours: QuantLinear weight quant (stats scale)", lambda: ours_layer.quant_weight(), lambda: ours_layer.quant_weight().value.sum().backward()),
        ("Brevitas Fp8e4m3OCP weight quant (stats scale)", lambda: brev_layer.quant_weight(), lambda: brev_layer.quant_weight().value.sum().backward()),
    ]
    print(f"tensor {args.size}x{args.size} float32, torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    fwd_ms = interleaved_medians([fwd for _, fwd, _ in rows], args.repeats)
    bwd_ms = interleaved_medians([fb for _, _, fb in rows], args.repeats)
    print(f"{'':50s} {'fwd ms':>8s} {'x native':>9s} {'fwd+bwd ms':>11s} {'x native':>9s}")
    for (name, _, _), tf, tb in zip(rows, fwd_ms, bwd_ms):
        print(f"{name:50s} {tf:8.1f} {tf / fwd_ms[0]:9.2f} {tb:11.1f} {tb / bwd_ms[0]:9.2f}")


if __name__ == "__main__":
    main()
