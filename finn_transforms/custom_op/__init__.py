"""QONNX custom ops of the ``finn_transforms.custom_op`` domain.

qonnx resolves a node's ``domain`` by importing the module of that name and looking up the class
named after ``op_type`` in ``__all__``, so nodes in this domain execute with ``execute_onnx`` and take
part in ``InferShapes`` / ``InferDataTypes`` once this package is importable.
"""

from finn_transforms.custom_op.minifloat_quant import MinifloatQuant

DOMAIN = "finn_transforms.custom_op"

__all__ = ["MinifloatQuant"]
