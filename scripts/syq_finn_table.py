"""Write docs/syq_finn.md: what SYQ codebook weights cost in a FINN dataflow build, next to their accuracy.

The network is the SYQ accuracy study's small CNN (``SmallCNN`` imported from
``scripts/syq_accuracy.py``: conv 1->16, 16->32, 32->64, 3x3 + BatchNorm + 8-bit ReLU + 2x2
max-pool, linear 576->10, 8-bit input/activation quantizers, first conv and last linear layer with
8-bit weights). Only the weight quantizer of the two middle conv layers changes: SYQ
ternary/binary per layer / channel / row / pixel (row and pixel also with fixed-point scales,
``scale_bits``), and Brevitas' learned per-channel INT2 and INT4 integer weights as baselines.

For every configuration the script trains the model briefly (``--train-steps`` steps of the
accuracy study's recipe: Adam, one-cycle lr 3e-3, batch 128, on its 20k-image training subset;
FINN's estimates depend on the layer shapes and the weights' datatypes, and the datatypes of
row/pixel SYQ layers depend on how far the learned scales drift apart, which initial scales do not
show), measures its test accuracy, runs `finn_transforms.verify.verify` (export -> our lowering ->
FINN streamlining -> FINN HW layers, each compared with torch on a few test images) and reads
FINN+'s estimates at two design points:

- A, fully folded (PE = SIMD = 1, FINN's default without a target): the smallest design;
- B, one target throughput for all (``--target-fps``, FINN's ``SetFolding``, with
  ``mvau_wwidth_max`` lifted so that the weight width does not cap the parallelism).

Accuracies of the full training budget are read from the table in ``docs/syq.md`` (written by
``scripts/syq_accuracy.py``); the short-training accuracy of this run is reported separately.
Every number in the generated document comes from this run (or that table).

    python scripts/syq_finn_table.py [--configs a,b] [--train-steps 100] [--target-fps 2000] [--images 3] [--work DIR]
                                     [--json results.json] [--from-json results.json] [--no-doc]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import syq_accuracy  # noqa: E402  (the accuracy study's network and baselines)
from brevitas_minifloat import syq_weight_quant  # noqa: E402
from brevitas_minifloat.data import load_dataset  # noqa: E402
from finn_transforms.build import build_estimates  # noqa: E402
from finn_transforms.finn_defaults import DEFAULT_CLOCK_NS, DEFAULT_FPGA_PART  # noqa: E402
from finn_transforms.steps import MINIFLOAT_STEP  # noqa: E402
from finn_transforms.transformation import LoweringError  # noqa: E402
from finn_transforms.verify import verify  # noqa: E402

DOC = ROOT / "docs" / "syq_finn.md"
ACC_DOC = syq_accuracy.DOC
#: reduction lengths (MW) of the MVAUs of the two middle conv layers: 16*3*3 and 32*3*3
MIDDLE_MW = {144: "conv2", 288: "conv3"}

Int4PerChannelLearned = syq_accuracy.Int2PerChannelLearned.let(bit_width=4)


def configs(scale_bits: tuple[int, ...]) -> list[dict]:
    """name, weight quantizer and group kind; names match the rows of docs/syq.md where they exist."""
    out = []
    for levels in ("ternary", "binary"):
        for groups in ("layer", "channel", "row", "pixel"):
            out.append(dict(name=f"syq-{levels}-{groups}", wq=syq_weight_quant(levels, groups), groups=groups))
            if groups in ("row", "pixel"):
                for sb in scale_bits:
                    out.append(dict(name=f"syq-{levels}-{groups}-scale{sb}b", groups=groups, scale_bits=sb,
                                    wq=syq_weight_quant(levels, groups, scale_bits=sb)))
    out.append(dict(name="int2-perchannel-learned", wq=syq_accuracy.Int2PerChannelLearned, groups="int"))
    out.append(dict(name="int4-perchannel-learned", wq=Int4PerChannelLearned, groups="int"))
    return out


def read_accuracies() -> dict[str, float]:
    """config -> test accuracy in % from the syq-accuracy table of docs/syq.md (empty if absent)."""
    if not ACC_DOC.exists():
        return {}
    text = ACC_DOC.read_text()
    m = re.search(re.escape(syq_accuracy.BEGIN) + "(.*?)" + re.escape(syq_accuracy.END), text, re.S)
    if not m:
        return {}
    acc = {}
    for row in re.finditer(r"^\| `([^`]+)` \|[^|]*\| ([0-9.]+) % \|", m.group(1), re.M):
        acc[row.group(1)] = float(row.group(2))
    return acc


def trained_model(wq, xtr: torch.Tensor, ytr: torch.Tensor, steps: int, seed: int) -> torch.nn.Module:
    """The accuracy study's recipe (Adam, one-cycle lr 3e-3, batch 128), cut to ``steps`` steps."""
    torch.manual_seed(seed)
    model = syq_accuracy.SmallCNN(wq)
    model.train()
    if steps <= 0:  # initialise only: activation-range statistics (20 steps) and BatchNorm statistics
        with torch.no_grad():
            for i in range(25):
                model(xtr[(i * 64) % len(xtr):][:64])
        return model.eval()
    lr, batch = 3e-3, 128
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(ytr), generator=g)
    for s in range(steps):
        idx = order[(s * batch) % len(ytr):][:batch]
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def _middle_layers(report) -> dict[str, dict]:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    import finn.custom_op.fpgadataflow  # noqa: F401

    hw = ModelWrapper(str(report.hw_graph_path))
    by_name = {layer.name: layer for layer in report.layers}
    out = {}
    for node in hw.graph.node:
        if not node.op_type.startswith("MVAU"):
            continue
        inst = getCustomOp(node)
        which = MIDDLE_MW.get(inst.get_nodeattr("MW"))
        if which is None:
            continue
        est = by_name[node.name]
        out[which] = dict(node=node.name, op_type=node.op_type, weight_dtype=inst.get_nodeattr("weightDataType"),
                          acc_dtype=inst.get_nodeattr("accDataType"), pe=inst.get_nodeattr("PE"),
                          simd=inst.get_nodeattr("SIMD"), lut=est.lut, bram_18k=est.bram_18k, dsp=est.dsp,
                          cycles=est.cycles)
    return out


