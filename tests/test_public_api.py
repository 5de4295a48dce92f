"""The public API (issue 16): lazy top-level names of both packages, `finn_transforms.verify` as the
function in every import order, and `build_estimates` lowering our formats by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (import order matters here) and return its stdout."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.strip()


def test_imports_are_lazy():
    out = _python("import sys, finn_transforms, brevitas_minifloat\n"
                  "print(sorted(m for m in ('torch', 'brevitas', 'qonnx', 'finn') if m in sys.modules))\n"
                  "print(sorted(set(finn_transforms.__all__) - set(dir(finn_transforms))))")
    assert out.splitlines() == ["[]", "[]"]


ORDERS = [
    "import finn_transforms; f = finn_transforms.verify",
    "from finn_transforms import verify as f",
    "import finn_transforms.verify; import finn_transforms; f = finn_transforms.verify",
    "from finn_transforms.verify import verify as g; import finn_transforms; f = finn_transforms.verify",
    "import finn_transforms.verify as f",
]


def test_verify_is_the_function_in_every_import_order():
    """Each spelling in a clean import state (``finn_transforms`` unloaded; torch & co. stay loaded)."""
    code = "\n".join([
        "import inspect, sys, torch, qonnx.core.modelwrapper",
        "for order in %r:" % (ORDERS,),
        "    for name in [m for m in sys.modules if m.split('.')[0] == 'finn_transforms']: del sys.modules[name]",
        "    scope = {}",
        "    exec(order, scope)",
        "    f = scope['f']",
        "    from finn_transforms.verify import verify, VerifyReport",
        "    import finn_transforms.verify as module",
        "    import finn_transforms",
        "    print(callable(f), f is module is finn_transforms.verify, module.verify is verify,",
        "          module.VerifyReport is VerifyReport, list(inspect.signature(f).parameters)[:3])",
    ])
    lines = _python(code).splitlines()
    assert lines == ["True True True True ['model', 'inputs', 'output_dir']"] * len(ORDERS)


def test_calling_the_module_calls_verify(monkeypatch):
    import finn_transforms
    import finn_transforms.verify as module

    seen = {}
    monkeypatch.setattr(module, "verify", lambda *a, **k: seen.setdefault("args", (a, k)))
    finn_transforms.verify(1, 2, out="x")
    assert seen["args"] == ((1, 2), {"out": "x"})


def test_public_names_resolve():
    import brevitas_minifloat
    import finn_transforms
    from finn_transforms.build import build_estimates
    from finn_transforms.finn_env import finn_session
    from finn_transforms.steps import lower_minifloat

    assert finn_transforms.build_estimates is build_estimates
    assert finn_transforms.lower_quantizers is finn_transforms.lower_minifloat is lower_minifloat
    assert finn_transforms.finn_session is finn_session
    for name in brevitas_minifloat.__all__:
        assert getattr(brevitas_minifloat, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        finn_transforms.nope  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        brevitas_minifloat.nope  # noqa: B018


def test_build_estimates_lowers_our_formats_by_default(tmp_path):
    pytest.importorskip("finn", reason="FINN+ not installed")
    import brevitas.nn as qnn
    import torch

    import finn_transforms
    from brevitas_minifloat import export_qonnx, minifloat_act_quant, minifloat_weight_quant
    from finn_transforms.steps import make_step_lower_minifloat

    torch.manual_seed(0)
    model = torch.nn.Sequential(qnn.QuantIdentity(act_quant=minifloat_act_quant("E2M1")),
                                qnn.QuantLinear(16, 4, bias=False, weight_quant=minifloat_weight_quant("E2M1")))
    model(torch.randn(8, 16))
    qonnx_model = export_qonnx(model.eval(), torch.randn(1, 16), tmp_path / "m.onnx")
    report = finn_transforms.build_estimates(qonnx_model, tmp_path / "default")
    assert list(report.step_times_s).count("step_lower_minifloat") == 1
    assert any(layer.op_type.startswith("MVAU") for layer in report.layers)
    own = finn_transforms.build_estimates(qonnx_model, tmp_path / "own",
                                          extra_steps_before=[make_step_lower_minifloat(max_thresholds=64)])
    assert list(own.step_times_s).count("step_lower_minifloat") == 1  # the caller's step, not a second one
    with pytest.raises(finn_transforms.FinnBuildError, match="FloatQuant"):
        finn_transforms.build_estimates(qonnx_model, tmp_path / "raw", lower=False)
