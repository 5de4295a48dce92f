"""The dependency rule, checked on the import statements and on what a fresh interpreter loads.

Library modules of ``brevitas_minifloat`` (everything except the orchestration modules ``dse``,
``cli`` and ``demo``) never import ``finn_transforms``; ``finn_transforms`` imports only library
modules of ``brevitas_minifloat`` and none of their private names (docs/design.md, "Package map and
dependency rule").
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORCHESTRATION = ("brevitas_minifloat.dse", "brevitas_minifloat.cli", "brevitas_minifloat.demo")
#: Library modules finn_transforms must not reach into either (model zoo: examples, not contract).
NOT_FOR_FINN_TRANSFORMS = ORCHESTRATION + ("brevitas_minifloat.zoo",)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """``(line, imported module, imported names)`` of every import statement, nested ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, tuple(alias.name for alias in node.names)))
    return found


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_rule_sees_every_module():
    """Guards the checks below against walking an empty or wrong tree."""
    names = {_module_name(p) for p in _modules("brevitas_minifloat")}
    assert {"brevitas_minifloat.formats", "brevitas_minifloat.export.qonnx", "brevitas_minifloat.dse.jobs"} <= names
    # the detector finds imports inside functions too (cli imports finn_transforms lazily)
    assert any(_within(m, ("finn_transforms",)) for _, m, _ in _imports(ROOT / "brevitas_minifloat/cli.py"))


def test_library_modules_never_import_finn_transforms():
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _modules("brevitas_minifloat")
        if not _within(_module_name(path), ORCHESTRATION)
        for line, module, _ in _imports(path)
        if _within(module, ("finn_transforms",))
    ]
    assert not bad, "brevitas_minifloat library modules must not import finn_transforms:\n" + "\n".join(bad)


def test_finn_transforms_imports_only_public_library_modules():
    bad = []
    for path in _modules("finn_transforms"):
        for line, module, names in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if _within(module, NOT_FOR_FINN_TRANSFORMS):
                bad.append(f"{where} imports {module}")
            elif _within(module, ("brevitas_minifloat",)):
                private = [n for n in names if n.startswith("_")]
                if private or any(part.startswith("_") for part in module.split(".")):
                    bad.append(f"{where} imports private {module} {private}")
    assert not bad, "finn_transforms may import only public brevitas_minifloat library modules:\n" + "\n".join(bad)


def _fresh_python(code: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip().splitlines()[-1]


def test_export_and_its_execution_do_not_load_finn_transforms(tmp_path):
    """Exporting an unsigned minifloat (our MinifloatQuant op) and executing the file with qonnx
    needs only the QONNX contract in brevitas_minifloat."""
    out = _fresh_python(f"""
import sys, torch, brevitas.nn as qnn
import brevitas_minifloat.export
assert not [m for m in sys.modules if m.startswith("finn_transforms")], "loaded by the import"
from qonnx.core.onnx_exec import execute_onnx
from brevitas_minifloat import export_qonnx, minifloat_act_quant
model = torch.nn.Sequential(qnn.QuantIdentity(act_quant=minifloat_act_quant("E2M1_U")))
model(torch.rand(8, 4)); model.eval()
x = torch.rand(2, 4)
wrapped = export_qonnx(model, x, {str(tmp_path / "m.onnx")!r})
assert "MinifloatQuant" in [n.op_type for n in wrapped.graph.node]
y = execute_onnx(wrapped, {{wrapped.graph.input[0].name: x.numpy()}})[wrapped.graph.output[0].name]
assert (y == model(x).detach().numpy()).all()
print(sorted(m for m in sys.modules if m.startswith("finn_transforms")))
""")
    assert out == "[]"


def test_qonnx_finds_the_op_through_its_domain_module():
    """A model file read without our package imported: qonnx imports the node's domain module
    ``finn_transforms.custom_op`` (the domain string users' files contain), which re-exports the op."""
    out = _fresh_python("""
from onnx import helper
from qonnx.custom_op.registry import getCustomOp
node = helper.make_node("MinifloatQuant", ["x", "s"], ["y"], domain="finn_transforms.custom_op",
                        exponent_bitwidth=2, mantissa_bitwidth=1, exponent_bias=1, signed=0, has_subnormal=1)
op = getCustomOp(node)
from brevitas_minifloat.qonnx_contract import MinifloatQuant
assert type(op) is MinifloatQuant
print(op.minifloat_format.name)
""")
    assert out == "E2M1_U"


@pytest.mark.parametrize(
    "old, new",
    [
        ("finn_transforms.custom_op:MinifloatQuant", "brevitas_minifloat.qonnx_contract.op:MinifloatQuant"),
        ("finn_transforms.custom_op.minifloat_quant:MinifloatQuant", "brevitas_minifloat.qonnx_contract.op:MinifloatQuant"),
        ("finn_transforms.custom_op:DOMAIN", "brevitas_minifloat.qonnx_contract.op:DOMAIN"),
        ("finn_transforms.annotations:read_weight_format", "brevitas_minifloat.qonnx_contract.annotations:read_weight_format"),
        ("finn_transforms.quant_nodes:minifloat_format_of", "brevitas_minifloat.qonnx_contract.quant_nodes:minifloat_format_of"),
        (
            "finn_transforms.transformation.fold_transpose_into_minifloat_weights:FoldTransposeIntoMinifloatWeights",
            "brevitas_minifloat.qonnx_contract.fold_transpose:FoldTransposeIntoMinifloatWeights",
        ),
        ("brevitas_minifloat.export.syq_handlers:syq_codebook", "brevitas_minifloat.qonnx_contract.syq_nodes:syq_codebook"),
        ("brevitas_minifloat.dse.cost:analytic_mac_cost", "brevitas_minifloat.hw.analytic:analytic_mac_cost"),
        ("brevitas_minifloat.dse.measured:folded_mac_lut", "brevitas_minifloat.hw.folded:folded_mac_lut"),
        ("brevitas_minifloat.hw.operands:IntegerFormat", "brevitas_minifloat.numformat:IntegerFormat"),
        ("finn_transforms.synth:simulate_thresholding", "finn_transforms.synth.simulation:simulate_thresholding"),
    ],
)
def test_old_import_paths_are_aliases(old, new):
    import importlib

    def resolve(spec: str):
        module, _, name = spec.partition(":")
        return getattr(importlib.import_module(module), name)

    assert resolve(old) is resolve(new)


def test_domain_string_is_stable():
    from brevitas_minifloat.qonnx_contract import DOMAIN

    assert DOMAIN == "finn_transforms.custom_op"  # written into users' ONNX files
