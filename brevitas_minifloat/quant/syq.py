"""SYQ: learned symmetric binary/ternary weight codebooks (Faraone et al., CVPR 2018) for Brevitas.

``syq_weight_quant(levels, groups, eta=..., scale_bits=...)`` returns a Brevitas weight quantizer
(for ``weight_quant=`` of ``QuantLinear`` / ``QuantConv1d`` / ``QuantConv2d``) that maps each weight
to ``a_g * c`` with a code ``c`` in {-1, +1} (binary) or {-1, 0, +1} (ternary) and one learned
positive scale ``a_g`` per group ``g`` of the weight tensor.

Semantics (PyTorch weight layout ``(out, in, kh, kw)``; ``(out, in, k)`` for Conv1d; ``(out, in)``
for Linear; the output-channel axis is taken from the layer, so transposed convs work too):

- threshold ``t = eta * max|W|`` over the whole layer, recomputed every forward, no gradient.
- ternary: ``c = sign(w)`` where ``|w| > t``, else 0. binary: ``c = +1`` where ``w >= 0``, else
  -1 (so ``sign(0) = +1``, as qonnx's ``BipolarQuant``).
- groups (which scale axes keep their size; all other axes are shared):
  ``layer``: one scale, shape ``(1, 1, ...)``; ``channel``: one per output channel, ``(out, 1, ...)``;
  ``row``: one per kernel row ``kh``, shared across out/in channels and ``kw``, ``(1, 1, kh, 1)``
  (the reference code's ``rows_quant`` indexes axis 0 of the TensorFlow ``(kh, kw, in, out)`` kernel,
  i.e. ``kh``); Conv2d-shaped (4-D) weights only;
  ``pixel``: one per kernel position, shared across in/out channels: ``(1, 1, kh, kw)`` for Conv2d,
  ``(1, 1, k)`` for Conv1d (the reference's ``fine_grained_quant``: axes 0 and 1 of ``(kh, kw, in, out)``).
  A Linear weight has neither rows nor pixels and a Conv1d kernel has a single row: those
  combinations raise ``ValueError`` when the layer is built.
- initialisation: at the first forward (or after loading weights into a layer whose quantizer state
  is missing), ``a_g = mean |w|`` over *all* weights of the group, for both levels, as the reference
  implementation. Loaded ``state_dict`` scales are kept.
- the learned parameter ``p`` (``<layer>.weight_quant.tensor_quant.scale``) is used as
  ``a = max(|p|, 2**-126)``: always positive, gradient ``sign(p) * dL/da``.
- gradients (custom autograd Function ``SyqQuantFn``): ``dL/da_g = sum over the group's non-zero
  codes of c * dL/dQ`` and ``dL/dw = m * dL/dQ`` with ``m = a_g`` where ``|w| > t`` and ``m = 1``
  elsewhere (the reference's ``Sign -> Identity`` / ``Mul -> Add`` gradient overrides).
- ``scale_bits = n``: ``a_g = s * k_g`` with integers ``1 <= k_g <= 2**n - 1`` and one power of two
  ``s = 2**ceil(log2(max_g a_g / (2**n - 1)))`` per layer (so the largest scale never saturates);
  ``k_g`` is rounded to nearest with a straight-through gradient, ``s`` carries no gradient. This puts
  row/pixel scales on one fixed-point grid, which integer hardware can apply exactly.

The quantizer returns Brevitas ``IntQuantTensor``s (bit width 2 for ternary, 1 for binary, signed,
zero point 0) whose scale is the per-group scale in its broadcast shape. Row/pixel scales lie along
the reduction axis of the dot product, so there is no per-output-channel accumulator scale: for those
groups the weight is a ``ReductionScaledIntQuantTensor`` whose conv/linear results are plain tensors
(Brevitas' output-scale rule ``input_scale * weight_scale`` would be wrong), and layers that need
such a scale (``return_quant_tensor=True`` without an output quantizer, bias quantizers scaled by
``input_scale * weight_scale`` such as ``Int32Bias``) are refused with a ``ValueError``.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch
import torch.nn.functional as F
from brevitas.core.function_wrapper import Identity
from brevitas.function.ops_ste import round_ste, tensor_clamp_ste
from brevitas.inject import ExtendedInjector
from brevitas.proxy import WeightQuantProxyFromInjector
from brevitas.quant_tensor import IntQuantTensor, _unpack_quant_tensor
from torch import nn
from torch.autograd import Function

Levels = Literal["ternary", "binary"]
Groups = Literal["layer", "channel", "row", "pixel"]
LEVELS = ("ternary", "binary")
GROUPS = ("layer", "channel", "row", "pixel")
REDUCTION_GROUPS = ("row", "pixel")
MIN_SCALE = 2.0**-126  # smallest normal float32: keeps a_g > 0 (and Q / a_g finite)

__all__ = [
    "GROUPS",
    "LEVELS",
    "ReductionScaledIntQuantTensor",
    "SyqQuantFn",
    "SyqTensorQuant",
    "SyqWeightQuantProxy",
    "fitting_groups",
    "syq_scale_shape",
    "syq_weight_quant",
]


def fitting_groups(weight_ndim: int) -> tuple[str, ...]:
    """The ``groups`` values defined for a weight tensor of this rank."""
    if weight_ndim == 2:
        return ("layer", "channel")
    if weight_ndim == 3:
        return ("layer", "channel", "pixel")
    if weight_ndim == 4:
        return GROUPS
    return ("layer", "channel")


def _kind(weight_ndim: int) -> str:
    return {2: "a Linear (out, in) weight", 3: "a 1-D convolution (out, in, k) weight",
            4: "a 2-D convolution (out, in, kh, kw) weight"}.get(weight_ndim, f"a {weight_ndim}-D weight")


def syq_scale_shape(groups: str, weight_shape: tuple[int, ...], output_channel_dim: int = 0,
                    layer: str = "layer") -> tuple[int, ...]:
    """Broadcast shape of the per-group scale of a weight of ``weight_shape`` (see module docstring)."""
    ndim = len(weight_shape)
    if groups not in fitting_groups(ndim):
        extra = ""
        if groups == "row" and ndim == 3:
            extra = " (a 1-D kernel is a single row: use 'pixel' for one scale per tap, or 'layer')"
        elif groups in REDUCTION_GROUPS and ndim == 2:
            extra = " (a fully connected weight has no kernel rows or pixels)"
        raise ValueError(
            f"{layer}: groups={groups!r} does not fit {_kind(ndim)} of shape {tuple(weight_shape)}{extra}; "
            f"groups that fit: {', '.join(map(repr, fitting_groups(ndim)))}"
        )
    shape = [1] * ndim
    if groups == "channel":
        shape[output_channel_dim] = weight_shape[output_channel_dim]
    elif groups == "row":
        shape[2] = weight_shape[2]
    elif groups == "pixel":
        shape[2:] = weight_shape[2:]
    return tuple(shape)


class SyqQuantFn(Function):
    """``Q = a * c`` with SYQ's codes ``c`` and gradients (see module docstring).

    ``forward(w, a, eta, ternary)``: ``a`` is the positive scale in broadcast shape.
    """

    @staticmethod
    def forward(ctx, w: torch.Tensor, a: torch.Tensor, eta: float, ternary: bool) -> torch.Tensor:
        absw = w.abs()
        t = absw.max() * eta
        above = absw > t
        if ternary:
            code = torch.sign(w) * above  # |w| > t >= 0 implies w != 0
        else:
            code = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
        ctx.save_for_backward(code, above, a)
        return code * a

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        code, above, a = ctx.saved_tensors
        grad_w = grad_a = None
        if ctx.needs_input_grad[0]:
            grad_w = torch.where(above, grad * a, grad)
        if ctx.needs_input_grad[1]:
            grad_a = (grad * code).sum_to_size(a.shape)
        return grad_w, grad_a, None, None


def _output_channel_dim(module) -> int:
    if isinstance(module, (tuple, list)):
        module = module[0]
    return int(getattr(module, "output_channel_dim", 0))


def _layer_name(module) -> str:
    if isinstance(module, (tuple, list)):
        module = module[0]
    return type(module).__name__ if module is not None else "layer"


class SyqTensorQuant(nn.Module):
    """The quantizer core: returns ``(Q, a, zero_point, bit_width)`` as Brevitas' int quantizers do."""

    def __init__(self, syq_levels: str, syq_groups: str, syq_eta: float, syq_scale_bits: int | None,
                 tracked_parameter_list, module=None):
        super().__init__()
        params = list(tracked_parameter_list)
        if len(params) != 1:
            raise ValueError(
                f"a SYQ weight quantizer learns the scales of one layer; it cannot be shared between {len(params)} "
                "layers (give each layer its own weight_quant)"
            )
        w = params[0]
        self.levels = syq_levels
        self.groups = syq_groups
        self.eta = float(syq_eta)
        self.scale_bits = syq_scale_bits
        self.ternary = syq_levels == "ternary"
        self.output_channel_dim = _output_channel_dim(module)
        self.scale_shape = syq_scale_shape(syq_groups, tuple(w.shape), self.output_channel_dim, _layer_name(module))
        self.weight_shape = tuple(w.shape)
        kw = dict(dtype=w.dtype, device=w.device)
        self.scale = nn.Parameter(torch.ones(self.scale_shape, **kw))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool, device=w.device))
        self._initialized = False
        self.register_buffer("zero_point", torch.zeros((), **kw), persistent=False)
        self.register_buffer("bit_width", torch.tensor(2.0 if self.ternary else 1.0, **kw), persistent=False)

    @property
    def reduce_dims(self) -> tuple[int, ...]:
        """Weight axes a group's scale is shared along (summed over for its gradient)."""
        return tuple(i for i, n in enumerate(self.scale_shape) if n == 1)

    @torch.no_grad()
    def init_scale(self, w: torch.Tensor) -> None:
        """``a_g = mean |w|`` over all weights of group ``g``."""
        dims = self.reduce_dims
        mean = w.detach().abs().mean(dim=dims, keepdim=True) if dims else w.detach().abs()
        self.scale.copy_(mean.reshape(self.scale_shape).clamp_min(MIN_SCALE))
        self.initialized.fill_(True)
        self._initialized = True

    def effective_scale(self) -> torch.Tensor:
        """The positive (and, with ``scale_bits``, fixed-point) per-group scale ``a``."""
        a = self.scale.abs().clamp_min(MIN_SCALE)
        if self.scale_bits is None:
            return a
        return self.fixed_point_scale(a)

    def fixed_point_scale(self, a: torch.Tensor) -> torch.Tensor:
        kmax = 2.0**self.scale_bits - 1
        s = self.scale_grid(a)
        k = tensor_clamp_ste(round_ste(a / s), torch.ones_like(s), torch.full_like(s, kmax))
        return s * k

    def scale_grid(self, a: torch.Tensor | None = None) -> torch.Tensor:
        """``s``: the layer's power-of-two scale unit (only with ``scale_bits``)."""
        if self.scale_bits is None:
            raise ValueError("scale_grid needs scale_bits")
        if a is None:
            a = self.scale.abs().clamp_min(MIN_SCALE)
        kmax = 2.0**self.scale_bits - 1
        return torch.exp2(torch.ceil(torch.log2(a.detach().max() / kmax)))

    def forward(self, x: torch.Tensor):
        if not self._initialized:
            self.init_scale(x)
        a = self.effective_scale()
        q = SyqQuantFn.apply(x, a, self.eta, self.ternary)
        return q, a, self.zero_point, self.bit_width

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        from brevitas import config

        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        keys = (prefix + "scale", prefix + "initialized")
        if all(k in state_dict for k in keys):
            self._initialized = bool(state_dict[prefix + "initialized"])
        if config.IGNORE_MISSING_KEYS:
            for k in keys:
                if k in missing_keys:
                    missing_keys.remove(k)

    def extra_repr(self) -> str:
        bits = f", scale_bits={self.scale_bits}" if self.scale_bits is not None else ""
        return f"levels={self.levels!r}, groups={self.groups!r}, eta={self.eta}{bits}, scale_shape={self.scale_shape}"


