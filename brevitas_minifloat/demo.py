"""A two-minute tour: QAT with minifloats on real digits -> exact QONNX export -> FINN estimates.

    python -m brevitas_minifloat.demo [--out out/demo]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from brevitas import nn as qnn
from qonnx.core.onnx_exec import execute_onnx

from brevitas_minifloat import export_qonnx, minifloat_act_quant, minifloat_weight_quant
from brevitas_minifloat.data import load_dataset
from brevitas_minifloat.training import accuracy, train_classifier


def tiny_mlp() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        qnn.QuantIdentity(act_quant=minifloat_act_quant("E3M2_U", scaling="learned", collect_stats_steps=10)),
        qnn.QuantLinear(784, 64, bias=False, weight_quant=minifloat_weight_quant("E2M1")),
        torch.nn.BatchNorm1d(64),
        qnn.QuantReLU(act_quant=minifloat_act_quant("E2M3_U", scaling="learned", collect_stats_steps=10)),
        qnn.QuantLinear(64, 10, bias=False, weight_quant=minifloat_weight_quant("E2M1")),
        qnn.QuantIdentity(act_quant=minifloat_act_quant("E3M2", collect_stats_steps=10)),
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/demo")
    args = ap.parse_args(argv)
    out = Path(args.out)
    torch.manual_seed(0)
    (xtr, ytr), (xte, yte) = load_dataset("mnist-5k")
    model = tiny_mlp()
    t0 = time.perf_counter()
    train_classifier(model, xtr, ytr)
    acc = accuracy(model, xte, yte)
    print(f"QAT, E2M1 weights / E2M3 activations: test accuracy {acc:.3f} ({time.perf_counter() - t0:.1f} s)")

    exported = export_qonnx(model, xte[:1], out / "mlp_qonnx.onnx")
    inp, outp = exported.graph.input[0].name, exported.graph.output[0].name
    same = all(
        np.array_equal(execute_onnx(exported, {inp: xte[i : i + 1].numpy()})[outp], model(xte[i : i + 1]).detach().numpy())
        for i in range(20)
    )
    print(f"QONNX export {out / 'mlp_qonnx.onnx'}: execute_onnx == torch bit-exactly on 20 images: {same}")

    try:
        from finn_transforms.build import build_estimates
        from finn_transforms.steps import MINIFLOAT_STEP
    except ImportError as err:
        print(f"FINN estimates skipped: {err}")
        return
    report = build_estimates(exported, out / "finn_estimates", extra_steps_before=[MINIFLOAT_STEP])
    print("FINN estimate-only build of the lowered model:")
    print(report.summary())


if __name__ == "__main__":
    main()
