"""The four MLPerf Tiny reference topologies, for any weight/activation format (structure, not accuracy).

MLPerf Tiny is the benchmark FPGA inference tools (FINN, hls4ml) report against. Real data for it is
not installable offline, so these factories reproduce the reference networks' *structure* at their
benchmark input shapes, quantized like `brevitas_minifloat.zoo` models (format spec strings
``"INTn"`` or a minifloat name; ``_U`` / ``UINTn`` after ReLUs; module docstring of the zoo):

``resnet8``        image classification, CIFAR-10 ``(1, 3, 32, 32)``: conv 16 -> three residual stacks
                   (16, 32, 64 filters; the 2nd and 3rd downsample with a 1x1-conv shortcut) -> global
                   average pool -> Linear 10.
``ds_cnn``         keyword spotting, 49x10 MFCC ``(1, 1, 49, 10)``: conv 64 (10x4, stride 2) -> four
                   depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, 64 filters) ->
                   ``AvgPool2d((25, 5))`` -> Linear 12.
``mobilenet_v1``   visual wake words ``(1, 3, 96, 96)``: MobileNetV1 with width multiplier 0.25 (conv 8,
                   13 depthwise-separable blocks up to 256 filters) -> global average pool -> Linear 2.
``fc_autoencoder`` anomaly detection ``(1, 640)``: 640 -> 128 x4 -> 8 -> 128 x4 -> 640 Linear layers with
                   BatchNorm + ReLU.

Every BatchNorm follows a bias-free conv/linear (FINN style), every pool is followed by a quantizer (FINN
needs integer inputs to its matmuls), and residual adds are quantized: ``shared_add_quant=True``
(default) uses one quantizer for both inputs of each add (one scale), ``False`` one per input. Channel
counts and the input size can be reduced (``width``, ``input_size``) for fast tests. Each factory
returns an ``nn.Module`` in training mode with ``input_shape`` and ``spec`` attributes; use
`brevitas_minifloat.zoo.calibrate`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from brevitas_minifloat.formats import MinifloatFormat
from brevitas_minifloat.zoo import _finish, _resolve, _spec_dict

__all__ = ["ResidualBlock", "ds_cnn", "fc_autoencoder", "mobilenet_v1", "resnet8"]

Spec = str | int | MinifloatFormat


class _Quantizers:
    """Brevitas layers for one model's resolved formats (one place for the keyword plumbing)."""

    def __init__(self, weights: Spec, activations: Spec, input_fmt: Spec, output_fmt: Spec | None,
                 power_of_two: bool, collect_stats_steps: int):
        self.w, self.a, self.h, self.i, self.o = _resolve(weights, activations, input_fmt, output_fmt, None)
        self.kw = dict(power_of_two=power_of_two, collect_stats_steps=collect_stats_steps)
        self.wq = self.w.weight_quant(power_of_two=power_of_two)

    def spec(self) -> dict:
        return _spec_dict(self.w, self.a, self.h, self.i, self.o)

    def identity(self, fmt=None, *, unsigned: bool = False) -> nn.Module:
        import brevitas.nn as qnn

        return qnn.QuantIdentity(act_quant=(fmt or self.a).act_quant(unsigned=unsigned, **self.kw))

    def relu(self) -> nn.Module:
        import brevitas.nn as qnn

        return qnn.QuantReLU(act_quant=self.h.act_quant(unsigned=True, **self.kw))

    def conv(self, cin: int, cout: int, kernel, *, stride=1, padding=0, groups: int = 1) -> nn.Module:
        import brevitas.nn as qnn

        return qnn.QuantConv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=False,
                               weight_quant=self.wq)

    def linear(self, fin: int, fout: int) -> nn.Module:
        import brevitas.nn as qnn

        return qnn.QuantLinear(fin, fout, bias=False, weight_quant=self.wq)

    def conv_bn_relu(self, cin: int, cout: int, kernel, **kw) -> list[nn.Module]:
        return [self.conv(cin, cout, kernel, **kw), nn.BatchNorm2d(cout), self.relu()]


