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
# # 3. From Brevitas to FINN, exactly
#
# FINN builds dataflow accelerators out of integer matrix-vector units (MVAU) and threshold units.
# It has no minifloat anything: a `FloatQuant` node stops the build. The bridge is the **integer
# embedding**: every value of a minifloat format is an integer multiple of `delta = 2^(1-bias-M)`.
#
# - a minifloat *weight* `s * v` becomes an integer weight `k = v / delta` (E2M1 -> INT5, E3M2 -> INT10)
#   followed by a `Mul(s * delta)`, which FINN's streamliner folds into the next thresholds;
# - a minifloat *activation* quantizer becomes a `MultiThreshold` that outputs `k` directly (its
#   thresholds sit between grid values, repeated where `k` jumps by more than one, and nudged by one
#   float32 ulp where round-half-to-even must go down), followed by `Mul(s * delta)`.
#
# Both are exact, and this notebook checks it stage by stage, then reads FINN's hardware estimates.

# %%
import os

import numpy as np
import torch
from brevitas import nn as qnn

from brevitas_minifloat import MinifloatFormat, export_qonnx, minifloat_act_quant, minifloat_weight_quant
from brevitas_minifloat.data import load_dataset
from brevitas_minifloat.training import accuracy, train_classifier
from finn_transforms.steps import lower_minifloat
from finn_transforms.thresholds import minifloat_thresholds
from finn_transforms.verify import verify

FAST = os.environ.get("NOTEBOOK_FAST") == "1"
torch.manual_seed(0)
os.makedirs("out", exist_ok=True)

# %% [markdown]
# ## The integer embedding and the thresholds
# For E2M1 at scale 1 the embedded integers run from -12 to 12: 24 thresholds per channel. The
# threshold count grows with `2^E`, which is why the embedding refuses E4M3 *activations* (491,520
# thresholds); native layers (last section) take them with 254.

# %%
f = MinifloatFormat.parse("E2M1")
print("values   ", f.values())
print("integers ", f.integer_values(), "->", f.integer_datatype)
t = minifloat_thresholds(f, np.float32(1.0))[0]
print("thresholds", t)
for name in ["E2M1", "E2M3", "E3M2", "E4M3"]:
    g = MinifloatFormat.parse(name)
    print(f"{name}: {g.integer_max - g.integer_min} thresholds per channel, weights as {g.integer_datatype}")

# %% [markdown]
# ## A small CNN with minifloat weights and activations
# Power-of-two scales keep torch's own float arithmetic exact, so every stage can be compared bit
# for bit (with float scales torch's float32 matmuls round; `verify` then shows which outputs that
# flips, each explained by a pre-activation near a boundary, while the exact stages still match).

# %%
def cnn():
    w = lambda fmt: minifloat_weight_quant(fmt, power_of_two=True)  # noqa: E731
    a = lambda fmt: minifloat_act_quant(fmt, power_of_two=True)  # noqa: E731
    return torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=a("E2M3")),
        qnn.QuantConv2d(1, 8, 3, bias=False, weight_quant=w("E2M1")),
        torch.nn.BatchNorm2d(8),
        qnn.QuantReLU(act_quant=a("E2M2_U")),
        torch.nn.MaxPool2d(2),
        qnn.QuantConv2d(8, 8, 3, bias=False, weight_quant=w("E2M1")),
        torch.nn.BatchNorm2d(8),
        qnn.QuantReLU(act_quant=a("E2M2_U")),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        qnn.QuantLinear(8 * 5 * 5, 10, bias=False, weight_quant=w("E3M2")),
        qnn.QuantIdentity(act_quant=a("E3M2")),
    )


(xtr, ytr), (xte, yte) = load_dataset("mnist-5k")
model = cnn()
n = 800 if FAST else 4000
train_classifier(model, xtr[:n], ytr[:n], epochs=1 if FAST else 3)
print(f"test accuracy: {accuracy(model, xte, yte):.3f}")

# %% [markdown]
# ## The lowered graph
# `lower_minifloat` rewrites the QONNX export; FINN's normal flow takes it from there.

# %%
qonnx_model = export_qonnx(model, xte[:1], "out/nb3_cnn.onnx")
lowered = lower_minifloat(qonnx_model)
print("QONNX:  ", [n.op_type for n in qonnx_model.graph.node])
print("lowered:", [n.op_type for n in lowered.graph.node])
for node in lowered.get_nodes_by_op_type("Conv") + lowered.get_nodes_by_op_type("MatMul"):
    print(node.name, "weights", lowered.get_tensor_datatype(node.input[1]))

