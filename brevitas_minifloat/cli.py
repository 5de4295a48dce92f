"""``brevitas-minifloat``: the design-space exploration and the pipeline's steps from the shell.

    brevitas-minifloat dse                      # embedded CNN on Fashion-MNIST -> report in out/dse/default
    brevitas-minifloat dse --space tiny --no-finn
    brevitas-minifloat export MODEL -o model.onnx --w-format E2M3 --a-format E3M2
    brevitas-minifloat build model.onnx -o out/build --target-fps 10000
    brevitas-minifloat verify MODEL --w-format E2M1 --a-format E2M1

MODEL is a factory ``package.module:function`` (torchvision style, found from the current directory
as with ``python -m``; ``--state-dict FILE`` loads weights into it) or a checkpoint file with a
pickled ``nn.Module`` (``torch.save(model, f)``).

User errors are one line naming the argument and the value, found before models or data load where
possible; usage errors exit with 2, failed builds or mismatches with 1. Third-party warnings are
hidden unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import os
import sys
import time
from pathlib import Path

from brevitas_minifloat import cli_args as types
from brevitas_minifloat.cli_args import EXIT_USAGE
from finn_transforms.finn_defaults import DEFAULT_CLOCK_NS, DEFAULT_FPGA_PART

EXIT_FAILED, EXIT_UNAVAILABLE = 1, EXIT_USAGE
PROG = "brevitas-minifloat"


class CliError(Exception):
    """A problem the user can fix; printed as one line without a traceback."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def _finn_missing() -> str | None:
    try:
        from finn_transforms.finn_env import require_finn

        require_finn()
    except ImportError as err:
        return (f"{err} Install FINN+ with `make setup`, or: pip install -e '.[finn]' && "
                "pip install --no-deps finn-plus==1.6.1")
    return None


def _load_data(name: str, root: str | None):
    from brevitas_minifloat.data import DatasetNotAvailableError, load_dataset

    try:
        return load_dataset(name, root=root)
    except DatasetNotAvailableError as err:
        raise CliError(f"argument --data: data set {name!r} is not available: {err}") from None
    except ValueError as err:
        raise CliError(f"argument --data: {err}") from None


def _load_model(spec: str, state_dict: str | None, arg: str = "MODEL"):
    """The float or Brevitas model named by MODEL / --model, with --state-dict loaded into it."""
    from brevitas_minifloat.dse.workload import load_model, load_state_dict

    try:
        model = load_model(spec)
    except ValueError as err:
        hint = f"; `{PROG} build {spec}` gives FINN estimates of an ONNX file" if spec.endswith(".onnx") else ""
        raise CliError(f"argument {arg}: {err}{hint}") from None
    if state_dict:
        try:
            load_state_dict(model, state_dict, spec)
        except ValueError as err:
            raise CliError(f"argument --state-dict: {err}") from None
    return model.eval()


def _check_input(model, x, spec: str, source: str) -> None:
    """Run the float model on one input: a shape mismatch is a one-line error, not a torch traceback."""
    import torch

    try:
        with torch.no_grad():
            model(x[:1])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CliError(f"model {spec} does not accept {source}, shape {tuple(x[:1].shape)} ({first}); "
                       "give it matching data, e.g. --data random --input-shape 1,C,H,W") from None


def _is_quantized(model) -> bool:
    from brevitas.nn.mixin.base import QuantLayerMixin
    from brevitas.proxy.parameter_quant import WeightQuantProxyFromInjectorBase

    return any(isinstance(m, (QuantLayerMixin, WeightQuantProxyFromInjectorBase)) for m in model.modules())


