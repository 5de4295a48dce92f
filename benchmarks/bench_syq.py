"""Training-step cost of SYQ weight quantization, measured side by side in one run.

One step = forward + backward (with a fixed upstream gradient, after zeroing the parameter gradients)
of a single 3x3 convolution on a CPU batch, for:
a float ``nn.Conv2d``; Brevitas ``QuantConv2d`` with Brevitas' constant-scale ternary quantizer
(``SignedTernaryWeightPerTensorConst``); and ``QuantConv2d`` with SYQ (ternary/binary, every group
kind, with and without ``scale_bits``). Timings interleave the variants round by round (so machine
load drifts hit all of them alike) and report the median and the minimum per-step time over the
rounds with their ratios to float (on a shared machine the minimum is the better estimate of the
intrinsic cost). Two input sizes by default: a training-sized batch and a small one, where the
per-step cost of quantizing the weights weighs most.

    python benchmarks/bench_syq.py [--shapes 32x16,4x8] [--channels 64] [--rounds 15] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from brevitas.nn import QuantConv2d
from brevitas.quant.binary import SignedBinaryWeightPerTensorConst
from brevitas.quant.ternary import SignedTernaryWeightPerTensorConst

from brevitas_minifloat import syq_weight_quant


def variants(c: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    out = {"float Conv2d": torch.nn.Conv2d(c, c, 3, padding=1)}
    out["Brevitas ternary const"] = QuantConv2d(c, c, 3, padding=1, weight_quant=SignedTernaryWeightPerTensorConst)
    out["Brevitas binary const"] = QuantConv2d(c, c, 3, padding=1, weight_quant=SignedBinaryWeightPerTensorConst)
    for levels in ("ternary", "binary"):
        for groups in ("layer", "channel", "row", "pixel"):
            out[f"SYQ {levels} {groups}"] = QuantConv2d(
                c, c, 3, padding=1, weight_quant=syq_weight_quant(levels, groups))
    out["SYQ ternary pixel scale_bits=4"] = QuantConv2d(
        c, c, 3, padding=1, weight_quant=syq_weight_quant("ternary", "pixel", scale_bits=4))
    return out


def step(module: torch.nn.Module, x: torch.Tensor, grad_out: torch.Tensor) -> None:
    module.zero_grad(set_to_none=True)
    module(x).backward(grad_out)


def bench(mods: dict[str, torch.nn.Module], batch: int, channels: int, size: int, rounds: int, steps: int):
    x = torch.randn(batch, channels, size, size)
    grad_out = torch.randn(batch, channels, size, size)
    for m in mods.values():  # warm-up (also runs SYQ's lazy scale initialisation)
        for _ in range(3):
            step(m, x, grad_out)
    times: dict[str, list[float]] = {k: [] for k in mods}
    for _ in range(rounds):
        for name, m in mods.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step(m, x, grad_out)
            times[name].append((time.perf_counter() - t0) / steps)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def main(argv=None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="32x16,4x8", help="comma-separated BATCHxSIZE input shapes")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    mods = variants(args.channels)
    ratios = {}
    for shape in args.shapes.split(","):
        batch, size = (int(v) for v in shape.lower().split("x"))
        res = bench(mods, batch, args.channels, size, args.rounds, args.steps)
        med0, min0 = res["float Conv2d"]
        c = args.channels
        print(f"\n# conv {c}->{c} 3x3 pad 1, input {batch}x{c}x{size}x{size}, {args.threads} thread(s), "
              f"{args.rounds} rounds x {args.steps} steps, torch {torch.__version__}")
        print("| variant | median ms/step | ratio (median) | min ms/step | ratio (min) |")
        print("|---|---:|---:|---:|---:|")
        for k, (med, mn) in res.items():
            print(f"| {k} | {med * 1e3:.3f} | {med / med0:.2f} | {mn * 1e3:.3f} | {mn / min0:.2f} |")
        ratios[shape] = {k: mn / min0 for k, (med, mn) in res.items()}
    return ratios


if __name__ == "__main__":
    main()
