"""Muon (Section 7 with Appendix Q.3.1; Jordan et al., 2024): momentum, then orthogonalize, then step.

Per matrix W with gradient G_t, in three stages:

    momentum        M_t = mu M_{t-1} + (1 - mu) G_t          (EMA momentum, M_0 = 0; torch.optim.Muon's ``lerp``)
                    N_t = (1 - mu) G_t + mu M_t   if nesterov  else  M_t
    orthogonalize   D_t = a(m, n) Orth(N_t),  Orth(N) ~ U V^T of N = U S V^T  (Newton-Schulz (147), or exact SVD;
                    the spectral-norm steepest direction of (69))
    step            W <- (1 - eta_t lambda) W - eta_t D_t     (decoupled decay lambda_t = eta_t lambda with the
                    unadjusted lr, as torch.optim.Muon)

The stages are :func:`muon_momentum_`, :func:`muon_directions` and the common last stage
:func:`adaptim.functional.common.apply_update_`.

a(m, n) is the ``adjust_lr`` ratio of the m x n matrix (:func:`adjust_lr_ratio`). The EMA differs from the sum
convention M_t = mu M_{t-1} + G_t of Jordan's first code only by the constant factor (1 - mu) (also for the Nesterov
term), which orthogonalization removes: both give the same O_t. A zero gradient leaves M at 0 (the EMA of zeros), so
the step after an all-zero first gradient is a fresh optimizer's first step. A tensor with more than two dimensions
(a convolution weight (out, in, kh, kw)) is orthogonalized as its (out, in*kh*kw) flattening
(:func:`adaptim.linalg.as_matrix`) and reshaped back. A method that ends differently (a retraction onto the sphere
or the Stiefel manifold) replaces only the last stage.

``muon_single`` is the literal loop over parameters; ``muon_batched`` stacks the matrices of one shape (and dtype
and device) and makes one batched Newton-Schulz / SVD call per shape, with each Newton-Schulz step written as fused
matrix multiply-adds (``newton_schulz(..., fused=True)``). The two agree to rounding, not bitwise: a batched,
fused matrix product rounds differently from the same products taken one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from adaptim.functional.common import StepFn, apply_update_, bucket_indices, ema_, stack
from adaptim.linalg.newton_schulz import newton_schulz, orthogonalize
from adaptim.linalg.views import as_matrix, matrix_view_shape
from adaptim.validation import check_choice

__all__ = ["ADJUST_LR", "adjust_lr_ratio", "muon_momentum_", "muon_directions", "muon_single", "muon_batched"]

#: the accepted ``adjust_lr`` settings of Muon
ADJUST_LR = ("original", "match_rms_adamw", None)


def adjust_lr_ratio(shape: Sequence[int], adjust_lr: str | None) -> float:
    """The factor a(m, n) multiplying Muon's lr for a parameter of ``shape`` (flattened to m x n).

    * "original" (Jordan et al., 2024): sqrt(max(1, m / n)); for U V^T of an m x n matrix this makes the update's
      RMS sqrt(min(m,n)/(mn)) * sqrt(max(1, m/n)) = 1/sqrt(n) in both the tall and wide case.
    * "match_rms_adamw" (Liu et al., 2025, "Muon is Scalable for LLM Training"): 0.2 * sqrt(max(m, n)), which gives
      the update an RMS of about 0.2, like AdamW's, so AdamW's lr and weight decay can be reused.
    * ``None``: 1.

    Raises:
        ValueError: unknown ``adjust_lr`` or a shape with fewer than 2 dimensions.
    """
    check_choice("adjust_lr", adjust_lr, ADJUST_LR)
    if len(shape) < 2:
        raise ValueError(f"adjust_lr_ratio needs a matrix shape, got {tuple(shape)}")
    m, n = matrix_view_shape(shape)
    if adjust_lr == "original":
        return math.sqrt(max(1.0, m / n))
    if adjust_lr == "match_rms_adamw":
        return 0.2 * math.sqrt(max(m, n))
    return 1.0


def muon_momentum_(
    grads: list[torch.Tensor],
    momentum_buffers: list[torch.Tensor],
    *,
    momentum: float,
    nesterov: bool,
    foreach: bool = True,
) -> list[torch.Tensor]:
    """The momentum stage: M_t = mu M_{t-1} + (1 - mu) G_t in place, and N_t returned.

    Args:
        grads: G_t (any shapes, float32/float64); read, never written.
        momentum_buffers: M_{t-1}, same shapes; updated in place to M_t.
        momentum: mu in [0, 1).   nesterov: N_t = (1 - mu) G_t + mu M_t (new tensors) instead of M_t.
        foreach: use ``torch._foreach_*`` kernels (same arithmetic as the loop, bitwise).

    Returns:
        N_t per parameter: the buffers themselves without Nesterov.
    """
    if not foreach:
        out = []
        for g, buf in zip(grads, momentum_buffers):
            ema_(buf, g, momentum)
            out.append(g.lerp(buf, momentum) if nesterov else buf)
        return out
    if not grads:
        return []
    ema_(momentum_buffers, grads, momentum)
    return list(torch._foreach_lerp(grads, momentum_buffers, momentum)) if nesterov else list(momentum_buffers)


def _orth(X: torch.Tensor, orth: str, ns_coefficients, ns_steps: int, ns_dtype, fused: bool) -> torch.Tensor:
    if orth == "newton_schulz":
        return newton_schulz(X, ns_coefficients, ns_steps, dtype=ns_dtype, fused=fused)
    return orthogonalize(X, method=orth)


def muon_directions(
    updates: list[torch.Tensor],
    *,
    adjust_lr: str | None = "original",
    ns_coefficients="jordan",
    ns_steps: int = 5,
    orthogonalize: str = "newton_schulz",
    batched: bool = True,
    ns_dtype: str | torch.dtype | None = None,
) -> list[torch.Tensor]:
    """The orthogonalization stage: D = a(m, n) Orth(N) for each N of ``updates`` (read only).

    Args:
        updates: N_t, tensors with at least 2 dimensions (float32/float64), each viewed as a matrix by
            :func:`adaptim.linalg.as_matrix`.
        adjust_lr: see :func:`adjust_lr_ratio`; the ratio is folded into the direction.
        ns_coefficients, ns_steps: see :func:`adaptim.linalg.newton_schulz`.
        orthogonalize: "newton_schulz" or "svd" (exact U V^T).
        batched: one Newton-Schulz / SVD call per (matrix shape, dtype, device) instead of one per tensor, with
            the fused multiply-add form of the Newton-Schulz step; ``False`` is the literal reference.
        ns_dtype: the precision of Newton-Schulz (``dtype`` of :func:`adaptim.linalg.newton_schulz`): None (float32,
            float64 for float64 tensors), "float32", "float64" or "bfloat16"; ignored by "svd".

    Returns:
        New tensors of the updates' shapes and dtypes.
    """
    out: list[torch.Tensor] = [None] * len(updates)  # type: ignore[list-item]
    if not batched:
        for k, n in enumerate(updates):
            out[k] = _orth(as_matrix(n), orthogonalize, ns_coefficients, ns_steps, ns_dtype, False).view_as(n)
            a = adjust_lr_ratio(n.shape, adjust_lr)
            if a != 1:
                out[k].mul_(a)
        return out
    buckets = bucket_indices(updates, key=lambda k, t: (matrix_view_shape(t.shape), t.dtype, t.device))
    for (shape, _, _), idx in buckets.items():
        ortho = _orth(stack(updates, idx, as_matrix), orthogonalize, ns_coefficients, ns_steps, ns_dtype, True)
        a = adjust_lr_ratio(shape, adjust_lr)
        if a != 1:
            ortho.mul_(a)
        for k, o in zip(idx, ortho.unbind(0)):
            out[k] = o.view_as(updates[k])
    return out


def _muon(
    params,
    grads,
    momentum_buffers,
    *,
    lr,
    momentum,
    nesterov,
    weight_decay,
    adjust_lr,
    ns_coefficients,
    ns_steps,
    orthogonalize,
    step,
    batched,
    ns_dtype=None,
) -> None:
    if not params:
        return
    updates = muon_momentum_(grads, momentum_buffers, momentum=momentum, nesterov=nesterov, foreach=batched)
    directions = muon_directions(
        updates,
        adjust_lr=adjust_lr,
        ns_coefficients=ns_coefficients,
        ns_steps=ns_steps,
        orthogonalize=orthogonalize,
        batched=batched,
        ns_dtype=ns_dtype,
    )
    step(params, directions, lr, lr * weight_decay)


def muon_single(
    params,
    grads,
    momentum_buffers,
    *,
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float = 0.0,
    adjust_lr: str | None = "original",
    ns_coefficients="jordan",
    ns_steps: int = 5,
    orthogonalize: str = "newton_schulz",
    step: StepFn = apply_update_,
    ns_dtype: str | torch.dtype | None = None,
) -> None:
    """One Muon step on each parameter, in place; the literal loop of the module's three stages.

    Args:
        params: W_t, real tensors with at least 2 dimensions (float32/float64).
        grads: G_t, same shapes; read, never written.
        momentum_buffers: M_{t-1}, same shapes; updated in place to M_t.
        lr: eta_t (current, schedule-scaled).  momentum: mu in [0, 1).  nesterov: use N_t = (1-mu) G_t + mu M_t.
        weight_decay: lambda; decoupled, W <- (1 - eta_t lambda) W before the update (as torch.optim.Muon).
        adjust_lr: see :func:`adjust_lr_ratio`.
        ns_coefficients, ns_steps: see :func:`adaptim.linalg.newton_schulz`.
        orthogonalize: "newton_schulz" or "svd" (exact U V^T).
        ns_dtype: the precision of Newton-Schulz: None (float32; float64 for float64 tensors), "float32",
            "float64" or "bfloat16" (see :func:`muon_directions`).
        step: the last stage ``step(params, directions, lr, decay)``; default
            :func:`adaptim.functional.common.apply_update_`.
    """
    _muon(**locals(), batched=False)


def muon_batched(
    params,
    grads,
    momentum_buffers,
    *,
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float = 0.0,
    adjust_lr: str | None = "original",
    ns_coefficients="jordan",
    ns_steps: int = 5,
    orthogonalize: str = "newton_schulz",
    step: StepFn = apply_update_,
    ns_dtype: str | torch.dtype | None = None,
) -> None:
    """The step of :func:`muon_single` with foreach momentum and one batched orthogonalization per matrix shape
    (Newton-Schulz in its fused multiply-add form)."""
    _muon(**locals(), batched=True)