_LAYER_FNS = {F.linear, F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d}


class ReductionScaledIntQuantTensor(IntQuantTensor):
    """An ``IntQuantTensor`` whose scale varies along a dot product's reduction axis (SYQ row/pixel).

    Its value, scale, ``int()`` etc. are exact; only linear/conv results are returned as plain
    tensors, because no per-output-channel scale describes them.
    """

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in _LAYER_FNS:
            return func(*_unpack_quant_tensor(args), **_unpack_quant_tensor(kwargs or {}))
        return super().__torch_function__(func, types, args, kwargs)


class SyqWeightQuantProxy(WeightQuantProxyFromInjector):
    """Weight proxy of SYQ quantizers; its own class so our QONNX export handler can claim it."""

    @property
    def levels(self) -> str:
        return self.quant_injector.syq_levels

    @property
    def groups(self) -> str:
        return self.quant_injector.syq_groups

    @property
    def eta(self) -> float:
        return self.quant_injector.syq_eta

    @property
    def scale_bits(self) -> int | None:
        return self.quant_injector.syq_scale_bits

    @property
    def input_view_impl(self):
        return Identity()

    def _check_layer(self) -> None:
        for layer in self.tracked_module_list:
            where = type(layer).__name__
            if getattr(layer, "return_quant_tensor", False) and not layer.output_quant.is_quant_enabled:
                raise ValueError(
                    f"{where}: SYQ groups={self.groups!r} scales vary along the reduction axis, so the output has no "
                    "per-channel scale; use return_quant_tensor=False or add an output quantizer (output_quant=...)"
                )
            bias_quant = getattr(layer, "bias_quant", None)
            if (bias_quant is not None and bias_quant.is_quant_enabled and bias_quant.requires_input_scale
                    and layer.bias is not None):
                raise ValueError(
                    f"{where}: SYQ groups={self.groups!r} scales vary along the reduction axis, so a bias quantizer "
                    "scaled by input_scale * weight_scale (e.g. Int32Bias) is undefined; leave the bias "
                    "unquantized or use a bias quantizer with its own scale (e.g. Int8BiasPerTensorFloatInternalScaling)"
                )

    def forward(self, x: torch.Tensor):
        if self.is_quant_enabled and self.groups in REDUCTION_GROUPS:
            self._check_layer()
        return super().forward(x)

    def create_quant_tensor(self, qt_args) -> IntQuantTensor:
        cls = ReductionScaledIntQuantTensor if self.groups in REDUCTION_GROUPS else IntQuantTensor
        return cls(*qt_args, self.is_signed, self.training)


