"""The two kinds of DSE job. Plain top-level functions of plain arguments (dicts and strings), so any
`concurrent.futures.Executor` can run them: a local process pool, threads, or a Dask cluster.

Both catch what can go wrong with a design point and return it as data (``status``, ``reason``);
only bugs escape.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path

from finn_transforms.finn_defaults import DEFAULT_FPGA_PART

#: Bump when a job's results change meaning, so cached results are recomputed.
JOB_VERSION = 2


# torch.fx symbolic tracing (Brevitas' graph-mode PTQ traces the model) patches
# torch.nn.Module.__call__ process-wide while it runs: a forward pass in another thread at that
# moment goes through the tracer and fails ("NameError: module is not installed as a submodule").
# Jobs therefore run one at a time per process; thread executors stay correct but gain no
# parallelism (use processes: the default pool, or Dask workers with one thread each).
_ONE_JOB_PER_PROCESS = threading.RLock()


def _exclusive(job):
    @functools.wraps(job)
    def run(*args, **kwargs):
        with _ONE_JOB_PER_PROCESS:
            return job(*args, **kwargs)

    return run


def _workload(d: dict):
    from brevitas_minifloat.dse.workload import Workload

    d = dict(d)
    d["input_shape"] = tuple(d.get("input_shape") or (1, 1, 28, 28))
    return Workload(**d)


def _setup(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    warnings.filterwarnings("ignore")


@contextlib.contextmanager
def _c_stderr_muted():
    """Silence C++-level stderr (torch's ONNX exporter prints an unused-custom-domain warning per
    export, which would interleave with the progress bar); Python exceptions are unaffected."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured): nothing to do
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def _error(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return text if len(text) < 2000 else text[:2000] + " ..."


def _evaluate(model, x, y, reference=None, batch_size: int = 250) -> dict:
    """One batched, gradient-free pass: accuracy, per-image correctness (packed, for paired tests)
    and the output MSE against ``reference`` logits. (Batches of 250 stay in cache: on the
    embedded CNN's fake-quantized activations they ran ~1.8x faster per image than 1000.)"""
    import numpy as np
    import torch

    from brevitas_minifloat.dse.stats import pack_correct

    model.eval()
    correct, sq = [], 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size])
            correct.append((out.argmax(1) == y[i:i + batch_size]).numpy())
            if reference is not None:
                sq += float(((out - reference[i:i + batch_size]) ** 2).sum())
    hits = np.concatenate(correct)
    res = {"accuracy": float(hits.mean()), "correct_count": int(hits.sum()), "eval_images": len(hits),
           "correct": pack_correct(hits)}
    if reference is not None:
        res["output_mse"] = sq / reference.numel()
    return res


@_exclusive
def float_accuracy_job(workload: dict, options: dict | None = None) -> dict:
    """Accuracy (and per-image correctness) of the float model on the held-out data."""
    _setup((options or {}).get("threads"))
    model, _, xte, yte = _workload(workload).load()
    return _evaluate(model, xte, yte)


@_exclusive
def accuracy_job(workload: dict, point: dict, options: dict | None = None) -> dict:
    """PTQ of the workload's float model at ``point`` (weights, activations, techniques), calibrated
    on the training sample of ``options["calibration_seed"]`` (default 0), and its accuracy,
    per-image correctness and output MSE (vs the float model) on the held-out data."""
    import torch

    from brevitas_minifloat.ptq import quantize

    options = options or {}
    _setup(options.get("threads"))
    wl = _workload(workload)
    model, _, xte, yte = wl.load()
    calibration = wl.calibration_batch(int(options.get("calibration_seed", 0)))
    t0 = time.perf_counter()
    try:
        q = quantize(model, calibration, weights=point["weights"], activations=point["activations"],
                     techniques=tuple(point.get("techniques") or ()), seed=int(options.get("seed", 0)))
    except (ValueError, RuntimeError, torch.linalg.LinAlgError) as err:
        return {"status": "ptq failed", "reason": _error(err)}
    ptq_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = _evaluate(q, xte, yte, wl.reference_logits())
    info = q.ptq_info
    return res | {
        "status": "ok" if res["accuracy"] == res["accuracy"] and res["output_mse"] == res["output_mse"] else "nan",
        "ptq_s": ptq_s,
        "eval_s": time.perf_counter() - t1,
        "layers": [{"name": li.name, "input_format": li.input_format, "fan_in": li.fan_in, "macs": li.macs}
                   for li in info.layers],
        "rounding": {k: v["method"] for k, v in info.rounding.items()},
    }