def _design(report) -> dict:
    middle = _middle_layers(report)
    return dict(
        total_lut=report.total_lut, total_bram_18k=report.total_bram_18k, total_dsp=report.total_dsp,
        max_cycles=report.max_cycles, bottleneck=report.bottleneck_layer, fps=report.throughput_fps,
        middle=middle,
        middle_lut=sum(m["lut"] for m in middle.values()), middle_bram_18k=sum(m["bram_18k"] for m in middle.values()),
        middle_dsp=sum(m["dsp"] for m in middle.values()),
    )


def run_config(cfg: dict, data, args, work: Path) -> dict:
    (xtr, ytr), (xte, yte) = data
    out = work / cfg["name"]
    t0 = time.perf_counter()
    model = trained_model(cfg["wq"], xtr, ytr, args.train_steps, args.seed)
    res = dict(name=cfg["name"], short_acc=100 * syq_accuracy.evaluate(model, xte, yte) if args.train_steps > 0 else None)
    try:
        report = verify(model, xte[: args.images], out / "verify", raise_on_mismatch=False)
    except LoweringError as err:
        res.update(refused=str(err), seconds=time.perf_counter() - t0)
        return res
    res["stages"] = {s.stage: dict(mismatches=s.mismatches, total=s.total, max_abs_diff=s.max_abs_diff)
                     for s in report.stages}
    res["A"] = _design(report.estimates)
    est_b = build_estimates(out / "verify" / "qonnx.onnx", out / "target", extra_steps_before=[MINIFLOAT_STEP],
                            target_fps=args.target_fps, mvau_wwidth_max=100000)
    res["B"] = _design(est_b)
    res["seconds"] = time.perf_counter() - t0
    return res


# ----------------------------------------------------------------------------- document
def _fmt(x, digits=0):
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _dtypes(r, design="A") -> str:
    mid = r[design]["middle"]
    types = [mid[k]["weight_dtype"] for k in ("conv2", "conv3") if k in mid]
    return types[0] if len(set(types)) == 1 else " / ".join(types)


def _bits(r) -> int:
    from qonnx.core.datatype import DataType

    return max(DataType[m["weight_dtype"]].bitwidth() for m in r["A"]["middle"].values())


