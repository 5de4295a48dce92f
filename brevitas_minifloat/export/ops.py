"""Torch functions that emit our quantizer nodes during ONNX export (TorchScript and dynamo)."""

from __future__ import annotations

import torch
from torch.autograd import Function

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.qonnx_contract.op import DOMAIN

QONNX_DOMAIN = "qonnx.custom_op.general"
OUR_DOMAIN = DOMAIN  # MinifloatQuant's domain (the QONNX contract)
DOMAIN_VERSION = 2  # as Brevitas' QONNX export


def float_quant_inputs(fmt: MinifloatFormat) -> tuple[torch.Tensor, ...]:
    """The constant inputs of a qonnx ``FloatQuant`` node for ``fmt``: e, m, bias, max_val."""
    return tuple(
        torch.tensor(float(v), dtype=torch.float32)
        for v in (fmt.exponent_bits, fmt.mantissa_bits, fmt.bias, fmt.max_value)
    )


def float_quant_attrs(fmt: MinifloatFormat) -> dict:
    return dict(has_inf=int(fmt.has_inf), has_nan=int(fmt.has_nan), has_subnormal=1, rounding_mode="ROUND", saturation=1)


def minifloat_quant_attrs(fmt: MinifloatFormat) -> dict:
    return dict(
        exponent_bitwidth=fmt.exponent_bits, mantissa_bitwidth=fmt.mantissa_bits, exponent_bias=fmt.bias,
        signed=int(fmt.signed), has_subnormal=int(fmt.subnormals), specials=fmt.specials,
    )


def _torchscript_attrs(attrs: dict) -> dict:
    return {f"{k}_{'s' if isinstance(v, str) else 'i'}": v for k, v in attrs.items()}


def _domain_and_inputs(fmt: MinifloatFormat, x, scale):
    if uses_float_quant(fmt):
        return f"{QONNX_DOMAIN}::FloatQuant", (x, scale, *float_quant_inputs(fmt)), float_quant_attrs(fmt)
    return f"{OUR_DOMAIN}::MinifloatQuant", (x, scale), minifloat_quant_attrs(fmt)


def uses_float_quant(fmt: MinifloatFormat) -> bool:
    """qonnx's ``FloatQuant`` executes exactly only signed formats with subnormals."""
    return fmt.signed and fmt.subnormals


class MinifloatQuantTorchScriptFn(Function):
    @staticmethod
    def symbolic(g, x, scale, fmt):
        name, inputs, attrs = _domain_and_inputs(fmt, x, scale)
        inputs = [i if isinstance(i, torch._C.Value) else g.op("Constant", value_t=i) for i in inputs]
        ret = g.op(name, *inputs, **_torchscript_attrs(attrs))
        ret.setType(x.type())
        return ret

    @staticmethod
    def forward(ctx, x, scale, fmt):
        return x.clone()


class MinifloatQuantDynamoFn(Function):
    @staticmethod
    def forward(ctx, x, scale, fmt):
        name, inputs, attrs = _domain_and_inputs(fmt, x, scale)
        return torch.onnx.ops.symbolic(name, inputs, attrs, dtype=x.dtype, shape=x.shape, version=DOMAIN_VERSION)


class MinifloatQuantOp:
    """What Brevitas' ``export_op`` expects: one backend per exporter."""

    torchscript = MinifloatQuantTorchScriptFn
    dynamo = MinifloatQuantDynamoFn
