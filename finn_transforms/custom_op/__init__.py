"""The ``finn_transforms.custom_op`` domain module: qonnx imports it to find ``MinifloatQuant`` and
``OrdinalDecode``.

qonnx resolves a node's ``domain`` by importing the module of that name and looking up the class
named after ``op_type`` in ``__all__``. The domain string is written into users' ONNX files, so it
stays; ``MinifloatQuant`` lives in `brevitas_minifloat.qonnx_contract.op` (one home for export and
lowering) and ``OrdinalDecode`` in `finn_transforms.native.ordinal`; both are re-exported here.
"""

from brevitas_minifloat.qonnx_contract.op import DOMAIN, MinifloatQuant
from finn_transforms.native.ordinal import OrdinalDecode

__all__ = ["MinifloatQuant", "OrdinalDecode"]  # qonnx reads __all__; DOMAIN stays importable for old callers
