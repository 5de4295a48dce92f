"""`ExactAbsorbedThresholds`: redo FINN's float32 threshold absorption in exact arithmetic.

FINN's streamlining folds the float scales and biases in front of a ``MultiThreshold`` into its
thresholds with float32 arithmetic (``AbsorbMulIntoMultiThreshold`` divides by fl32(c),
``AbsorbAddIntoMultiThreshold`` subtracts, ``CollapseRepeatedMul`` multiplies scales): a threshold
that should be an exact integer (a tie, e.g. after a 6x6 average pool's 1/36 or a float-scale
quantizer) can land one ulp above it and switch a channel one step late. Upstream problem: FINN+
1.6.1 streamlining transformations compute constants in float32.

This pass compares a graph before the absorption (``reference``, e.g. the input of streamlining)
with the graph after it: the k-th thresholding node of each (``MultiThreshold`` or FINN's HW
``Thresholding``, graph order) must apply the same thresholds ``T`` to inputs related by a
per-channel affine map ``z = a * u + b`` (``u`` the new input, ``z`` the original one).
``a`` and ``b`` are solved exactly from exact evaluations (`finn_transforms.exact`) of both graphs
on probe inputs and checked on every probed element; where ``u`` is integer-valued the thresholds
become ``ceil((T - b) / a)`` (for ``a > 0``), exact for every integer input. Thresholds where the map
cannot be established (non-affine, constant channel, ``a <= 0``, non-integer ``u``) are left as FINN
computed them.

Beyond 2^24 an integer threshold ``t`` is exact as any float32 in ``(t - 1, t]``; where there is none
(native minifloat accumulators: E4M3 x INT8 sums reach 2^27, and a BatchNorm scale gives their
thresholds up to 27 significant bits) the node's whole threshold tensor is stored as float64 (exact
integers up to 2^53): FINN's execution and our exact executors compare with it as stored, and our
``step_minimize_bit_width`` keeps it (`finn_transforms.transformation.round_and_clip_float64_thresholds`;
upstream: FINN+ 1.6.1's ``RoundAndClipThresholds`` casts thresholds back to float32). Where a
``MultiThreshold``'s exact thresholds lie beyond 2^53 (E5M2 native accumulators reach 2^72) the
node also gets their int64 residual as input 2 (`finn_transforms.wide_thresholds`: exact at any
width; FINN's HW conversion then makes it a ``WideThresholding``). Only thresholds of a node that
cannot take a residual (a HW layer other than ``MultiThreshold``) keep FINN's value beyond 2^53 and are
counted: the model's metadata ``INEXACT_THRESHOLDS_KEY`` records how many and the first node, a
warning names them, and ``verify`` reports them.
"""

from __future__ import annotations

import json
import math
import warnings
from fractions import Fraction

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from finn_transforms.exact import Exact, ExactError, execute_exact_hw
from finn_transforms.exact.hw_executor import generic_op_type
from finn_transforms.wide_thresholds import FLOAT64_EXACT, attach_residual, split

__all__ = ["ExactAbsorbedThresholds", "INEXACT_THRESHOLDS_KEY", "float32_threshold"]

#: Model metadata: ``{"count": n, "first": node name}`` of thresholds no float32 or float64 holds exactly.
INEXACT_THRESHOLDS_KEY = "inexact_float32_thresholds"

_RANK_LAYOUT = {2: "NC", 3: "NWC", 4: "NCHW"}
_THRESHOLDING = ("MultiThreshold", "Thresholding")
_SCALES = (0.01, 0.1, 0.5, 1.0, 2.0, 8.0, 64.0)


def _layout(node, rank: int) -> str:
    if generic_op_type(node) == "Thresholding":
        return "N" * (rank - 1) + "C"  # FINN HW layers are channels-last
    for a in node.attribute:
        if a.name == "data_layout" and a.s:
            return a.s.decode()
    return _RANK_LAYOUT.get(rank, "NC")


def _channels_last(x: Exact, node) -> np.ndarray:
    """Object array of Fractions, shape (elements, C), channel axis from the node's layout."""
    layout = _layout(node, x.ndim)
    cdim = layout.index("C") if "C" in layout else 1
    moved = np.moveaxis(x.fractions(), cdim, -1)
    return moved.reshape(-1, moved.shape[-1])


def float32_threshold(t: int) -> np.float32 | None:
    """A float32 in ``(t - 1, t]`` (the same decisions as integer threshold ``t`` on integer inputs), or None."""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return f if float(f) > t - 1 else None


def _affine(u: np.ndarray, z: np.ndarray) -> tuple[Fraction, Fraction] | None:
    """Exact ``(a, b)`` with ``z == a * u + b`` on every pair, or None."""
    distinct = {}
    for ui, zi in zip(u, z):
        distinct.setdefault(ui, zi)
        if len(distinct) == 2:
            break
    if len(distinct) < 2:
        return None
    (u1, z1), (u2, z2) = distinct.items()
    a = (z1 - z2) / (u1 - u2)
    b = z1 - a * u1
    if any(zi != a * ui + b for ui, zi in zip(u, z)):
        return None
    return a, b


