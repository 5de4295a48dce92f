"""Regenerate docs/topologies.md: the MLPerf Tiny topologies through FINN, per number format.

For each MLPerf Tiny reference topology (`brevitas_minifloat.zoo`: ``resnet8``, ``ds_cnn``,
``mobilenet_v1``, ``fc_autoencoder``; untrained, power-of-two scales, calibrated on random data) and
each format (one format for weights and activations; INT4, INT8, E2M1, E2M3, E3M2, E4M3 with the
default ``mapping="auto"`` (native layers where the embedding is refused, `finn_transforms.native`) and
with ``mapping="embedding"``, and E5M2 with the default mapping), this runs `finn_transforms.verify.verify` on two random inputs: export, our lowering,
FINN+'s estimate-only build with our default steps (topology check, residual / pooling / Conv1d
streamlining) at one ``target_fps``, and the exactness chain torch == QONNX == lowered == streamlined
== HW layers. A refusal (our lowering's or the topology check's) is a result, recorded with its reason.
Every number in the generated document comes from this run.

    python scripts/topologies_table.py [--out docs/topologies.md] [--target-fps 1000]
                                       [--topologies resnet8,ds_cnn] [--formats INT4,E2M3]
                                       [--mobilenet-size 96] [--work DIR] [--json results.json]
    python scripts/topologies_table.py --from-json a.json b.json     # one document from split runs
                                       # (with --update: these rows replace theirs in --out, the rest stay)
    python scripts/topologies_table.py --update --topologies resnet8 --formats INT4,INT8
                                       # rerun only these cells; the other rows of --out are kept as they are
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
from dataclasses import dataclass, field
from pathlib import Path

import torch

from brevitas_minifloat.zoo import calibrate, ds_cnn, fc_autoencoder, mobilenet_v1, resnet8
from finn_transforms.build import FinnBuildError
from finn_transforms.transformation import LoweringError
from finn_transforms.verify import verify

warnings.filterwarnings("ignore")


@dataclass(frozen=True)
class Format:
    label: str
    weights: str
    activations: str
    options: dict = field(default_factory=dict)  # verify's mapping / max_weight_bits / max_thresholds


FORMATS = [
    Format("INT4", "INT4", "INT4"),
    Format("INT8", "INT8", "INT8"),
    Format("E2M1", "E2M1", "E2M1"),
    Format("E2M3", "E2M3", "E2M3"),
    Format("E3M2", "E3M2", "E3M2"),
    Format("E4M3", "E4M3", "E4M3"),  # mapping="auto" (default): native layers where the embedding is refused
    Format("E4M3 mapping=embedding", "E4M3", "E4M3", {"mapping": "embedding"}),
    Format("E5M2", "E5M2", "E5M2"),  # the default mapping builds it native (its embedding: INT34 weights)
]

TOPOLOGIES = {
    "resnet8": ("ResNet-8", lambda w, a, size: resnet8(w, a, power_of_two=True)),
    "ds_cnn": ("DS-CNN (KWS)", lambda w, a, size: ds_cnn(w, a, power_of_two=True)),
    "mobilenet_v1": ("MobileNetV1 x0.25 (VWW)", lambda w, a, size: mobilenet_v1(w, a, input_size=size, power_of_two=True)),
    "fc_autoencoder": ("FC autoencoder (AD)", lambda w, a, size: fc_autoencoder(w, a, power_of_two=True)),
}


def _first_line(exc: BaseException, limit: int = 220) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_cell(key: str, fmt: Format, work: Path, target_fps: float, mobilenet_size: int) -> dict:
    name, factory = TOPOLOGIES[key]
    torch.manual_seed(0)
    model = calibrate(factory(fmt.weights, fmt.activations, mobilenet_size), batches=4, batch_size=8, seed=0)
    x = torch.randn(2, *model.input_shape[1:], generator=torch.Generator().manual_seed(1))
    row = {"topology": name, "key": key, "format": fmt.label, "input_shape": list(model.input_shape)}
    start = time.perf_counter()
    try:
        report = verify(model, x, work / re.sub(r"\W+", "_", f"{key}_{fmt.label}"), target_fps=target_fps,
                        raise_on_mismatch=False, **fmt.options)
    except (LoweringError, FinnBuildError) as exc:
        row.update(status="refused", reason=_first_line(exc), wall_s=round(time.perf_counter() - start, 1))
        return row
    est = report.estimates
    bad = [f"{s.stage} {s.mismatches}/{s.total}" for s in report.stages if not s.agrees]
    row.update(
        status="builds",
        lut=est.total_lut, bram_18k=est.total_bram_18k, dsp=est.total_dsp, max_cycles=est.max_cycles,
        fps=est.throughput_fps, layers=len(est.layers),
        verify=("exact" if not bad else "mismatch: " + ", ".join(bad))
        + (f"; {report.inexact_thresholds['count']:,} thresholds not exact" if report.inexact_thresholds else "")
        + (f"; {report.wide_thresholds['count']:,} thresholds beyond 2^53 held exactly" if report.wide_thresholds else ""),
        outputs=report.stages[0].total,
        build_s=round(est.build_time_s, 1), wall_s=round(time.perf_counter() - start, 1),
    )
    return row


def _num(v, fmt="{:,.0f}") -> str:
    return "" if v is None else fmt.format(v)


def _row_key(line: str) -> tuple[str, str] | None:
    """``(topology key, format label)`` of a rendered table row, None for other lines."""
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    names = {name: key for key, (name, _) in TOPOLOGIES.items()}
    if len(cells) < 3 or cells[0] not in names:
        return None
    return names[cells[0]], cells[2]


def kept_rows(document: str, rerun: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The rendered rows of an existing document whose cells are not rerun (``--update``)."""
    rows = {}
    for line in document.split("\n## ", 1)[0].splitlines():  # the table, not the sections after it
        key = _row_key(line)
        if key is not None and key not in rerun:
            rows[key] = line
    return rows


