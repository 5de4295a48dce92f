"""QONNX custom ops and FINN transformations that carry minifloat and codebook formats into FINN.

The public API, imported on first use (PEP 562) so ``import finn_transforms`` stays cheap:

- `build_estimates(model, out_dir, ...)`: FINN+'s estimate-only build, our lowering included.
- `verify(model, inputs, out_dir, ...)`: the exactness chain torch -> QONNX -> lowered -> FINN HW.
- `lower_quantizers(qonnx_model, ...)`: the exact lowering passes (alias `lower_minifloat`).
- `finn_session()`: a context for your own FINN+ builds in-process, without Vivado.

``finn_transforms.verify`` is both the function and, for ``import finn_transforms.verify`` /
``from finn_transforms.verify import VerifyReport``, the module: the module object is callable (see
`finn_transforms.verify`), because importing a submodule rebinds the package attribute to it.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> (module, attribute; None: the module itself)
_EXPORTS = {
    "build_estimates": ("finn_transforms.build", "build_estimates"),
    "EstimateReport": ("finn_transforms.build", "EstimateReport"),
    "FinnBuildError": ("finn_transforms.build", "FinnBuildError"),
    "verify": ("finn_transforms.verify", None),
    "lower_quantizers": ("finn_transforms.steps", "lower_minifloat"),
    "lower_minifloat": ("finn_transforms.steps", "lower_minifloat"),
    "LoweringError": ("finn_transforms.transformation", "LoweringError"),
    "finn_session": ("finn_transforms.finn_env", "finn_session"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'finn_transforms' has no attribute {name!r}")
    module_name, attr = _EXPORTS[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
