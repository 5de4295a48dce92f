"""Design-space exploration: integer vs minifloat formats x PTQ techniques -> accuracy, FINN
estimates and an analytic MAC cost; Pareto frontier, CSV/JSON tables and plots.

    from brevitas_minifloat.dse import default_workload, preset, run_dse
    workload, _ = default_workload()                 # CNV-style CNN on Fashion-MNIST (shipped weights)
    result = run_dse(workload, preset("default"), "out/dse", workers=2)
    print(result.frontier)

Jobs run on any ``concurrent.futures.Executor`` (default: a local process pool; e.g.
``distributed.Client(...).get_executor()`` for a Dask cluster); finished points are cached as JSON.
"""

from brevitas_minifloat.hw.analytic import MacCostFn, analytic_mac_cost, model_mac_cost
from brevitas_minifloat.hw.cache import JsonCache
from brevitas_minifloat.dse.runner import DSEResult, InlineExecutor, pareto_front, process_pool, run_dse
from brevitas_minifloat.dse.space import PRESETS, TECHNIQUE_STUDY, Point, Space, preset, technique_label
from brevitas_minifloat.dse.embedded import DEFAULT_MODEL, default_workload, fashion_cnv, shipped_weights
from brevitas_minifloat.dse.stats import mcnemar_exact, wilson_interval
from brevitas_minifloat.dse.workload import (
    TINY_MODEL,
    Workload,
    digits_cnn,
    digits_mlp,
    load_model,
    train_float_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "DSEResult",
    "InlineExecutor",
    "JsonCache",
    "MacCostFn",
    "PRESETS",
    "Point",
    "Space",
    "TECHNIQUE_STUDY",
    "TINY_MODEL",
    "Workload",
    "analytic_mac_cost",
    "default_workload",
    "digits_cnn",
    "digits_mlp",
    "fashion_cnv",
    "load_model",
    "mcnemar_exact",
    "model_mac_cost",
    "pareto_front",
    "preset",
    "process_pool",
    "run_dse",
    "shipped_weights",
    "technique_label",
    "wilson_interval",
]
