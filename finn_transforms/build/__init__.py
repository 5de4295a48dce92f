"""Estimate-only FINN+ builds: QONNX model in, per-layer resource and performance estimates out.

``build_estimates(model, out_dir)`` (:mod:`.run`) splices our steps into FINN's step list
(:mod:`.step_list`), checks that every node became a HW layer (:mod:`.mapping`) and parses FINN's
JSON reports into an :class:`EstimateReport` (:mod:`.report`, which also says how to read the numbers).
"""

from finn_transforms.build.mapping import DEFAULT_SOFTWARE_OPS
from finn_transforms.build.report import EstimateReport, LayerEstimate
from finn_transforms.build.run import FinnBuildError, build_estimates, step_qonnx_cleanup
from finn_transforms.build.step_list import FINN_ESTIMATE_STEPS, BuildStep, splice_steps
from finn_transforms.model_io import load_onnx_model

__all__ = [
    "DEFAULT_SOFTWARE_OPS",
    "FINN_ESTIMATE_STEPS",
    "BuildStep",
    "EstimateReport",
    "FinnBuildError",
    "LayerEstimate",
    "build_estimates",
    "load_onnx_model",
    "splice_steps",
    "step_qonnx_cleanup",
]