class SyqWeightQuantBase(ExtendedInjector):
    proxy_class = SyqWeightQuantProxy
    tensor_quant = SyqTensorQuant
    signed = True
    narrow_range = True


def syq_weight_quant(
    levels: Levels = "ternary",
    groups: Groups = "channel",
    *,
    eta: float = 0.05,
    scale_bits: int | None = None,
) -> type:
    """A Brevitas weight quantizer class implementing SYQ (see the module docstring for the semantics).

    ``levels``: ``"ternary"`` ({-a, 0, +a}, 2-bit narrow) or ``"binary"`` ({-a, +a}, 1 bit).
    ``groups``: ``"layer"``, ``"channel"``, ``"row"`` (Conv2d) or ``"pixel"`` (Conv1d/Conv2d).
    ``eta``: threshold fraction of the layer's max |w|, ``0 <= eta < 1``.
    ``scale_bits``: ``None`` (float scales) or ``n >= 1``: scales ``s * k_g``, ``1 <= k_g < 2**n``.

    >>> from brevitas.nn import QuantConv2d
    >>> conv = QuantConv2d(8, 16, 3, weight_quant=syq_weight_quant("ternary", "pixel"))
    """
    if levels not in LEVELS:
        raise ValueError(f"levels must be one of {LEVELS}, got {levels!r}")
    if groups not in GROUPS:
        raise ValueError(f"groups must be one of {GROUPS}, got {groups!r}")
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not math.isfinite(eta) or not 0 <= eta < 1:
        raise ValueError(
            f"eta (threshold as a fraction of the layer's max |w|) must be a number with 0 <= eta < 1, got {eta!r}"
        )
    if scale_bits is not None and (isinstance(scale_bits, bool) or not isinstance(scale_bits, numbers.Integral)
                                   or not 1 <= scale_bits <= 16):
        raise ValueError(f"scale_bits must be None or an integer from 1 to 16, got {scale_bits!r}")
    attrs = dict(
        syq_levels=levels,
        syq_groups=groups,
        syq_eta=float(eta),
        syq_scale_bits=None if scale_bits is None else int(scale_bits),
        bit_width=2 if levels == "ternary" else 1,
    )
    name = f"Syq{levels.capitalize()}Per{groups.capitalize()}Weight" + (f"Scale{scale_bits}b" if scale_bits else "")
    return type(name, (SyqWeightQuantBase,), attrs)
