"""Hardware cost of one MAC unit, measured by open-source synthesis (Yosys ``synth_xilinx``).

``mac_cost("E4M3", "INT8", fan_in=64)`` generates the `MacUnit` Verilog, runs::

    yosys -p "read_verilog unit.v; synth_xilinx -family xcup -flatten -noiopad [-nodsp] -top <top>;
              tee -o stat.json stat -json"

and returns the cell counts (LUT, CARRY, FF, DSP, MUXF). ``-flatten`` lets Yosys optimise across
the decoder modules and makes ``stat`` count everything; ``-noiopad`` leaves out I/O buffers, which
a unit inside an MVAU does not have. Numbers are Yosys 0.23's, not Vivado's: Yosys' soft
multipliers are plain array multipliers (no Booth recoding), so absolute LUT counts run higher than
Vivado's; comparisons between formats are the point.

Results are cached as plain JSON files (never pickle), one per parameter set, keyed by every
parameter, the generator version, a hash of the generated Verilog, the synthesis script and the
Yosys version: any change there misses the cache instead of returning stale numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from brevitas_minifloat.hw.cache import JsonCache, default_cache_dir
from brevitas_minifloat.hw.operands import IntegerFormat, Operand, as_operand, is_minifloat
from brevitas_minifloat.hw.rtl import GENERATOR_VERSION, MacUnit, accumulator_bits

SYNTH_SCRIPT = (
    "read_verilog {verilog}; synth_xilinx -family {family} -flatten -noiopad{nodsp} -top {top}; "
    "tee -q -o {stat} stat -json"
)


def yosys_missing() -> str | None:
    """``None`` if ``yosys`` is on PATH, else why synthesis cannot run."""
    if shutil.which("yosys") is None:
        return "yosys not found on PATH (Debian/Ubuntu: apt-get install yosys)"
    return None


@lru_cache(maxsize=1)
def yosys_version() -> str:
    reason = yosys_missing()
    if reason:
        raise RuntimeError(reason)
    return subprocess.run(["yosys", "-V"], capture_output=True, text=True, check=True).stdout.strip()


#: Yosys cell-name prefix -> resource group, first match wins (INV is a LUT1; RAMB* before LUTRAM's RAM*).
_CELL_GROUPS = (
    ("LUT", "LUT"), ("INV", "LUT"), ("CARRY", "CARRY"), ("FD", "FF"), ("DSP", "DSP"), ("MUXF", "MUXF"),
    ("SRL", "SRL"), ("RAMB18", "RAMB18"), ("RAMB36", "RAMB36"), ("URAM", "URAM"), ("RAM", "LUTRAM"),
)
_NOT_COUNTED = frozenset({"BUFG", "IBUF", "OBUF", "BUFGCTRL"})


def summarize_cells(cells: dict[str, int]) -> dict[str, int]:
    """Group Yosys' Xilinx cell counts: LUT (LUT1..LUT6, INV), CARRY (CARRY4/8), FF (FD*), DSP (DSP48*),
    MUXF (MUXF7/8/9), SRL, block RAM (RAMB18*, RAMB36*; ``BRAM18`` = RAMB18 + 2 x RAMB36, FINN's
    unit), URAM and LUTRAM (the other RAM* cells); BUFG and I/O buffers are not counted."""
    out = dict.fromkeys(("LUT", "CARRY", "FF", "DSP", "MUXF", "SRL", "LUTRAM", "RAMB18", "RAMB36", "BRAM18", "URAM",
                         "other"), 0)
    for cell, n in cells.items():
        group = next((g for prefix, g in _CELL_GROUPS if cell.startswith(prefix)), None)
        if group is not None:
            out[group] += n
        elif cell not in _NOT_COUNTED:
            out["other"] += n
    out["BRAM18"] = out["RAMB18"] + 2 * out["RAMB36"]
    return out


def _cache_key(unit: MacUnit, family: str, dsp: bool) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "unit": unit.describe(),
        "verilog_sha256": hashlib.sha256(unit.verilog.encode()).hexdigest(),
        "family": family,
        "dsp": dsp,
        "script": SYNTH_SCRIPT,
        "yosys": yosys_version(),
    }


def _cache_name(key: dict) -> str:
    u = key["unit"]
    return f"{u['weight']}_x_{u['act']}_{u['arch']}"


def synthesize(unit: MacUnit, *, family: str = "xcup", dsp: bool = False, timeout: float | None = None) -> dict:
    """Run Yosys on one unit (no cache); returns raw cell counts, wall and CPU seconds."""
    reason = yosys_missing()
    if reason:
        raise RuntimeError(reason)
    with tempfile.TemporaryDirectory(prefix="mac_synth_") as tmp:
        d = Path(tmp)
        verilog = unit.write(d)
        script = SYNTH_SCRIPT.format(
            verilog=verilog.name, family=family, nodsp="" if dsp else " -nodsp", top=unit.top, stat="stat.json"
        )
        t0 = time.perf_counter()
        returncode, cpu = run_measured(["yosys", "-q", "-l", "yosys.log", "-p", script], d, timeout)
        seconds = time.perf_counter() - t0
        if returncode == "timeout":
            raise TimeoutError(f"yosys took longer than {timeout} s on {unit.top}")
        if returncode:
            log = (d / "yosys.log").read_text(errors="replace") if (d / "yosys.log").exists() else ""
            raise RuntimeError(f"yosys failed on {unit.top} (exit {returncode}):\n{log[-3000:]}")
        stat = json.loads((d / "stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    return {"cells": dict(sorted(cells.items())), "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3)}


def run_measured(cmd: list[str], cwd: Path, timeout: float | None) -> tuple[int | str, float]:
    """Run ``cmd`` and return ``(exit code or "timeout", CPU seconds of that process)``.

    CPU time (user + sys, from ``os.wait4``) is what a synthesis costs; wall time on a shared
    machine mostly measures the neighbours."""
    with open(cwd / "stdout.txt", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, kill) if timeout else None
    if timer:
        timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if timer:
            timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    cpu = usage.ru_utime + usage.ru_stime
    return ("timeout" if timed_out.is_set() else proc.returncode), cpu


def mac_cost(
    weight: str | Operand,
    act: str | Operand,
    *,
    fan_in: int = 64,
    simd: int = 1,
    arch: str = "decode",
    family: str = "xcup",
    dsp: bool = False,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    timeout: float | None = None,
) -> dict:
    """Synthesize one MAC unit and return its resource counts.

    ``weight``/``act``: `MinifloatFormat`, `IntegerFormat` or names (``"E4M3"``, ``"INT4"``,
    ``"UINT8"``). ``fan_in`` sets the exact accumulator width, ``simd`` the lanes, ``arch``
    ``"decode"`` or ``"shift"`` (see `brevitas_minifloat.hw.rtl`). ``dsp=False`` passes ``-nodsp``
    (everything in LUTs). ``cache_dir=None`` uses `default_cache_dir`; ``use_cache=False`` always
    synthesizes and writes nothing.

    Returns a plain dict: ``LUT``, ``CARRY``, ``FF``, ``DSP``, ``MUXF``, ``SRL``, ``LUTRAM``,
    ``LUT_per_MAC`` (LUT / simd), ``cells`` (raw Yosys counts), ``acc_bits``, ``product_bits``,
    ``seconds``/``cpu_seconds`` (Yosys wall and CPU time when it ran), ``cached`` and ``key``.
    """
    unit = MacUnit(as_operand(weight), as_operand(act), fan_in=fan_in, simd=simd, arch=arch)
    key = _cache_key(unit, family, dsp)
    cache = JsonCache(cache_dir if cache_dir is not None else default_cache_dir())
    stored = cache.get(key, _cache_name(key)) if use_cache else None
    if stored is not None:
        return {**stored, "cached": True, "key": key}
    raw = synthesize(unit, family=family, dsp=dsp, timeout=timeout)
    result = {
        **summarize_cells(raw["cells"]),
        "LUT_per_MAC": summarize_cells(raw["cells"])["LUT"] / simd,
        "cells": raw["cells"],
        "acc_bits": unit.acc_bits,
        "product_bits": unit.product_bits,
        "seconds": raw["seconds"],
        "cpu_seconds": raw["cpu_seconds"],
    }
    if use_cache:
        cache.put(key, result, _cache_name(key))
    return {**result, "cached": False, "key": key}


def mac_costs(jobs: Iterable[dict], *, executor: Executor | None = None, workers: int = 2) -> list[dict]:
    """Run `mac_cost` for many parameter dicts (each ``{"weight":, "act":, ...}``), in parallel.

    Yosys runs as a subprocess, so threads are enough; pass any `concurrent.futures.Executor`
    (e.g. a Dask client's) to run elsewhere. Results come back in job order; a failed job's entry
    is ``{"error": message}``."""
    jobs = list(jobs)

    def run(job: dict) -> dict:
        try:
            return mac_cost(**job)
        except (RuntimeError, TimeoutError, ValueError) as err:
            return {"error": f"{type(err).__name__}: {err}"}

    if executor is not None:
        return list(executor.map(run, jobs))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, jobs))


# ------------------------------------------------------------------------------ FINN's analytic model
def finn_datatype(fmt: str | Operand) -> tuple[int, bool]:
    """``(bits, signed)`` of the FINN integer datatype our lowering gives a format: the minifloat's
    integer embedding (``INT5`` for E2M1, docs/design.md, "Semantics"); an integer format is itself."""
    fmt = as_operand(fmt)
    if is_minifloat(fmt):
        return fmt.integer_bit_width, fmt.signed
    assert isinstance(fmt, IntegerFormat)
    return fmt.bits, fmt.signed


def finn_mvau_lut_estimate(
    weight: str | Operand,
    act: str | Operand,
    *,
    fan_in: int = 64,
    simd: int = 1,
    pe: int = 1,
    res_type: str = "lut",
) -> dict:
    """FINN+ 1.6.1's ``MVAU_hls.lut_estimation`` (FINN-R, Blott et al. 2018), transcribed, for a
    layer with ``noActivation=1``, block-RAM weights and ``accDataType`` set to the exact width
    (`accumulator_bits`, what FINN's MinimizeAccumulatorWidth aims at):

        LUT = 300 + 1.1 * PE * (mult + addertree + acc)
        mult = SIMD * (2 ceil((W + A) / 6) - 1) * (W + A)     (0 with resType dsp)
        addertree = (W + A) * (2 SIMD - 1)
        acc = min(ACC, ceil(alpha + log2(1 + 2^-alpha) + 1)),
              alpha = log2(MW) + W + A - 1 - signed(A)

    W and A are the widths of the integer datatypes FINN sees (`finn_datatype`). Returns the total
    and ``per_MAC`` = the arithmetic part (without the 300-LUT constant) / (PE * SIMD), comparable to
    `mac_cost`'s ``LUT_per_MAC``. ``tests/test_rtl.py`` checks this against FINN's own code."""
    w_bits, _ = finn_datatype(weight)
    a_bits, a_signed = finn_datatype(act)
    wa = w_bits + a_bits
    mult = 0 if res_type == "dsp" else simd * (2 * math.ceil(wa / 6) - 1) * wa
    addertree = wa * (2 * simd - 1)
    alpha = math.log2(fan_in) + w_bits + a_bits - 1 - int(a_signed)
    acc = min(accumulator_bits(weight, act, fan_in), math.ceil(alpha + math.log2(1 + 2.0**-alpha) + 1))
    arithmetic = 1.1 * pe * (mult + addertree + acc)
    return {
        "LUT": int(300 + arithmetic),
        "per_MAC": arithmetic / (pe * simd),
        "mult": mult,
        "addertree": addertree,
        "acc": acc,
        "W": w_bits,
        "A": a_bits,
    }