class ExactAbsorbedThresholds(Transformation):
    """Recompute streamlined MultiThreshold thresholds exactly from the pre-streamlining graph."""

    def __init__(self, reference: ModelWrapper, probes: int = len(_SCALES), seed: int = 0):
        super().__init__()
        self.reference = reference
        self.probes = probes
        self.seed = seed
        self.fixed = 0  # thresholds changed by the last apply()
        self.inexact: dict[str, int] = {}  # node -> thresholds no float32 holds (last apply())

    def _probe_inputs(self, model: ModelWrapper) -> list[np.ndarray]:
        name = model.graph.input[0].name
        shape = [d if d > 0 else 1 for d in model.get_tensor_shape(name)]
        rng = np.random.default_rng(self.seed)
        return [(rng.standard_normal(shape) * _SCALES[i % len(_SCALES)]).astype(np.float32) for i in range(self.probes)]

    def apply(self, model: ModelWrapper):
        self.fixed, self.inexact = 0, {}
        before = [n for n in self.reference.graph.node if generic_op_type(n) in _THRESHOLDING]
        after = [n for n in model.graph.node if generic_op_type(n) in _THRESHOLDING]
        if not after or len(before) != len(after):
            return model, False
        pairs = {i: ([], []) for i in range(len(after))}
        try:
            for x in self._probe_inputs(model):
                z_all = execute_exact_hw(self.reference, x, return_all=True)
                u_all = execute_exact_hw(model, x, return_all=True)
                for i, (nb, na) in enumerate(zip(before, after)):
                    pairs[i][0].append(_channels_last(u_all[na.input[0]], na))
                    pairs[i][1].append(_channels_last(z_all[nb.input[0]], nb))
        except ExactError:
            return model, False  # a graph the exact evaluator cannot run: leave FINN's thresholds
        for i, (nb, na) in enumerate(zip(before, after)):
            self.fixed += self._fix(model, nb, na, np.concatenate(pairs[i][0]), np.concatenate(pairs[i][1]))
        if self.inexact:
            count, first = sum(self.inexact.values()), next(iter(self.inexact))
            model.set_metadata_prop(INEXACT_THRESHOLDS_KEY, json.dumps({"count": count, "first": first}))
            warnings.warn(
                f"{count} thresholds in {len(self.inexact)} node(s) (first: {first!r}) lie beyond 2^53 with no exact "
                "float32 or float64 value; they decide differently from the exact model for some inputs", stacklevel=2,
            )
        return model, False

    def _fix(self, model: ModelWrapper, nb, na, u: np.ndarray, z: np.ndarray) -> int:
        t_before = self.reference.get_initializer(nb.input[1])
        t_after = model.get_initializer(na.input[1])
        if t_before is None or t_after is None or u.shape[1] != z.shape[1]:
            return 0
        if any(Fraction(v).denominator != 1 for v in u.ravel()):
            return 0
        channels = u.shape[1]
        rows_b, rows_a = t_before.shape[0], t_after.shape[0]
        if t_before.shape[1] != t_after.shape[1] or rows_b not in (1, channels) or rows_a not in (1, channels):
            return 0
        new = np.array(t_after, dtype=np.float64)
        if rows_a == 1 and channels > 1:
            new = np.repeat(new, channels, axis=0)
        # clipped at 0 on unsigned inputs (FINN's thresholding asserts non-negative thresholds there);
        # not at the datatype's other bounds: after streamlining a MatMul's INT32 is qonnx's default, not a
        # bound (native accumulators exceed it), and clipping there would change decisions
        dt = model.get_tensor_datatype(na.input[0])
        lo = 0 if dt.is_integer() and not dt.signed() else None
        exact: dict[tuple[int, int], int] = {}
        for c in range(channels):
            ab = _affine(u[:, c], z[:, c])
            if ab is None or ab[0] <= 0:
                continue
            a, b = ab
            for j, t in enumerate(np.asarray(t_before[c if rows_b > 1 else 0], dtype=np.float64)):
                if math.isfinite(t):
                    e = math.ceil((Fraction(float(t)) - b) / a)
                    exact[c, j] = e if lo is None else max(e, lo)
        held = {cj: float32_threshold(e) for cj, e in exact.items()}
        wide = any(h is None for h in held.values())  # some threshold needs float64 (module docstring)
        beyond = wide and any(abs(e) > FLOAT64_EXACT for e in exact.values())  # some needs a residual
        carried = beyond and na.op_type == "MultiThreshold"
        residual = np.zeros(new.shape, dtype=np.int64)
        changed = 0
        for (c, j), e in exact.items():
            if beyond and abs(e) > FLOAT64_EXACT:
                if not carried:  # no float64 and no residual input: keep FINN's value, counted
                    self.inexact[na.name] = self.inexact.get(na.name, 0) + 1
                    continue
                hi, r = split([e])
                value, residual[c, j] = float(hi[0]), r[0]
            else:
                value = float(e) if wide else float(held[c, j])
            if new[c, j] != value:
                new[c, j] = value
                changed += 1
        if changed or wide:
            if rows_a == 1 and (new == new[0]).all() and (residual == residual[0]).all():
                new, residual = new[:1], residual[:1]  # shared thresholds stay one row (FINN's RTL generator then stores one channel per PE)
            model.set_initializer(na.input[1], new if wide else new.astype(np.float32))
            if carried:
                attach_residual(model, na, residual)
        return changed
