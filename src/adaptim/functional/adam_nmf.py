"""AdamNMF (Appendix L.2): Adam whose second moment is a rank-r NMF of G_t^2, refit by one EM round per step.

For a parameter W (m x n, or (..., m, n) factored over its last two dimensions) with gradient G_t at step t:

    C_t      = G_t^2 + f_t,  f_t = max(REL_FLOOR mean(G_t^2), ABS_FLOOR)   (1e-10 and 1e-30; mean per matrix)
    A_t, B_t = nmf_step(C_t, A_{t-1}, B_{t-1})                 one EM round (124), warm-started     L.2 (b)
    N_t      = G_t  (beta1 = 0),  or  m_t / (1 - beta1^t),  m_t = beta1 m_{t-1} + (1 - beta1) G_t
    W_{t+1}  = (1 - lr weight_decay) W_t - lr N_t / (sqrt(A_t B_t) + eps)                          L.2 (c)

A_0, B_0 ~ Unif(0, init_range] (L.2 step 1) are drawn by the optimizer class. The one EM round is
:func:`adaptim.linalg.nmf.nmf_step`, whose B-normalization uses the updated A_t (see its module doc: the box's
A_{t-1}^T 1 would make the step non-monotone and let the scale of A_t B_t oscillate). It is called with
``balance=True``: each component's scale is shared equally by A_t and B_t (A_t B_t unchanged), so factors fit to
gradients of 1e-20 and then refit to gradients of 1e18 stay within float32 (A alone would carry 1e39).

The floor f_t (not in the box) keeps every entry of C_t positive, so no factor row or column is driven to exactly
0 (from which a multiplicative update never returns) by a gradient row that happens to vanish. It is relative to
the matrix's mean square because the fit of an entry whose row *and* column vanish is about f_t^2 / mean(C_t):
with an absolute 1e-30 that underflows float32, and when the entry's gradient returns, R = C / AB overflows to
inf (a test shows it). With the relative floor such entries stay near 1e-20 mean(G^2). Its effect on the step is
that of an epsilon inside the root of 1e-5 RMS(G): only entries below that size are damped. The absolute 1e-30
covers an all-zero gradient.

The box keeps no EMA of the second moment: A_t B_t follows the current G_t^2 (for r = 1 exactly: one EM round
from any positive start gives the closed-form rank-1 fit).

Vectors and scalars (elementwise rule): sqrt(A_t B_t) is replaced by sqrt(g_t^2 + f_t) (f_t from the vector's
mean square), i.e. W <- (1 - lr wd) W - lr N_t / (sqrt(g_t^2 + f_t) + eps). This is what the matrix rule gives
a 1 x n matrix at any rank that fits it exactly (one EM round at r = 1 does), and Adam with beta2 = 0 up to the
floor: sign descent when beta1 = 0.

In stages: :func:`adam_nmf_directions` refits the factors, updates the first moment and returns the direction
D_t = N_t / (sqrt(A_t B_t) + eps); the step W <- (1 - lr weight_decay) W - lr D_t is the common last stage
(:func:`adaptim.functional.common.apply_update_`, or a replacement).

``adam_nmf_single`` is the literal loop; ``adam_nmf_batched`` stacks matrices of one shape and runs one batched
EM round per stack (equal to rounding). Factors and moments are updated in place.
"""

from __future__ import annotations

import torch

from adaptim.functional.common import StepFn, apply_update_, bias_correction, bucket_indices, ema_, stack, unstack_
from adaptim.linalg.nmf import nmf_step

__all__ = ["adam_nmf_single", "adam_nmf_batched", "adam_nmf_directions", "floored_square", "REL_FLOOR", "ABS_FLOOR"]

#: the floor added to G^2 is max(REL_FLOOR * mean(G^2), ABS_FLOOR), the mean over each matrix (or vector)
REL_FLOOR = 1e-10
ABS_FLOOR = 1e-30


def floored_square(g: torch.Tensor, batch_dims: int = 0) -> torch.Tensor:
    """C = g^2 + max(REL_FLOOR mean(g^2), ABS_FLOOR), the mean taken over the last two dimensions of a matrix
    (each leading index separately) or over a whole vector/scalar. ``batch_dims`` leading dimensions of a
    stack are kept apart too (vectors/scalars of a stack: mean over everything but the first dimension)."""
    g2 = g * g
    if g.dim() - batch_dims >= 2:
        dims = (-2, -1)
    else:
        dims = tuple(range(batch_dims, g.dim()))
    mean = g2.mean(dim=dims, keepdim=True) if dims else g2
    return g2 + torch.clamp(mean * REL_FLOOR, min=ABS_FLOOR)


