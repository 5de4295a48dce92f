"""``export_qonnx``: Brevitas models with minifloat quantizers -> QONNX, exactly.

Our proxies export as standard ``FloatQuant`` where qonnx executes the format exactly (signed, with
subnormals) and as our ``MinifloatQuant`` otherwise (unsigned, flush-to-zero), sidestepping three
Brevitas 0.13 export bugs (docs/design.md, "Upstream workarounds"): non-OCP float quantizers fail to export, signedness
is dropped, ``has_subnormal`` is hard-coded. Weight formats are also recorded on the graph so that
qonnx's ``cleanup_model`` (which constant-folds weight quantizers) cannot erase them.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from brevitas.export.onnx.qonnx.manager import QONNXManager
from brevitas.proxy import ActFloatQuantProxyFromInjector, WeightFloatQuantProxyFromInjector
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes

from brevitas_minifloat.export.handlers import ExportRefused, MinifloatActHandler, MinifloatWeightHandler
from brevitas_minifloat.export.ops import DOMAIN_VERSION, OUR_DOMAIN, uses_float_quant
from brevitas_minifloat.export.syq_handlers import SyqWeightHandler
from brevitas_minifloat.qonnx_contract import (
    FoldTransposeIntoMinifloatWeights,
    is_minifloat_quant,
    minifloat_format_of,
    record_weight_format,
)


class MinifloatQONNXManager(QONNXManager):
    """Brevitas' QONNX manager with our handlers in front (Brevitas matches proxies by exact class)."""

    handlers = [SyqWeightHandler, MinifloatWeightHandler, MinifloatActHandler, *QONNXManager.handlers]


def _refuse_unrepresentable(model: torch.nn.Module) -> None:
    """Brevitas' own float quantizers we know export wrongly or not at all: refuse, naming the layer."""
    for name, module in model.named_modules():
        if not isinstance(module, (WeightFloatQuantProxyFromInjector, ActFloatQuantProxyFromInjector)):
            continue
        if not module.is_quant_enabled:
            continue
        where = name or type(model).__name__
        if getattr(module, "is_groupwise", False):
            raise ExportRefused(f"layer {where!r}: groupwise float scales cannot be exported to QONNX")
        if hasattr(module, "minifloat_format"):
            continue
        if not module.is_saturating():
            raise ExportRefused(
                f"layer {where!r}: non-saturating float quantizer (overflow gives Inf/NaN), which QONNX-to-FINN "
                "lowering cannot represent; use brevitas_minifloat.minifloat_weight_quant/minifloat_act_quant"
            )


def _record_weight_formats(model: ModelWrapper) -> ModelWrapper:
    for node in model.graph.node:
        if is_minifloat_quant(node) and model.get_initializer(node.input[0]) is not None:
            scale = model.get_initializer(node.input[1])
            record_weight_format(model, node.output[0], minifloat_format_of(model, node), scale)
    return model


def _uses_our_op(model: torch.nn.Module) -> bool:
    """True if some quantizer exports as our ``MinifloatQuant`` (not qonnx's ``FloatQuant``)."""
    return any(not uses_float_quant(fmt) for m in model.modules()
               if (fmt := getattr(m, "minifloat_format", None)) is not None)


def export_qonnx(
    model: torch.nn.Module, input_t: torch.Tensor, export_path: str | os.PathLike, **onnx_export_kwargs
) -> ModelWrapper:
    """Export a Brevitas model (ours and Brevitas' own quantizers mixed) to a QONNX file.

    Returns the exported model as a qonnx ``ModelWrapper``. The model is put into eval mode for
    tracing and restored afterwards; its parameters are not modified.
    """
    if not isinstance(input_t, torch.Tensor):
        raise TypeError(f"input_t must be a torch.Tensor example input, got {type(input_t).__name__}")
    _refuse_unrepresentable(model)
    export_path = Path(export_path)
    export_path.parent.mkdir(parents=True, exist_ok=True)
    opsets = dict(onnx_export_kwargs.pop("custom_opsets", {}) or {})
    if _uses_our_op(model):  # declared only when used: torch warns on stderr about unused custom domains
        opsets.setdefault(OUR_DOMAIN, DOMAIN_VERSION)
    # The TorchScript exporter gives the MatMul/Conv graphs FINN's streamliner is tested on;
    # torch >= 2.9 defaults to dynamo, which emits Gemm. Callers may pass dynamo=True.
    onnx_export_kwargs.setdefault("dynamo", False)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            MinifloatQONNXManager.export(
                model, input_t=input_t, export_path=str(export_path), custom_opsets=opsets, **onnx_export_kwargs
            )
    finally:
        model.train(was_training)
    # Shapes let execute_onnx run the file as is; no constant folding here (it would fold weights).
    wrapped = ModelWrapper(str(export_path)).transform(FoldTransposeIntoMinifloatWeights()).transform(InferShapes())
    wrapped = _record_weight_formats(wrapped)
    wrapped.save(str(export_path))
    return wrapped
