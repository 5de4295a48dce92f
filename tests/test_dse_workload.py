"""The embedded DSE workloads: shipped weights with a checked sha256, the CNV-style model, presets."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from brevitas_minifloat.data import DatasetNotAvailableError, load_dataset
from brevitas_minifloat.dse import default_workload, fashion_cnv, shipped_weights
from brevitas_minifloat.dse.embedded import WEIGHTS_DIR, WeightsChecksumError


def test_shipped_weights_match_their_manifest_and_model():
    path, manifest = shipped_weights()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["sha256"]
    assert path.stat().st_size == manifest["bytes"] < 300_000  # small enough to ship
    model = fashion_cnv()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    assert sum(p.numel() for p in model.parameters()) == manifest["parameters"]
    assert manifest["recipe"]["dataset"] == "fashion-mnist"


def test_corrupt_or_missing_weights_are_refused(tmp_path):
    for suffix in (".pt", ".json"):
        shutil.copyfile(WEIGHTS_DIR / f"fashion_cnv{suffix}", tmp_path / f"fashion_cnv{suffix}")
    shipped_weights(root=tmp_path)  # an intact copy loads
    data = bytearray((tmp_path / "fashion_cnv.pt").read_bytes())
    data[-100] ^= 1
    (tmp_path / "fashion_cnv.pt").write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match="does not match its manifest.*train_dse_workload"):
        shipped_weights(root=tmp_path)
    (tmp_path / "fashion_cnv.json").unlink()
    with pytest.raises(FileNotFoundError, match="train_dse_workload"):
        shipped_weights(root=tmp_path)


def test_default_workload_is_the_shipped_cnv_on_fashion_mnist(tmp_path):
    """The float model reproduces the accuracy its manifest records on the 10,000 test images."""
    workload, manifest = default_workload(tmp_path)
    assert workload.dataset == "fashion-mnist" and workload.weights == str(WEIGHTS_DIR / "fashion_cnv.pt")
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written
    try:
        _, (xte, yte) = load_dataset("fashion-mnist")
    except DatasetNotAvailableError as err:
        pytest.skip(str(err))
    model = workload.build_model()
    with torch.no_grad():
        hits = sum(int((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum()) for i in range(0, 10_000, 1000))
    assert len(xte) == 10_000 and hits / 10_000 == pytest.approx(manifest["accuracy"], abs=1e-4)
    assert json.loads((WEIGHTS_DIR / "fashion_cnv.json").read_text()) == manifest


def test_workload_presets():
    with pytest.raises(ValueError, match="unknown workload preset"):
        default_workload(preset="huge")
    assert fashion_cnv()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
