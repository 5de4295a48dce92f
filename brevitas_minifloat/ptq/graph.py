"""The module swap behind `brevitas_minifloat.ptq.quantize`: float FX graph -> Brevitas model.

Rules (chosen so the result exports to QONNX and lowers into FINN without redundant requantizers):

- ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` become ``QuantLinear`` / ``QuantConv1d/2d`` with a
  per-output-channel weight quantizer and a float bias (FINN absorbs it into the next thresholds).
- ``nn.ReLU`` becomes ``QuantReLU`` with the *unsigned* activation format.
- Every compute layer reads a quantized tensor. Its input is traced back through value-preserving
  ops (max pooling, flatten/reshape, dropout, identity); if the source is not already a quantizer, a
  ``QuantIdentity`` is inserted right after the source, shared by all layers reading it. It gets the
  unsigned format when the source was never negative on the calibration data (e.g. image pixels or
  a sigmoid), else the signed one.
- Everything else stays float; the model's output is the last layer's float output.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
from brevitas import nn as qnn
from torch import nn

from brevitas_minifloat.ptq.spec import QuantSpec

PRESERVING_MODULES = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity,
)
PRESERVING_FUNCTIONS = {
    torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.permute, torch.transpose,
    nn.functional.max_pool1d, nn.functional.max_pool2d, nn.functional.dropout, operator.getitem,
}
PRESERVING_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "permute", "transpose", "contiguous"}
COMPUTE_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
QUANT_ACTS = (qnn.QuantReLU, qnn.QuantIdentity)


@dataclass
class LayerInfo:
    """What the swap did to one compute layer (module name in the returned model)."""

    name: str
    input_quantizer: str  # module name of the quantizer feeding it
    input_format: str  # QuantSpec name of that quantizer
    fan_in: int
    macs: int = 0  # multiply-accumulates per input sample, filled in by a forward pass


@dataclass
class SwapResult:
    layers: list[LayerInfo] = field(default_factory=list)
    quantizers: dict[str, str] = field(default_factory=dict)  # activation quantizer name -> format name


class _Probe(nn.Module):
    """Placeholder for an inserted input quantizer: records whether its input is ever negative."""

    def __init__(self):
        super().__init__()
        self.min = float("inf")

    def forward(self, x):
        self.min = min(self.min, float(x.detach().min()))
        return x


def _module(gm: nn.Module, node) -> nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def _is_preserving(gm: nn.Module, node) -> bool:
    if node.op == "call_module":
        return isinstance(_module(gm, node), PRESERVING_MODULES)
    if node.op == "call_function":
        return node.target in PRESERVING_FUNCTIONS
    if node.op == "call_method":
        return node.target in PRESERVING_METHODS
    return False


def _set_module(gm: nn.Module, target: str, module: nn.Module) -> None:
    parent_name, _, attr = target.rpartition(".")
    setattr(gm.get_submodule(parent_name) if parent_name else gm, attr, module)


def _quant_layer(module: nn.Module, weight_quant: type) -> nn.Module:
    common = dict(bias=module.bias is not None, weight_quant=weight_quant, bias_quant=None,
                  input_quant=None, output_quant=None, return_quant_tensor=False)
    if isinstance(module, nn.Linear):
        new = qnn.QuantLinear(module.in_features, module.out_features, **common)
    else:
        if module.padding_mode != "zeros":
            raise ValueError(f"{type(module).__name__} with padding_mode={module.padding_mode!r} is not supported")
        cls = qnn.QuantConv1d if isinstance(module, nn.Conv1d) else qnn.QuantConv2d
        new = cls(module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                  padding=module.padding, dilation=module.dilation, groups=module.groups, **common)
    with torch.no_grad():
        new.weight.copy_(module.weight)
        if module.bias is not None:
            new.bias.copy_(module.bias)
    return new.to(module.weight.device)


def fan_in(module: nn.Module) -> int:
    w = module.weight
    return int(w[0].numel())


def swap_to_quant(gm, weights: QuantSpec, activations: QuantSpec, unsigned: QuantSpec, *, mse: bool,
                  calibration_batches: list[torch.Tensor]) -> SwapResult:
    """Rewrite the FX graph module ``gm`` in place (see the module docstring); returns what was done."""
    graph = gm.graph
    result = SwapResult()
    compute = [n for n in graph.nodes if n.op == "call_module" and isinstance(_module(gm, n), COMPUTE_LAYERS)]
    if not compute:
        raise ValueError("the model has no nn.Linear / nn.Conv1d / nn.Conv2d layer to quantize")

    # 1. ReLUs -> QuantReLU (unsigned format)
    for node in list(graph.nodes):
        if node.op == "call_module" and type(_module(gm, node)) is nn.ReLU:
            _set_module(gm, node.target, qnn.QuantReLU(act_quant=unsigned.act_quant(mse=mse), return_quant_tensor=False))
            result.quantizers[node.target] = unsigned.name

    # 2. find each compute layer's quantized source, insert probes where there is none
    sources: dict = {}  # source node -> list of (user node, probe name or existing quantizer)
    feeding: dict = {}  # compute node -> name of the quantizer module feeding it
    for node in compute:
        user, src = node, node.args[0]
        while _is_preserving(gm, src):
            user, src = src, src.args[0]
        if src.op == "call_module" and isinstance(_module(gm, src), QUANT_ACTS):
            feeding[node] = src.target
            continue
        sources.setdefault(src, []).append(user)
        feeding[node] = src

    probes = {}
    for src, users in sources.items():
        name = f"{src.name}_quant".replace(".", "_")
        while hasattr(gm, name):
            name += "_"
        gm.add_module(name, _Probe())
        with graph.inserting_after(src):
            qnode = graph.call_module(name, (src,))
        for user in set(users):
            user.replace_input_with(src, qnode)
        probes[src] = name
    gm.recompile()

    # 3. probes -> QuantIdentity with the signedness seen on the calibration data
    if probes:
        with torch.no_grad():
            for batch in calibration_batches:
                gm(batch)
    for src, name in probes.items():
        spec = unsigned if getattr(gm, name).min >= 0 else activations
        setattr(gm, name, qnn.QuantIdentity(act_quant=spec.act_quant(mse=mse), return_quant_tensor=False))
        result.quantizers[name] = spec.name

    # 4. compute layers -> Brevitas layers
    for node in compute:
        module = _module(gm, node)
        _set_module(gm, node.target, _quant_layer(module, weights.weight_quant(mse=mse)))
        quantizer = feeding[node] if isinstance(feeding[node], str) else probes[feeding[node]]
        fmt = result.quantizers.get(quantizer, "existing quantizer")  # a Brevitas quantizer already in the model
        result.layers.append(LayerInfo(node.target, quantizer, fmt, fan_in(module)))
    gm.recompile()
    return result


def count_macs(model: nn.Module, layers: list[LayerInfo], example: torch.Tensor) -> None:
    """Fill ``LayerInfo.macs`` (per sample) from one forward pass of ``example[:1]``."""
    by_name = {info.name: info for info in layers}
    hooks = []

    def hook(module, inp, out, name):
        by_name[name].macs = int(out[0].numel()) * fan_in(module)

    for name, module in model.named_modules():
        if name in by_name:
            hooks.append(module.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name)))
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in hooks:
            h.remove()
