"""`quantize`: post-training quantization of a float PyTorch model to integer or minifloat formats."""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.ptq.graph import COMPUTE_LAYERS, LayerInfo, count_macs, swap_to_quant
from brevitas_minifloat.ptq.rounding import layer_inputs, round_layer
from brevitas_minifloat.ptq.spec import QuantSpec, as_spec

#: Every technique `quantize` knows, in the order they are applied (calibration always runs).
TECHNIQUES = ("equalize", "smoothquant", "mse", "gptq", "learned_round", "bias_correction")
#: What `quantize` does when ``techniques`` is not given: MSE scales, GPTQ and bias correction (the
#: best combination on the DSE workload at 3 and 4 bits, see docs/dse.md).
DEFAULT_TECHNIQUES = ("mse", "gptq", "bias_correction")

Format = str | MinifloatFormat | QuantSpec


@dataclass
class PTQInfo:
    """What `quantize` did; attached to the returned model as ``model.ptq_info``."""

    weights: str
    activations: str
    unsigned_activations: str
    techniques: tuple[str, ...]
    layers: list[LayerInfo] = field(default_factory=list)
    quantizers: dict[str, str] = field(default_factory=dict)
    rounding: dict[str, dict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def calibration_batches(data) -> list[torch.Tensor]:
    """A tensor batch, or an iterable of batches (tensors or ``(x, y, ...)`` tuples, e.g. a
    ``DataLoader``) -> list of input tensors."""
    if isinstance(data, torch.Tensor):
        batches = [data]
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        batches = [b[0] if isinstance(b, (tuple, list)) else b for b in data]
    else:
        raise TypeError(f"calibration_data must be a tensor batch or an iterable of batches, got {type(data).__name__}")
    if not batches or not all(isinstance(b, torch.Tensor) for b in batches):
        raise ValueError("calibration_data holds no tensor batches")
    return [b.detach() for b in batches]


def check_techniques(techniques: Sequence[str]) -> tuple[str, ...]:
    if isinstance(techniques, str):
        techniques = [t for t in techniques.replace("+", ",").split(",") if t and t != "none"]
    unknown = [t for t in techniques if t not in TECHNIQUES]
    if unknown:
        raise ValueError(f"unknown PTQ technique(s) {unknown}; choose from {TECHNIQUES}")
    if "gptq" in techniques and "learned_round" in techniques:
        raise ValueError("'gptq' and 'learned_round' both choose the weight rounding: use one of them")
    return tuple(t for t in TECHNIQUES if t in techniques)


def quantize(
    model: nn.Module,
    calibration_data,
    *,
    weights: Format = "E2M3",
    activations: Format | None = None,
    unsigned_activations: Format | None = None,
    techniques: Sequence[str] = DEFAULT_TECHNIQUES,
    smoothquant_alpha: float = 0.5,
    equalize_iterations: int = 20,
    gptq_damp: float = 0.01,
    learned_round_iters: int = 300,
    seed: int = 0,
) -> nn.Module:
    """Post-training quantization: a quantized Brevitas copy of the float ``model``.

    Args:
        model: float model with ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` layers, traceable by
            ``torch.fx``. It is copied; the caller's model is not modified.
        calibration_data: a tensor batch (the seed paper's "single inference batch") or an iterable
            of batches (tensors or ``(x, y)`` tuples, e.g. a ``DataLoader``).
        weights: ``"INTn"``, a minifloat name (``"E2M3"``) or a `MinifloatFormat`; per output
            channel scales.
        activations: the same kinds; per-tensor scales; default: the weight format. Activations that
            are never negative (after ReLU, image inputs) use ``unsigned_activations``, by default the
            unsigned format of the same width (``INTn -> UINTn``, ``ExMy -> ExM(y+1)_U``).
        techniques: any of `TECHNIQUES`, applied in that order after tracing:
            ``"equalize"`` cross-layer weight equalization (Brevitas ``EqualizeGraph``),
            ``"smoothquant"`` activation equalization fused into the previous layer (Brevitas
            ``activation_equalization_mode``, ``smoothquant_alpha``), ``"mse"`` MSE-optimal weight
            and activation scales instead of max statistics, ``"gptq"`` or ``"learned_round"``
            weight rounding on the format's grid (`brevitas_minifloat.ptq.rounding`), and
            ``"bias_correction"`` (Brevitas ``bias_correction_mode``). Activation scales are always
            calibrated on ``calibration_data`` (Brevitas ``calibration_mode``). BatchNorm layers are
            merged into the preceding convolution / linear layer.
        smoothquant_alpha, equalize_iterations, gptq_damp, learned_round_iters: technique knobs.
        seed: seeds the random row sampling of ``learned_round`` and the held-out row split of
            ``gptq``/``learned_round`` (local generators: the global torch RNG is not touched).

    Returns the quantized model in eval mode (a ``torch.fx`` GraphModule of Brevitas layers), with
    a `PTQInfo` as ``.ptq_info``. It exports with `brevitas_minifloat.export_qonnx`.
    """
    from brevitas.graph.calibrate import bias_correction_mode, calibration_mode
    from brevitas.graph.equalize import activation_equalization_mode
    from brevitas.graph.quantize import preprocess_for_quantize

    techniques = check_techniques(techniques)
    w_spec = as_spec(weights)
    a_spec = as_spec(activations if activations is not None else w_spec)
    u_spec = as_spec(unsigned_activations) if unsigned_activations is not None else a_spec.unsigned()
    if not w_spec.signed:
        raise ValueError(f"weights need a signed format, got {w_spec.name}")
    batches = calibration_batches(calibration_data)
    info = PTQInfo(w_spec.name, a_spec.name, u_spec.name, techniques)
    times = info.seconds
    t0 = time.perf_counter()

    float_model = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            gm = preprocess_for_quantize(
                float_model, equalize_iters=equalize_iterations if "equalize" in techniques else 0,
                merge_bn=True, relu6_to_relu=False,
            )
        except Exception as err:  # torch.fx tracing errors come in many types
            raise ValueError(f"quantize needs a torch.fx-traceable model: {type(err).__name__}: {err}") from err
    times["trace"] = time.perf_counter() - t0

    with torch.no_grad():
        if "smoothquant" in techniques:
            t = time.perf_counter()
            with activation_equalization_mode(gm, alpha=smoothquant_alpha, layerwise=False, add_mul_node=False):
                for batch in batches:
                    gm(batch)
            times["smoothquant"] = time.perf_counter() - t

        t = time.perf_counter()
        swap = swap_to_quant(gm, w_spec, a_spec, u_spec, mse="mse" in techniques, calibration_batches=batches)
        info.layers, info.quantizers = swap.layers, swap.quantizers
        with calibration_mode(gm):
            for batch in batches:
                gm(batch)
        gm.eval()
        layers = {name: m for name, m in gm.named_modules() if isinstance(m, COMPUTE_LAYERS)}
        for layer in layers.values():
            layer.quant_weight()  # fix the weight scales now, from the float weights
        times["calibrate"] = time.perf_counter() - t

    for method in ("gptq", "learned_round"):
        if method in techniques:
            t = time.perf_counter()
            kwargs = {"damp": gptq_damp} if method == "gptq" else {"iters": learned_round_iters}
            for li in info.layers:
                x = layer_inputs(gm, layers[li.name], batches)
                info.rounding[li.name] = round_layer(layers[li.name], x, w_spec.weight_grid, method, seed=seed, **kwargs)
            times[method] = time.perf_counter() - t

    with torch.no_grad():
        if "bias_correction" in techniques:
            t = time.perf_counter()
            with bias_correction_mode(gm):
                for batch in batches:
                    gm(batch)
            times["bias_correction"] = time.perf_counter() - t
        count_macs(gm, info.layers, batches[0])
    gm.eval()
    gm.ptq_info = info
    return gm


@torch.no_grad()
def output_mse(quantized: nn.Module, reference: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> float:
    """Mean squared difference of the two models' outputs on ``x`` (both evaluated in eval mode)."""
    quantized.eval()
    reference.eval()
    total, count = 0.0, 0
    for i in range(0, len(x), batch_size):
        a, b = quantized(x[i:i + batch_size]), reference(x[i:i + batch_size])
        total += float(((a - b) ** 2).sum())
        count += a.numel()
    return total / count
