"""The ``finn_transforms.custom_op`` domain module: qonnx imports it to find ``MinifloatQuant``.

qonnx resolves a node's ``domain`` by importing the module of that name and looking up the class
named after ``op_type`` in ``__all__``. The domain string is written into users' ONNX files, so it
stays; the op itself lives in `brevitas_minifloat.qonnx_contract.op` (one home for export and
lowering) and is re-exported here.
"""

from brevitas_minifloat.qonnx_contract.op import DOMAIN, MinifloatQuant

__all__ = ["MinifloatQuant"]  # qonnx reads __all__; DOMAIN stays importable for old callers