def _model_for_export(args):
    """The Brevitas model to export / verify (PTQ-quantized first when formats are given) and test inputs;
    says which data calibrates it."""
    import torch

    model = _load_model(args.model, args.state_dict)
    if args.data == "random":
        generator = torch.Generator().manual_seed(0)
        calib = torch.randn(256, *args.input_shape[1:], generator=generator)
        inputs = torch.randn(args.samples, *args.input_shape[1:], generator=generator)
        shape = ",".join(map(str, args.input_shape))
        calib_text = inputs_text = f"random inputs (--data random --input-shape {shape})"
    else:
        (xtr, _), (xte, _) = _load_data(args.data, args.data_root)
        calib, inputs = xtr[:256], xte[: args.samples]
        calib_text = f"training images of {args.data} (--data {args.data})"
        inputs_text = f"test images of {args.data}"
    _check_input(model, inputs, args.model, f"inputs from --data {args.data}")
    if args.w_format or args.a_format:
        from brevitas_minifloat.ptq import quantize

        print(f"PTQ calibration data: {len(calib)} {calib_text}", flush=True)
        try:
            kwargs = {} if args.techniques is None else {"techniques": args.techniques[0]}
            model = quantize(model, calib, weights=args.w_format or "E2M3", activations=args.a_format, **kwargs)
        except ValueError as err:
            raise CliError(f"quantization failed: {err}", EXIT_FAILED) from None
    elif not _is_quantized(model):
        raise CliError(f"argument MODEL: {args.model} has no Brevitas quantizers: pass --w-format/--a-format to "
                       "quantize it (post-training) first")
    return model, inputs, inputs_text


def _lowering_refusal(exported, mapping: str) -> str | None:
    """Why our lowering with ``mapping`` (and so `build --mapping`) refuses the exported model, or None."""
    from finn_transforms.steps import lower_minifloat
    from finn_transforms.transformation import LoweringError

    try:
        lower_minifloat(exported, mapping=mapping)
    except LoweringError as err:
        return str(err)
    return None


# ----------------------------------------------------------------------------------------- dse
#: dse options that change what a sweep computes (the rest only change how it runs)
_SWEEP_OPTIONS = ("model", "state_dict", "train_epochs", "workload", "epochs", "data", "data_root",
                  "calibration_size", "calibration_seeds", "eval_size", "no_finn", "target_fps", "mac_cost",
                  "measured_mac", "mappings")


