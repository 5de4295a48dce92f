"""`run_dse`: evaluate every point of a `Space` on a `Workload` through an Executor, with a JSON cache."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from brevitas_minifloat.dse import jobs
from brevitas_minifloat.hw.cache import JsonCache
from brevitas_minifloat.hw.analytic import MacCostFn, analytic_mac_cost, model_mac_cost
from brevitas_minifloat.hw.folded import folded_mac_lut, mean_lut_per_mac
from brevitas_minifloat.dse.space import Point, Space, kind_of, technique_label
from brevitas_minifloat.dse.stats import wilson_interval
from brevitas_minifloat.dse.workload import Workload
from brevitas_minifloat.ptq.spec import as_spec


class InlineExecutor(Executor):
    """Runs each job at ``submit`` in the calling thread (debugging, tiny sweeps, tests)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(err)
        return future


def _init_worker() -> None:
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")


def _preload(workload: Workload, finn: bool) -> None:
    """Import what the jobs import and load the workload in this process, so that forked workers
    inherit it instead of each paying the imports (FINN's builder: seconds of CPU) and the data
    parsing again. Failures are left for the jobs to report."""
    import importlib

    for name in ("brevitas.graph.quantize", "brevitas.graph.calibrate", "brevitas.graph.equalize",
                 "brevitas_minifloat.export", "brevitas_minifloat.training"):
        importlib.import_module(name)
    try:
        workload.load()
    except Exception:  # noqa: BLE001 - the float job reports it
        pass
    if finn:
        try:
            from finn_transforms.finn_env import finn_session, import_builder

            with finn_session():
                import_builder()
            import finn_transforms.build  # noqa: F401
            import finn_transforms.steps  # noqa: F401
        except Exception:  # noqa: BLE001 - FINN missing or broken: the hardware jobs report it
            pass


def process_pool(workers: int = 2, start_method: str | None = None) -> ProcessPoolExecutor:
    """The default executor: ``workers`` local processes with one torch thread each.

    ``start_method=None`` forks where the platform can (Linux; like torch's DataLoader workers, so
    scripts need no ``if __name__ == "__main__":`` guard) and spawns elsewhere."""
    if start_method is None:
        start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(start_method),
                               initializer=_init_worker)


@dataclass
class DSEResult:
    """Rows (one per point), the float baseline, the Pareto frontier and where the report went."""

    rows: list[dict]
    fp32_accuracy: float
    workload: dict
    out_dir: Path | None = None
    frontier: list[dict] = field(default_factory=list)
    frontier_x: str = "finn_lut"
    stats: dict = field(default_factory=dict)
    fp32_interval: tuple[float, float] | None = None
    correctness: dict[str, str | None] = field(default_factory=dict)  # point key -> packed per-image hits
    fp32_correct: str | None = None

    def paired_test(self, a: dict | None, b: dict | None) -> dict | None:
        """McNemar's exact test between two rows (``None``: the float model) on the same test
        images, or ``None`` when either has no per-image results."""
        from brevitas_minifloat.dse.stats import mcnemar_exact, unpack_correct

        packed = [self.fp32_correct if r is None else self.correctness.get(r.get("point")) for r in (a, b)]
        n = self.stats.get("eval_images")
        if None in packed or not n:
            return None
        return mcnemar_exact(unpack_correct(packed[0], n), unpack_correct(packed[1], n))

    def best(self, *, kind: str | None = None, w_bits: int | None = None, a_bits: int | None = None,
             techniques: tuple[str, ...] | None = None) -> dict | None:
        """The most accurate row matching the filters (``kind``: ``"int"``, ``"minifloat"``, ``"mixed"``)."""
        rows = [r for r in self.rows if r.get("accuracy") is not None
                and (kind is None or r["kind"] == kind)
                and (w_bits is None or r["w_bits"] == w_bits)
                and (a_bits is None or r["a_bits"] == a_bits)
                and (techniques is None or r["techniques"] == technique_label(tuple(techniques)))]
        return max(rows, key=lambda r: (r["accuracy"], -(r.get("output_mse") or 0)), default=None)

    def row(self, weights: str, activations: str, techniques: tuple[str, ...] = ()) -> dict | None:
        label = technique_label(tuple(techniques))
        return next((r for r in self.rows if r["weights"] == weights and r["activations"] == activations
                     and r["techniques"] == label), None)


