"""Section 7: steepest descent under a norm (67)-(69) and Muon, its spectral-norm case with momentum.

Muon (Jordan et al., 2024; Section 7 with Appendix Q.3.1), per matrix W with gradient G_t:

    M_t = mu M_{t-1} + (1 - mu) G_t                     (EMA momentum, M_0 = 0; torch.optim.Muon's ``lerp``)
    N_t = (1 - mu) G_t + mu M_t   if nesterov  else  M_t
    O_t = Orth(N_t) ~ U V^T       (Newton-Schulz (147), or exact SVD)
    W  <- (1 - eta_t lambda) W - eta_t a(m, n) O_t      (a: the ``adjust_lr`` ratio of the m x n matrix)

The EMA differs from the sum convention M_t = mu M_{t-1} + G_t of Jordan's first code only by the constant
factor (1 - mu) (also for the Nesterov term), which orthogonalization removes: both give the same O_t. A tensor
with more than two dimensions (a convolution weight (out, in, kh, kw)) is orthogonalized as its (out, in*kh*kw)
flattening and reshaped back.

Steepest descent (67)-(69) with the EMA above (when ``momentum > 0``) in place of G:
Delta_TR = -eta D(G) and Delta_MM = -eta ||G||_* D(G), D from :func:`adaptim.linalg.norms.steepest_direction`.

``*_single`` are literal loops over parameters; ``*_batched`` stack the matrices of one shape (and dtype and
device) and make one batched Newton-Schulz / SVD call per shape. The two agree to rounding, not bitwise: a batched
matrix product may round differently from the same products taken one at a time.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Optional, Sequence

import torch

from adaptim.functional.shampoo import matrix_view_shape
from adaptim.linalg.newton_schulz import newton_schulz, orthogonalize
from adaptim.linalg.norms import dual_norm, steepest_direction

__all__ = ["ADJUST_LR", "adjust_lr_ratio", "as_matrix", "muon_single", "muon_batched", "steepest_single",
           "steepest_batched"]

#: the accepted ``adjust_lr`` settings of Muon
ADJUST_LR = ("original", "match_rms_adamw", None)


def adjust_lr_ratio(shape: Sequence[int], adjust_lr: Optional[str]) -> float:
    """The factor a(m, n) multiplying Muon's lr for a parameter of ``shape`` (flattened to m x n).

    * "original" (Jordan et al., 2024): sqrt(max(1, m / n)); for U V^T of an m x n matrix this makes the update's
      RMS sqrt(min(m,n)/(mn)) * sqrt(max(1, m/n)) = 1/sqrt(n) in both the tall and wide case.
    * "match_rms_adamw" (Liu et al., 2025, "Muon is Scalable for LLM Training"): 0.2 * sqrt(max(m, n)), which gives
      the update an RMS of about 0.2, like AdamW's, so AdamW's lr and weight decay can be reused.
    * ``None``: 1.

    Raises:
        ValueError: unknown ``adjust_lr`` or a shape with fewer than 2 dimensions.
    """
    if adjust_lr not in ADJUST_LR:
        raise ValueError(f"adjust_lr must be one of {ADJUST_LR}, got {adjust_lr!r}")
    if len(shape) < 2:
        raise ValueError(f"adjust_lr_ratio needs a matrix shape, got {tuple(shape)}")
    m, n = matrix_view_shape(shape)
    if adjust_lr == "original":
        return math.sqrt(max(1.0, m / n))
    if adjust_lr == "match_rms_adamw":
        return 0.2 * math.sqrt(max(m, n))
    return 1.0


def as_matrix(t: torch.Tensor) -> torch.Tensor:
    """The matrix a tensor is treated as: (m, n) as is, (out, ...) as (out, prod(...)), a vector (n,) as an (n, 1)
    column and a scalar as (1, 1) (:func:`adaptim.functional.shampoo.matrix_view_shape`). A view where possible."""
    return t if t.dim() == 2 else t.reshape(matrix_view_shape(t.shape))


def _momentum_single(g: torch.Tensor, buf: torch.Tensor, momentum: float, nesterov: bool) -> torch.Tensor:
    buf.lerp_(g, 1 - momentum)
    return g.lerp(buf, momentum) if nesterov else buf


def _orth(X: torch.Tensor, orth: str, ns_coefficients, ns_steps: int) -> torch.Tensor:
    if orth == "newton_schulz":
        return newton_schulz(X, ns_coefficients, ns_steps)
    return orthogonalize(X, method=orth)


def muon_single(params, grads, momentum_buffers, *, lr: float, momentum: float, nesterov: bool,
                weight_decay: float = 0.0, adjust_lr: Optional[str] = "original", ns_coefficients="jordan",
                ns_steps: int = 5, orthogonalize: str = "newton_schulz") -> None:
    """One Muon step on each parameter, in place; the literal loop.

    Args:
        params: W_t, real tensors with at least 2 dimensions (float32/float64).
        grads: G_t, same shapes; read, never written.
        momentum_buffers: M_{t-1}, same shapes; updated in place to M_t.
        lr: eta_t (current, schedule-scaled).  momentum: mu in [0, 1).  nesterov: use N_t = (1-mu) G_t + mu M_t.
        weight_decay: lambda; decoupled, W <- (1 - eta_t lambda) W before the update (as torch.optim.Muon).
        adjust_lr: see :func:`adjust_lr_ratio`.
        ns_coefficients, ns_steps: see :func:`adaptim.linalg.newton_schulz`.
        orthogonalize: "newton_schulz" or "svd" (exact U V^T).
    """
    for w, g, buf in zip(params, grads, momentum_buffers):
        n = _momentum_single(g, buf, momentum, nesterov)
        o = _orth(as_matrix(n), orthogonalize, ns_coefficients, ns_steps).view_as(w)
        if weight_decay != 0:
            w.mul_(1 - lr * weight_decay)
        w.add_(o, alpha=-lr * adjust_lr_ratio(w.shape, adjust_lr))


def _by_shape(tensors: Sequence[torch.Tensor]) -> dict[tuple, list[int]]:
    """Indices of ``tensors`` grouped by (matrix shape, dtype, device), in first-seen order."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, t in enumerate(tensors):
        groups[(tuple(as_matrix(t).shape), t.dtype, t.device)].append(i)
    return groups