@_exclusive
def hardware_job(workload: dict, weights: str, activations: str, options: dict | None = None) -> dict:
    """FINN estimates of the workload quantized to ``weights``/``activations`` (calibration only:
    the formats, not the PTQ technique, decide the hardware): export to QONNX, lower our minifloat
    quantizers (``options["mapping"]``: ``"embedding"`` by default, or ``"native"`` / ``"auto"``,
    `finn_transforms.native.mapping`), run FINN's estimate-only build. Refusals and failures come
    back as ``status``."""
    from brevitas_minifloat.export import ExportRefused, export_qonnx
    from brevitas_minifloat.ptq import quantize

    options = options or {}
    _setup(options.get("threads"))
    wl = _workload(workload)
    model, calibration, xte, _ = wl.load()
    root = Path(options.get("build_root") or "out/dse/builds")
    slug = f"W_{weights}_A_{activations}_{options.get('mapping', 'embedding')}".replace("/", "_")
    out = root / slug
    t0 = time.perf_counter()
    try:
        q = quantize(model, calibration, weights=weights, activations=activations, techniques=())
        try:
            with _c_stderr_muted():
                exported = export_qonnx(q, xte[:1], out / "qonnx.onnx")
        except ExportRefused as err:
            return {"status": "export refused", "reason": _error(err)}
        return _finn_estimates(exported, out, options) | {"build_s": time.perf_counter() - t0}
    finally:
        if not options.get("keep_builds"):
            shutil.rmtree(out, ignore_errors=True)


@_exclusive
def measured_mac_job(workload: dict, weights: str, activations: str, options: dict | None = None) -> dict:
    """Yosys-synthesized MAC unit per compute layer of the workload quantized to
    ``weights``/``activations`` (`brevitas_minifloat.hw.folded`); ``options["arch"]``: ``"shift"``
    (default) or ``"decode"``. Missing Yosys and synthesis failures come back as ``status``."""
    from brevitas_minifloat.hw.folded import synthesize_layer_units
    from brevitas_minifloat.hw.cost import yosys_missing
    from brevitas_minifloat.ptq import quantize

    options = options or {}
    missing = yosys_missing()
    if missing:
        return {"status": "yosys missing", "reason": missing}
    _setup(options.get("threads"))
    model, calibration, _, _ = _workload(workload).load()
    q = quantize(model, calibration, weights=weights, activations=activations, techniques=())
    layers = [{"name": li.name, "input_format": li.input_format, "fan_in": li.fan_in, "macs": li.macs}
              for li in q.ptq_info.layers]
    try:
        units = synthesize_layer_units(weights, layers, arch=options.get("arch", "shift"))
    except (RuntimeError, TimeoutError, ValueError) as err:
        return {"status": "synthesis failed", "reason": _error(err)}
    return {"status": "ok", "arch": options.get("arch", "shift"), "units": units}


def _finn_estimates(exported, out: Path, options: dict) -> dict:
    from finn_transforms.finn_env import FinnNotAvailableError
    from finn_transforms.steps import lower_minifloat, make_step_lower_minifloat
    from finn_transforms.transformation import LoweringError

    mapping = options.get("mapping", "embedding")

    try:
        from finn_transforms.build import FinnBuildError, build_estimates
        from finn_transforms.finn_env import require_finn

        require_finn()
    except (ImportError, FinnNotAvailableError) as err:
        try:  # still tell lowerable from not lowerable
            lower_minifloat(exported, mapping=mapping)
        except LoweringError as low:
            return {"status": "not lowerable", "reason": _error(low)}
        return {"status": "finn missing", "reason": f"{_error(err)} (install FINN+: see README, `make setup`)"}
    try:
        report = build_estimates(
            exported, out / "finn", extra_steps_before=[make_step_lower_minifloat(mapping=mapping)],
            target_fps=options.get("target_fps"), clock_ns=float(options.get("clock_ns", 10.0)),
            fpga_part=options.get("fpga_part", DEFAULT_FPGA_PART),
        )
    except FinnBuildError as err:
        cause = err.__cause__
        if isinstance(cause, LoweringError):
            return {"status": "not lowerable", "reason": _error(cause)}
        return {"status": "build failed", "reason": _error(err), "step": err.step}
    except Exception as err:  # noqa: BLE001 - FINN raises anything; a failed point is data
        return {"status": "build failed", "reason": _error(err), "trace": traceback.format_exc(limit=3)}
    return {
        "status": "ok",
        "finn_lut": report.total_lut,
        "finn_bram18": report.total_bram_18k,
        "finn_dsp": report.total_dsp,
        "finn_max_cycles": report.max_cycles,
        "finn_fps": report.throughput_fps,
        "finn_latency_cycles": report.latency_cycles,
        "finn_layers": [
            {"name": layer.name, "op_type": layer.op_type, "lut": layer.lut, "bram18": layer.bram_18k,
             "dsp": layer.dsp, "cycles": layer.cycles, "pe": layer.pe, "simd": layer.simd, "mw": layer.mw}
            for layer in report.layers
        ],
    }