def _generated_line(args, elapsed_s: float, updated: list[dict] | None) -> str:
    text = ("Generated by `python scripts/topologies_table.py` "
            f"({datetime.date.today().isoformat()}, {platform.machine()}, {elapsed_s / 60:.1f} min of verify runs)")
    if updated is not None:
        cells = ", ".join(f"{TOPOLOGIES[r['key']][0]} {r['format']}" for r in updated)
        text = text.replace("Generated by", "Rows updated by", 1).replace("scripts/topologies_table.py`",
                                                                          "scripts/topologies_table.py --update`", 1)
        text += f" for: {cells}; the other rows come from earlier runs of the script"
    return text + "; do not edit by hand."


def _appended_sections(document: str) -> str:
    """Sections other scripts append (``<!-- name:start -->`` ... ``<!-- name:end -->``, e.g.
    benchmarks/bench_topologies.py --write-doc): kept when the table is rewritten."""
    start = document.find("\n<!-- ")
    return document[start:] if start >= 0 else ""


def render(rows: list[dict], args, elapsed_s: float, kept: dict[tuple[str, str], str] | None = None) -> str:
    """The document; ``kept`` (``--update``): rendered rows of an earlier run, placed among ``rows``."""
    lines = [
        "# MLPerf Tiny topologies through FINN",
        "",
        _generated_line(args, elapsed_s, rows if kept is not None else None),
        "",
        "The four MLPerf Tiny reference networks (`brevitas_minifloat.zoo`), untrained (structure, not accuracy),",
        "power-of-two scales, calibrated on random data, one format for weights and activations (`_U` / `UINTn`",
        "after ReLUs). Each cell is one `finn_transforms.verify.verify` run on 2 random inputs: export, our exact",
        "lowering, FINN+'s estimate-only build with our default steps (topology check, residual / pooling / Conv1d",
        f"streamlining) at `target_fps={args.target_fps:g}`, and the exactness chain torch == QONNX == lowered ==",
        "streamlined == HW layers (`verify`: exact = every output code equal at every stage).",
        "LUT / BRAM18 / DSP are FINN's analytic estimates (sums over the HW layers; `Thresholding_rtl` LUTs",
        "count every channel's threshold memory: upper bounds); cycles are the slowest layer's, fps is FINN's",
        "estimate at 100 MHz; build time is the FINN build alone (the verify wall time includes the Python",
        "execution of every stage).",
        "",
        "| topology | input | format | result | LUT | BRAM18 | DSP | cycles | fps | verify | build s | wall s |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    order = {label: i for i, label in enumerate(f.label for f in FORMATS)}
    table = dict(kept or {})
    for r in rows:
        shape = "x".join(str(d) for d in r["input_shape"][1:])
        if r["status"] == "refused":
            line = f"| {r['topology']} | {shape} | {r['format']} | refused: {r['reason']} | | | | | | | | {r['wall_s']} |"
        else:
            line = (
                f"| {r['topology']} | {shape} | {r['format']} | builds ({r['layers']} HW layers) | {_num(r['lut'])} | "
                f"{_num(r['bram_18k'])} | {_num(r['dsp'])} | {_num(r['max_cycles'])} | {_num(r['fps'])} | "
                f"{r['verify']} | {r['build_s']} | {r['wall_s']} |"
            )
        table[(r["key"], r["format"])] = line
    for key in sorted(table, key=lambda k: (list(TOPOLOGIES).index(k[0]), order.get(k[1], len(order)))):
        lines.append(table[key])
    done = set(table)
    missing = [f"{TOPOLOGIES[k][0]} / {f.label}" for k in TOPOLOGIES for f in FORMATS if (k, f.label) not in done]
    if missing:
        lines += ["", "Not run in this run (no result, not a refusal): " + "; ".join(missing) + "."]
    lines += ["", "## Reading the table", ""]
    lines += NOTES
    return "\n".join(lines) + "\n"


NOTES = [
    "- Residual blocks (ResNet-8) build because `finn_transforms.topology.step_streamline` moves the scale",
    "  `Mul`s past the forks (`MoveLinearPastFork`) before FINN's `MoveLinearPastEltwiseAdd`, aligns different",
    "  power-of-two scales at an add, and lets the NCHW/NHWC transposes around the shortcut cancel; without it",
    "  FINN stops at \"could not map Im2Col/MatMul\" (docs/design.md, Topologies).",
    "- Pooling heads (global average pool in ResNet-8 and MobileNet, `AvgPool2d((25, 5))` in DS-CNN) become",
    "  integer sums (`GlobalAccPool`, or a depthwise all-ones conv = VVAU) with the 1/N folded exactly into the",
    "  next quantizer's thresholds.",
    "- Refusals name the node and the limit: with `mapping=\"embedding\"` a minifloat activation format whose",
    "  integer embedding needs more thresholds per channel than `max_thresholds` (E4M3: 491,520) or weights wider",
    "  than `max_weight_bits`; the default `mapping=\"auto\"` builds those layers as native minifloat layers",
    "  (`MVAU_minifloat`, `VVAU_minifloat` for depthwise convolutions; docs/design.md, Native minifloat layers),",
    "  and an activation whose consumer cannot take ordinals (a residual add, a pool) keeps its ordinal",
    "  thresholds (255 for E4M3) with the decode to integers as a HW layer (`OrdinalLUT`).",
    "- Thresholds beyond float32 (native E4M3 accumulators reach 2^27 and a BatchNorm scale gives their",
    "  thresholds that many significant bits) are float64 tensors through the build, exact to 2^53. E5M2",
    "  accumulators reach 2^72, so many thresholds after its native layers lie beyond 2^53: \"N thresholds beyond",
    "  2^53 held exactly\" (verify column) counts those stored as float64 plus an int64 residual in",
    "  `WideThresholding` layers (FINN's `Thresholding` with exact integer thresholds; docs/design.md, Native",
    "  minifloat layers). \"N thresholds not exact\" would count thresholds beyond 2^53 that a layer could not",
    "  hold exactly (none since `WideThresholding`).",
    "- E5M2 pools: DS-CNN's 25x5 average pool over E5M2's 34-bit embedded integers needs integer thresholds",
    "  up to 2^41, some with more than float32's 24 significant bits: that node's thresholds are float64 (exact",
    "  to 2^53) from the lowering to the end of the build (they were refused naming the pool).",
    "- Integer formats: integer `Quant` activations (and every model's INT8 input quantizer) are lowered by",
    "  our `LowerIntegerActivations` with tie-exact thresholds (round half to even, as Brevitas and qonnx).",
    "  FINN's own conversion (`ConvertQONNXtoFINN`) puts the thresholds at the half-steps and rounds ties up:",
    "  with it, the integer rows and MobileNetV1 E3M2 mismatched at the streamlined and HW stages (MobileNetV1's",
    "  random inputs put values exactly on ties of the INT8 input quantizer); docs/design.md, Upstream workarounds.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/topologies.md"))
    parser.add_argument("--target-fps", type=float, default=1000.0)
    parser.add_argument("--topologies", default=",".join(TOPOLOGIES))
    parser.add_argument("--formats", default=None, help="labels' first words, e.g. INT4,E2M3 (default: all)")
    parser.add_argument("--mobilenet-size", type=int, default=96)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument("--update", action="store_true",
                        help="rerun only the selected cells and keep the other rows of --out as they are")
    parser.add_argument("--from-json", type=Path, nargs="+", default=None,
                        help="render the document from the rows of earlier runs (e.g. split across processes)")
    args = parser.parse_args()
    if args.from_json:
        rows = [row for path in args.from_json for row in json.loads(path.read_text())]
        elapsed = sum(r.get("wall_s", 0) for r in rows)
        existing = args.out.read_text() if args.out.exists() else ""
        kept = kept_rows(existing, {(r["key"], r["format"]) for r in rows}) if args.update else None
        args.out.write_text(render(rows, args, elapsed, kept) + _appended_sections(existing))
        print(f"wrote {args.out}")
        return
    keys = [k.strip() for k in args.topologies.split(",") if k.strip()]
    unknown = [k for k in keys if k not in TOPOLOGIES]
    if unknown:
        parser.error(f"unknown topologies {unknown}; choose from {list(TOPOLOGIES)}")
    wanted = None if args.formats is None else {f.strip() for f in args.formats.split(",")}
    formats = [f for f in FORMATS if wanted is None or f.label in wanted or f.label.split()[0] in wanted]
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="topologies_") as tmp:
        work = args.work or Path(tmp)
        for key in keys:
            for fmt in formats:
                row = run_cell(key, fmt, work, args.target_fps, args.mobilenet_size)
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    existing = args.out.read_text() if args.out.exists() else ""
    kept = kept_rows(existing, {(r["key"], r["format"]) for r in rows}) if args.update else None
    args.out.write_text(render(rows, args, time.perf_counter() - start, kept) + _appended_sections(existing))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
