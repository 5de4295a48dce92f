"""Exact implementations of the native minifloat ops (`finn_transforms.native`).

- ``OrdinalDecode`` (host / lowered graphs) and its HW layer ``OrdinalLUT``: ordinal -> embedded
  integer of the format; with the optional constant scale, the exact product ``k * scale`` (the
  ``Mul`` it absorbed, exactly; the op's numpy execution rounds that product to float32).
  `ordinal_decode` builds the same op around another decoder (``verify``'s ``rtl`` stage: the
  ``OrdinalLUT``'s RTL simulation).
- ``MVAU_minifloat`` (HW graphs): the contract of `finn_transforms.native.spec` (inputs and weight
  codes through the spec's embedding tables), dot products by `exact_matmul`, the accumulator checked
  against ``accDataType``. `native_mvau` builds the same op around another source of the dot
  products (``verify``'s ``rtl`` stage: the layer's RTL simulation).
- ``VVAU_minifloat`` (HW graphs): per-channel dot products of the embedded window values
  (`reference_vvau`, Python integers), FINN's input interleaving decided by the producer's generic
  op type as for FINN's VVAU (`VVAU_minifloat.windows`); `native_vvau` builds it around another
  source of the dot products (the ``rtl`` stage: the layer's RTL simulation).
- ``WideThresholding`` (HW graphs): FINN's ``Thresholding`` compared with the exact integer
  thresholds ``int(hi) + residual`` (`finn_transforms.wide_thresholds`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from finn_transforms.exact.hw_executor import _check_acc, _const, _inst, _integers, _thresholding, register_hw_op, vvau_producer_type
from finn_transforms.exact.reference import Context, OpFn, register_op
from finn_transforms.exact.tensor import Exact, exact_matmul
from finn_transforms.native.spec import NativeMvauSpec, reference_vvau


def ordinal_decode(lookup: Callable[[object, Context, np.ndarray], np.ndarray]) -> OpFn:
    """Exact-executor implementation of ``OrdinalDecode`` / ``OrdinalLUT`` whose embedded integers come
    from ``lookup(format, ctx, ordinals) -> ints`` (same shape); the range check, ``abs_mode`` and the
    optional scale are the executor's, whatever decodes (``verify``'s ``rtl`` stage: the RTL simulation)."""

    def run(ins, ctx):
        from brevitas_minifloat.formats import as_format
        from finn_transforms.native.spec import ordinal_embedded

        fmt = as_format(ctx.attr("format"))
        n = len(ordinal_embedded(fmt))
        o = _integers(ins[0], ctx)
        if o.size and (int(o.min()) < 0 or int(o.max()) >= n):
            raise ctx.fail(f"ordinals of {fmt.name} lie in [0, {n - 1}], got [{int(o.min())}, {int(o.max())}]")
        k = Exact.from_ints(np.asarray(lookup(fmt, ctx, np.asarray(o, dtype=np.int64)), dtype=object))
        if ctx.abs_mode:
            k = k.with_num(np.abs(k.num))
        if len(ins) > 1 and ins[1] is not None:
            k = k * ins[1]
        return [k]

    return run


def _table(fmt, ctx, ordinals: np.ndarray) -> np.ndarray:
    from finn_transforms.native.spec import ordinal_embedded

    return np.array(ordinal_embedded(fmt), dtype=object)[ordinals]


register_op("OrdinalDecode")(register_hw_op("OrdinalLUT")(ordinal_decode(_table)))


@register_hw_op("WideThresholding")
def wide_thresholding(ins, ctx):
    """``WideThresholding``: FINN's ``Thresholding`` with exact integer thresholds (input 2: residual)."""
    import finn_transforms.native.wide_thresholding  # noqa: F401  (registers the op class with qonnx)

    return _thresholding(ins, ctx)


def native_mvau(layer: Callable[[NativeMvauSpec, np.ndarray, np.ndarray], np.ndarray]) -> OpFn:
    """Exact-executor implementation of ``MVAU_minifloat`` whose dot products come from
    ``layer(spec, weight codes (MH, MW), stream elements (vectors, MW)) -> (vectors, MH)`` integers;
    input, weight and accumulator checks are the executor's, whatever computes the products."""

    def run(ins, ctx):
        import finn_transforms.native.hw_op  # noqa: F401  (registers the op class with qonnx)

        inst, _ = _inst(ctx)
        spec = inst.spec()
        x = _integers(ins[0], ctx)
        x = x.reshape((x.shape[0],) + tuple(inst.get_normal_input_shape()[1:]))
        try:
            acc = layer(spec, _integers(ins[1], ctx).T, x.reshape(-1, spec.mw))
        except ValueError as err:
            raise ctx.fail(str(err)) from None
        acc = np.asarray(acc).reshape(x.shape[:-1] + (spec.mh,))
        _check_acc(acc, ctx, inst)
        return [Exact.from_ints(acc)]

    return run


def _exact_dot_products(spec: NativeMvauSpec, codes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The stream contract's dot products in exact integers (embedding tables, `exact_matmul`)."""
    xe, we = spec.input_embedded(x), spec.weight_embedded(codes)
    return exact_matmul(Exact.from_ints(xe).as_integers(), Exact.from_ints(we).as_integers().T)


register_hw_op("MVAU_minifloat")(native_mvau(_exact_dot_products))


def native_vvau(layer: Callable[[NativeMvauSpec, np.ndarray, np.ndarray], np.ndarray]) -> OpFn:
    """Exact-executor implementation of ``VVAU_minifloat`` whose dot products come from
    ``layer(spec, weight codes (C, K), windows (pixels, K, C)) -> (pixels, C)`` integers; the
    interleaving, input and accumulator checks are the executor's, whatever computes the products."""

    def run(ins, ctx):
        import finn_transforms.native.vvau  # noqa: F401  (registers the op class with qonnx)

        inst, _ = _inst(ctx)
        spec = inst.spec()
        try:
            win = inst.windows(_integers(ins[0], ctx), vvau_producer_type(ctx))
            acc = layer(spec, inst.codes_of(_const(ctx, 1)), win.reshape((-1,) + win.shape[-2:]))
        except (ValueError, OverflowError) as err:
            raise ctx.fail(str(err)) from None
        acc = np.asarray(acc).reshape(win.shape[:-2] + (spec.mh,))
        _check_acc(acc, ctx, inst)
        return [Exact.from_ints(acc)]

    return run


register_hw_op("VVAU_minifloat")(native_vvau(reference_vvau))
