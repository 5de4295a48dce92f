"""QONNX custom ops and FINN transformations that carry minifloat and codebook formats into FINN."""