def _doc_acc(name: str, acc: dict) -> str:
    if name in acc:
        return f"{acc[name]:.2f} %"
    base = name.rsplit("-scale", 1)[0]
    if base != name and base in acc:
        return f"({acc[base]:.2f} % float scales)"
    return "-"


def _short_acc(r) -> str:
    return "-" if r.get("short_acc") is None else f"{r['short_acc']:.2f} %"


def _exact(r) -> str:
    bad = {k: v for k, v in r["stages"].items() if v["mismatches"]}
    if not bad:
        return "yes"
    return ", ".join(f"{k} {v['mismatches']}/{v['total']}" for k, v in bad.items())


def render(results: list[dict], cfgs: list[dict], acc: dict[str, float], args, meta: str) -> str:
    cfg_by = {c["name"]: c for c in cfgs}
    built = [r for r in results if "A" in r]
    refused = [r for r in results if "refused" in r]
    steps = args.train_steps
    lines = [
        "# SYQ codebooks in FINN dataflow builds",
        "",
        "<!-- generated by scripts/syq_finn_table.py: edit the script, not this file -->",
        "",
        "How SYQ binary/ternary weights (`syq_weight_quant`, [docs/syq.md](syq.md)) reach FINN HW layers, what",
        "FINN+ estimates they cost, and how that compares with integer INT2/INT4 weights on the same network.",
        "",
        "## How each group kind is lowered",
        "",
        "| groups | where the scale lies | lowering | FINN weights |",
        "|---|---|---|---|",
        "| `layer`, `channel` | outside the dot product | FINN's own `ConvertQONNXtoFINN` (`FoldQuantWeights`): codes + a Mul that streamlining absorbs into the next thresholds | ternary INT2; binary BIPOLAR, which FINN+'s value-based bit-width minimisation widens to INT2 unless the input is bipolar too (then the XNOR-popcount MVAU, `binaryXnorMode=1`, 1-bit weights and inputs) |",
        "| `row`, `pixel` with `scale_bits=n` | along the reduction axis | our `LowerSyqGroupScales`: `a_g = s * k_g` detected from the scale values, weights `c * k_g`, one `Mul(s)` after the Conv | at most INT(n+1): the smallest INT holding `c * k_g` |",
        "| `row`, `pixel` with float scales | along the reduction axis | refused (`LoweringError`): the only exact "
        "integer grid of learned float32 scales needs weights about as wide as float32's 24-bit significand"
        + (f" ({', '.join(sorted(set(re.findall(r'needs (INT[0-9]+)', ' '.join(r['refused'] for r in refused)))))} "
           "in the run below)" if refused else "") + " | - |",
        "",
        "The lowering is exact: `verify` (torch == QONNX == lowered == streamlined == FINN HW) passes for every",
        "group kind and both levels, Conv2d and Linear, with integer and minifloat activations",
        "(`tests/test_syq_lowering.py`).",
        "",
        "## Cost on the SYQ study's CNN",
        "",
        "Network: `SmallCNN` of `scripts/syq_accuracy.py` (imported, not copied). Only the weights of the two "
        "middle conv layers (16->32 and 32->64, 3x3) change; \"middle\" columns are their two MVAUs, \"total\" "
        f"the whole accelerator: FINN+ 1.6.1 analytic estimates for {args.fpga_part} at {args.clock_ns:g} ns. "
        + (f"Each configuration was trained here for {steps} steps (the accuracy study's recipe, cut short) "
           "so that learned scales drift apart as they do in training; `acc. here` is its Fashion-MNIST test "
           "accuracy after those steps, comparable within this column only. " if steps > 0 else
           "Weights are initialised, not trained. ")
        + "`acc. docs/syq.md` is the full-budget accuracy of the same configuration from [docs/syq.md](syq.md) "
        "(in parentheses: that study trained the float-scale variant only). `exact`: the verify chain on "
        f"{args.images} test images (the network's output is the last linear layer's float output, compared "
        f"at rtol 1e-5). {meta}",
        "",
        "**A: fully folded** (PE = SIMD = 1 everywhere; the smallest design of each kind).",
        "",
        "| middle-layer weights | acc. docs/syq.md | acc. here | FINN weights (conv2 / conv3) | middle LUT | middle BRAM18 | total LUT | total BRAM18 | total DSP | cycles / frame | exact |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in built:
        a = r["A"]
        lines.append(f"| `{r['name']}` | {_doc_acc(r['name'], acc)} | {_short_acc(r)} | {_dtypes(r)} | "
                     f"{_fmt(a['middle_lut'])} | {_fmt(a['middle_bram_18k'])} | {_fmt(a['total_lut'])} | "
                     f"{_fmt(a['total_bram_18k'])} | {_fmt(a['total_dsp'])} | {_fmt(a['max_cycles'])} | {_exact(r)} |")
    for r in refused:
        lines.append(f"| `{r['name']}` | {_doc_acc(r['name'], acc)} | {_short_acc(r)} | refused | - | - | - | - | - | - | - |")
    lines += [
        "",
        f"**B: one target throughput**, {args.target_fps:,} frames/s at {args.clock_ns:g} ns "
        "(FINN's `SetFolding`; `mvau_wwidth_max` lifted so that wide weights may be unfolded as far as narrow ones).",
        "",
        "| middle-layer weights | PE x SIMD (conv2, conv3) | middle LUT | middle BRAM18 | middle DSP | total LUT | total BRAM18 | total DSP | cycles / frame (bottleneck) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in built:
        b = r["B"]
        folds = ", ".join(f"{b['middle'][k]['pe']}x{b['middle'][k]['simd']}" for k in ("conv2", "conv3") if k in b["middle"])
        lines.append(f"| `{r['name']}` | {folds} | {_fmt(b['middle_lut'])} | {_fmt(b['middle_bram_18k'])} | "
                     f"{_fmt(b['middle_dsp'])} | {_fmt(b['total_lut'])} | {_fmt(b['total_bram_18k'])} | "
                     f"{_fmt(b['total_dsp'])} | {_fmt(b['max_cycles'])} ({b['bottleneck']}) |")
    collapsed = [r["name"] for r in built if cfg_by[r["name"]].get("scale_bits") and
                 any(m["weight_dtype"] == "INT2" for m in r["A"]["middle"].values())]
    if collapsed:
        lines += ["", "INT2 in a row/pixel layer means its scales landed on one value of the grid (all `k_g` equal): "
                  "the layer is then exactly a per-layer-scaled one, and the lowering gives it 2-bit weights. "
                  f"Here: {', '.join(f'`{n}`' for n in collapsed)}."]
    if refused:
        lines += ["", "Refused configurations (the lowering's message, abridged):", ""]
        for r in refused:
            first = r["refused"].split(". Integer hardware")[0]
            lines.append(f"- `{r['name']}`: {first}.")
    lines += ["", "## Accuracy versus hardware", ""]
    lines += commentary({r["name"]: r for r in results}, cfg_by, acc, args)
    lines += [
        "",
        "## Not done",
        "",
        "- The datapath the SYQ paper has in mind for fine-grained scales (binary/ternary partial sums per kernel",
        "  row or pixel, each multiplied by its `a_g`) has no FINN layer: it would need a new HW op, or each",
        "  convolution split into per-pixel 1x1 convolutions plus an adder tree. Our lowering keeps FINN's stock",
        "  MVAU and pays with wider weights instead.",
        "- 1-bit storage of binary weights next to non-bipolar activations (FINN's HLS MVAU supports it; FINN+'s",
        "  bit-width minimisation widens BIPOLAR to INT2) and a binary-activation variant of this network (the",
        "  XNOR-popcount path is exercised by the tests, not costed here).",
        "- Synthesis: all numbers are FINN's analytic estimates, not Vivado results.",
        "",
    ]
    return "\n".join(lines)


def commentary(by: dict, cfg_by: dict, acc: dict, args) -> list[str]:
    out = []

    def b(name, key="middle_lut"):
        r = by.get(name)
        return None if r is None or "B" not in r else r["B"][key]

    def names(pred):
        return [n for n, r in by.items() if "A" in r and pred(cfg_by[n])]

    int2, int4 = "int2-perchannel-learned", "int4-perchannel-learned"
    coarse = names(lambda c: c["groups"] in ("layer", "channel"))
    if coarse and b(int2) is not None:
        luts = sorted({b(n) for n in coarse})
        brams = sorted({b(n, "middle_bram_18k") for n in coarse})
        same = max(abs(v - b(int2)) for v in luts) <= 0.01 * b(int2) and brams == [b(int2, "middle_bram_18k")]
        levels = {n.split("-")[1] for n in coarse}
        one_hw = len(luts) == 1 and len(brams) == 1
        out.append(
            f"- **Layer/channel scales cost " + ("what INT2 costs" if same else "about what INT2 costs") + ".** "
            f"At {args.target_fps:,} frames/s the middle layers of the layer/channel SYQ designs ({len(coarse)}) take "
            f"{' / '.join(f'{v:,.0f}' for v in luts)} LUT and {' / '.join(f'{v:,.0f}' for v in brams)} BRAM18, "
            f"against {b(int2):,.0f} LUT / {b(int2, 'middle_bram_18k'):,.0f} BRAM18 for learned per-channel INT2. "
            "The scale leaves the datapath (absorbed into the next thresholds)"
            + ("; binary weights are stored as INT2 by FINN+ here, so binary and ternary are the same hardware"
               if levels == {"ternary", "binary"} and one_hw else "")
            + ". SYQ can only win on accuracy at this cost point."
            + (f" In docs/syq.md's full-budget study it does not: "
               + ", ".join(f"`{n}` {acc[n]:.2f} %" for n in ("syq-ternary-layer", "syq-ternary-channel", "syq-binary-layer",
                                                            "syq-binary-channel", int2) if n in acc) + "."
               if int2 in acc and any(n in acc for n in coarse) and max(acc[n] for n in coarse if n in acc) < acc[int2]
               else "")
        )
    for sb in args.scale_bits:
        fine = names(lambda c, sb=sb: c.get("scale_bits") == sb)
        if not fine or b(int4) is None or b("syq-ternary-channel") is None:
            continue
        def span(values):
            lo, hi = min(values), max(values)
            return f"{lo:.2f}x" if round(lo, 2) == round(hi, 2) else f"{lo:.2f}-{hi:.2f}x"

        widths = sorted({_bits(by[n]) for n in fine})
        collapsed = [n for n in fine if any(m["weight_dtype"] == "INT2" for m in by[n]["A"]["middle"].values())]
        out.append(
            f"- **Row/pixel scales on {sb}-bit grids** lower to weights of at most INT{sb + 1} "
            f"(here {', '.join(f'INT{w}' for w in widths)} in the widest layer). At the common throughput their "
            f"middle layers take {span([b(n) / b('syq-ternary-channel') for n in fine])} the LUTs of per-channel "
            f"SYQ and {span([b(n) / b(int4) for n in fine])} those of INT4 weights "
            f"({', '.join(f'`{n}` {b(n):,.0f}' for n in fine)}; INT4 {b(int4):,.0f}; per-channel SYQ "
            f"{b('syq-ternary-channel'):,.0f})."
            + (f" {', '.join(f'`{n}`' for n in collapsed)} kept a 2-bit layer because its scales fell on one grid "
               "value: with three scales per layer, rows collapse more easily than nine pixels." if collapsed else "")
        )
    full = [n for n in acc if n.startswith("syq-")]
    fine_acc = [acc[n] for n in full if any(g in n for g in ("-row", "-pixel"))]
    coarse_acc = [acc[n] for n in full if any(g in n for g in ("-layer", "-channel"))]
    if fine_acc and coarse_acc:
        out.append(
            f"- **Accuracy (docs/syq.md, full budget, one seed):** row/pixel SYQ {min(fine_acc):.2f}-{max(fine_acc):.2f} %, "
            f"layer/channel SYQ {min(coarse_acc):.2f}-{max(coarse_acc):.2f} %"
            + (f", INT2 per channel {acc[int2]:.2f} %" if int2 in acc else "")
            + f". Best row/pixel minus best layer/channel: {max(fine_acc) - max(coarse_acc):+.2f} points, for up to "
            f"INT{max(args.scale_bits) + 1} instead of INT2 weights in FINN; docs/syq.md explains why one seed does not "
            "resolve differences of this size and why finer scales may not help this network (BatchNorm after "
            "every conv)."
        )
    short = {n: r["short_acc"] for n, r in by.items() if r.get("short_acc") is not None}
    if short and int4 in short:
        best = max(short, key=short.get)
        out.append(
            f"- After this run's {args.train_steps} training steps the spread is "
            f"{min(short.values()):.2f}-{max(short.values()):.2f} % (best `{best}`, INT4 {short[int4]:.2f} %"
            + (f", INT2 {short[int2]:.2f} %" if int2 in short else "") + "): a short budget and one seed, "
            "a sanity check of the trained models rather than a ranking."
        )
    out.append(
        "- **The SYQ paper's trade-off, as this flow can test it.** The paper argues that symmetric binary/ternary "
        "codebooks keep the hardware simplicity of low-precision weights, and that learning one scaling factor per "
        "weight subgroup chosen by locality (rows, pixels) recovers accuracy while preserving that simplicity, "
        "since a subgroup's scale can be applied once to its partial sum. "
        "In FINN the first half holds exactly for layer/channel scales: the hardware is INT2 hardware (or XNOR "
        "when activations are binary too). The second half does not come for free: FINN's MVAU has no "
        "per-row/per-pixel partial sums, so exact fine-grained scaling means integer weights `c * k_g`, i.e. "
        "INT(n+1) datapaths and weight memories instead of 2-bit ones. A fine-grained SYQ layer therefore has to be "
        "judged against INT(n+1) integer weights of the same cost, not against INT2 - and `scale_bits` is the "
        "knob that moves it along that axis."
    )
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="all", help="comma-separated names, or 'all'")
    p.add_argument("--scale-bits", default="4,3", help="scale_bits of the fixed-point row/pixel variants (comma-separated)")
    p.add_argument("--target-fps", type=int, default=2000, help="design point B")
    p.add_argument("--train-steps", type=int, default=100, help="training steps per configuration (0: initialise only)")
    p.add_argument("--images", type=int, default=3, help="test images for the verify chain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=None, help="build directory (default: a temporary one)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    p.add_argument("--from-json", type=Path, default=None, help="no builds: render the doc from an earlier --json")
    p.add_argument("--no-doc", action="store_true")
    args = p.parse_args(argv)
    args.fpga_part, args.clock_ns = DEFAULT_FPGA_PART, DEFAULT_CLOCK_NS  # build_estimates' defaults
    torch.set_num_threads(args.threads)
    args.scale_bits = tuple(int(b) for b in str(args.scale_bits).split(","))
    cfgs = configs(args.scale_bits)
    names = [c["name"] for c in cfgs] if args.configs == "all" else args.configs.split(",")
    unknown = sorted(set(names) - {c["name"] for c in cfgs})
    if unknown:
        raise SystemExit(f"unknown configs {unknown}; choose from {[c['name'] for c in cfgs]}")
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        results, meta = saved["results"], saved["meta"]
        for k in ("target_fps", "images", "scale_bits", "train_steps"):
            setattr(args, k, saved["args"][k])
        args.scale_bits = tuple(args.scale_bits)
        cfgs = configs(args.scale_bits)
    else:
        (xtr, ytr), test = load_dataset("fashion-mnist")
        keep = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(1234))[:20000]  # as syq_accuracy
        data = ((xtr[keep], ytr[keep]), test)
        work = args.work or Path(tempfile.mkdtemp(prefix="syq_finn_"))
        results = []
        t0 = time.perf_counter()
        for name in names:
            cfg = next(c for c in cfgs if c["name"] == name)
            r = run_config(cfg, data, args, work)
            results.append(r)
            status = "refused" if "refused" in r else f"{_dtypes(r)}, middle LUT A {r['A']['middle_lut']:.0f} B {r['B']['middle_lut']:.0f}"
            print(f"{name:34s} {status}  ({r['seconds']:.0f} s)", flush=True)
        meta = (f"Run {datetime.date.today()}: {time.perf_counter() - t0:.0f} s for {len(results)} configurations "
                f"on a shared 2-core machine, torch {torch.__version__}, Python {platform.python_version()}.")
        if args.json:
            args.json.write_text(json.dumps(dict(results=results, meta=meta, args=dict(
                target_fps=args.target_fps, images=args.images, scale_bits=args.scale_bits,
                train_steps=args.train_steps)), indent=1))
    text = render(results, cfgs, read_accuracies(), args, meta)
    if not args.no_doc:
        DOC.write_text(text)
    print(text)
    return results


if __name__ == "__main__":
    main()
