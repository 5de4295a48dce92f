"""Exact implementations of the native minifloat ops (`finn_transforms.native`).

- ``OrdinalDecode`` (host / lowered graphs): ordinal -> embedded integer of the format; with the
  optional constant scale, the exact product ``k * scale`` (the ``Mul`` it absorbed, exactly; the
  op's numpy execution rounds that product to float32).
- ``MVAU_minifloat`` (HW graphs): the contract of `finn_transforms.native.spec` (inputs and weight
  codes through the spec's embedding tables), dot products by `exact_matmul`, the accumulator checked
  against ``accDataType``.
"""

from __future__ import annotations

import numpy as np

from finn_transforms.exact.hw_executor import _check_acc, _inst, _integers, register_hw_op
from finn_transforms.exact.reference import register_op
from finn_transforms.exact.tensor import Exact, exact_matmul


@register_op("OrdinalDecode")
def _ordinal_decode(ins, ctx):
    from brevitas_minifloat.formats import as_format
    from finn_transforms.native.spec import ordinal_embedded

    fmt = as_format(ctx.attr("format"))
    table = np.array(ordinal_embedded(fmt), dtype=object)
    o = _integers(ins[0], ctx)
    if o.size and (int(o.min()) < 0 or int(o.max()) >= len(table)):
        raise ctx.fail(f"ordinals of {fmt.name} lie in [0, {len(table) - 1}], got [{int(o.min())}, {int(o.max())}]")
    k = Exact.from_ints(table[np.asarray(o, dtype=np.int64)])
    if ctx.abs_mode:
        k = k.with_num(np.abs(k.num))
    if len(ins) > 1 and ins[1] is not None:
        k = k * ins[1]
    return [k]


@register_hw_op("MVAU_minifloat")
def _minifloat_mvau(ins, ctx):
    import finn_transforms.native.hw_op  # noqa: F401  (registers the op class with qonnx)

    inst, _ = _inst(ctx)
    spec = inst.spec()
    x = _integers(ins[0], ctx)
    n = x.shape[0]
    x = x.reshape((n,) + tuple(inst.get_normal_input_shape()[1:]))
    try:
        xe = spec.input_embedded(x.reshape(-1, spec.mw))
        we = spec.weight_embedded(_integers(ins[1], ctx).T)
    except ValueError as err:
        raise ctx.fail(str(err)) from None
    acc = exact_matmul(Exact.from_ints(xe).as_integers(), Exact.from_ints(we).as_integers().T)
    acc = acc.reshape(x.shape[:-1] + (spec.mh,))
    _check_acc(acc, ctx, inst)
    return [Exact.from_ints(acc)]
