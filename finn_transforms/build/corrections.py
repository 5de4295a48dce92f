"""Corrections to FINN's per-layer resource estimates, for the two cases FINN's models get wrong here.

- **Thresholds embedded in an MVAU** (``noActivation=0``): FINN's MVAU BRAM model counts the weight
  memory only, and its LUT model counts the threshold memory only with
  ``ram_style_thresholds="distributed"``. Every PE compares all ``T`` thresholds of a channel in one
  cycle, so its threshold memory is ``TMEM = MH/PE`` entries of ``T x W`` bits (``W``: the thresholds'
  bit width). With ``"auto"`` and ``TMEM <= 64`` (`LUTRAM_DEPTH`) we count it as LUTRAM, with FINN's
  own MVAU LUT model for ``ram_style_thresholds="distributed"``; otherwise (``"block"``, or deeper)
  as RAMB18s in the best simple-dual-port geometry of UG573 (16Kx1, 8Kx2, 4Kx4, 2Kx9, 1Kx18, 512x36):
  ``extra BRAM18 = PE * min over (d, w) of ceil(TMEM/d) * ceil(T*W/w)``.
- **Thresholds shared by all channels** (a per-tensor quantizer broadcast to every channel): FINN
  stores one copy per channel. The corrected numbers are FINN's own estimate of the same layer with
  one copy per PE lane (``NumChannels = PE`` for ``Thresholding`` and ``WideThresholding``, ``TMEM = 1``
  in the MVAU formula).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["RAMB18_GEOMETRIES", "LayerCorrection", "layer_corrections", "ramb18_count"]

#: Threshold memories at most this deep count as LUTRAM with ``ram_style_thresholds="auto"`` (our
#: assumption for Vivado's automatic choice: a LUT6 is a 64 x 1 RAM), deeper ones as block RAM.
LUTRAM_DEPTH = 64

#: (depth, width) of a RAMB18 in simple dual-port mode (UG573, Table 1-10)
RAMB18_GEOMETRIES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def ramb18_count(depth: int, width: int) -> int:
    """RAMB18s holding a ``depth x width`` memory in their best geometry."""
    if depth <= 0 or width <= 0:
        return 0
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in RAMB18_GEOMETRIES)


@dataclass(frozen=True)
class LayerCorrection:
    """Corrected resources of one layer and why (the formula, with its numbers)."""

    lut: float
    bram_18k: float
    uram: float
    reason: str


def _shared(thresholds: np.ndarray, channels: int) -> bool:
    """One set of thresholds for all ``channels``: a single row (FINN broadcasts it) or equal rows."""
    return channels > 1 and (thresholds.shape[0] == 1 or bool(np.all(thresholds == thresholds[:1])))


def _mvau(model, node, op, fpga_part: str) -> LayerCorrection | None:
    if op.get_nodeattr("noActivation") != 0 or len(node.input) < 3:
        return None
    thresholds = model.get_initializer(node.input[2])
    style = op.get_nodeattr("ram_style_thresholds")
    if thresholds is None or style == "distributed":  # FINN's LUT model counts them then
        return None
    pe, mh = op.get_nodeattr("PE"), op.get_nodeattr("MH")
    n_thr = int(thresholds.shape[1])
    bits = model.get_tensor_datatype(node.input[2]).bitwidth()
    shared = _shared(thresholds, mh)
    tmem = 1 if shared else mh // pe
    lut, bram, uram = (float(f(fpga_part)) for f in (op.lut_estimation, op.bram_estimation, op.uram_estimation))
    what = (f"{mh} x {n_thr} thresholds of {bits} bits, " +
            ("shared by all channels: one copy per PE" if shared else f"TMEM = MH/PE = {mh}/{pe} per PE"))
    if style == "auto" and tmem <= LUTRAM_DEPTH:
        from qonnx.custom_op.registry import getCustomOp

        distributed_op = getCustomOp(copy.deepcopy(node))
        distributed_op.set_nodeattr("ram_style_thresholds", "distributed")
        if shared:
            distributed_op.set_nodeattr("MH", pe)  # calc_tmem() = 1: one copy per PE
        fixed = float(distributed_op.lut_estimation(fpga_part))
        return LayerCorrection(lut=fixed, bram_18k=bram, uram=uram,
            reason=(f"+{fixed - lut:g} LUT for the {what} (ram_style_thresholds=auto, depth {tmem} <= "
                    f"{LUTRAM_DEPTH}: LUTRAM): FINN's MVAU LUT model with ram_style_thresholds=distributed"))
    extra = pe * ramb18_count(tmem, n_thr * bits)
    return LayerCorrection(
        lut=lut, bram_18k=bram + extra, uram=uram,
        reason=(f"+{extra} BRAM18 for the {what} (ram_style_thresholds={style}): PE * RAMB18s({tmem} x "
                f"{n_thr}*{bits} bits), all thresholds of a channel read in one cycle (densely packed: "
                f"{math.ceil(pe * tmem * n_thr * bits / (18 * 1024))} BRAM18)"))


def _thresholding(model, node, op, fpga_part: str) -> LayerCorrection | None:
    thresholds = model.get_initializer(node.input[1])
    channels, pe = op.get_nodeattr("NumChannels"), op.get_nodeattr("PE")
    if thresholds is None or channels <= pe or not _shared(thresholds, channels):
        return None
    from qonnx.custom_op.registry import getCustomOp

    once = copy.deepcopy(node)
    once_op = getCustomOp(once)
    once_op.set_nodeattr("NumChannels", pe)
    return LayerCorrection(
        lut=float(once_op.lut_estimation(fpga_part)), bram_18k=float(once_op.bram_estimation(fpga_part)),
        uram=float(once_op.uram_estimation(fpga_part)),
        reason=(f"the {channels} channels share one set of {thresholds.shape[1]} thresholds: FINN's estimate "
                f"of this layer with NumChannels = PE = {pe} (one copy per PE lane)"))


def layer_corrections(hw_graph: Path | None, fpga_part: str | None) -> dict[str, LayerCorrection]:
    """Corrections for the layers of a finished build's HW graph that need one (by node name)."""
    if hw_graph is None:
        return {}
    try:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.custom_op.registry import getCustomOp

        import finn.custom_op.fpgadataflow  # noqa: F401  (registers FINN's HW ops)
    except ImportError:  # pragma: no cover - parsing a build without FINN installed
        return {}
    model = ModelWrapper(str(hw_graph))
    out = {}
    for node in model.graph.node:
        if node.op_type.startswith("MVAU"):
            fix = _mvau(model, node, getCustomOp(node), fpga_part or "")
        elif node.op_type.startswith(("Thresholding", "WideThresholding")):  # the same memory and estimate
            fix = _thresholding(model, node, getCustomOp(node), fpga_part or "")
        else:
            fix = None
        if fix is not None:
            out[node.name] = fix
    return out