def pareto_front(rows: Iterable[dict], x: str = "finn_lut", y: str = "accuracy") -> list[dict]:
    """Rows not dominated in (lower ``x``, higher ``y``), sorted by ``x``; rows missing either are skipped."""
    usable = sorted((r for r in rows if r.get(x) is not None and r.get(y) is not None),
                    key=lambda r: (r[x], -r[y]))
    front, best = [], float("-inf")
    for r in usable:
        if r[y] > best:
            front.append(r)
            best = r[y]
    return front


def _interval(acc: dict | None) -> tuple[float, float] | None:
    if not acc or acc.get("correct_count") is None:
        return None
    return wilson_interval(acc["correct_count"], acc["eval_images"])


def mark_frontier(frontier: list[dict], correctness: dict[str, str | None], *, alpha: float = 0.05) -> None:
    """Mark each frontier row (sorted by cost) against its cheaper neighbour with McNemar's exact test on
    the per-image results: ``frontier_p`` (None for the cheapest) and ``frontier_distinct``
    (``p < alpha``; False: its accuracy gain over the cheaper point is within the noise)."""
    from brevitas_minifloat.dse.stats import mcnemar_exact, unpack_correct

    for prev, row in zip([None, *frontier], frontier):
        row["frontier_p"], row["frontier_distinct"] = None, None
        if prev is None:
            continue
        a, b = correctness.get(prev.get("point")), correctness.get(row.get("point"))
        if a is None or b is None:
            continue
        n = row["eval_images"]
        p = mcnemar_exact(unpack_correct(a, n), unpack_correct(b, n))["p"]
        row["frontier_p"], row["frontier_distinct"] = round(p, 5), p < alpha


def point_mappings(point: Point, mappings: Sequence[str]) -> list[str]:
    """The mappings a point is built with: every one of ``mappings`` when it has a minifloat format,
    else only FINN's integer flow (``"integer"``). Without FINN builds rows have no mapping (``None``)."""
    if kind_of(point.weights) == kind_of(point.activations) == "int":
        return ["integer"]
    return list(mappings)


def _row(point: Point, acc: dict | None, hw: dict | None, fp32: float, mac_cost: MacCostFn,
         cost_fps: float, measured: dict | None = None, mapping: str | None = None) -> dict:
    w, a = as_spec(point.weights), as_spec(point.activations)
    kinds = {kind_of(point.weights), kind_of(point.activations)}
    row = {
        "weights": point.weights, "activations": point.activations,
        "techniques": technique_label(point.techniques), "mapping": mapping,
        "kind": kinds.pop() if len(kinds) == 1 else "mixed",
        "w_bits": w.bits, "a_bits": a.bits,
        "w_int_bits": w.fmt.integer_bit_width if w.is_minifloat else w.bits,
        "a_int_bits": a.fmt.integer_bit_width if a.is_minifloat else a.bits,
        "status": "pending", "accuracy": None, "acc_lo": None, "acc_hi": None, "eval_images": None,
        "calib_min": None, "calib_max": None, "accuracy_drop": None, "output_mse": None, "ptq_s": None,
        "eval_s": None, "build_s": None,
        "hw_status": None, "hw_reason": None,
        "finn_lut": None, "finn_bram18": None, "finn_dsp": None, "finn_max_cycles": None, "finn_fps": None,
        "mac_lut": None, "mac_lut_at_fps": None,
        "yosys_status": None, "yosys_mac_lut": None, "yosys_lut_folded": None, "finn_mvau_lut": None,
    }
    if acc is not None:
        row["status"] = acc.get("status", "error")
        if acc.get("status") == "ok":
            lo, hi = _interval(acc)
            row.update(accuracy=acc["accuracy"], acc_lo=lo, acc_hi=hi, eval_images=acc["eval_images"],
                       accuracy_drop=fp32 - acc["accuracy"],
                       output_mse=acc["output_mse"], ptq_s=round(acc["ptq_s"], 3), eval_s=round(acc["eval_s"], 3))
            row.update({k: round(v, 2) for k, v in
                        model_mac_cost(acc["layers"], point.weights, mac_cost, fps=cost_fps).items()})
        else:
            row["reason"] = acc.get("reason")
    if hw is not None:
        row["hw_status"] = hw.get("status")
        row["hw_reason"] = hw.get("reason")
        for k in ("finn_lut", "finn_bram18", "finn_dsp", "finn_max_cycles"):
            row[k] = hw.get(k)
        row["finn_fps"] = None if hw.get("finn_fps") is None else round(hw["finn_fps"], 1)
        row["build_s"] = None if hw.get("build_s") is None else round(hw["build_s"], 2)
        mvau_luts = [la["lut"] for la in hw.get("finn_layers") or () if la["op_type"].startswith("MVAU")]
        row["finn_mvau_lut"] = round(sum(mvau_luts), 1) if mvau_luts else None
    if measured is not None:
        _add_measured(row, measured, hw)
    return row