def _report_dir(args, parser_defaults: dict, space, base) -> tuple[Path, dict]:
    """``out/<preset>`` for a preset run as is, ``out/<preset>-<hash>`` when options change the sweep;
    plus the sweep's description (written beside the report as ``sweep.json``)."""
    options = {k: getattr(args, k) for k in _SWEEP_OPTIONS}
    sweep = {"space": args.space, "points": dataclasses.asdict(space), **options}
    if space == base and all(options[k] == parser_defaults[k] for k in _SWEEP_OPTIONS):
        return Path(args.out) / args.space, sweep
    digest = hashlib.sha256(json.dumps(sweep, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return Path(args.out) / f"{args.space}-{digest}", sweep


def cmd_dse(args) -> int:
    from brevitas_minifloat.dse import Workload, default_workload, preset, run_dse
    from brevitas_minifloat.dse.report import summary
    from brevitas_minifloat.dse.workload import TINY_MODEL, is_trained

    out = Path(args.out)
    base = preset(args.space)
    overrides = {k: v for k, v in {
        "weight_bits": args.w_bits, "act_bits": args.a_bits, "kinds": args.kinds, "bit_pairs": args.bit_pairs,
        "min_exponent": args.min_exponent, "max_exponent": args.max_exponent, "techniques": args.techniques,
        "pairing": args.pairing, "mixed_kinds": args.mixed_kinds,
    }.items() if v is not None}
    try:
        space = dataclasses.replace(base, **overrides)
        n_points = len(space.points())
    except ValueError as err:
        raise CliError(f"design space: {err}") from None
    if n_points == 0:
        raise CliError(f"the design space is empty (--space {args.space} with {sorted(overrides)}): widen it")
    mac_cost = None
    if args.mac_cost:
        module, _, attr = args.mac_cost.partition(":")
        try:
            mac_cost = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise CliError(f"argument --mac-cost: cannot load {args.mac_cost!r}: {err}") from None
    kwargs = {"mac_cost": mac_cost} if mac_cost is not None else {}
    if args.measured_mac:
        from brevitas_minifloat.hw.cost import yosys_missing

        if reason := yosys_missing():
            raise CliError(f"argument --measured-mac: needs Yosys: {reason}")
        kwargs["measured_mac"] = args.measured_mac
    finn = not args.no_finn
    if finn and (reason := _finn_missing()):
        print(f"note: FINN estimates skipped, FINN+ is not available: {reason}", file=sys.stderr)
        finn = False
    report_dir, sweep = _report_dir(args, build_parser().parse_args(["dse"]).__dict__, space, base)

    # the embedded workload: the shipped Fashion-MNIST CNN, or the tiny digits CNN (--space tiny)
    embedded = args.workload or ("tiny" if args.space == "tiny" else "default")
    data = args.data or ("fashion-mnist" if embedded == "default" and args.model is None else "mnist-5k")
    _, (xte, _) = _load_data(data, args.data_root)  # fail early with install instructions
    t0 = time.perf_counter()
    if args.model is None:
        if embedded == "default" and data == "fashion-mnist":
            print("loading the embedded workload (fashion_cnv on fashion-mnist, shipped weights)", flush=True)
        else:
            path = out / "float_model.pt"
            verb = "loading" if is_trained(TINY_MODEL, data, path, epochs=args.epochs) else "training"
            print(f"{verb} the embedded workload (digits_cnn on {data}, {args.epochs} epochs; {path})", flush=True)
        try:
            workload, meta = default_workload(out, preset=embedded, dataset=data, epochs=args.epochs,
                                              data_root=args.data_root)
        except (OSError, ValueError) as err:  # missing or corrupt shipped weights
            raise CliError(str(err)) from None
        print(f"  float accuracy {100 * meta['accuracy']:.1f}% ({meta.get('seconds', 0):.0f} s when trained)")
    else:
        _check_input(_load_model(args.model, args.state_dict, "--model"), xte, args.model,
                     f"inputs from --data {data}")
        workload = Workload(model=args.model, weights=args.state_dict, dataset=data, data_root=args.data_root,
                            name=args.model)
        if args.train_epochs:
            from brevitas_minifloat.dse.workload import train_float_model

            path = out / "float_model.pt"
            verb = "loading" if is_trained(args.model, data, path, epochs=args.train_epochs) else "training"
            print(f"{verb} {args.model} on {data} ({args.train_epochs} epochs; {path})", flush=True)
            train_float_model(args.model, data, path, epochs=args.train_epochs, data_root=args.data_root)
            workload = Workload(model=args.model, weights=str(path), dataset=data, data_root=args.data_root,
                                name=args.model)
    workload = Workload(**{**workload.to_dict(), "calibration_size": args.calibration_size,
                           "eval_size": args.eval_size})

    executor, cleanup = None, None
    if args.executor == "inline":
        from brevitas_minifloat.dse import InlineExecutor

        executor = InlineExecutor()
    elif args.executor == "dask":
        executor, cleanup = _dask_executor(args)
    where = {"process": f"{args.workers} local processes", "inline": "this process",
             "dask": f"Dask ({args.scheduler or f'local cluster, {args.workers} workers'})"}[args.executor]
    print(f"design space: {n_points} points ({args.space} preset{', changed' if overrides else ''}), FINN estimates "
          f"{'on' if finn else 'off'}, jobs on {where}; report -> {report_dir}", flush=True)
    try:
        result = run_dse(workload, space, report_dir, executor=executor, workers=args.workers, finn=finn,
                         target_fps=args.target_fps, progress=not args.quiet, recompute=args.recompute,
                         keep_builds=args.keep_builds, cache_dir=out / "cache",
                         mappings=args.mappings, calibration_seeds=args.calibration_seeds, **kwargs)
    finally:
        if cleanup is not None:
            cleanup()
    (report_dir / "sweep.json").write_text(json.dumps(sweep, indent=1, default=str))
    print(summary(result))
    print(f"wrote {report_dir}/results.csv, results.json, frontier.csv, accuracy_vs_lut.png, heatmap.png, "
          f"sweep.json ({time.perf_counter() - t0:.0f} s)")
    return 0


def _dask_executor(args):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise CliError("--executor dask needs Dask distributed: pip install -e '.[dse]' "
                       "(or pip install 'dask[distributed]')") from None
    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout=30)
        except (OSError, TimeoutError) as err:
            raise CliError(f"argument --scheduler: cannot reach {args.scheduler!r}: {err}") from None
        return client.get_executor(), client.close
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)

    def close():
        client.close()
        cluster.close()

    return client.get_executor(), close


