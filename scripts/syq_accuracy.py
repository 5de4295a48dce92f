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

``--finetune``: train ``fp32`` with that recipe, load its ``state_dict`` into every SYQ configuration
(``--configs``, default all ``syq-*`` and ``int2-perchannel-learned``; the SYQ scales are then
initialised from the loaded weights at the first forward, which the script checks) and fine-tune for
``--ft-epochs`` with Adam and a cosine schedule; ``fp32`` itself is fine-tuned the same way, as the
reference with the same total training. The fine-tune lr is ``--ft-lr``, or with ``auto`` the better of lr/3 and lr/10 on
``--ft-select`` by accuracy on ``--val-images`` training images outside the subset (never the test
set). ``--ft-control`` adds that configuration trained from scratch for epochs + ft-epochs. Results
go into the ``syq-finetune`` block of ``docs/syq.md``:

    python scripts/syq_accuracy.py --finetune [--ft-epochs 2] [--ft-lr auto] [--fp32-checkpoint fp32.pt]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
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

from brevitas_minifloat import syq_weight_quant  # noqa: E402
from brevitas_minifloat.quant.syq import SyqTensorQuant  # noqa: E402
from brevitas_minifloat.data import load_dataset  # noqa: E402

DOC = ROOT / "docs" / "syq.md"
BEGIN, END = "<!-- syq-accuracy:begin -->", "<!-- syq-accuracy:end -->"
FT_BEGIN, FT_END = "<!-- syq-finetune:begin -->", "<!-- syq-finetune:end -->"
FT_HEADING = "### Fine-tuned from FP32"

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


def train(model, xtr, ytr, args, *, lr, epochs, schedule) -> tuple[float, float, int]:
    """Adam, batch ``args.batch``, data order seeded by ``args.seed``; ``schedule`` "onecycle" (warm-up to
    ``lr``, pct_start 0.15) or "cosine" (from ``lr`` down to 0, no warm-up). Returns (seconds, last loss, steps)."""
    steps_per_epoch = len(ytr) // args.batch
    total = steps_per_epoch * epochs
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.15)
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(ytr), generator=g)
        for s in range(steps_per_epoch):
            idx = order[s * args.batch:(s + 1) * args.batch]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return time.perf_counter() - t0, float(loss), total


def run(name, wq, data, args, epochs=None, keep_model=False) -> dict:
    """Train configuration ``name`` from scratch with the default recipe and test it."""
    (xtr, ytr), (xte, yte) = data[:2]
    torch.manual_seed(args.seed)
    model = SmallCNN(wq)
    train_s, loss, steps = train(model, xtr, ytr, args, lr=args.lr, epochs=epochs or args.epochs, schedule="onecycle")
    out = {"config": name, "test_acc": evaluate(model, xte, yte), "train_s": train_s, "final_loss": loss, "steps": steps}
    if keep_model:
        out["model"] = model
    return out


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