def _direction_single(g, a, b, m, t, *, beta1, eps) -> torch.Tensor:
    c = floored_square(g)
    if a is not None:
        a_new, b_new = nmf_step(c, a, b, balance=True)
        a.copy_(a_new)
        b.copy_(b_new)
        den = (a_new @ b_new).sqrt_().add_(eps)
    else:
        den = c.sqrt().add_(eps)
    num = g
    if m is not None:
        ema_(m, g, beta1)
        num = m / bias_correction(beta1, t)
    return num / den


def _directions_batched(grads, factors_a, factors_b, exp_avgs, steps, *, beta1, eps) -> list[torch.Tensor]:
    out: list[torch.Tensor] = [None] * len(grads)  # type: ignore[list-item]
    buckets = bucket_indices(
        grads,
        key=lambda i, g: (
            tuple(g.shape),
            g.dtype,
            g.device,
            None if factors_a[i] is None else factors_a[i].shape[-1],
            exp_avgs[i] is not None,
        ),
    )
    for (*_, rank, momentum), idx in buckets.items():
        G = stack(grads, idx)
        C = floored_square(G, batch_dims=1)
        if rank is not None:
            A, B = nmf_step(C, stack(factors_a, idx), stack(factors_b, idx), balance=True)
            unstack_(factors_a, idx, A)
            unstack_(factors_b, idx, B)
            den = (A @ B).sqrt_().add_(eps)
        else:
            den = C.sqrt().add_(eps)
        num = G
        if momentum:
            M = stack(exp_avgs, idx)
            ema_(M, G, beta1)
            corr = torch.tensor([bias_correction(beta1, steps[i]) for i in idx], dtype=G.dtype, device=G.device)
            num = M / corr.view(-1, *([1] * (G.dim() - 1)))
            unstack_(exp_avgs, idx, M)
        for i, d in zip(idx, (num / den).unbind(0)):
            out[i] = d
    return out


def adam_nmf_directions(
    grads, factors_a, factors_b, exp_avgs, steps, *, beta1: float, eps: float, batched: bool = True
) -> list[torch.Tensor]:
    """Refit the factors and the first moment in place; return D_t = N_t / (sqrt(A_t B_t) + eps) per parameter
    (vectors and scalars: N_t / (sqrt(g_t^2 + f_t) + eps)).

    Args:
        grads: G_t; real float32/float64 tensors (only read).
        factors_a, factors_b: A_{t-1} (..., m, r) and B_{t-1} (..., r, n) of each matrix parameter, replaced
            in place by A_t, B_t; ``None`` entries for vectors and scalars.
        exp_avgs: m_{t-1} per parameter when beta1 > 0, else ``None`` entries.
        steps: t per parameter (Python ints >= 1, already incremented).
        beta1: in [0, 1).   eps: >= 0, added to sqrt(A_t B_t).
        batched: stack parameters of one shape, dtype, device, rank and kind of state: one EM round per stack.

    Returns:
        New tensors of the gradients' shapes.
    """
    if batched:
        return _directions_batched(grads, factors_a, factors_b, exp_avgs, steps, beta1=beta1, eps=eps)
    return [
        _direction_single(*args, beta1=beta1, eps=eps) for args in zip(grads, factors_a, factors_b, exp_avgs, steps)
    ]


def _adam_nmf(
    params, grads, factors_a, factors_b, exp_avgs, steps, *, lr, beta1, eps, weight_decay, step, batched
) -> None:
    if params:
        step(
            params,
            adam_nmf_directions(grads, factors_a, factors_b, exp_avgs, steps, beta1=beta1, eps=eps, batched=batched),
            lr,
            lr * weight_decay,
        )


def adam_nmf_single(
    params,
    grads,
    factors_a,
    factors_b,
    exp_avgs,
    steps,
    *,
    lr: float,
    beta1: float,
    eps: float,
    weight_decay: float,
    step: StepFn = apply_update_,
) -> None:
    """One AdamNMF step on each parameter, in place (the literal loop).

    :func:`adam_nmf_directions` (whose arguments these are), then the last stage
    ``step(params, D, lr, lr * weight_decay)``: W <- (1 - lr weight_decay) W - lr D by default
    (:func:`adaptim.functional.common.apply_update_`).

    Args:
        params: W_t; real float32/float64 tensors, updated in place.
        lr: eta_t (the group's current lr).   weight_decay: >= 0, decoupled.
    """
    _adam_nmf(**locals(), batched=False)


def adam_nmf_batched(
    params,
    grads,
    factors_a,
    factors_b,
    exp_avgs,
    steps,
    *,
    lr: float,
    beta1: float,
    eps: float,
    weight_decay: float,
    step: StepFn = apply_update_,
) -> None:
    """The step of :func:`adam_nmf_single` with parameters of one shape, dtype, device, rank and kind of state
    stacked: one batched EM round per stack. Same arguments; equal to rounding."""
    _adam_nmf(**locals(), batched=True)