# -------------------------------------------------------------------------------------- export
def cmd_export(args) -> int:
    from brevitas_minifloat.export import ExportRefused, export_qonnx

    model, inputs, _ = _model_for_export(args)
    try:
        exported = export_qonnx(model, inputs[:1], args.output)
    except ExportRefused as err:
        raise CliError(f"export refused: {err}", EXIT_FAILED) from None
    ops = sorted({n.op_type for n in exported.graph.node})
    print(f"wrote {args.output} ({len(exported.graph.node)} nodes: {', '.join(ops)})")
    if reason := _lowering_refusal(exported, args.mapping):
        print(f"warning: `{PROG} build --mapping {args.mapping}` will refuse {args.output}: {reason}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------- build
def cmd_build(args) -> int:
    if reason := _finn_missing():
        raise CliError(f"`build` needs FINN+: {reason}")
    from finn_transforms import FinnBuildError, build_estimates

    try:
        report = build_estimates(args.onnx, args.output, fpga_part=args.fpga_part, clock_ns=args.clock_ns,
                                 target_fps=args.target_fps, folding_config=args.folding_config,
                                 lower=not args.no_lowering, mapping=args.mapping)
    except FileNotFoundError as err:
        raise CliError(str(err)) from None
    except ValueError as err:
        raise CliError(str(err), EXIT_FAILED) from None
    except FinnBuildError as err:
        raise CliError(f"FINN build failed: {err}", EXIT_FAILED) from None
    print(report.summary())
    path = Path(args.output) / "estimates.json"
    path.write_text(json.dumps(report.to_dict(), indent=1, default=str))
    print(f"wrote {path}")
    return 0


# -------------------------------------------------------------------------------------- verify
def cmd_verify(args) -> int:
    if not args.no_build and (reason := _finn_missing()):
        raise CliError(f"`verify` builds with FINN+ (use --no-build to stop before FINN): {reason}")
    from brevitas_minifloat.export import ExportRefused
    from finn_transforms.build import FinnBuildError
    from finn_transforms.transformation import LoweringError
    from finn_transforms.verify import verify

    if args.rtl:
        from finn_transforms.native.sim import layer_simulator_missing

        if reason := layer_simulator_missing():
            raise CliError(f"--rtl simulates native layers with Icarus Verilog: {reason}")
    model, inputs, source = _model_for_export(args)
    print(f"comparison inputs: {len(inputs)} {source}", flush=True)
    try:
        report = verify(model, inputs, args.output, build=not args.no_build, raise_on_mismatch=False,
                        mapping=args.mapping, rtl=args.rtl)
    except (LoweringError, ExportRefused) as err:
        raise CliError(f"cannot verify: {err}", EXIT_FAILED) from None
    except FinnBuildError as err:
        raise CliError(f"FINN build failed: {err}", EXIT_FAILED) from None
    print(report.summary())
    return 0 if report.ok else EXIT_FAILED


# ---------------------------------------------------------------------------------------- main
#: finn_transforms.native.mapping.MAPPINGS, spelled out so that --help does not import qonnx (a test checks they agree)
MAPPINGS = ("auto", "native", "embedding")


def _mappings(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [n for n in names if n not in MAPPINGS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected names from {', '.join(MAPPINGS)}, got {text!r}")
    return names


def _add_mapping_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mapping", choices=MAPPINGS, default="auto",
                   help="minifloat layers as native FINN layers (native), as the integers that contain them "
                        "(embedding), or native only where the embedding is refused (auto, the default)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verbose", action="store_true", help="show third-party warnings (Brevitas, torch, FINN)")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL",
                   help="model factory 'package.module:function' or a checkpoint of a pickled nn.Module")
    p.add_argument("--state-dict", help="state_dict file loaded into the model")
    p.add_argument("--w-format", type=types.number_format,
                   help="quantize a float model first (PTQ): weight format, e.g. INT4, E2M3 (default: no PTQ)")
    p.add_argument("--a-format", type=types.number_format,
                   help="activation format for PTQ (default: the weight format)")
    p.add_argument("--techniques", type=types.techniques, default=None,
                   help="PTQ techniques, '+'-separated (default: mse+gptq+bias_correction; 'none': calibration only)")
    p.add_argument("--data", default="mnist-5k", choices=(*types.DATASETS, "random"),
                   help="calibration / example data ('random' uses --input-shape)")
    p.add_argument("--data-root", help="directory with the data set files (default: the installed copies)")
    p.add_argument("--input-shape", type=types.shape, default=(1, 1, 28, 28), help="input shape for --data random")
    p.add_argument("--samples", type=types.positive_int, default=16,
                   help="example inputs used (verify compares on all of them)")
    _add_common(p)


def build_parser() -> argparse.ArgumentParser:
    ap = types.Parser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=types.HelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, parser_class=types.Parser)

    def parser(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, prog=f"{PROG} {name}", formatter_class=types.HelpFormatter, **kwargs)

    d = parser("dse", help="design-space exploration: formats x PTQ techniques -> accuracy, FINN estimates",
               description="Sweep integer and minifloat formats and PTQ techniques; write CSV/JSON tables, "
                           "the Pareto frontier and plots. Without --model: the embedded CNV-style CNN on "
                           "Fashion-MNIST (shipped weights; --workload tiny: a CNN trained on MNIST digits).")
    d.add_argument("--model", help="model factory 'package.module:function' or checkpoint (default: embedded CNN)")
    d.add_argument("--state-dict", help="state_dict file for --model")
    d.add_argument("--train-epochs", type=types.non_negative_int, default=0,
                   help="train --model on --data first (0: use as is)")
    d.add_argument("--workload", choices=("default", "tiny"),
                   help="embedded workload without --model: default = CNV-style CNN on Fashion-MNIST (shipped "
                        "weights), tiny = digits CNN on MNIST-5k trained at first use (default: tiny with --space "
                        "tiny, else default)")
    d.add_argument("--epochs", type=types.positive_int, default=15, help="training epochs of the tiny embedded CNN")
    d.add_argument("--data", default=None, choices=types.DATASETS,
                   help="data set (default: the embedded workload's; mnist-5k with --model)")
    d.add_argument("--data-root", help="directory with the data set files (default: the installed copies)")
    d.add_argument("--calibration-size", type=types.positive_int, default=256, help="calibration batch size (one batch)")
    d.add_argument("--calibration-seeds", type=types.positive_int, default=3,
                   help="calibration samples the frontier points are quantized with, for their spread (1: off)")
    d.add_argument("--eval-size", type=types.positive_int, default=None, help="held-out images evaluated (default: all)")
    d.add_argument("--space", default="default", choices=types.SPACE_PRESETS, help="design-space preset")
    d.add_argument("--w-bits", type=types.bit_widths, help="weight bit widths, e.g. 4,6,8 (default: the preset's)")
    d.add_argument("--a-bits", type=types.bit_widths, help="activation bit widths (default: the preset's)")
    d.add_argument("--kinds", type=types.kinds, help="int,minifloat (default: the preset's)")
    d.add_argument("--bit-pairs", choices=("all", "diagonal"),
                   help="cross W and A bit widths or keep them equal (default: the preset's)")
    d.add_argument("--pairing", choices=("all", "same_exponent"),
                   help="minifloat W x A splits: every pair, or equal exponent widths only (default: the preset's)")
    d.add_argument("--min-exponent", type=types.positive_int,
                   help="smallest minifloat exponent width; E1 grids equal INTn's (default: the preset's)")
    d.add_argument("--max-exponent", type=types.positive_int,
                   help="largest minifloat exponent width (default: the preset's)")
    d.add_argument("--mixed-kinds", action=argparse.BooleanOptionalAction, default=None,
                   help="also pair integer weights with minifloat activations and vice versa (default: the preset's)")
    d.add_argument("--techniques", type=types.techniques,
                   help="technique combinations, e.g. 'none;mse+bias_correction;gptq' (default: the preset's)")
    d.add_argument("--executor", choices=("process", "dask", "inline"), default="process", help="where jobs run")
    d.add_argument("--scheduler", help="Dask scheduler address (with --executor dask; default: a local cluster)")
    d.add_argument("--workers", type=types.positive_int, default=2, help="local worker processes")
    d.add_argument("--no-finn", action="store_true", help="skip FINN estimates (accuracy and MAC cost only)")
    d.add_argument("--mappings", type=_mappings, default=("embedding", "native"),
                   help="how minifloat points are built, each a row: comma-separated from "
                        f"{', '.join(MAPPINGS)} (default: embedding,native)")
    d.add_argument("--target-fps", type=types.positive_float, default=10_000.0, help="FINN folding target")
    d.add_argument("--mac-cost", type=types.entry_point,
                   help="per-MAC cost function 'package.module:function', called as fn(weight, act, fan_in=n) -> "
                        "{'LUT': ...} (default: the analytic model; for measured costs prefer --measured-mac)")
    d.add_argument("--measured-mac", choices=("shift", "decode"),
                   help="add Yosys-measured MAC costs (this MAC architecture) per layer x FINN's PE*SIMD "
                        "as columns yosys_mac_lut / yosys_lut_folded (needs yosys; ~5 s per new unit, cached)")
    d.add_argument("--out", default="out/dse",
                   help="folder of the cache and trained model (shared by sweeps); each sweep's report goes to "
                        "OUT/<preset> or, when options change the sweep, OUT/<preset>-<hash> (default: out/dse)")
    d.add_argument("--recompute", action="store_true", help="ignore cached points")
    d.add_argument("--keep-builds", action="store_true", help="keep FINN build folders")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_common(d)
    d.set_defaults(func=cmd_dse)

    e = parser("export", help="model (Brevitas, or float + --w-format for PTQ) -> QONNX")
    _add_model_args(e)
    e.add_argument("-o", "--output", default="model.onnx", help="QONNX file written")
    _add_mapping_arg(e)  # export warns when `build` with this mapping would refuse the model
    e.set_defaults(func=cmd_export)

    b = parser("build", help="FINN estimates for a QONNX file (with the minifloat lowering step)")
    b.add_argument("onnx", help="QONNX model file")
    b.add_argument("-o", "--output", default="out/build", help="build folder")
    b.add_argument("--fpga-part", default=DEFAULT_FPGA_PART, help="Xilinx part of FINN's resource models")
    b.add_argument("--clock-ns", type=types.positive_float, default=DEFAULT_CLOCK_NS, help="clock period")
    b.add_argument("--target-fps", type=types.positive_float, default=None,
                   help="FINN folding target (default: fully folded, PE = SIMD = 1)")
    b.add_argument("--folding-config", help="FINN folding config JSON (default: none)")
    b.add_argument("--no-lowering", action="store_true", help="do not insert step_lower_minifloat")
    _add_common(b)
    _add_mapping_arg(b)
    b.set_defaults(func=cmd_build)

    v = parser("verify", help="exactness chain torch -> QONNX -> lowered -> FINN (finn_transforms.verify)")
    _add_model_args(v)
    v.add_argument("-o", "--output", default="out/verify", help="folder of the exported and lowered graphs")
    v.add_argument("--no-build", action="store_true", help="stop after the lowered graph (no FINN)")
    v.add_argument("--rtl", action="store_true",
                   help="add the rtl stage: native layers simulated as their generated Verilog (Icarus)")
    _add_mapping_arg(v)
    v.set_defaults(func=cmd_verify)
    return ap