def _add_measured(row: dict, measured: dict, hw: dict | None) -> None:
    """The Yosys columns: MAC-weighted LUTs per MAC, and LUTs x PE*SIMD of FINN's folding when built."""
    row["yosys_status"] = measured.get("status")
    if measured.get("status") != "ok":
        row["yosys_reason"] = measured.get("reason")
        return
    row["yosys_mac_lut"] = round(mean_lut_per_mac(measured["units"]), 2)
    if hw is not None and hw.get("status") == "ok":
        folded, reason = folded_mac_lut(measured["units"], hw.get("finn_layers") or [])
        row["yosys_lut_folded"] = folded
        if reason:
            row["yosys_status"], row["yosys_reason"] = "not matched", reason


#: Job results never cached (and ignored when an older version cached them): a FINN build that failed
#: (an exception inside FINN or our steps, not a refusal) is a bug or an upstream limit that a later
#: fix of our steps removes without changing any cache key (fashion_cnv's E5M2 native build).
UNCACHED_STATUSES = frozenset({"build failed"})


def _cached(cache: JsonCache | None, k: dict, recompute: bool) -> dict | None:
    """The cached result of job ``k``, or None (no cache, ``recompute``, a miss, an uncached status)."""
    hit = None if (recompute or cache is None) else cache.get(k, k["kind"])
    return None if hit is None or hit.get("status") in UNCACHED_STATUSES else hit


def _run_jobs(todo: list[tuple[dict, Callable, tuple]], pool: Executor | None, cache: JsonCache | None,
              results: dict[str, dict], progress: bool, on_result: Callable[[str, dict], None] | None) -> int:
    """Run ``(key, fn, args)`` jobs on ``pool``; results (and crashes, as data) go into ``results``,
    finished ones into ``cache`` (not crashes, not `UNCACHED_STATUSES`). Returns the number of crashed jobs."""
    if not todo:
        return 0
    from tqdm.auto import tqdm

    failures = 0
    with tqdm(total=len(todo), desc="DSE jobs", disable=not progress, unit="job") as bar:
        futures = {}
        for k, fn, args in todo:  # (an InlineExecutor runs the job right here)
            fut = pool.submit(fn, *args)
            fut.add_done_callback(lambda _f: bar.update())
            futures[fut] = k
        for fut in as_completed(futures):
            k = futures[fut]
            try:
                res = fut.result()
            except Exception as err:  # noqa: BLE001 - a crashed job is reported, not cached
                res = {"status": "error", "reason": f"{type(err).__name__}: {err}",
                       "trace": "".join(traceback.format_exception(err))[-3000:]}
                failures += 1
            else:
                if cache is not None and res.get("status") not in UNCACHED_STATUSES:
                    cache.put(k, res, k["kind"])
            results[json.dumps(k, sort_keys=True)] = res
            if on_result is not None:
                on_result(k["kind"], res)
    return failures