def muon_batched(params, grads, momentum_buffers, *, lr: float, momentum: float, nesterov: bool,
                 weight_decay: float = 0.0, adjust_lr: Optional[str] = "original", ns_coefficients="jordan",
                 ns_steps: int = 5, orthogonalize: str = "newton_schulz") -> None:
    """The step of :func:`muon_single` with foreach momentum and one batched orthogonalization per matrix shape."""
    if not params:
        return
    torch._foreach_lerp_(momentum_buffers, grads, 1 - momentum)
    updates = torch._foreach_lerp(grads, momentum_buffers, momentum) if nesterov else momentum_buffers
    if weight_decay != 0:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    for (shape, _, _), idx in _by_shape(params).items():
        stacked = torch.stack([as_matrix(updates[i]) for i in idx])
        ortho = _orth(stacked, orthogonalize, ns_coefficients, ns_steps)
        ws = [params[i] for i in idx]
        torch._foreach_add_(ws, [o.view_as(w) for o, w in zip(ortho.unbind(0), ws)],
                            alpha=-lr * adjust_lr_ratio(shape, adjust_lr))


def _steepest_delta(M: torch.Tensor, norm: str, rule: str) -> torch.Tensor:
    """D(M) for "trust_region", ||M||_* D(M) for "majorization" (69), on (..., m, n) matrices; sign not applied."""
    D = steepest_direction(M, norm)
    if rule == "trust_region":
        return D
    return D * dual_norm(M, norm)[..., None, None].to(D.dtype)


def steepest_single(params, grads, momentum_buffers, *, lr: float, norm: str, rule: str,
                    momentum: float = 0.0) -> None:
    """One steepest-descent step (69) on each parameter, in place; the literal loop.

    Args:
        params: W_t of any shape, viewed as matrices by :func:`as_matrix`.
        grads: G_t; read, never written.
        momentum_buffers: EMA buffers M_{t-1} (updated to M_t = mu M_{t-1} + (1-mu) G_t and used in place of G), or
            ``None`` when ``momentum == 0``.
        lr: eta_t.  norm: "spectral", "frobenius", "inf" (or "nuclear", "l1").
        rule: "trust_region" (W -= eta D) or "majorization" (W -= eta ||G||_* D).
    """
    for i, (w, g) in enumerate(zip(params, grads)):
        d = g if momentum_buffers is None else momentum_buffers[i].lerp_(g, 1 - momentum)
        delta = _steepest_delta(as_matrix(d), norm, rule)
        w.add_(delta.view_as(w), alpha=-lr)


def steepest_batched(params, grads, momentum_buffers, *, lr: float, norm: str, rule: str,
                     momentum: float = 0.0) -> None:
    """The step of :func:`steepest_single` with one batched direction (SVD) call per matrix shape."""
    if not params:
        return
    if momentum_buffers is not None:
        torch._foreach_lerp_(momentum_buffers, grads, 1 - momentum)
        grads = momentum_buffers
    for _, idx in _by_shape(params).items():
        delta = _steepest_delta(torch.stack([as_matrix(grads[i]) for i in idx]), norm, rule)
        ws = [params[i] for i in idx]
        torch._foreach_add_(ws, [d.view_as(w) for d, w in zip(delta.unbind(0), ws)], alpha=-lr)
