"""Resource capacity of the FPGA parts FINN usually targets, to flag designs that cannot fit.

Numbers are the device totals of AMD's data sheets: DS190 (Zynq-7000 SoC overview, Table 3),
DS891 (Zynq UltraScale+ MPSoC overview, Tables 2-4), DS889 (Zynq UltraScale+ RFSoC overview),
DS987 (Kria K26 SOM) and DS962 (Alveo U250/U280). Block RAM is counted in 18 Kb halves (``BRAM_18K``,
FINN's unit: two per 36 Kb block). The parts are the ones FINN's ``pynq_part_map`` /
``alveo_part_map`` name for its boards.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PART_CAPACITY", "PartCapacity", "part_capacity"]


@dataclass(frozen=True)
class PartCapacity:
    device: str
    boards: str
    lut: int
    bram_18k: int
    uram: int
    dsp: int
    source: str


#: device prefix of the part name -> capacity
PART_CAPACITY = {c.device: c for c in (
    PartCapacity("xc7z020", "Pynq-Z1, Pynq-Z2", 53_200, 2 * 140, 0, 220, "DS190"),
    PartCapacity("xczu3eg", "Ultra96", 70_560, 2 * 216, 0, 360, "DS891"),
    PartCapacity("xczu7ev", "ZCU104", 230_400, 2 * 312, 96, 1_728, "DS891"),
    PartCapacity("xczu9eg", "ZCU102", 274_080, 2 * 912, 0, 2_520, "DS891"),
    PartCapacity("xczu28dr", "ZCU111, RFSoC2x2", 425_280, 2 * 1_080, 80, 4_272, "DS889"),
    PartCapacity("xck26", "KV260, KR260", 117_120, 2 * 144, 64, 1_248, "DS987"),
    PartCapacity("xcu250", "Alveo U250", 1_728_000, 2 * 2_688, 1_280, 12_288, "DS962"),
    PartCapacity("xcu280", "Alveo U280", 1_304_000, 2 * 2_016, 960, 9_024, "DS962"),
)}


def part_capacity(part: str | None) -> PartCapacity | None:
    """The capacity of ``part`` (e.g. ``"xczu3eg-sbva484-1-e"``), or None for parts not in the table."""
    if not part:
        return None
    part = part.lower()  # "xczu3eg-sbva484-1-e", "xc7z020clg400-1": the device name, then package/speed
    matches = [device for device in PART_CAPACITY if part.startswith(device)]
    return PART_CAPACITY[max(matches, key=len)] if matches else None