def run_dse(
    workload: Workload,
    space: Space | Iterable[Point],
    out_dir: str | os.PathLike | None = "out/dse",
    *,
    executor: Executor | None = None,
    workers: int = 2,
    finn: bool = True,
    target_fps: float | None = 10_000.0,
    clock_ns: float = 10.0,
    mac_cost: MacCostFn = analytic_mac_cost,
    cost_fps: float = 10_000.0,
    frontier_x: str | None = None,
    progress: bool = True,
    recompute: bool = False,
    keep_builds: bool = False,
    report: bool = True,
    cache_dir: str | os.PathLike | None = None,
    measured_mac: str | None = None,
    on_result: Callable[[str, dict], None] | None = None,
    calibration_seeds: int = 3,
    spread: str = "frontier",
    alpha: float = 0.05,
    mappings: Sequence[str] = ("embedding", "native"),
) -> DSEResult:
    """Evaluate every point; write the report to ``out_dir`` (CSV, JSON, frontier, PNG plots).

    Per point: PTQ (`brevitas_minifloat.ptq.quantize`) with the point's formats and techniques,
    accuracy and output MSE on the held-out data; per format pair (shared by the techniques) FINN
    estimates of the lowered model, folded by FINN for ``target_fps`` frames/s at ``clock_ns``
    (``None``: fully folded) (``finn=False`` skips them; failures and refusals are recorded in
    ``hw_status``/``hw_reason``); the MAC cost model ``mac_cost`` per layer (default:
    `analytic_mac_cost`; any ``fn(weight_fmt, act_fmt, *, fan_in) -> {"LUT": ...}``, e.g. the
    Yosys-measured ``brevitas_minifloat.hw.cost.mac_cost``, which the parent process would call
    serially). ``measured_mac="shift"`` or ``"decode"`` (the MAC architecture, see
    `brevitas_minifloat.hw.rtl`) adds the measured columns as parallel jobs per format pair
    (`brevitas_minifloat.hw.folded`; needs ``yosys``): ``yosys_mac_lut`` (LUTs per MAC,
    MAC-weighted over the layers) and ``yosys_lut_folded`` (LUTs per MAC x PE*SIMD of each MVAU
    of FINN's folding, summed), beside ``finn_mvau_lut``, FINN's estimate for the same MVAUs.

    Statistics: every accuracy gets a 95 % Wilson interval (``acc_lo``, ``acc_hi``) over the test
    images; the points of the frontier (``spread="all"``: every point) are quantized again on
    ``calibration_seeds - 1`` other calibration samples (`Workload.calibration_batch`), giving
    ``calib_accuracies`` and their range ``calib_min``..``calib_max``; each frontier point is tested
    against its cheaper neighbour with McNemar's exact paired test (`mark_frontier`, level ``alpha``).

    Points with a minifloat format are built once per entry of ``mappings`` (``"embedding"``: the
    integers that contain the format; ``"native"``: native minifloat layers; ``"auto"``;
    `finn_transforms.native.mapping`), one row each (column ``mapping``; integer points: one row,
    ``"integer"``), and every row competes for the frontier.

    The Pareto frontier is accuracy vs ``frontier_x`` (default: ``"finn_lut"``, or the analytic
    ``"mac_lut_at_fps"`` when ``finn=False``).

    Jobs run on ``executor`` (any ``concurrent.futures.Executor``, e.g. a Dask
    ``Client.get_executor()``; it is not shut down) or on a fresh local process pool of ``workers``.
    Finished jobs are cached as JSON under ``cache_dir`` (default ``out_dir/cache``; sweeps may share
    one) and not recomputed (``recompute=True`` ignores the cache), except failed FINN builds
    (`UNCACHED_STATUSES`: rebuilt by every run); ``out_dir=None`` and no ``cache_dir`` keep nothing on disk.
    """
    t_start = time.perf_counter()
    if spread not in ("frontier", "all"):
        raise ValueError(f"spread must be 'frontier' or 'all', got {spread!r}")
    if calibration_seeds < 1:
        raise ValueError(f"calibration_seeds must be >= 1, got {calibration_seeds}")
    if frontier_x is None:
        frontier_x = "finn_lut" if finn else "mac_lut_at_fps"
    points = space.points() if isinstance(space, Space) else list(space)
    out = Path(out_dir) if out_dir is not None else None
    if cache_dir is not None:
        cache = JsonCache(cache_dir)
    else:
        cache = JsonCache(out / "cache") if out is not None else None
    wl = workload.to_dict()
    fingerprint = workload.fingerprint()
    build_root = str((out or Path(os.environ.get("TMPDIR", "/tmp")) / "brevitas_minifloat_dse") / "builds")
    acc_opts = {"threads": 1, "seed": 0}
    hw_opts = {"threads": 1, "target_fps": target_fps, "clock_ns": clock_ns, "build_root": build_root,
               "keep_builds": keep_builds}

    def key(kind: str, **extra) -> dict:
        return {"kind": kind, "version": jobs.JOB_VERSION, "workload": fingerprint, **extra}

    float_key = key("float")
    todo: list[tuple[dict, Callable, tuple]] = []
    results: dict[str, dict] = {}

    def lookup(k: dict, fn: Callable, args: tuple) -> None:
        hit = _cached(cache, k, recompute)
        if hit is not None:
            results[json.dumps(k, sort_keys=True)] = hit
        else:
            todo.append((k, fn, args))

    lookup(float_key, jobs.float_accuracy_job, (wl, acc_opts))
    acc_keys = {}
    for p in points:
        acc_keys[p.key] = key("accuracy", point=p.to_dict())
        lookup(acc_keys[p.key], jobs.accuracy_job, (wl, p.to_dict(), acc_opts))
    from finn_transforms.native.cost import cost_model_id
    from finn_transforms.native.mapping import check_mapping

    mappings = [check_mapping(m) for m in mappings]

    def row_mappings(p: Point) -> list[str | None]:
        return point_mappings(p, mappings) if finn else [None]

    hw_keys = {}
    if finn:
        hw_extra = {"target_fps": target_fps, "clock_ns": clock_ns}
        for p in points:
            for m in point_mappings(p, mappings):
                if (p.hw_key, m) in hw_keys:
                    continue
                # "integer" and "embedding" builds keep the key they had before mappings existed; builds
                # that may contain native layers carry the native cost model (a refit or new MAC generator misses)
                extra = hw_extra if m in ("integer", "embedding") else {**hw_extra, "mapping": m,
                                                                        "native_cost": cost_model_id()}
                hw_keys[p.hw_key, m] = key("hardware", weights=p.weights, activations=p.activations, **extra)
                opts = {**hw_opts, "mapping": "embedding" if m == "integer" else m}
                lookup(hw_keys[p.hw_key, m], jobs.hardware_job, (wl, p.weights, p.activations, opts))
    mac_keys = {}
    if measured_mac is not None:
        if measured_mac not in ("shift", "decode"):
            raise ValueError(f"measured_mac must be 'shift', 'decode' or None, got {measured_mac!r}")
        for p in points:
            if p.hw_key not in mac_keys:
                mac_keys[p.hw_key] = key("measured_mac", weights=p.weights, activations=p.activations,
                                         arch=measured_mac)
                lookup(mac_keys[p.hw_key], jobs.measured_mac_job,
                       (wl, p.weights, p.activations, {"threads": 1, "arch": measured_mac}))
    # hardware builds are the long jobs: start them first so the pool stays busy at the end
    todo.sort(key=lambda job: job[0]["kind"] not in ("hardware", "measured_mac"))

    cached = len(results)
    own_executor = executor is None and bool(todo)
    if own_executor and "fork" in multiprocessing.get_all_start_methods():
        _preload(workload, finn=any(k["kind"] == "hardware" for k, _, _ in todo))
    pool = process_pool(workers) if own_executor else executor
    failures = 0
    seed_keys: dict[str, list[dict]] = {}
    todo_seeds: list[tuple[dict, Callable, tuple]] = []

    def get(k: dict | None) -> dict | None:
        return None if k is None else results.get(json.dumps(k, sort_keys=True))

    try:
        failures += _run_jobs(todo, pool, cache, results, progress, on_result)
        fp = get(float_key) or {}
        fp32 = fp.get("accuracy")
        if fp32 is None:
            raise RuntimeError(f"the float model could not be evaluated: {fp.get('reason')}\n{fp.get('trace', '')}")
        point_rows = [(p, _row(p, get(acc_keys[p.key]), get(hw_keys.get((p.hw_key, m))), fp32, mac_cost, cost_fps,
                               get(mac_keys.get(p.hw_key)), mapping=m)) for p in points for m in row_mappings(p)]
        rows = [r for _, r in point_rows]
        # the spread over calibration samples: the same points calibrated on other training samples
        on_front = {id(r) for r in pareto_front(rows, x=frontier_x)}
        front_keys = {p.key for p, r in point_rows if id(r) in on_front}
        spread_points = points if spread == "all" else [p for p in points if p.key in front_keys]
        for p in spread_points:
            seed_keys[p.key] = [acc_keys[p.key]]
            for seed in range(1, calibration_seeds):
                k = key("accuracy", point=p.to_dict(), calibration_seed=seed)
                seed_keys[p.key].append(k)
                hit = _cached(cache, k, recompute)
                if hit is not None:
                    results[json.dumps(k, sort_keys=True)] = hit
                    cached += 1
                else:
                    todo_seeds.append((k, jobs.accuracy_job, (wl, p.to_dict(), acc_opts | {"calibration_seed": seed})))
        if todo_seeds and pool is None:  # everything else was cached
            pool, own_executor = process_pool(workers), True
        failures += _run_jobs(todo_seeds, pool, cache, results, progress, on_result)
    finally:
        if own_executor:
            pool.shutdown(wait=True, cancel_futures=True)
    todo += todo_seeds

    correctness = {p.key: (get(acc_keys[p.key]) or {}).get("correct") for p in points}
    for p, r in point_rows:
        r["point"] = p.key
        if p.key in seed_keys:
            accs = [(get(k) or {}).get("accuracy") for k in seed_keys[p.key]]
            r["calib_accuracies"] = accs
            if all(a is not None for a in accs):
                r["calib_min"], r["calib_max"] = min(accs), max(accs)
    frontier = pareto_front(rows, x=frontier_x)
    mark_frontier(frontier, correctness, alpha=alpha)
    result = DSEResult(
        rows=rows, fp32_accuracy=fp32, workload=wl, out_dir=out, frontier_x=frontier_x, frontier=frontier,
        fp32_interval=_interval(fp), correctness=correctness, fp32_correct=fp.get("correct"),
        stats={"points": len(points), "jobs_run": len(todo), "jobs_cached": cached, "job_errors": failures,
               "eval_images": fp.get("eval_images"), "seconds": time.perf_counter() - t_start,
               "workers": None if executor is not None else workers,
               "executor": type(executor).__name__ if executor is not None else "ProcessPoolExecutor",
               "mac_cost": getattr(mac_cost, "__qualname__", repr(mac_cost)), "cost_fps": cost_fps,
               "target_fps": target_fps, "clock_ns": clock_ns, "measured_mac": measured_mac,
               "calibration_seeds": calibration_seeds, "spread": spread, "alpha": alpha,
               "mappings": list(mappings)},
    )
    if report and out is not None:
        from brevitas_minifloat.dse.report import write_report

        write_report(result, out)
    return result
