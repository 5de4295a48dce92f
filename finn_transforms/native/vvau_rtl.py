"""Verilog-2001 for one native minifloat depthwise layer (``VVAU_minifloat``), from its spec and weights.

The layer is described by a `NativeMvauSpec` with ``mw = K`` kernel elements and ``mh = C``
channels (weight row ``c`` is channel ``c``'s kernel); it is `finn_transforms.native.rtl`'s layer
(same header, weight ROMs, ordinal decode, counters, MAC units, output queue, FINN's AXI-stream
interface) with FINN's VVAU stream instead of the MVAU's:

- **input**: ``NF * SF`` beats per output pixel (``NF = C / PE`` channel folds, ``SF = K / SIMD``
  kernel folds), each of ``PE * SIMD`` *distinct* elements: beat ``nf * SF + sf``, element
  ``s * PE + p`` is channel ``nf * PE + p``'s kernel element ``sf * SIMD + s``, the order FINN's
  depthwise sliding window (``SIMD = PE``) and its data-width converter produce and FINN's VVAU RTL
  untangles (``finn-rtllib/mvu/mvu_vvu_axi.sv``: ``amvau_i[pe][simd] = amvau[simd*PE + pe]``);
  flattened, a pixel's stream is FINN's VVAU input ``(C / PE, K, PE)`` (`vvau.depthwise_windows`);
- **no replay**: every beat comes from ``in0``, PE ``p`` takes its ``SIMD`` lanes of the beat;
- **output**: per pixel ``NF`` beats of ``PE`` exact dot products (channel ``nf * PE + p``),
  ``NF * SF`` cycles per pixel without back-pressure (FINN's VVAU ``get_exp_cycles``).
"""

from __future__ import annotations

import numpy as np

from finn_transforms.native.rtl import NativeMvauRtl
from finn_transforms.native.spec import reference_vvau

__all__ = ["NativeVvauRtl"]


class NativeVvauRtl(NativeMvauRtl):
    """Verilog of one native depthwise layer: ``NativeVvauRtl(spec, weight_codes).verilog``, weight
    codes ``(C, K)`` (the spec's ``(mh, mw)``); ``top``, ``arch`` and ``blackbox_roms`` as for
    `NativeMvauRtl`. Inputs are windows ``(batch, K, C)`` of stream elements (one per output pixel)."""

    TOP = "native_vvau_{tags}_k{mw}_ch{mh}_pe{pe}_simd{simd}"

    @property
    def lanes(self) -> int:
        """Stream elements per input beat: ``PE * SIMD``, each PE its own."""
        return self.spec.pe * self.spec.simd

    @property
    def replay(self) -> bool:
        return False

    def _lanes_name(self) -> str:
        return "SIMD x PE"

    def _pe_codes(self, pe: int, code_bits: int) -> str:
        """PE ``pe``'s lane ``s`` is beat element ``s * PE + pe`` (concatenated, lane 0 lowest)."""
        s = self.spec
        if s.pe == 1:
            return "a_codes"
        lanes = [f"a_codes[{(i * s.pe + pe) * code_bits} +: {code_bits}]" for i in reversed(range(s.simd))]
        return lanes[0] if len(lanes) == 1 else "{" + ", ".join(lanes) + "}"

    def _describe(self) -> tuple[str, str]:
        s = self.spec
        return (f"Native VVAU {self.top}: y[c] = sum_k W[c, k] x[k, c], W {s.mh} channels x {s.mw} kernel elements of"
                f" {s.weight_format.name} codes,", "output pixel")

    def input_stream(self, windows) -> tuple[int, np.ndarray]:
        """``(batch, beats)``: windows ``(batch, K, C)`` as FINN's VVAU stream, ``(batch * NF * SF,
        PE * SIMD)`` beats (module docstring)."""
        s = self.spec
        x = np.asarray(windows)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (s.mw, s.mh) or x.shape[0] == 0:
            raise ValueError(f"windows must be a non-empty (batch, K = {s.mw}, channels = {s.mh}) array of stream"
                             f" elements, got {x.shape}")
        s.input_embedded(x)  # range check with a clear error
        batch = x.shape[0]
        # (batch, SF, SIMD, NF, PE) -> (batch, NF, SF, SIMD, PE)
        beats = x.reshape(batch, self.sf, s.simd, self.nf, s.pe).transpose(0, 3, 1, 2, 4)
        return batch, beats.reshape(-1, self.lanes)

    def reference(self, windows) -> np.ndarray:
        """The exact ``(batch, C)`` outputs of these windows (`reference_vvau`)."""
        x = np.asarray(windows)
        return reference_vvau(self.spec, self.weight_codes, x[None] if x.ndim == 2 else x)
