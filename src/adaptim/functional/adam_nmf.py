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

``adam_nmf_single`` is the literal loop; ``adam_nmf_batched`` stacks matrices of one shape and runs one batched
EM round and update per stack (equal to rounding). Factors and moments are updated in place.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from adaptim.linalg.nmf import nmf_step

__all__ = ["adam_nmf_single", "adam_nmf_batched", "floored_square", "REL_FLOOR", "ABS_FLOOR"]

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


def adam_nmf_single(params, grads, factors_a, factors_b, exp_avgs, steps, *, lr: float, beta1: float, eps: float,
                    weight_decay: float) -> None:
    """One AdamNMF step on each parameter, in place.

    Args:
        params, grads: W_t, G_t; real float32/float64 tensors of equal shapes (grads only read).
        factors_a, factors_b: A_{t-1} (..., m, r) and B_{t-1} (..., r, n) of each matrix parameter, replaced
            in place by A_t, B_t; ``None`` entries for vectors and scalars.
        exp_avgs: m_{t-1} per parameter when beta1 > 0, else ``None`` entries.
        steps: t per parameter (Python ints >= 1, already incremented).
        lr: eta_t (the group's current lr).   beta1: in [0, 1).   eps: >= 0, added to sqrt(A_t B_t).
        weight_decay: decoupled, W is multiplied by 1 - lr * weight_decay.
    """
    for i, (w, g) in enumerate(zip(params, grads)):
        c = floored_square(g)
        if factors_a[i] is not None:
            a, b = nmf_step(c, factors_a[i], factors_b[i], balance=True)
            factors_a[i].copy_(a)
            factors_b[i].copy_(b)
            den = (a @ b).sqrt_().add_(eps)
        else:
            den = c.sqrt().add_(eps)
        num = g
        if exp_avgs[i] is not None:
            m = exp_avgs[i]
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            num = m / (1 - beta1 ** steps[i])
        if weight_decay != 0:
            w.mul_(1 - lr * weight_decay)
        w.addcdiv_(num, den, value=-lr)


def adam_nmf_batched(params, grads, factors_a, factors_b, exp_avgs, steps, *, lr: float, beta1: float, eps: float,
                     weight_decay: float) -> None:
    """The step of :func:`adam_nmf_single` with parameters of one shape, dtype, device, rank and kind of state
    stacked: one batched EM round and one update per stack. Same arguments; equal to rounding."""
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for i, w in enumerate(params):
        rank = None if factors_a[i] is None else factors_a[i].shape[-1]
        buckets[(tuple(w.shape), w.dtype, w.device, rank, exp_avgs[i] is not None)].append(i)
    for (_, _, _, rank, momentum), idx in buckets.items():
        W = torch.stack([params[i] for i in idx])
        G = torch.stack([grads[i] for i in idx])
        C = floored_square(G, batch_dims=1)
        if rank is not None:
            A, B = nmf_step(C, torch.stack([factors_a[i] for i in idx]), torch.stack([factors_b[i] for i in idx]),
                            balance=True)
            torch._foreach_copy_([factors_a[i] for i in idx], list(A.unbind(0)))
            torch._foreach_copy_([factors_b[i] for i in idx], list(B.unbind(0)))
            den = (A @ B).sqrt_().add_(eps)
        else:
            den = C.sqrt().add_(eps)
        num = G
        if momentum:
            M = torch.stack([exp_avgs[i] for i in idx])
            M.mul_(beta1).add_(G, alpha=1 - beta1)
            corr = torch.tensor([1 - beta1 ** steps[i] for i in idx], dtype=W.dtype, device=W.device)
            num = M / corr.view(-1, *([1] * (W.dim() - 1)))
            torch._foreach_copy_([exp_avgs[i] for i in idx], list(M.unbind(0)))
        if weight_decay != 0:
            W.mul_(1 - lr * weight_decay)
        W.addcdiv_(num, den, value=-lr)
        torch._foreach_copy_([params[i] for i in idx], list(W.unbind(0)))
