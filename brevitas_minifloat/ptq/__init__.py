"""Post-training quantization to integer and minifloat formats (`quantize`), on Brevitas' graph tools.

    from brevitas_minifloat.ptq import quantize
    qmodel = quantize(float_model, calibration_batch, weights="E2M3", activations="E3M2",
                      techniques=("mse", "gptq", "bias_correction"))
"""

from brevitas_minifloat.ptq.core import (
    DEFAULT_TECHNIQUES,
    TECHNIQUES,
    PTQInfo,
    calibration_batches,
    check_techniques,
    output_mse,
    quantize,
)
from brevitas_minifloat.ptq.spec import QuantSpec, as_spec, formats_for_bits

__all__ = [
    "DEFAULT_TECHNIQUES",
    "TECHNIQUES",
    "PTQInfo",
    "QuantSpec",
    "as_spec",
    "calibration_batches",
    "check_techniques",
    "formats_for_bits",
    "output_mse",
    "quantize",
]