def _check_combinations(args) -> None:
    """Cross-argument rules argparse cannot express; usage errors before anything loads."""
    parser = types.Parser(prog=f"{PROG} {args.command}")
    if args.command == "dse":
        if args.scheduler and args.executor != "dask":
            parser.error(f"argument --scheduler: {args.scheduler!r} needs --executor dask")
        if args.model is None and (args.state_dict or args.train_epochs):
            parser.error("arguments --state-dict / --train-epochs need --model")
    if args.command == "verify" and args.rtl and args.no_build:
        parser.error("argument --rtl: the rtl stage simulates the FINN build's native layers; drop --no-build")
    for name in ("state_dict", "data_root", "folding_config"):
        value = getattr(args, name, None)
        if value is not None and not os.path.exists(value):
            parser.error(f"argument --{name.replace('_', '-')}: no such file or directory: {value!r}")


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Like `python -m`: MODEL / --model / --mac-cost factories are found from the current directory.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    parser = build_parser()
    verbose = "--verbose" in (sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        if not verbose:  # third-party warnings (e.g. Brevitas' fast_hadamard_transform note) stay hidden
            warnings.simplefilter("ignore")
            warnings.filterwarnings("default", module=r"(brevitas_minifloat|finn_transforms)(\.|$)")
        args = parser.parse_args(argv)
        _check_combinations(args)
        try:
            return args.func(args)
        except CliError as err:
            types.print_error(f"{PROG} {args.command}", str(err))
            return err.code
        except KeyboardInterrupt:
            print("interrupted (finished points are cached; run the same command again to resume)", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
