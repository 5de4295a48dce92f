"""Hardware cost of minifloat vs integer arithmetic, measured with open-source tools.

- `rtl`: Verilog generator for MVAU multiply-accumulate units (`MacUnit`), per format pair.
- `sim`: bit-exact verification of the generated RTL with Icarus Verilog against a Python model.
- `cost`: Yosys synthesis (`mac_cost`) with a plain-JSON cache, and FINN's analytic LUT model.
"""

from brevitas_minifloat.hw.cost import finn_mvau_lut_estimate, mac_cost, mac_costs
from brevitas_minifloat.hw.operands import IntegerFormat, as_operand
from brevitas_minifloat.hw.rtl import GENERATOR_VERSION, MacUnit, accumulator_bits, product_bits

__all__ = [
    "GENERATOR_VERSION",
    "IntegerFormat",
    "MacUnit",
    "accumulator_bits",
    "as_operand",
    "finn_mvau_lut_estimate",
    "mac_cost",
    "mac_costs",
    "product_bits",
]
