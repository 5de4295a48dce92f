"""FINN's ``Thresholding_rtl`` as HDL: the layer under study, its HDL from FINN, FINN's own estimate.

`generate_thresholding_hdl` lets FINN+ 1.6.1 write a threshold layer's HDL (``generate_hdl``: the
wrapper from its template and one ``.dat`` threshold file per PE and binary-search stage; pure
Python, no Vivado) and copies FINN's library sources beside it, patched by :data:`SV_REWRITES`.
`build_threshold_layer` builds a one-hidden-layer model whose hidden activation FINN implements as
``Thresholding_rtl``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from finn_transforms.finn_defaults import DEFAULT_CLOCK_NS, DEFAULT_FPGA_PART, RTL_DOMAIN
from finn_transforms.finn_env import finn_session, require_finn
from finn_transforms.model_io import load_model

__all__ = [
    "SV_REWRITES",
    "ThresholdSynthError",
    "build_threshold_layer",
    "finn_threshold_estimate",
    "generate_thresholding_hdl",
    "threshold_counts",
]

#: ``(file, upstream text, replacement, why)``: applied to copies of FINN's RTL before yosys-slang
#: reads them. The replacement selects the same bits: ``p.ptr[M-1:SN+1]`` are the top ``stage``
#: bits of ``p.ptr[M-1:0]``, i.e. ``p.ptr[M-1:0] >> (SN+1)`` (zero-extended, the comparison is
#: unsigned either way).
SV_REWRITES = (
    (
        "thresholding.sv",
        "Scope <= (SCOPE_REDUCE == 0)? 1 : p.ptr[M-1:SN+1] < 2**stage - SCOPE_REDUCE;",
        "Scope <= (SCOPE_REDUCE == 0)? 1 : (p.ptr[M-1:0] >> (SN+1)) < 2**stage - SCOPE_REDUCE;",
        "yosys-slang elaborates the disabled arm; in stage 0 it is the reversed part select "
        "p.ptr[M-1:M] and read_slang fails with 'unsynthesizable feature'",
    ),
)


class ThresholdSynthError(RuntimeError):
    """The node cannot be turned into HDL, or a tool failed on it."""


def _thresholding_rtl(model: ModelWrapper, node_name: str, fpga_part: str):
    """``(model, node)``: the named node as a ``Thresholding_rtl`` (in a copy of the model).

    A ``Thresholding_rtl`` is used as is; a generic FINN ``Thresholding`` or a ``MultiThreshold`` is
    converted with FINN's own passes (``InferThresholdingLayer``, ``SpecializeLayers`` with
    ``preferred_impl_style="rtl"``, threshold bit-width minimisation)."""
    from qonnx.custom_op.registry import getCustomOp

    node = model.get_node_from_name(node_name)
    if node is None:
        names = [n.name for n in model.graph.node if "Threshold" in n.op_type]
        raise ThresholdSynthError(f"no node named {node_name!r} in the model; threshold layers: {names}")
    if node.op_type == "Thresholding_rtl" and node.domain == RTL_DOMAIN:
        return model, node
    if node.op_type not in ("MultiThreshold", "Thresholding"):
        raise ThresholdSynthError(
            f"node {node_name!r} is a {node.op_type}, not a threshold layer "
            f"(MultiThreshold, Thresholding or Thresholding_rtl)"
        )
    from finn.transformation.fpgadataflow.convert_to_hw.thresholding import InferThresholdingLayer
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    thresholds = node.input[1]
    if node.op_type == "MultiThreshold":
        model = model.transform(InferThresholdingLayer())
    for n in model.graph.node:
        if n.op_type == "Thresholding" and n.input[1] == thresholds:
            getCustomOp(n).set_nodeattr("preferred_impl_style", "rtl")
    model = model.transform(SpecializeLayers(fpga_part))
    found = [n for n in model.graph.node if n.op_type == "Thresholding_rtl" and n.input[1] == thresholds]
    if len(found) != 1:
        raise ThresholdSynthError(f"FINN did not turn {node_name!r} into one Thresholding_rtl layer")
    inst = getCustomOp(found[0])
    inst.minimize_weight_bit_width(model)
    return model, found[0]


def threshold_counts(model_or_path, node_name: str) -> dict:
    """Threshold statistics of a threshold layer: ``rows`` (1 when all channels share one set),
    ``steps`` (thresholds per channel), ``unique_per_row`` (max over rows of the distinct values,
    i.e. the levels a minifloat really has) and ``duplicates`` (steps - unique_per_row)."""
    model = load_model(model_or_path)
    node = model.get_node_from_name(node_name)
    if node is None or "Threshold" not in node.op_type:
        raise ThresholdSynthError(f"{node_name!r} is not a threshold layer of the model")
    t = model.get_initializer(node.input[1])
    unique = max(len(np.unique(row)) for row in t)
    return {"rows": int(t.shape[0]), "steps": int(t.shape[1]), "unique_per_row": int(unique),
            "duplicates": int(t.shape[1] - unique)}


def finn_threshold_estimate(inst, fpga_part: str = DEFAULT_FPGA_PART) -> dict:
    """FINN's own resource estimate of a ``Thresholding_rtl`` instance (its methods' outputs)."""
    return {
        "LUT": float(inst.lut_estimation(fpga_part)),
        "BRAM_18K": float(inst.bram_estimation(fpga_part)),
        "URAM": float(inst.uram_estimation(fpga_part)),
        "DSP": float(inst.dsp_estimation(fpga_part)),
        "memory": {k: float(v) for k, v in inst.get_memory_estimate().items()},
        "mem_geometries": [[int(w), float(d)] for w, d in inst.get_pe_mem_geometries()],
    }


def generate_thresholding_hdl(
    model_or_path, node_name: str, out_dir: str | os.PathLike, *, pe: int | None = None,
    fpga_part: str = DEFAULT_FPGA_PART, clock_ns: float = DEFAULT_CLOCK_NS,
) -> dict:
    """Let FINN write the HDL of one threshold layer into ``out_dir`` and copy FINN's library sources
    beside it (patched by :data:`SV_REWRITES`). ``pe`` overrides the node's PE (must divide the
    channels). Returns a dict: ``top``, ``files`` (SystemVerilog/Verilog, in compile order),
    ``attrs`` (node attributes), ``thresholds`` (the initializer), ``finn`` (FINN's estimate) and
    ``rewrites`` (the rewrites that matched)."""
    require_finn()
    from qonnx.custom_op.registry import getCustomOp

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(model_or_path)
    with finn_session():
        model, node = _thresholding_rtl(model, node_name, fpga_part)
        inst = getCustomOp(node)
        if pe is not None:
            channels = inst.get_nodeattr("NumChannels")
            if pe < 1 or channels % pe:
                raise ValueError(f"PE={pe} must divide the {channels} channels of {node_name!r}")
            inst.set_nodeattr("PE", int(pe))
        if inst.get_nodeattr("runtime_writeable_weights"):
            inst.set_nodeattr("runtime_writeable_weights", 0)
        inst.set_nodeattr("code_gen_dir_ipgen", str(out))
        inst.generate_hdl(model, fpga_part, clock_ns)
        sources = inst.get_rtl_file_list(abspath=True)
        finn_est = finn_threshold_estimate(inst, fpga_part)
        attrs = {k: inst.get_nodeattr(k) for k in (
            "NumChannels", "PE", "numSteps", "inputDataType", "weightDataType", "outputDataType",
            "ActVal", "deep_pipeline", "depth_trigger_bram", "depth_trigger_uram")}
    files, rewrites = [], []
    for src in sources:
        src = Path(src)
        dst = out / src.name
        if src.resolve() != dst:
            text = src.read_text()
            for fname, old, new, _why in SV_REWRITES:
                if src.name == fname and old in text:
                    text = text.replace(old, new)
                    rewrites.append(fname)
            dst.write_text(text)
        files.append(dst.name)
    return {
        "dir": str(out),
        "top": inst.get_nodeattr("gen_top_module"),
        "files": files,
        "attrs": attrs,
        "thresholds": model.get_initializer(node.input[1]),
        "finn": finn_est,
        "rewrites": rewrites,
    }


def build_threshold_layer(model, example_input, out_dir: str | os.PathLike) -> tuple[Path, str]:
    """Build a calibrated one-hidden-layer Brevitas MLP (input quantizer, Linear, activation
    quantizer, Linear, output quantizer; e.g. ``brevitas_minifloat.zoo.tfc_mlp(..., layers=1)``) so
    that FINN implements its hidden activation as ``Thresholding_rtl``.

    The model is exported with `export_qonnx` (traced on ``example_input``) and built with
    `finn_transforms.build.build_estimates` (``standalone_thresholds=True`` and our
    ``step_lower_minifloat``): a minifloat activation becomes a MultiThreshold through
    ``LowerMinifloatActivations`` (duplicated thresholds where the minifloat grid skips integer
    levels), an ``INTn`` one through FINN's own Quant conversion; streamlining makes the input an
    integer accumulator, FINN's ``InferThresholdingLayer`` / ``SpecializeLayers`` make the layer a
    ``Thresholding_rtl`` and its bit-width minimisation shrinks the threshold datatype. Without a
    BatchNorm every channel has the same thresholds (one row).

    Returns ``(model path after step_minimize_bit_width, node name)`` of the hidden activation.
    """
    from brevitas_minifloat.export import export_qonnx
    from finn_transforms.build import build_estimates
    from finn_transforms.hw_exec import list_intermediate_models
    from finn_transforms.steps import MINIFLOAT_STEP

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    export_qonnx(model, example_input, str(onnx_path))
    build_estimates(onnx_path, out / "build", extra_steps_before=[MINIFLOAT_STEP],
                    config_overrides={"standalone_thresholds": True})
    path = list_intermediate_models(out / "build")["step_minimize_bit_width"]
    hidden = [n for n in ModelWrapper(str(path)).graph.node if n.op_type == "Thresholding_rtl"]
    # Thresholding_rtl_0 is the input quantizer, the last one the output quantizer.
    if len(hidden) != 3:
        raise ThresholdSynthError(f"expected 3 Thresholding_rtl layers in {path}, got {[n.name for n in hidden]}")
    return Path(path), hidden[1].name
