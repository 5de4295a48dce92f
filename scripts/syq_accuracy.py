"""Fashion-MNIST accuracy of SYQ binary/ternary weights against FP32 and Brevitas baselines.

A small CNN (3 conv + 1 linear, BatchNorm, 8-bit activations everywhere; 16/32/64 channels) is trained from scratch for
the same fixed budget in every configuration; only the weight quantizer of the two middle conv
layers changes (first conv and last linear layer keep 8-bit weights, as is customary):

- ``fp32``: float weights (activations still 8-bit);
- ``syq-<levels>-<groups>``: SYQ, ``levels`` in ternary/binary, ``groups`` in layer/channel/row/pixel
  (plus ternary/pixel with ``scale_bits=4``);
- ``brevitas-ternary-const`` / ``brevitas-binary-const``: Brevitas' ``SignedTernaryWeightPerTensorConst``
  / ``SignedBinaryWeightPerTensorConst`` (constant scale 0.1, weights clamped in place);
- ``int2-perchannel-learned``: Brevitas ``Int8WeightPerChannelFloat`` with ``bit_width=2`` (narrow:
  {-1, 0, +1} * s_c) and a learned per-channel scale (``PARAMETER_FROM_STATS``, abs-max init);
- ``int2-perchannel-learned-meaninit``: the same with the scale initialised from mean |w| (so the
  initial rounding threshold is 0.5 mean|w|, close to SYQ's starting point).

Results go to stdout, to ``--json`` and into the table between the ``syq-accuracy`` markers of
``docs/syq.md`` (``--no-doc`` to skip). The budget is set by ``--train-subset`` / ``--epochs``; the
default (20k training images, 2 epochs, full 10k test set, one CPU thread) takes about 1-1.5 min
per configuration on a quiet core.

    python scripts/syq_accuracy.py [--train-subset 20000] [--epochs 2] [--configs fp32,syq-ternary-pixel]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from brevitas.inject.enum import ScalingImplType, StatsOp
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Int8WeightPerTensorFloat
from brevitas.quant import Uint8ActPerTensorFloat
from brevitas.quant.binary import SignedBinaryWeightPerTensorConst
from brevitas.quant.ternary import SignedTernaryWeightPerTensorConst
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brevitas_minifloat import syq_weight_quant  # noqa: E402
from brevitas_minifloat.data import load_dataset  # noqa: E402

DOC = ROOT / "docs" / "syq.md"
BEGIN, END = "<!-- syq-accuracy:begin -->", "<!-- syq-accuracy:end -->"

Int2PerChannelLearned = Int8WeightPerChannelFloat.let(
    bit_width=2, scaling_impl_type=ScalingImplType.PARAMETER_FROM_STATS)
Int2PerChannelLearnedMeanInit = Int2PerChannelLearned.let(scaling_stats_op=StatsOp.AVE)
# 8-bit activations with learned scales; the percentile statistics that initialise them are collected
# over the first 20 training batches (Brevitas' default 300 made kthvalue a third of the step time).
ActIn = Int8ActPerTensorFloat.let(collect_stats_steps=20)
ActReLU = Uint8ActPerTensorFloat.let(collect_stats_steps=20)


def configs() -> dict[str, tuple[object | None, str]]:
    """name -> (weight quantizer of the middle layers or None for float, weight bits description)."""
    out: dict[str, tuple[object | None, str]] = {"fp32": (None, "32 (float)")}
    for levels, bits in (("ternary", "2 (ternary)"), ("binary", "1")):
        for groups in ("layer", "channel", "row", "pixel"):
            out[f"syq-{levels}-{groups}"] = (syq_weight_quant(levels, groups), bits)
    out["syq-ternary-pixel-scale4b"] = (syq_weight_quant("ternary", "pixel", scale_bits=4), "2 (ternary), 4-bit scales")
    out["brevitas-ternary-const"] = (SignedTernaryWeightPerTensorConst, "2 (ternary)")
    out["brevitas-binary-const"] = (SignedBinaryWeightPerTensorConst, "1")
    out["int2-perchannel-learned"] = (Int2PerChannelLearned, "2 (ternary)")
    out["int2-perchannel-learned-meaninit"] = (Int2PerChannelLearnedMeanInit, "2 (ternary)")
    return out


class SmallCNN(nn.Module):
    """28x28 -> conv16 -> pool -> conv32 -> pool -> conv64 -> pool -> linear 10; 8-bit activations."""

    def __init__(self, middle_weight_quant):
        super().__init__()

        def middle(cin, cout):
            if middle_weight_quant is None:
                return QuantConv2d(cin, cout, 3, padding=1, bias=False, weight_quant=None)
            return QuantConv2d(cin, cout, 3, padding=1, bias=False, weight_quant=middle_weight_quant)

        self.inp = QuantIdentity(ActIn, return_quant_tensor=True)
        self.conv1 = QuantConv2d(1, 16, 3, padding=1, bias=False, weight_quant=Int8WeightPerTensorFloat)
        self.bn1 = nn.BatchNorm2d(16)
        self.act1 = QuantReLU(ActReLU, return_quant_tensor=True)
        self.conv2 = middle(16, 32)
        self.bn2 = nn.BatchNorm2d(32)
        self.act2 = QuantReLU(ActReLU, return_quant_tensor=True)
        self.conv3 = middle(32, 64)
        self.bn3 = nn.BatchNorm2d(64)
        self.act3 = QuantReLU(ActReLU, return_quant_tensor=True)
        self.fc = QuantLinear(64 * 3 * 3, 10, bias=True, weight_quant=Int8WeightPerTensorFloat)

    def forward(self, x):
        x = self.inp(x)
        x = F.max_pool2d(self.act1(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(self.act2(self.bn2(self.conv2(x))), 2)
        x = F.max_pool2d(self.act3(self.bn3(self.conv3(x))), 2)
        return self.fc(torch.flatten(x, 1))


@torch.no_grad()
def evaluate(model, x, y, batch=1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(y), batch):
        correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(y)


def run(name, wq, data, args) -> dict:
    (xtr, ytr), (xte, yte) = data
    torch.manual_seed(args.seed)
    model = SmallCNN(wq)
    steps_per_epoch = len(ytr) // args.batch
    total = steps_per_epoch * args.epochs
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.15)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(ytr), generator=g)
        for s in range(steps_per_epoch):
            idx = order[s * args.batch:(s + 1) * args.batch]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    train_s = time.perf_counter() - t0
    acc = evaluate(model, xte, yte)
    return {"config": name, "test_acc": acc, "train_s": train_s, "final_loss": float(loss), "steps": total}


def table(results, bits, args, meta) -> str:
    fp = next((r["test_acc"] for r in results if r["config"] == "fp32"), None)
    lines = [
        f"Fashion-MNIST, {args.train_subset or 60000} training images x {args.epochs} epochs (batch {args.batch}, "
        f"Adam one-cycle lr {args.lr}), seed {args.seed}, full 10k test set; {meta}.",
        "",
        "| configuration (middle conv layers) | weight bits | test accuracy | vs FP32 | train time |",
        "|---|---|---:|---:|---:|",
    ]
    for r in results:
        delta = f"{100 * (r['test_acc'] - fp):+.2f}" if fp is not None else "n/a"
        lines.append(f"| `{r['config']}` | {bits[r['config']]} | {100 * r['test_acc']:.2f} % | {delta} | "
                     f"{r['train_s']:.0f} s |")
    return "\n".join(lines)


def write_doc(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else f"# SYQ\n\n{BEGIN}\n{END}\n"
    if BEGIN not in doc or END not in doc:
        doc += f"\n{BEGIN}\n{END}\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    DOC.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", doc))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="all", help="comma-separated names, or 'all'")
    p.add_argument("--train-subset", type=int, default=20000, help="first N (shuffled) training images; 0 = all")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--no-doc", action="store_true")
    p.add_argument("--render-json", type=Path, default=None,
                   help="no training: rewrite the docs table from a --json file of an earlier run with these options")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    all_cfgs = configs()
    meta = (f"{args.threads} CPU thread(s) on a shared 2-core machine, torch {torch.__version__}, "
            f"Python {platform.python_version()}")
    bits = {k: v[1] for k, v in all_cfgs.items()}
    if args.render_json:
        text = table(json.loads(args.render_json.read_text()), bits, args, meta)
        print(text)
        write_doc(text)
        return None
    names = list(all_cfgs) if args.configs == "all" else args.configs.split(",")
    unknown = [n for n in names if n not in all_cfgs]
    if unknown:
        raise SystemExit(f"unknown configs {unknown}; choose from {list(all_cfgs)}")
    (xtr, ytr), test = load_dataset("fashion-mnist")
    if args.train_subset:
        keep = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(1234))[: args.train_subset]
        xtr, ytr = xtr[keep], ytr[keep]
    data = ((xtr, ytr), test)
    results = []
    for name in names:
        r = run(name, all_cfgs[name][0], data, args)
        results.append(r)
        print(f"{name:36s} acc {100 * r['test_acc']:.2f} %  train {r['train_s']:.0f} s  loss {r['final_loss']:.3f}",
              flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    text = table(results, bits, args, meta)
    print(text)
    if not args.no_doc:
        write_doc(text)
    return results


if __name__ == "__main__":
    main()
