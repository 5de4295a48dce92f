"""What the native HW ops share: the exact accumulator, output storage, the weight-code layer mixin
and FINN's ``_rtl`` specialization / registration of our ops.

`NativeUnit` is mixed in before FINN's ``MVAU`` (`finn_transforms.native.hw_op.MVAU_minifloat`) and
``VVAU`` (`finn_transforms.native.vvau.VVAU_minifloat`): weight codes of a fixed width (nothing to
minimize), the exact accumulator of these weights (`accumulator_range`), resource estimates from the
layer's `NativeMvauSpec` and generator (`finn_transforms.native.cost.native_layer_cost`). `rtl_variant` makes the
``<op>_rtl`` class FINN's ``SpecializeLayers`` looks up (same Python execution; FINN's IP flow
refused, our HDL comes from `finn_transforms.native.rtl`), `register_hw_ops` registers both.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.custom_op.registry import add_op_to_domain

from brevitas_minifloat.hw.operands import integer_range, is_minifloat, signed_bits
from finn_transforms.finn_defaults import HW_DOMAIN, RTL_DOMAIN
from finn_transforms.native.cost import native_layer_cost
from finn_transforms.native.spec import NativeMvauSpec, ordinal_embedded

from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

__all__ = ["NativeUnit", "accumulator_range", "register_hw_ops", "rtl_variant", "store_output"]

_FLOAT32_EXACT = 2**24


def _input_range(fmt) -> tuple[int, int]:
    """Range of the embedded input integers (minifloat: its values / delta)."""
    if is_minifloat(fmt):
        table = ordinal_embedded(fmt)
        return table[0], table[-1]
    return integer_range(fmt)


def accumulator_range(spec: NativeMvauSpec, weight_codes: np.ndarray) -> tuple[int, int]:
    """Exact ``(min, max)`` of any dot product of these weights (codes ``(mh, mw)``) with inputs of
    ``spec.input_format``: per output, the sum of each weight's extreme products."""
    w = spec.weight_embedded(weight_codes)
    lo, hi = _input_range(spec.input_format)
    a, b = w * lo, w * hi
    low = np.minimum(a, b).sum(axis=1)
    high = np.maximum(a, b).sum(axis=1)
    return int(min(low.flat, default=0)), int(max(high.flat, default=0))


def store_output(context: dict, node, y: np.ndarray) -> None:
    """Put exact dot products ``y`` (Python ints) into the execution context: float32 when float32
    holds them all exactly, else float64 (exact up to 2^53; `finn_transforms.native.hw_op`)."""
    container = np.float32 if max((abs(int(v)) for v in y.flat), default=0) <= _FLOAT32_EXACT else np.float64
    context[node.output[0]] = y.astype(container).reshape(context[node.output[0]].shape)


class NativeUnit:
    """Mixin of the native weight layers (module docstring). Each layer provides ``spec(acc_bits)``
    (``-1``: the ``accDataType``'s width; ``None``: exact for any weights) and ``weight_codes(model)``
    (``(mh, mw)`` codes of its weight initializer); ``cost_unit`` names its generator for the cost
    (`finn_transforms.native.cost.UNITS`)."""

    cost_unit = "mvau"

    def get_nodeattr_types(self):
        attrs = super().get_nodeattr_types()
        attrs.update(
            {
                "weightFormat": ("s", True, ""),  # minifloat format name of the weight codes
                "inputFormat": ("s", True, ""),  # minifloat (ordinal stream) or INTn / UINTn
            }
        )
        return attrs

    def minimize_weight_bit_width(self, model, datatype_only=False):
        """Weights are codes of a fixed width: nothing to minimize."""
        return DataType[self.get_nodeattr("weightDataType")]

    def minimize_accumulator_width(self, model, datatype_only=False):
        """Exact accumulator for these weights (`accumulator_range`), ``INT<bits>``; a graph-final
        layer rounds up to a multiple of 8 bits, as FINN's MVAU / VVAU do."""
        bits = signed_bits(*accumulator_range(self.spec(acc_bits=None), self.weight_codes(model)))
        if model.find_direct_successors(self.onnx_node) is None:
            bits = -(-bits // 8) * 8
        adt = DataType[f"INT{bits}"]
        self.set_nodeattr("accDataType", adt.name)
        self.set_nodeattr("outputDataType", adt.name)
        return adt

    def get_hw_compatible_weight_tensor(self, orig_weight_matrix):
        return super().get_hw_compatible_weight_tensor(np.asarray(orig_weight_matrix, dtype=np.int64))

    def lut_estimation(self, fpgapart):
        return native_layer_cost(self.spec(), unit=self.cost_unit)["lut"]

    def bram_estimation(self, fpgapart):
        return native_layer_cost(self.spec(), unit=self.cost_unit)["bram"]

    def uram_estimation(self, fpgapart):
        return 0

    def dsp_estimation(self, fpgapart):
        return native_layer_cost(self.spec(), unit=self.cost_unit)["dsp"]

    def verify_node(self):
        messages = super().verify_node()
        op = self.onnx_node.op_type
        try:
            self.spec()
            messages.append(f"{op} {self.get_nodeattr('weightFormat')} x {self.get_nodeattr('inputFormat')}")
        except ValueError as err:
            messages.append(f"invalid {op} attributes: {err}")
        return messages


def rtl_variant(generic: type, no_hdl: str) -> type:
    """``<generic>_rtl``: ``generic`` specialized to RTL (FINN's ``SpecializeLayers`` picks it),
    executing in Python like ``generic``; FINN's IP generation raises ``NotImplementedError`` naming
    the node and ``no_hdl`` (where the HDL comes from, or that there is none)."""

    def get_nodeattr_types(self):
        attrs = generic.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        generic.execute_node(self, context, graph)

    def no_ip_flow(self, *args, **kwargs):
        raise NotImplementedError(f"{self.onnx_node.name}: {no_hdl}")

    name = f"{generic.__name__}_rtl"
    body = {
        "__doc__": f"``{generic.__name__}`` specialized to RTL ({no_hdl}).",
        "__module__": generic.__module__,
        "get_nodeattr_types": get_nodeattr_types,
        "execute_node": execute_node,
        "generate_hdl": no_ip_flow,
        "get_rtl_file_list": no_ip_flow,
        "code_generation_ipi": no_ip_flow,
    }
    return type(name, (generic, RTLBackend), body)


def register_hw_ops(generic: type, rtl: type) -> None:
    """Make both op types known to qonnx (``getCustomOp``) and to FINN's ``SpecializeLayers``
    (which looks up ``<op>_rtl`` in FINN's RTL variant table)."""
    import finn.custom_op.fpgadataflow.rtl as finn_rtl

    add_op_to_domain(HW_DOMAIN, generic)
    add_op_to_domain(RTL_DOMAIN, rtl)
    finn_rtl.custom_op.setdefault(rtl.__name__, rtl)
