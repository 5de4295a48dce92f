"""The MLPerf Tiny factories: the reference structures, their formats, and exact builds through FINN."""

from __future__ import annotations

import brevitas.nn as qnn
import pytest
import torch
from torch import nn

from brevitas_minifloat.zoo import calibrate, ds_cnn, fc_autoencoder, mobilenet_v1, resnet8
from brevitas_minifloat.zoo_mlperf import ResidualBlock


def _convs(model: nn.Module) -> list[qnn.QuantConv2d]:
    return [m for m in model.modules() if isinstance(m, qnn.QuantConv2d)]


def _out_shape(model: nn.Module) -> tuple[int, ...]:
    model.eval()
    with torch.no_grad():
        return tuple(model(torch.randn(2, *model.input_shape[1:])).shape)


def test_resnet8_structure():
    model = resnet8("INT4", "INT4")
    assert model.input_shape == (1, 3, 32, 32) and _out_shape(model) == (2, 10)
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 3
    assert [isinstance(b.shortcut, nn.Identity) for b in blocks] == [True, False, False]
    assert [c.out_channels for c in _convs(model)] == [16, 16, 16, 32, 32, 32, 64, 64, 64]
    assert [c.stride[0] for c in _convs(model)] == [1, 1, 1, 2, 1, 2, 2, 1, 2]
    assert all(b.add_quant is b.shortcut_quant for b in blocks)
    separate = resnet8("E2M3", "E2M3", shared_add_quant=False)
    assert all(b.add_quant is not b.shortcut_quant for b in separate.modules() if isinstance(b, ResidualBlock))
    assert separate.spec["hidden_activations"].endswith("_U")


def test_ds_cnn_structure():
    model = ds_cnn("E2M1", "E2M3")
    assert model.input_shape == (1, 1, 49, 10) and _out_shape(model) == (2, 12)
    convs = _convs(model)
    assert len(convs) == 1 + 2 * 4
    assert convs[0].kernel_size == (10, 4) and convs[0].stride == (2, 2)
    assert [c.groups for c in convs[1:]] == [64, 1] * 4
    pools = [m for m in model.modules() if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == 1 and tuple(pools[0].kernel_size) == (25, 5)  # the 25x5 map after the stride-2 conv


def test_mobilenet_v1_structure():
    model = mobilenet_v1("INT8", "INT8")
    assert model.input_shape == (1, 3, 96, 96) and _out_shape(model) == (2, 2)
    convs = _convs(model)
    depthwise = [c for c in convs if c.groups > 1]
    assert len(depthwise) == 13 and len(convs) == 1 + 26
    assert convs[0].out_channels == 8 and convs[-1].out_channels == 256  # width 0.25 of 32 and 1024
    assert sum(c.stride[0] == 2 for c in convs) == 5  # 96 -> 3: one stem and four block downsamplings
    with pytest.raises(ValueError, match="blocks"):
        mobilenet_v1("INT8", "INT8", blocks=14)


def test_fc_autoencoder_structure():
    model = fc_autoencoder("INT8", "INT8")
    assert model.input_shape == (1, 640) and _out_shape(model) == (2, 640)
    widths = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, qnn.QuantLinear)]
    assert widths == [(640, 128)] + [(128, 128)] * 3 + [(128, 8), (8, 128)] + [(128, 128)] * 3 + [(128, 640)]


def test_bad_arguments():
    with pytest.raises(ValueError, match="width"):
        resnet8("INT4", "INT4", width=0)
    with pytest.raises(ValueError, match="input_size"):
        resnet8("INT4", "INT4", input_size=2)
    with pytest.raises(ValueError, match="positive"):
        fc_autoencoder("INT4", "INT4", bottleneck=0)
    with pytest.raises(ValueError):
        ds_cnn("INT4", "E9M9")


_SMALL = {
    "ds_cnn": lambda: ds_cnn("E2M1", "E2M3", width=1 / 16, blocks=1, power_of_two=True, collect_stats_steps=4),
    "mobilenet_v1": lambda: mobilenet_v1("E2M1", "E2M3", width=1 / 16, input_size=16, blocks=3, power_of_two=True,
                                         collect_stats_steps=4),
    "fc_autoencoder": lambda: fc_autoencoder("E2M1", "E2M3", in_features=32, hidden=8, power_of_two=True,
                                             collect_stats_steps=4),
    "resnet8": lambda: resnet8("E2M1", "E2M3", width=1 / 8, input_size=8, power_of_two=True, collect_stats_steps=4),
}


def _verify_small(key: str, tmp_path):
    from finn_transforms.verify import verify

    torch.manual_seed(0)
    model = calibrate(_SMALL[key](), batches=4, batch_size=8)
    report = verify(model, torch.randn(3, *model.input_shape[1:]), tmp_path)
    assert report.ok and all(s.max_abs_diff == 0 for s in report.stages), report.summary()
    return report


@pytest.mark.needs_finn
@pytest.mark.parametrize("key", ["ds_cnn", "mobilenet_v1", "fc_autoencoder"])
def test_reduced_mlperf_models_verify_exactly(tmp_path, key):
    report = _verify_small(key, tmp_path)
    types = {layer.op_type.rsplit("_", 1)[0] for layer in report.estimates.layers}
    assert "MVAU" in types
    if key != "fc_autoencoder":
        assert "VVAU" in types  # depthwise convs (and DS-CNN's window sum)


@pytest.mark.slow
@pytest.mark.needs_finn
def test_reduced_resnet8_verifies_exactly(tmp_path):
    report = _verify_small("resnet8", tmp_path)
    types = {layer.op_type.rsplit("_", 1)[0] for layer in report.estimates.layers}
    assert {"ElementwiseAdd", "DuplicateStreams", "GlobalAccPool"} <= types
