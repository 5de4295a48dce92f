"""FINN names and defaults used across the package: one home for each.

``HW_DOMAIN`` is the ONNX domain of FINN's generic HW layers (``MVAU``, ``Thresholding``, ...); the
specialized ones live in ``HW_DOMAIN + ".hls"`` / ``".rtl"``. ``DEFAULT_FPGA_PART`` is the Ultra96's
Zynq UltraScale+ part every estimate and synthesis uses unless told otherwise.
"""

from __future__ import annotations

__all__ = ["DEFAULT_CLOCK_NS", "DEFAULT_FPGA_PART", "HW_DOMAIN", "RTL_DOMAIN", "is_hw_node"]

HW_DOMAIN = "finn.custom_op.fpgadataflow"
RTL_DOMAIN = f"{HW_DOMAIN}.rtl"
DEFAULT_FPGA_PART = "xczu3eg-sbva484-1-e"
DEFAULT_CLOCK_NS = 10.0


def is_hw_node(node) -> bool:
    """True if ``node`` (an ``onnx.NodeProto``) is a FINN HW layer (generic or specialized)."""
    return node.domain.startswith(HW_DOMAIN)
