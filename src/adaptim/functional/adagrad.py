"""AdaGrad: diagonal (44), the scalar step (33) and the full-matrix preconditioner of Section 3.2.1.

Diagonal AdaGrad comes as a literal loop (``adagrad_single``) and a ``torch._foreach_*`` version
(``adagrad_foreach``) with the same arithmetic op for op. ``grads`` are read, never written.
"""

from __future__ import annotations

import torch

from adaptim.linalg import psd_power

__all__ = ["adagrad_single", "adagrad_foreach", "adagrad_norm_step", "full_matrix_adagrad_single"]


def adagrad_single(params: list[torch.Tensor], grads: list[torch.Tensor], sums: list[torch.Tensor], *,
                   lr: float, eps: float, weight_decay: float) -> None:
    """Diagonal AdaGrad (44): S_t = S_{t-1} + g_t^2, w <- w - lr * g_t / (sqrt(S_t) + eps).

    eps sits outside the root, as in ``torch.optim.Adagrad``; ``weight_decay`` adds the L2 term to g_t first.
    With ``eps == 0`` a zero denominator is replaced by 1, so a coordinate whose gradients have all been zero
    stays put (0/0 := 0) instead of becoming NaN.

    Args:
        params: parameters (any shape), updated in place.
        grads: gradients, same shapes.
        sums: accumulators S_{t-1} (initially ``initial_accumulator_value``), updated in place to S_t.
    """
    for w, g, s in zip(params, grads, sums):
        if weight_decay != 0:
            g = g.add(w, alpha=weight_decay)
        s.addcmul_(g, g)
        den = s.sqrt().add_(eps)
        if eps == 0:
            den.masked_fill_(den == 0, 1.0)  # 0/0 := 0: a never-seen coordinate stays put
        w.addcdiv_(g, den, value=-lr)


def adagrad_foreach(params: list[torch.Tensor], grads: list[torch.Tensor], sums: list[torch.Tensor], *,
                    lr: float, eps: float, weight_decay: float) -> None:
    """The same step as :func:`adagrad_single` with ``torch._foreach_*`` kernels (bitwise equal)."""
    if not params:
        return
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_addcmul_(sums, grads, grads)
    den = torch._foreach_sqrt(sums)
    torch._foreach_add_(den, eps)
    if eps == 0:
        for d in den:
            d.masked_fill_(d == 0, 1.0)
    torch._foreach_addcdiv_(params, grads, den, value=-lr)


def adagrad_norm_step(params: list[torch.Tensor], grads: list[torch.Tensor], sum_sq: float, *, lr: float,
                      eps: float, foreach: bool = True) -> float:
    """The scalar AdaGrad step (33): eta_t = D / sqrt(sum_{l<=t} ||g_l||^2), w <- w - eta_t g_t.

    ``lr`` plays D (a distance, in parameter units); the norm is taken over all of ``params`` together; ``eps``
    is added to the root so that an all-zero first gradient leaves the parameters unchanged.

    Args:
        sum_sq: sum_{l<t} ||g_l||^2 so far (a Python float, 0.0 at the start).

    Returns:
        The new sum, sum_{l<=t} ||g_l||^2.
    """
    # One float64 reduction for both paths: a float32 foreach norm would make the paths (and dtypes) disagree.
    sq = sum(float(g.double().pow(2).sum()) for g in grads)
    sum_sq = sum_sq + sq
    if sum_sq == 0:  # every gradient so far is zero: nothing to move, whatever eps (also eps = 0)
        return sum_sq
    eta = lr / (sum_sq ** 0.5 + eps)
    if foreach:
        torch._foreach_add_(params, grads, alpha=-eta)
    else:
        for w, g in zip(params, grads):
            w.add_(g, alpha=-eta)
    return sum_sq


def full_matrix_adagrad_single(params: list[torch.Tensor], grads: list[torch.Tensor],
                               outer_sums: list[torch.Tensor], *, lr: float, eps: float) -> None:
    """Full-matrix AdaGrad (Section 3.2.1): O_t = O_{t-1} + g g^T, w <- w - lr (O_t + eps I)^{-1/2} g.

    Each parameter is flattened (row-major) to a vector of length d. The inverse root comes from a symmetric
    eigendecomposition of O_t (eigenvalues clamped at 0, then damped by eps), computed in float64. Eigenvalues
    below float64's unit roundoff times the largest one are rounding noise and are first raised to that floor
    (``psd_power``'s ``rtol``, as Shampoo does): otherwise eps^{-1/2} amplifies the noise directions and the first
    step, lr g / ||g|| in exact arithmetic, is off by about ||g|| 1e-16 eps^{-1/2} (76x at ||g|| = 1e12).

    Args:
        outer_sums: O_{t-1}, one float64 tensor per parameter, of shape (d, d) or (*w.shape, *w.shape) (viewed as
            (d, d)), updated in place.
    """
    for w, g, o in zip(params, grads, outer_sums):
        gv = g.reshape(-1).to(torch.float64)
        o = o.view(gv.numel(), gv.numel())
        o.addr_(gv, gv)
        direction = psd_power(o, -0.5, eps=eps, rtol=torch.finfo(o.dtype).eps) @ gv
        w.add_(direction.reshape(w.shape).to(w.dtype), alpha=-lr)
