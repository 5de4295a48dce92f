"""Benchmark: FINN estimate build time per MLPerf Tiny topology, our default steps vs FINN's own flow.

For each MLPerf Tiny topology (`brevitas_minifloat.zoo`) in its integer version (INT4 weights and
activations, power-of-two scales, untrained, calibrated on random data), in one run:

- ours: ``build_estimates(model, ..., extra_steps_before=[MINIFLOAT_STEP])``, i.e. our lowering step,
  the topology check and our ``step_streamline`` (residual blocks, pooling heads);
- FINN: FINN+'s own ``estimate_only_dataflow_steps`` through its builder, nothing of ours in the step
  list (`finn_transforms.finn_env` only makes it run without Vivado).

Runs alternate (FINN, ours, FINN, ...) after one untimed warm-up build; the median of ``--repeats`` is
reported with the ratio ours / FINN where FINN's flow builds, and FINN's failing step otherwise.

    python benchmarks/bench_topologies.py [--topologies resnet8,ds_cnn] [--repeats 3]
                                          [--write-doc [docs/topologies.md]]

``--write-doc`` replaces the benchmark section of docs/topologies.md (between its
``bench_topologies`` markers; appended if absent) with the table of this run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from brevitas_minifloat import export_qonnx
from brevitas_minifloat.zoo import calibrate, ds_cnn, fc_autoencoder, mobilenet_v1, resnet8, tfc_mlp
from finn_transforms.build import FinnBuildError, build_estimates
from finn_transforms.finn_defaults import DEFAULT_CLOCK_NS, DEFAULT_FPGA_PART
from finn_transforms.finn_env import builder_io, finn_session, import_builder
from finn_transforms.steps import MINIFLOAT_STEP

warnings.filterwarnings("ignore")

BENCH_START = "<!-- bench_topologies:start -->"
BENCH_END = "<!-- bench_topologies:end -->"
SPEC = "INT4"

TOPOLOGIES = {
    "resnet8": ("ResNet-8", resnet8),
    "ds_cnn": ("DS-CNN", ds_cnn),
    "mobilenet_v1": ("MobileNetV1 x0.25", mobilenet_v1),
    "fc_autoencoder": ("FC autoencoder", fc_autoencoder),
}


def _export(factory, out: Path, **kwargs):
    torch.manual_seed(0)
    model = calibrate(factory(SPEC, SPEC, power_of_two=True, **kwargs), batches=4, batch_size=8, seed=0)
    return export_qonnx(model, torch.randn(model.input_shape), out)


def build_ours(model_path: Path, out: Path) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        build_estimates(model_path, out, extra_steps_before=[MINIFLOAT_STEP])
    except FinnBuildError as exc:
        return time.perf_counter() - start, f"fails in {exc.step}"
    return time.perf_counter() - start, "builds"


def build_finn(model_path: Path, out: Path) -> tuple[float, str]:
    """FINN+'s estimate-only flow as FINN ships it; returns (seconds, "builds" or the failing step)."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with finn_session(out / "finn_build_dir"), builder_io(quiet=True):
        finn = import_builder()
        cfg = finn.config.DataflowBuildConfig(
            output_dir=str(out),
            synth_clk_period_ns=DEFAULT_CLOCK_NS,
            fpga_part=DEFAULT_FPGA_PART,
            steps=list(finn.config.estimate_only_dataflow_steps),
            generate_outputs=[finn.config.DataflowOutputType.ESTIMATE_REPORTS],
        )
        try:
            rc = finn.build_dataflow.build_dataflow_cfg(str(model_path), cfg)
        except Exception:  # noqa: BLE001 - FINN re-raises step errors under pytest; recorded as a failure
            rc = -1
    elapsed = time.perf_counter() - start
    if rc == 0:
        return elapsed, "builds"
    log = out / "build_dataflow.log"
    started = re.findall(r"Running step: (\w+)", log.read_text()) if log.is_file() else []
    return elapsed, f"fails in {started[-1] if started else '?'}"


def run(keys: list[str], repeats: int, work: Path) -> list[dict]:
    _export(tfc_mlp, work / "warm.onnx", hidden=8, in_features=16, classes=4)
    build_finn(work / "warm.onnx", work / "warm_finn")
    build_ours(work / "warm.onnx", work / "warm_ours")
    rows = []
    for key in keys:
        name, factory = TOPOLOGIES[key]
        path = work / f"{key}.onnx"
        _export(factory, path)
        finn_t, ours_t = [], []
        for i in range(repeats):
            t, finn_status = build_finn(path, work / f"{key}_finn_{i}")
            finn_t.append(t)
            t, ours_status = build_ours(path, work / f"{key}_ours_{i}")
            ours_t.append(t)
        row = dict(topology=name, finn_s=statistics.median(finn_t), finn=finn_status,
                   ours_s=statistics.median(ours_t), ours=ours_status)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict], repeats: int) -> str:
    lines = [
        BENCH_START,
        "## Benchmark: build time, our default steps vs FINN's own flow (integer version)",
        "",
        f"`python benchmarks/bench_topologies.py --write-doc` ({datetime.date.today().isoformat()}, INT4, median of "
        f"{repeats}, runs alternating). FINN's own flow is FINN+'s `estimate_only_dataflow_steps` as shipped;",
        "where it fails, its time is the time to the failure.",
        "",
        "| topology | FINN's flow | FINN s | ours | ours s | ours / FINN |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        ratio = f"{r['ours_s'] / r['finn_s']:.2f}" if r["finn"] == "builds" and r["ours"] == "builds" else "-"
        lines.append(f"| {r['topology']} | {r['finn']} | {r['finn_s']:.1f} | {r['ours']} | {r['ours_s']:.1f} | {ratio} |")
    lines.append(BENCH_END)
    return "\n".join(lines)


def write_doc(path: Path, section: str) -> None:
    text = path.read_text() if path.is_file() else ""
    if BENCH_START in text and BENCH_END in text:
        head, rest = text.split(BENCH_START, 1)
        text = head + section + rest.split(BENCH_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topologies", default=",".join(TOPOLOGIES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-doc", nargs="?", const=Path("docs/topologies.md"), type=Path, default=None)
    args = parser.parse_args()
    keys = [k.strip() for k in args.topologies.split(",") if k.strip()]
    bad = [k for k in keys if k not in TOPOLOGIES]
    if bad or args.repeats < 1:
        parser.error(f"unknown topologies {bad} (choose from {list(TOPOLOGIES)}) or repeats < 1")
    with tempfile.TemporaryDirectory(prefix="bench_topologies_") as tmp:
        rows = run(keys, args.repeats, Path(tmp))
    section = table(rows, args.repeats)
    print(section)
    if args.write_doc:
        write_doc(args.write_doc, section)


if __name__ == "__main__":
    main()
