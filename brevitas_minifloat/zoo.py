"""Small reusable model factories in the shapes FINN users build, for any weight/activation format.

Formats are given as *spec strings*:

- ``"INTn"`` (e.g. ``"INT4"``): Brevitas' own integer quantizers with ``n`` bits
  (``Int8WeightPerTensorFloat`` / ``Int8ActPerTensorFloat``, ``Uint8ActPerTensorFloat`` after ReLUs);
- anything else: a `MinifloatFormat` name (``"E2M1"``, ``"E4M3_FN"``, ``"float6_e3m2fn"``, ...), quantized
  with our `minifloat_weight_quant` / `minifloat_act_quant`; after a ReLU the unsigned variant of the
  same bit width is used (`brevitas_minifloat.numformat.unsigned`: ``E2M1`` -> ``E2M2_U``, as
  ``INTn`` -> ``UINTn``; the sign bit becomes a mantissa bit), elsewhere the signed format.

Two factories::

    tfc_mlp(weights, activations, *, hidden=64, in_features=784, classes=10, layers=3, ...)
        QuantIdentity(input) -> [QuantLinear -> BatchNorm1d -> QuantReLU] x layers -> QuantLinear
        -> QuantIdentity(output)                                   input shape (N, in_features)
    cnv_cnn(weights, activations, *, channels=(16, 32), ...)
        QuantIdentity(input) -> [QuantConv2d(3x3) -> BatchNorm2d -> QuantReLU -> MaxPool2d(2)] per
        entry of ``channels`` -> Flatten -> QuantLinear -> QuantIdentity(output)
                                                                   input shape (N, 1, 28, 28)

Both return an ordinary ``torch.nn.Sequential`` in training mode with two extra attributes:
``input_shape`` (a batch of one, e.g. ``(1, 784)``) and ``spec`` (the resolved formats, for
reports). Linear/conv layers have no bias (FINN style: BatchNorm carries the affine part).
``calibrate(model)`` runs random batches in training mode (activation scales, BatchNorm statistics)
and returns the model in eval mode, ready for `brevitas_minifloat.export_qonnx`::

    from brevitas_minifloat.zoo import tfc_mlp, calibrate
    model = calibrate(tfc_mlp("E2M1", "E2M3"))
    export_qonnx(model, torch.randn(model.input_shape), "mlp.onnx")

``power_of_two=True`` restricts every scale (weights and activations, integer and minifloat) to a
power of two, rounded up: the float32 arithmetic of torch is then exact and FINN reproduces it bit for
bit (`finn_transforms.verify.verify`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from brevitas_minifloat import numformat
from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.quant.minifloat import minifloat_act_quant, minifloat_weight_quant

__all__ = ["FormatSpec", "calibrate", "cnv_cnn", "parse_spec", "tfc_mlp"]

@dataclass(frozen=True)
class FormatSpec:
    """A parsed spec: ``int_bits`` for ``INTn``, else ``minifloat`` (signed form as given)."""

    text: str
    int_bits: int | None = None
    minifloat: MinifloatFormat | None = None

    @property
    def is_int(self) -> bool:
        return self.int_bits is not None

    @property
    def name(self) -> str:
        return f"INT{self.int_bits}" if self.is_int else self.minifloat.name

    def unsigned_name(self) -> str:
        """Name of the format used after a ReLU (``UINTn`` or the ``_U`` minifloat)."""
        return numformat.unsigned(self._format).name

    @property
    def _format(self) -> numformat.NumberFormat:
        return numformat.IntegerFormat(self.int_bits) if self.is_int else self.minifloat

    # ------------------------------------------------------------------ Brevitas quantizers
    def weight_quant(self, *, per_channel: bool = False, power_of_two: bool = False):
        """Weight quantizer (signed; ``INTn`` weights are narrow-range, as Brevitas' ``Int8Weight*``)."""
        if self.is_int:
            from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat

            base = Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat
            return base.let(bit_width=self.int_bits, **_int_pot(power_of_two))
        if not self.minifloat.signed:
            raise ValueError(f"weights need a signed format, got {self.minifloat.name}")
        return minifloat_weight_quant(self.minifloat, per_channel=per_channel, power_of_two=power_of_two)

    def act_quant(self, *, unsigned: bool = False, power_of_two: bool = False, collect_stats_steps: int = 30):
        """Activation quantizer; ``unsigned=True`` for the input of a ReLU (``UINTn`` / ``_U``)."""
        if self.is_int:
            from brevitas.quant import Int8ActPerTensorFloat, Uint8ActPerTensorFloat

            base = Uint8ActPerTensorFloat if unsigned else Int8ActPerTensorFloat
            return base.let(bit_width=self.int_bits, collect_stats_steps=collect_stats_steps, **_int_pot(power_of_two))
        fmt = numformat.unsigned(self.minifloat) if unsigned else self.minifloat
        return minifloat_act_quant(fmt, power_of_two=power_of_two, collect_stats_steps=collect_stats_steps)


def parse_spec(spec: str | int | MinifloatFormat | FormatSpec) -> FormatSpec:
    """``"INT4"`` / ``4`` -> 4-bit integer; a `MinifloatFormat` or its name -> that minifloat.

    Raises ``ValueError`` for anything else (e.g. ``"INT0"``, ``"E9M9"``).
    """
    if isinstance(spec, FormatSpec):
        return spec
    if isinstance(spec, MinifloatFormat):
        return FormatSpec(spec.name, minifloat=spec)
    if isinstance(spec, bool):
        raise ValueError(f"not a format spec: {spec!r}")
    if isinstance(spec, int):
        spec = f"INT{spec}"
    if not isinstance(spec, str):
        raise ValueError(f"a format spec is 'INTn' or a minifloat name, got {spec!r}")
    text = spec.strip()
    try:
        fmt = numformat.parse_format(text)
    except ValueError as err:
        raise ValueError(f"{spec!r} is neither 'INTn' nor a minifloat format: {err}") from err
    if isinstance(fmt, MinifloatFormat):
        return FormatSpec(text, minifloat=fmt)
    if not fmt.signed or not 2 <= fmt.bits <= 16:
        raise ValueError(f"{spec!r}: integer specs are 'INTn' with 2..16 bits (UINTn is chosen after ReLUs)")
    return FormatSpec(text.upper(), int_bits=fmt.bits)


def _signed(spec: FormatSpec) -> FormatSpec:
    if spec.is_int or spec.minifloat.signed:
        return spec
    fmt = numformat.signed(spec.minifloat)  # the inverse of the unsigned rule: E2M2_U -> E2M1
    return FormatSpec(fmt.name, minifloat=fmt)


def _int_pot(power_of_two: bool) -> dict:
    if not power_of_two:
        return {}
    from brevitas.core.function_wrapper import CeilSte
    from brevitas.inject.enum import RestrictValueType

    return dict(restrict_scaling_type=RestrictValueType.POWER_OF_TWO, restrict_value_float_to_int_impl=CeilSte)


def _resolve(weights, activations, input_bits_or_fmt, output_bits_or_fmt, hidden_activations):
    w, a = parse_spec(weights), _signed(parse_spec(activations))
    h = a if hidden_activations is None else parse_spec(hidden_activations)
    i = _signed(parse_spec(input_bits_or_fmt))
    o = a if output_bits_or_fmt is None else _signed(parse_spec(output_bits_or_fmt))
    return w, a, h, i, o


def _spec_dict(w: FormatSpec, a: FormatSpec, h: FormatSpec, i: FormatSpec, o: FormatSpec) -> dict:
    return {"weights": w.name, "activations": a.name, "hidden_activations": h.unsigned_name(), "input": i.name, "output": o.name}


def _finish(model: nn.Sequential, input_shape: tuple[int, ...], spec: dict) -> nn.Sequential:
    model.input_shape = tuple(input_shape)
    model.spec = spec
    return model.train()


def tfc_mlp(
    weights: str | int | MinifloatFormat,
    activations: str | int | MinifloatFormat,
    *,
    hidden: int = 64,
    in_features: int = 784,
    classes: int = 10,
    layers: int = 3,
    input_bits_or_fmt: str | int | MinifloatFormat = 8,
    output_bits_or_fmt: str | int | MinifloatFormat | None = None,
    hidden_activations: str | int | MinifloatFormat | None = None,
    per_channel_weights: bool = False,
    power_of_two: bool = False,
    batchnorm: bool = True,
    collect_stats_steps: int = 30,
) -> nn.Sequential:
    """A TFC-shaped MLP ``in_features -> hidden x layers -> classes``.

    ``QuantIdentity(input) -> [QuantLinear -> BatchNorm1d -> QuantReLU] x layers -> QuantLinear ->
    QuantIdentity(output)``. ``weights`` / ``activations`` are spec strings (module docstring);
    ``input_bits_or_fmt`` quantizes the input (default 8: ``INT8``), ``output_bits_or_fmt`` the
    output (default: the signed activation format), ``hidden_activations`` the ReLU outputs (default:
    the activation format's unsigned variant of the same width; a signed format given here is made
    unsigned the same way). ``batchnorm=False`` drops the BatchNorms.
    Returns the model in training mode; see `calibrate`.
    """
    if min(hidden, in_features, classes, layers) < 1:
        raise ValueError("hidden, in_features, classes and layers must be positive")
    import brevitas.nn as qnn

    w, a, h, i, o = _resolve(weights, activations, input_bits_or_fmt, output_bits_or_fmt, hidden_activations)
    kw = dict(power_of_two=power_of_two, collect_stats_steps=collect_stats_steps)
    wq = w.weight_quant(per_channel=per_channel_weights, power_of_two=power_of_two)
    mods: list[nn.Module] = [qnn.QuantIdentity(act_quant=i.act_quant(**kw))]
    width = in_features
    for _ in range(layers):
        mods.append(qnn.QuantLinear(width, hidden, bias=False, weight_quant=wq))
        if batchnorm:
            mods.append(nn.BatchNorm1d(hidden))
        mods.append(qnn.QuantReLU(act_quant=h.act_quant(unsigned=True, **kw)))
        width = hidden
    mods.append(qnn.QuantLinear(width, classes, bias=False, weight_quant=wq))
    mods.append(qnn.QuantIdentity(act_quant=o.act_quant(**kw)))
    return _finish(nn.Sequential(*mods), (1, in_features), _spec_dict(w, a, h, i, o))


def cnv_cnn(
    weights: str | int | MinifloatFormat,
    activations: str | int | MinifloatFormat,
    *,
    channels: Sequence[int] = (16, 32),
    kernel_size: int = 3,
    in_channels: int = 1,
    image_size: int = 28,
    classes: int = 10,
    input_bits_or_fmt: str | int | MinifloatFormat = 8,
    output_bits_or_fmt: str | int | MinifloatFormat | None = None,
    hidden_activations: str | int | MinifloatFormat | None = None,
    per_channel_weights: bool = False,
    power_of_two: bool = False,
    batchnorm: bool = True,
    collect_stats_steps: int = 30,
) -> nn.Sequential:
    """A CNV-shaped CNN for ``in_channels x image_size x image_size`` inputs (default 1x28x28).

    ``QuantIdentity(input) -> [QuantConv2d(kernel_size, no padding) -> BatchNorm2d -> QuantReLU ->
    MaxPool2d(2)]`` for each entry of ``channels`` ``-> Flatten -> QuantLinear -> QuantIdentity(output)``.
    The first layer's inputs are ``input_bits_or_fmt`` (default 8 bits); formats as in `tfc_mlp`. Raises ``ValueError`` when
    the image shrinks below one pixel. Returns the model in training mode; see `calibrate`.
    """
    import brevitas.nn as qnn

    channels = tuple(int(c) for c in channels)
    if not channels or min(channels) < 1 or min(kernel_size, in_channels, image_size, classes) < 1:
        raise ValueError("channels, kernel_size, in_channels, image_size and classes must be positive")
    w, a, h, i, o = _resolve(weights, activations, input_bits_or_fmt, output_bits_or_fmt, hidden_activations)
    kw = dict(power_of_two=power_of_two, collect_stats_steps=collect_stats_steps)
    wq = w.weight_quant(per_channel=per_channel_weights, power_of_two=power_of_two)
    mods: list[nn.Module] = [qnn.QuantIdentity(act_quant=i.act_quant(**kw))]
    cin, size = in_channels, image_size
    for cout in channels:
        size = (size - kernel_size + 1) // 2
        if size < 1:
            raise ValueError(f"{image_size}x{image_size} inputs shrink below one pixel after {len(channels)} blocks")
        mods.append(qnn.QuantConv2d(cin, cout, kernel_size, bias=False, weight_quant=wq))
        if batchnorm:
            mods.append(nn.BatchNorm2d(cout))
        mods.append(qnn.QuantReLU(act_quant=h.act_quant(unsigned=True, **kw)))
        mods.append(nn.MaxPool2d(2))
        cin = cout
    mods.append(nn.Flatten())
    mods.append(qnn.QuantLinear(cin * size * size, classes, bias=False, weight_quant=wq))
    mods.append(qnn.QuantIdentity(act_quant=o.act_quant(**kw)))
    return _finish(nn.Sequential(*mods), (1, in_channels, image_size, image_size), _spec_dict(w, a, h, i, o))


def calibrate(
    model: nn.Module,
    *,
    batches: int = 8,
    batch_size: int = 32,
    seed: int = 0,
    inputs: torch.Tensor | None = None,
    scale: float = 1.0,
) -> nn.Module:
    """Calibrate activation scales and BatchNorm statistics, return the model in eval mode.

    Runs ``batches`` forward passes in training mode (no gradients) on ``inputs`` (split into
    batches) or, by default, on ``scale * randn(batch_size, *model.input_shape[1:])`` drawn with
    ``seed``. BatchNorm running statistics are reset and become the average over these batches
    (cumulative average, the layers' momentum is restored afterwards), so that eval-mode activations
    match what the activation quantizers saw. Random data is enough for hardware-cost studies; use
    real data (``inputs=``) for accuracy.
    """
    if inputs is None:
        shape = getattr(model, "input_shape", None)
        if shape is None:
            raise ValueError("the model has no input_shape attribute: pass inputs=")
        gen = torch.Generator().manual_seed(seed)
        chunks = [torch.randn((batch_size, *shape[1:]), generator=gen) * scale for _ in range(batches)]
    else:
        chunks = list(torch.split(inputs, batch_size))[:batches] or [inputs]
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in norms]
    for m in norms:  # running statistics = the plain average over the calibration batches
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        with torch.no_grad():
            for x in chunks:
                model(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return model.eval()


# The MLPerf Tiny reference topologies live in their own module; re-exported here beside tfc_mlp / cnv_cnn.
from brevitas_minifloat.zoo_mlperf import ds_cnn, fc_autoencoder, mobilenet_v1, resnet8  # noqa: E402

__all__ += ["ds_cnn", "fc_autoencoder", "mobilenet_v1", "resnet8"]
