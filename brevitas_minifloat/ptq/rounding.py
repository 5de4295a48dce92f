"""Weight rounding on the format's own grid, with fixed per-output-channel scales.

Both methods see a layer as a matrix product ``Y = X W^T`` (a convolution via its unfolded input,
``X: [rows, C_in * k]``, ``W: [C_out, C_in * k]``) and choose, for every weight, a value on the grid
``s_c * g`` (``g`` in `QuantSpec.weight_grid`, ``s_c`` the channel's scale, fixed beforehand):

- `gptq`: GPTQ's column-by-column quantization with error feedback through the inverse Hessian of
  the layer's squared output error (Frantar et al., 2023), ``H = 2 X^T X / rows`` with 1% damping and
  columns processed in decreasing ``diag(H)`` order ("act order"). Each column is rounded to the
  *nearest grid value*, so it works unchanged for integers and minifloats. (Brevitas' own GPTQ
  recomputes the per-channel stats scale on every column slice and ends up changing nothing,
  docs/design.md, "Upstream workarounds"; fixing the scale first avoids that.)
- `learned_round`: AdaRound-style (Nagel et al., 2020) optimisation of a per-weight offset ``h`` in
  [0, 1] between the two *neighbouring grid values* (the minifloat grid is not uniform, so the
  offset is taken between the actual neighbours, not ``floor``/``floor+1``), rectified sigmoid
  parametrisation, relative output error plus an annealed regulariser pushing ``h`` to 0 or 1, then
  hard rounding at ``h >= 0.5``.

Both keep round-to-nearest for a layer if their result has a larger output error than
round-to-nearest, measured on held-out calibration rows when there are few rows per weight
(`round_layer`), so that they do not make a layer worse by overfitting a small calibration batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class _StopForward(Exception):
    pass


def layer_inputs(model: nn.Module, layer: nn.Module, batches: list[torch.Tensor]) -> torch.Tensor:
    """The inputs ``layer`` receives when ``model`` runs on ``batches``, concatenated (forward
    passes stop at the layer)."""
    seen = []

    def hook(module, inp):
        x = inp[0]
        seen.append((x.value if hasattr(x, "value") else x).detach())
        raise _StopForward

    handle = layer.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            for batch in batches:
                try:
                    model(batch)
                except _StopForward:
                    pass
    finally:
        handle.remove()
    return torch.cat(seen)


def unfold(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` such that the layer's output (without bias) is ``rows @ W.reshape(C_out, -1).T``."""
    if isinstance(layer, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if isinstance(layer, nn.Conv1d):
        x = x.unsqueeze(-1)
        k, d, p, s = (layer.kernel_size[0], 1), (layer.dilation[0], 1), (layer.padding[0], 0), (layer.stride[0], 1)
    else:
        k, d, p, s = layer.kernel_size, layer.dilation, layer.padding, layer.stride
    if isinstance(p, str):
        raise ValueError(f"padding={p!r} is not supported by GPTQ / learned rounding")
    cols = F.unfold(x, k, dilation=d, padding=p, stride=s)  # [N, C*k, L]
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def round_to_grid(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Nearest value of the sorted ``grid`` (clamped to its ends)."""
    idx = torch.searchsorted(grid, x.contiguous()).clamp(1, len(grid) - 1)
    lo, hi = grid[idx - 1], grid[idx]
    return torch.where(x - lo <= hi - x, lo, hi)


def grid_neighbours(x: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lo, hi)``: the grid values just below (or equal) and just above ``x``; both equal the end
    value outside the grid's range."""
    idx = torch.searchsorted(grid, x.contiguous(), right=True)
    lo = grid[(idx - 1).clamp(0, len(grid) - 1)]
    hi = grid[idx.clamp(0, len(grid) - 1)]
    lo = torch.where(x < grid[0], grid[0], lo)
    return lo, hi


def output_error(x: torch.Tensor, w_ref: torch.Tensor, w_q: torch.Tensor) -> float:
    """Mean squared difference of ``x @ w_ref.T`` and ``x @ w_q.T``."""
    return float(((x @ (w_ref - w_q).T) ** 2).mean())


def rtn(w: torch.Tensor, scale: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return scale[:, None] * round_to_grid(w / scale[:, None], grid)


def gptq(w: torch.Tensor, x: torch.Tensor, scale: torch.Tensor, grid: torch.Tensor, *, damp: float = 0.01,
         act_order: bool = True) -> torch.Tensor:
    """GPTQ on the grid: ``w [C_out, K]`` float weights, ``x [rows, K]`` layer inputs, ``scale [C_out]``."""
    w = w.detach().double().clone()
    x = x.detach().double()
    s = scale.detach().double()
    g = grid.double()
    h = 2.0 * x.T @ x / max(len(x), 1)
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    perm = torch.argsort(torch.diag(h), descending=True) if act_order else torch.arange(w.shape[1])
    w, h = w[:, perm], h[perm][:, perm]
    h += damp * torch.mean(torch.diag(h)) * torch.eye(len(h), dtype=h.dtype)
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    q = torch.zeros_like(w)
    for i in range(w.shape[1]):
        col = w[:, i]
        q[:, i] = s * round_to_grid(col / s, g)
        err = (col - q[:, i]) / u[i, i]
        w[:, i + 1:] -= err[:, None] * u[i, i + 1:][None, :]
    return q[:, torch.argsort(perm)].float()


def learned_round(w: torch.Tensor, x: torch.Tensor, scale: torch.Tensor, grid: torch.Tensor, *,
                  iters: int = 300, lr: float = 1e-2, reg: float = 0.01, beta: tuple[float, float] = (20.0, 2.0),
                  warmup: float = 0.2, batch_rows: int = 1024, seed: int = 0) -> torch.Tensor:
    """AdaRound between neighbouring grid values (see module docstring); returns hard-rounded weights."""
    zeta, gamma = 1.1, -0.1
    w = w.detach().float()
    x = x.detach().float()
    s = scale.detach().float()[:, None]
    lo, hi = grid_neighbours(w / s, grid.float())
    gap = hi - lo
    rest = torch.where(gap > 0, (w / s - lo) / torch.where(gap > 0, gap, 1.0), torch.zeros_like(w))
    p = ((rest - gamma) / (zeta - gamma)).clamp(1e-4, 1 - 1e-4)
    v = torch.nn.Parameter(torch.log(p / (1 - p)))
    opt = torch.optim.Adam([v], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for t in range(iters):
        rows = x if len(x) <= batch_rows else x[torch.randint(len(x), (batch_rows,), generator=gen)]
        h = (torch.sigmoid(v) * (zeta - gamma) + gamma).clamp(0, 1)
        w_soft = s * (lo + h * gap)
        target = rows @ w.T
        loss = ((rows @ w_soft.T - target) ** 2).mean() / (target.pow(2).mean() + 1e-12)
        if t >= warmup * iters:
            frac = (t - warmup * iters) / max(1.0, (1 - warmup) * iters)
            b = beta[1] + 0.5 * (beta[0] - beta[1]) * (1 + math.cos(math.pi * frac))
            loss = loss + reg * (1 - (2 * h - 1).abs().pow(b)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        h = (torch.sigmoid(v) * (zeta - gamma) + gamma).clamp(0, 1)
        return s * (lo + (h >= 0.5).float() * gap)


def weight_scale(layer: nn.Module) -> torch.Tensor:
    """The layer's per-output-channel weight scale ``[C_out]`` (initialising it if needed)."""
    with torch.no_grad():
        scale = layer.quant_weight().scale.detach()
    scale = scale.reshape(-1)
    if scale.numel() == 1:
        scale = scale.expand(layer.weight.shape[0])
    return scale.float()


def round_layer(layer: nn.Module, x: torch.Tensor, grid: np.ndarray, method: str, *, seed: int = 0, **kwargs) -> dict:
    """Replace ``layer.weight`` by ``method``-rounded weights (on the grid of its fixed scale);
    ``x`` are the layer's inputs. Returns ``{"method", "rtn_error", "error"}``.

    Guard against overfitting: with fewer than ``10 * K`` input rows (``K`` = fan-in; e.g. a
    400-input linear layer calibrated on 256 images) the method fits on 80% of the rows and is
    accepted only if it beats round-to-nearest on the other 20%; otherwise all rows are used for both.
    """
    if getattr(layer, "groups", 1) != 1:
        return {"method": "rtn (grouped convolution)", "rtn_error": None, "error": None}
    scale = weight_scale(layer)
    w = layer.weight.detach().reshape(len(scale), -1).float()
    rows = unfold(layer, x).float()
    fit = check = rows
    if len(rows) < 10 * w.shape[1] and len(rows) >= 10:
        perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
        cut = int(0.8 * len(rows))
        fit, check = rows[perm[:cut]], rows[perm[cut:]]
    g = torch.as_tensor(grid, dtype=torch.float32)
    base = rtn(w, scale, g)
    if method == "gptq":
        q = gptq(w, fit, scale, g, **kwargs)
    elif method == "learned_round":
        q = learned_round(w, fit, scale, g, seed=seed, **kwargs)
    else:
        raise ValueError(f"unknown rounding method {method!r}")
    err_rtn, err = output_error(check, w, base), output_error(check, w, q)
    if err > err_rtn:
        q, err, method = base, err_rtn, f"rtn ({method} was worse on {'held-out' if check is not rows else 'calibration'} rows)"
    with torch.no_grad():
        layer.weight.copy_(q.reshape(layer.weight.shape))
    return {"method": method, "rtn_error": err_rtn, "error": err}