def write_doc(text: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the block between ``begin`` and ``end`` in docs/syq.md; a missing fine-tune block is
    inserted right after the from-scratch table."""
    doc = DOC.read_text() if DOC.exists() else f"# SYQ\n\n{BEGIN}\n{END}\n"
    if begin not in doc or end not in doc:
        if begin == FT_BEGIN and END in doc:
            doc = doc.replace(END, f"{END}\n\n{FT_HEADING}\n\n{begin}\n{end}", 1)
        else:
            doc += f"\n{begin}\n{end}\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    DOC.write_text(pattern.sub(lambda _: f"{begin}\n{text}\n{end}", doc))


# ---------------------------------------------------------------------------------------------------
# Fine-tuning from FP32 (--finetune)


# every SYQ configuration, and the baseline that beat SYQ from scratch
FT_DEFAULT = [n for n in configs() if n.startswith("syq-")] + ["int2-perchannel-learned"]


def syq_layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(getattr(m, "weight_quant", None), nn.Module)
            and isinstance(getattr(m.weight_quant, "tensor_quant", None), SyqTensorQuant)]


def check_scales_from(model, float_sd) -> None:
    """Every SYQ scale is mean |w| of its group of the *loaded float* weight (not of a random init)."""
    for name, layer in syq_layers(model):
        tq = layer.weight_quant.tensor_quant
        expected = float_sd[f"{name}.weight"].abs().mean(dim=tq.reduce_dims, keepdim=True)
        if not (tq._initialized and torch.allclose(tq.scale.detach(), expected, rtol=1e-6, atol=0)):
            raise RuntimeError(f"{name}: SYQ scale was not initialised from the loaded FP32 weight")


def finetune(name, wq, float_sd, data, args, lr) -> dict:
    """Load the FP32 weights (and BatchNorm / activation-quantizer state) into configuration ``name``,
    fine-tune it with Adam + cosine from ``lr`` for ``args.ft_epochs`` epochs; validation accuracy only
    (the caller tests the model once its lr is fixed)."""
    (xtr, ytr), (xte, yte), (xva, yva) = data
    torch.manual_seed(args.seed)
    model = SmallCNN(wq)
    missing, unexpected = model.load_state_dict(float_sd, strict=False)
    extra = [k for k in missing if ".weight_quant." not in k]
    if extra or unexpected:
        raise RuntimeError(f"{name}: FP32 state_dict does not fit: missing {extra}, unexpected {unexpected}")
    if any(layer.weight_quant.tensor_quant._initialized for _, layer in syq_layers(model)):
        raise RuntimeError(f"{name}: SYQ scales initialised before the FP32 weights were loaded")
    before = evaluate(model, xte, yte)  # first forward: SYQ initialises its scales from the loaded weights
    check_scales_from(model, float_sd)
    train_s, loss, steps = train(model, xtr, ytr, args, lr=lr, epochs=args.ft_epochs, schedule="cosine")
    return {"config": name, "lr": lr, "before_acc": before, "val_acc": evaluate(model, xva, yva),
            "train_s": train_s, "final_loss": loss, "steps": steps, "model": model}


def scratch_results() -> tuple[str, dict[str, float]]:
    """The from-scratch table currently in docs/syq.md: (its first line, config -> test accuracy)."""
    doc = DOC.read_text() if DOC.exists() else ""
    m = re.search(re.escape(BEGIN) + "(.*?)" + re.escape(END), doc, re.S)
    if not m:
        return "", {}
    block = m.group(1).strip()
    accs = {k: float(v) / 100 for k, v in re.findall(r"^\| `([^`]+)` \|[^|]*\| ([0-9.]+) % \|", block, re.M)}
    return block.splitlines()[0], accs


def run_finetune(names, all_cfgs, data, args) -> dict:
    t_start = time.perf_counter()
    (xtr, ytr), (xte, yte), (xva, yva) = data
    if args.fp32_checkpoint and args.fp32_checkpoint.exists():
        ck = torch.load(args.fp32_checkpoint, weights_only=False)
        fp32 = ck["result"] | {"loaded_from": str(args.fp32_checkpoint)}
        float_sd = ck["state_dict"]
    else:
        r = run("fp32", None, data, args, keep_model=True)
        float_sd = {k: v.detach().clone() for k, v in r.pop("model").state_dict().items()}
        fp32 = r
        if args.fp32_checkpoint:
            torch.save({"result": fp32, "state_dict": float_sd}, args.fp32_checkpoint)
    print(f"fp32 base: test {100 * fp32['test_acc']:.2f} %  train {fp32['train_s']:.0f} s", flush=True)

    def test(r):
        r["test_acc"] = evaluate(r.pop("model"), xte, yte)
        print(f"{r['config']:36s} lr {r['lr']:g}  before {100 * r['before_acc']:.2f} %  fine-tuned "
              f"{100 * r['test_acc']:.2f} %  val {100 * r['val_acc']:.2f} %  {r['train_s']:.0f} s", flush=True)
        return r

    selection, results = [], {}
    if args.ft_lr == "auto":
        cands = [args.lr / 3, args.lr / 10]
        for lr in cands:
            r = finetune(args.ft_select, all_cfgs[args.ft_select][0], float_sd, data, args, lr)
            print(f"lr selection {args.ft_select} lr {lr:g}: val {100 * r['val_acc']:.2f} %  {r['train_s']:.0f} s",
                  flush=True)
            selection.append(r)
        best = max(selection, key=lambda r: r["val_acc"])  # first wins a tie
        lr = best["lr"]
        if args.ft_select in names:
            results[args.ft_select] = test(best)
        selection = [{k: v for k, v in r.items() if k != "model"} for r in selection]
    else:
        lr = float(args.ft_lr)
    for name in names:
        if name not in results:
            results[name] = test(finetune(name, all_cfgs[name][0], float_sd, data, args, lr))
    # the FP32 model fine-tuned with the same recipe: the reference with the same total training
    fp32_ft = test(finetune("fp32", None, float_sd, data, args, lr))
    control = None
    if args.ft_control:
        control = run(args.ft_control, all_cfgs[args.ft_control][0], data, args, epochs=args.epochs + args.ft_epochs)
        print(f"control {args.ft_control} from scratch {args.epochs + args.ft_epochs} epochs: "
              f"{100 * control['test_acc']:.2f} %  {control['train_s']:.0f} s", flush=True)
    return {"fp32": fp32, "fp32_ft": fp32_ft, "lr": lr, "selection": selection, "results": [results[n] for n in names],
            "control": control, "total_s": time.perf_counter() - t_start, "val_images": len(yva)}


def ft_table(res, bits, args, meta) -> str:
    fp = res["fp32"]["test_acc"]
    scratch_head, scratch = scratch_results()
    same_recipe = (f"{args.train_subset or 60000} training images x {args.epochs} epochs" in scratch_head
                   and f"lr {args.lr})" in scratch_head and f"seed {args.seed}," in scratch_head)
    if not same_recipe:
        scratch = {}
    pct = lambda a: f"{100 * a:.2f} %"  # noqa: E731
    ft_steps = res["results"][0]["steps"] if res["results"] else 0
    sel = ""
    cands = ", ".join(f"{r['lr']:g}" for r in res["selection"])
    if res["selection"]:
        sel = (f"The fine-tune lr was chosen once, on `{res['selection'][0]['config']}`, from "
               f"{{lr/3, lr/10}} = {{{cands}}} by accuracy on "
               f"{res['val_images']} held-out training images outside the subset ("
               + ", ".join(f"lr {r['lr']:g}: {pct(r['val_acc'])}" for r in res["selection"])
               + f"): **lr {res['lr']:g}**, used for every configuration. The test set played no part in the "
               "choice; that run is reused as the configuration's result.")
    lines = [
        f"Each quantized model is built, the `fp32` model's `state_dict` (FP32 middle-layer weights, first/last "
        f"layers, BatchNorm and activation-quantizer state; trained in this run with the recipe of the table "
        f"above: {pct(fp)} test accuracy, {res['fp32']['train_s']:.0f} s) is loaded with "
        f"`load_state_dict(strict=False)` (only the weight quantizers' state is missing), and the first forward initialises "
        f"every SYQ scale from the loaded weights (`a_g = mean|w|` of the group; the script checks it; the "
        f"`int2` baseline's learned scale likewise, from abs-max). The 'before fine-tune' column evaluates that "
        f"model as loaded, BatchNorm statistics still those of the FP32 weights. Then "
        f"{args.ft_epochs} epochs of fine-tuning on the same {args.train_subset or 60000}-image subset: batch "
        f"{args.batch}, Adam (fresh state), cosine decay from lr {res['lr']:g} to 0 without warm-up, "
        f"{ft_steps} steps, seed {args.seed}; full 10k test set. {sel} {meta}.",
        "",
        "| configuration (middle conv layers) | weight bits | FP32 weights quantized, before fine-tune "
        "| fine-tuned | vs FP32 | from scratch (table above) | fine-tune gain | fine-tune time |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        f"| `fp32` (base) | 32 (float) | | {pct(fp)} | +0.00 | "
        f"{pct(scratch['fp32']) if 'fp32' in scratch else 'n/a'} | | {res['fp32']['train_s']:.0f} s (training) |",
    ]
    f2 = res["fp32_ft"]
    lines.append(f"| `fp32`, fine-tuned too | 32 (float) | {pct(f2['before_acc'])} | {pct(f2['test_acc'])} | "
                 f"{100 * (f2['test_acc'] - fp):+.2f} | | | {f2['train_s']:.0f} s |")
    for r in res["results"]:
        sc = scratch.get(r["config"])
        gain = f"{100 * (r['test_acc'] - sc):+.2f}" if sc is not None else "n/a"
        lines.append(
            f"| `{r['config']}` | {bits[r['config']]} | {pct(r['before_acc'])} | {pct(r['test_acc'])} | "
            f"{100 * (r['test_acc'] - fp):+.2f} | {pct(sc) if sc is not None else 'n/a'} | "
            f"{gain} | {r['train_s']:.0f} s |")
    c = res["control"]
    same = next((r for r in res["results"] if c and r["config"] == c["config"]), None)
    if c:
        lines += ["", f"Control for the extra training: `{c['config']}` trained **from scratch** for "
                      f"{args.epochs + args.ft_epochs} epochs (the fine-tuned models' total: {args.epochs} FP32 + "
                      f"{args.ft_epochs} fine-tune; one-cycle lr {args.lr}): {pct(c['test_acc'])} "
                      f"({100 * (c['test_acc'] - fp):+.2f} vs FP32), {c['train_s']:.0f} s"
                      + (f"; fine-tuned from FP32 it reached {pct(same['test_acc'])} "
                         f"({100 * (same['test_acc'] - c['test_acc']):+.2f} vs this control)" if same else "") + "."]
    syq = [r for r in res["results"] if r["config"].startswith("syq-")]
    within = [r for r in syq if fp - r["test_acc"] <= 0.01 + 1e-12]
    within_names = ", ".join(f"`{r['config']}`" for r in within)
    within_ft = [r for r in syq if f2["test_acc"] - r["test_acc"] <= 0.01 + 1e-12]
    deltas = [100 * (r["test_acc"] - fp) for r in syq]
    deltas_ft = [100 * (r["test_acc"] - f2["test_acc"]) for r in syq]
    gains = [r["test_acc"] - scratch[r["config"]] for r in syq if r["config"] in scratch]
    lines += [
        "",
        f"SYQ within 1 point of FP32 ({pct(fp)}) after fine-tuning: **{len(within)} of {len(syq)}** "
        f"configurations" + (f" ({within_names})" if within else "")
        + (f", {min(deltas):+.2f} to {max(deltas):+.2f} points" if deltas else "")
        + f"; within 1 point of the FP32 model fine-tuned with the same recipe ({pct(f2['test_acc'])}): "
        f"{len(within_ft)} of {len(syq)}"
        + (f", {min(deltas_ft):+.2f} to {max(deltas_ft):+.2f} points" if deltas_ft else "") + "."
        + (f" SYQ fine-tuned minus from scratch: mean {100 * sum(gains) / len(gains):+.2f} points, range "
           f"{100 * min(gains):+.2f} to {100 * max(gains):+.2f} (one seed each)." if gains else ""),
        f"Whole fine-tune run (FP32 training, lr selection, {len(res['results']) + 1} fine-tunes"
        + (", control" if c else "") + f"): {res['total_s'] / 60:.1f} min wall-clock.",
    ]
    return "\n".join(lines)


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
    p.add_argument("--finetune", action="store_true",
                   help="train fp32 with the recipe above, then load it into each SYQ configuration (default: all "
                        "syq-* configs, or --configs) and fine-tune; writes the syq-finetune block of the doc")
    p.add_argument("--ft-epochs", type=int, default=2)
    p.add_argument("--ft-lr", default="auto",
                   help="fine-tune lr, or 'auto': pick lr/3 or lr/10 by held-out validation accuracy on --ft-select")
    p.add_argument("--ft-select", default="syq-ternary-channel", help="configuration used for the lr choice")
    p.add_argument("--val-images", type=int, default=5000,
                   help="held-out validation images for the lr choice, taken from the training images outside the "
                        "subset")
    p.add_argument("--ft-control", default="syq-ternary-channel",
                   help="also train this configuration from scratch for epochs + ft-epochs ('' to skip)")
    p.add_argument("--fp32-checkpoint", type=Path, default=None,
                   help="reuse the FP32 model from this file if it exists, else save it there")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    all_cfgs = configs()
    meta = (f"{args.threads} CPU thread(s) on a shared 2-core machine, torch {torch.__version__}, "
            f"Python {platform.python_version()}")
    bits = {k: v[1] for k, v in all_cfgs.items()}
    render, block = (ft_table, (FT_BEGIN, FT_END)) if args.finetune else (table, (BEGIN, END))
    if args.render_json:
        text = render(json.loads(args.render_json.read_text()), bits, args, meta)
        print(text)
        if not args.no_doc:
            write_doc(text, *block)
        return None
    if args.configs != "all":
        names = args.configs.split(",")
    else:
        names = FT_DEFAULT if args.finetune else list(all_cfgs)
    unknown = [n for n in names if n not in all_cfgs]
    if args.finetune:
        unknown += [n for n in (args.ft_select, args.ft_control) if n and n not in all_cfgs]
    if unknown:
        raise SystemExit(f"unknown configs {unknown}; choose from {list(all_cfgs)}")
    (xtr, ytr), test = load_dataset("fashion-mnist")
    perm = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(1234))
    # validation images (fine-tune lr choice only): the next --val-images of the permutation after the subset
    val = perm[args.train_subset:args.train_subset + args.val_images] if args.train_subset else perm[:0]
    xva, yva = xtr[val], ytr[val]
    if args.train_subset:
        xtr, ytr = xtr[perm[: args.train_subset]], ytr[perm[: args.train_subset]]
    data = ((xtr, ytr), test, (xva, yva))
    if args.finetune:
        if args.ft_lr == "auto" and not len(yva):
            raise SystemExit("--ft-lr auto needs held-out images: use --train-subset < 60000 or give --ft-lr")
        res = run_finetune(names, all_cfgs, data, args)
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
        text = ft_table(res, bits, args, meta)
        print(text)
        if not args.no_doc:
            write_doc(text, FT_BEGIN, FT_END)
        return res
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