# %% [markdown]
# ## The exactness chain
# `verify` exports, lowers, runs FINN's estimate-only build and compares every stage with the exact
# reference (the QONNX model in integers and rationals): the lowered graph, FINN's streamlined graph
# and the FINN HW layers (executed exactly) must match every output; torch and QONNX (float32) may
# differ only where float32 rounding near a quantizer boundary explains it; `hw_float32` (FINN's own
# float32 execution) is shown for information.

# %%
report = verify(model, xte[:4 if FAST else 16], "out/nb3_verify")
print(report.summary())

# %% [markdown]
# ## Reading the hardware cost
# FINN's estimates are analytic. Two things to read critically: the `Thresholding` LUT estimate
# counts threshold memory per channel even when channels share thresholds, and minifloat layers pay
# for the *embedding* width (INT5 weights for a 4-bit E2M1, INT10 for E3M2), which the MVAU's
# LUT formula sees as a wider integer multiplier.

# %%
print(report.estimates.summary())
mvau = [r for r in report.estimates.layers if r.op_type.startswith("MVAU")]
print("MVAU LUTs:", [r.lut for r in mvau], " bottleneck:", report.estimates.bottleneck_layer)

# %% [markdown]
# ## FP8 end to end: native minifloat layers
# The embedding refuses E4M3 (INT19 weights, 491,520 thresholds per channel). Native layers keep
# the format's own width instead: an activation quantizer becomes a `MultiThreshold` over the 254
# *distinct* thresholds whose output is the value's ordinal (8 bits), and the next MatMul/Conv a
# `MVAU_minifloat` HW layer that stores the E4M3 weight codes and accumulates exactly. The default
# `mapping="auto"` picks them wherever the embedding would be refused, so nothing needs overriding.

# %%
def fp8_cnn():
    w = lambda: minifloat_weight_quant("E4M3", power_of_two=True)  # noqa: E731
    a = lambda fmt: minifloat_act_quant(fmt, power_of_two=True)  # noqa: E731
    return torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=a("E4M3")),
        qnn.QuantConv2d(1, 8, 3, bias=False, weight_quant=w()),
        torch.nn.BatchNorm2d(8),
        qnn.QuantReLU(act_quant=a("E4M3_U")),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        qnn.QuantLinear(8 * 13 * 13, 10, bias=False, weight_quant=w()),
        qnn.QuantIdentity(act_quant=a("E4M3")),
    )


fp8 = fp8_cnn()
train_classifier(fp8, xtr[:n], ytr[:n], epochs=1 if FAST else 3)
print(f"E4M3 test accuracy: {accuracy(fp8, xte, yte):.3f}")
fp8_report = verify(fp8, xte[:4 if FAST else 16], "out/nb3_fp8")
print(fp8_report.summary())
print(fp8_report.estimates.summary())

# %%
fp8_lowered = lower_minifloat(export_qonnx(fp8, xte[:1], "out/nb3_fp8.onnx"))
print("lowered:", [n.op_type for n in fp8_lowered.graph.node])
thresholds = fp8_lowered.get_initializer(fp8_lowered.get_nodes_by_op_type("MultiThreshold")[0].input[1])
print("input quantizer thresholds per channel:", thresholds.shape[1])

# %% [markdown]
# ## In your own FINN build
# Insert our step before `step_qonnx_to_finn` in any FINN build config (`minifloat_estimate_steps`
# does it, as the string `"finn_transforms.steps.step_lower_minifloat"`), and run FINN's builder inside
# `finn_transforms.finn_session()`: FINN+'s global settings, a build directory and Vivado-free builder
# imports, all undone on exit. `make_step_lower_minifloat(max_weight_bits=..., max_thresholds=...)`
# sets the limits beyond which a layer is refused (with an error naming the node).

# %%
import finn_transforms  # noqa: E402
from finn_transforms.steps import minifloat_estimate_steps  # noqa: E402

with finn_transforms.finn_session():
    from finn.builder.build_dataflow import build_dataflow_cfg
    from finn.builder.build_dataflow_config import DataflowBuildConfig, DataflowOutputType

    cfg = DataflowBuildConfig(output_dir="out/nb3_own_build", synth_clk_period_ns=10.0,
                              fpga_part="xczu3eg-sbva484-1-e", steps=minifloat_estimate_steps(),
                              generate_outputs=[DataflowOutputType.ESTIMATE_REPORTS])
    build_dataflow_cfg("out/nb3_cnn.onnx", cfg)
print(finn_transforms.EstimateReport.from_build_dir("out/nb3_own_build").summary())