class ResidualBlock(nn.Module):
    """``relu(q(bn(conv3x3(relu(bn(conv3x3(x)))))) + q'(shortcut(x)))`` as in ResNet-8.

    The shortcut is the identity, or a 1x1 conv + BatchNorm when the block changes stride or width;
    ``q`` and ``q'`` are one quantizer module when ``shared_add_quant`` (both inputs of the add then
    carry the same scale), else two.
    """

    def __init__(self, q: _Quantizers, cin: int, cout: int, stride: int, shared_add_quant: bool):
        super().__init__()
        self.body = nn.Sequential(
            *q.conv_bn_relu(cin, cout, 3, stride=stride, padding=1),
            q.conv(cout, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = (
            nn.Identity() if stride == 1 and cin == cout
            else nn.Sequential(q.conv(cin, cout, 1, stride=stride), nn.BatchNorm2d(cout))
        )
        self.add_quant = q.identity()
        self.shortcut_quant = self.add_quant if shared_add_quant else q.identity()
        self.out = q.relu()

    def forward(self, x):
        return self.out(self.add_quant(self.body(x)) + self.shortcut_quant(self.shortcut(x)))


def _scaled(channels: Sequence[int], width: float) -> list[int]:
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    return [max(1, int(round(c * width))) for c in channels]


def _head(q: _Quantizers, pool: nn.Module, features: int, classes: int) -> list[nn.Module]:
    return [pool, q.identity(unsigned=True), nn.Flatten(), q.linear(features, classes), q.identity(q.o)]


def resnet8(
    weights: Spec,
    activations: Spec,
    *,
    width: float = 1.0,
    input_size: int = 32,
    classes: int = 10,
    shared_add_quant: bool = True,
    input_bits_or_fmt: Spec = 8,
    output_bits_or_fmt: Spec | None = None,
    power_of_two: bool = False,
    collect_stats_steps: int = 30,
) -> nn.Module:
    """MLPerf Tiny ResNet-8 for ``(1, 3, input_size, input_size)`` inputs (32: CIFAR-10).

    ``width`` scales the filter counts (16, 32, 64); the global average pool covers what is left of the
    image (8x8 at 32x32).
    """
    if input_size < 4:
        raise ValueError(f"input_size must be at least 4 (two stride-2 stacks), got {input_size}")
    q = _Quantizers(weights, activations, input_bits_or_fmt, output_bits_or_fmt, power_of_two, collect_stats_steps)
    c1, c2, c3 = _scaled((16, 32, 64), width)
    model = nn.Sequential(
        q.identity(q.i),
        *q.conv_bn_relu(3, c1, 3, padding=1),
        ResidualBlock(q, c1, c1, 1, shared_add_quant),
        ResidualBlock(q, c1, c2, 2, shared_add_quant),
        ResidualBlock(q, c2, c3, 2, shared_add_quant),
        *_head(q, nn.AdaptiveAvgPool2d(1), c3, classes),
    )
    return _finish(model, (1, 3, input_size, input_size), q.spec())


def _depthwise_separable(q: _Quantizers, cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [
        *q.conv_bn_relu(cin, cin, 3, stride=stride, padding=1, groups=cin),
        *q.conv_bn_relu(cin, cout, 1),
    ]


def ds_cnn(
    weights: Spec,
    activations: Spec,
    *,
    width: float = 1.0,
    blocks: int = 4,
    classes: int = 12,
    input_bits_or_fmt: Spec = 8,
    output_bits_or_fmt: Spec | None = None,
    power_of_two: bool = False,
    collect_stats_steps: int = 30,
) -> nn.Module:
    """MLPerf Tiny DS-CNN keyword spotting for ``(1, 1, 49, 10)`` MFCC inputs.

    Conv 64 (10x4, stride 2, padding (5, 1): a 25x5 map) -> ``blocks`` depthwise-separable blocks of 64
    filters -> ``AvgPool2d((25, 5))`` -> Linear ``classes``; ``width`` scales the 64 filters.
    """
    if blocks < 0:
        raise ValueError(f"blocks must be >= 0, got {blocks}")
    q = _Quantizers(weights, activations, input_bits_or_fmt, output_bits_or_fmt, power_of_two, collect_stats_steps)
    (c,) = _scaled((64,), width)
    layers = [q.identity(q.i), *q.conv_bn_relu(1, c, (10, 4), stride=2, padding=(5, 1))]
    for _ in range(blocks):
        layers += _depthwise_separable(q, c, c, 1)
    layers += _head(q, nn.AvgPool2d((25, 5)), c, classes)
    return _finish(nn.Sequential(*layers), (1, 1, 49, 10), q.spec())


#: MobileNetV1's depthwise-separable blocks: (output filters at width 1, stride).
_MOBILENET_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


def mobilenet_v1(
    weights: Spec,
    activations: Spec,
    *,
    width: float = 0.25,
    input_size: int = 96,
    blocks: int = 13,
    classes: int = 2,
    input_bits_or_fmt: Spec = 8,
    output_bits_or_fmt: Spec | None = None,
    power_of_two: bool = False,
    collect_stats_steps: int = 30,
) -> nn.Module:
    """MLPerf Tiny visual wake words MobileNetV1 (width multiplier ``width``, default 0.25) for
    ``(1, 3, input_size, input_size)`` inputs (96 in the benchmark).

    Conv 32*width (3x3, stride 2) -> the first ``blocks`` of MobileNetV1's 13 depthwise-separable
    blocks -> global average pool -> Linear ``classes``.
    """
    if not 1 <= blocks <= len(_MOBILENET_BLOCKS):
        raise ValueError(f"blocks must be 1..{len(_MOBILENET_BLOCKS)}, got {blocks}")
    q = _Quantizers(weights, activations, input_bits_or_fmt, output_bits_or_fmt, power_of_two, collect_stats_steps)
    size = (input_size + 1) // 2
    for _, stride in _MOBILENET_BLOCKS[:blocks]:
        size = (size + stride - 1) // stride
    if size < 1 or input_size < 2:
        raise ValueError(f"input_size {input_size} is too small for {blocks} blocks")
    (cin,) = _scaled((32,), width)
    layers = [q.identity(q.i), *q.conv_bn_relu(3, cin, 3, stride=2, padding=1)]
    for filters, stride in _MOBILENET_BLOCKS[:blocks]:
        (cout,) = _scaled((filters,), width)
        layers += _depthwise_separable(q, cin, cout, stride)
        cin = cout
    layers += _head(q, nn.AdaptiveAvgPool2d(1), cin, classes)
    return _finish(nn.Sequential(*layers), (1, 3, input_size, input_size), q.spec())


def fc_autoencoder(
    weights: Spec,
    activations: Spec,
    *,
    in_features: int = 640,
    hidden: int = 128,
    bottleneck: int = 8,
    depth: int = 4,
    input_bits_or_fmt: Spec = 8,
    output_bits_or_fmt: Spec | None = None,
    power_of_two: bool = False,
    collect_stats_steps: int = 30,
) -> nn.Module:
    """MLPerf Tiny anomaly detection autoencoder ``640 -> 128 x4 -> 8 -> 128 x4 -> 640`` for ``(1, 640)``.

    Every Linear but the last is followed by BatchNorm1d + ReLU; the output (the reconstruction) by
    the signed output quantizer.
    """
    if min(in_features, hidden, bottleneck, depth) < 1:
        raise ValueError("in_features, hidden, bottleneck and depth must be positive")
    q = _Quantizers(weights, activations, input_bits_or_fmt, output_bits_or_fmt, power_of_two, collect_stats_steps)
    widths = [in_features] + [hidden] * depth + [bottleneck] + [hidden] * depth
    layers: list[nn.Module] = [q.identity(q.i)]
    for fin, fout in zip(widths, widths[1:]):
        layers += [q.linear(fin, fout), nn.BatchNorm1d(fout), q.relu()]
    layers += [q.linear(widths[-1], in_features), q.identity(q.o)]
    return _finish(nn.Sequential(*layers), (1, in_features), q.spec())
