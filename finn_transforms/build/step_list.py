"""Build step lists: the one splicer of our steps into FINN's list, step resolution, timing.

:func:`splice_steps` is used by ``build_estimates`` and by ``finn_transforms.steps.minifloat_estimate_steps``
(for users' own FINN configs), so both run the same steps in the same order.
"""

from __future__ import annotations

import functools
import importlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

from qonnx.core.modelwrapper import ModelWrapper

__all__ = [
    "FINN_ESTIMATE_STEPS",
    "BuildStep",
    "StepRecorder",
    "resolve_step",
    "splice_steps",
    "step_label",
    "unique_step_name",
]

BuildStep = Union[Callable[[ModelWrapper, Any], ModelWrapper], str]

#: FINN+ 1.6.1's ``estimate_only_dataflow_steps`` (kept here so it can be read without FINN).
FINN_ESTIMATE_STEPS = (
    "step_qonnx_to_finn",
    "step_tidy_up",
    "step_streamline",
    "step_convert_to_hw",
    "step_minimize_bit_width_initial",
    "step_create_dataflow_partition",
    "step_specialize_layers",
    "step_target_fps_parallelization",
    "step_apply_folding_config",
    "step_minimize_bit_width",
    "step_generate_estimate_reports",
)


def step_label(step: BuildStep) -> str:
    """A step's name: the string itself or the callable's ``__name__``."""
    return step if isinstance(step, str) else getattr(step, "__name__", "")


def splice_steps(
    base: Sequence[BuildStep],
    before_qonnx_to_finn: Sequence[BuildStep] = (),
    *,
    finn_lookup: Mapping[str, Callable] | None = None,
) -> list[BuildStep]:
    """``base`` with ``before_qonnx_to_finn`` and then our topology check
    (``finn_transforms.topology.CHECK_STEP``) inserted before ``step_qonnx_to_finn`` (prepended when
    there is none), and the FINN steps we extend replaced by ours of the same name
    (``finn_transforms.steps.REPLACED_FINN_STEPS``: XNOR-exact bit-width minimisation, the residual /
    pooling-head / Conv1d streamlining, the native minifloat conversion and folding; as
    ``"package.module.<name>"`` strings).

    A step is FINN's when given by its FINN name or, with ``finn_lookup`` (FINN's step registry), as
    FINN's own function object.
    """
    from finn_transforms.steps import REPLACED_FINN_STEPS  # steps.py imports this module
    from finn_transforms.topology import CHECK_STEP

    steps = []
    for step in base:
        name = step_label(step)
        is_finn = step == name or (finn_lookup is not None and finn_lookup.get(name) is step)
        if name in REPLACED_FINN_STEPS and is_finn:
            ours = REPLACED_FINN_STEPS[name]
            step = f"{ours.__module__}.{ours.__name__}"
        steps.append(step)
    names = [step_label(s) for s in steps]
    at = names.index("step_qonnx_to_finn") if "step_qonnx_to_finn" in names else 0
    steps[at:at] = [*before_qonnx_to_finn, CHECK_STEP]
    return steps


class StepRecorder:
    """Wraps builder steps to time them and to remember which one raised."""

    def __init__(self) -> None:
        self.failed: tuple[str, BaseException] | None = None
        self.times: dict[str, float] = {}
        self.order: list[str] = []

    def wrap(self, fn: Callable, name: str) -> Callable:
        @functools.wraps(fn)
        def step(model, cfg):
            start = time.perf_counter()
            try:
                result = fn(model, cfg)
                if not isinstance(result, ModelWrapper):
                    raise TypeError(
                        f"build step {name} returned {type(result).__name__}, not a ModelWrapper"
                    )
            except BaseException as exc:
                if self.failed is None:
                    self.failed = (name, exc)
                raise
            self.times[name] = round(time.perf_counter() - start, 4)
            return result

        # FINN names intermediate models after __name__ (it must exist and be a file name).
        step.__name__ = step.__qualname__ = name
        self.order.append(name)
        return step


def resolve_step(step: BuildStep, lookup: Mapping[str, Callable]) -> Callable:
    """A callable for a FINN step name (looked up in ``lookup``), a "package.module.function" string or a callable."""
    if isinstance(step, str):
        if step in lookup:
            return lookup[step]
        module_name, _, attr = step.rpartition(".")
        if not module_name:
            raise ValueError(
                f"unknown build step {step!r}: not a FINN step and not 'package.module.function'"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"cannot import build step {step!r}: {exc}") from exc
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise ValueError(f"build step {step!r}: {module_name} has no callable {attr!r}")
        return fn
    if callable(step):
        return step
    raise TypeError(f"a build step must be a callable or a string, got {type(step).__name__}")


def unique_step_name(fn: Callable, used: set[str]) -> str:
    """A file-name-safe name for ``fn``, unique within ``used`` (FINN names intermediate models after it)."""
    base = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", None)
    base = re.sub(r"[^A-Za-z0-9_]", "_", base or "custom_step").strip("_") or "custom_step"
    name, i = base, 1
    while name in used:
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name


