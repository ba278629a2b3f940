"""RMSProp with momentum (45): EMA moments, no bias correction, eps outside the root.

``rmsprop_single`` is the literal loop; ``rmsprop_foreach`` the same arithmetic with ``torch._foreach_*`` kernels
(bitwise equal). ``grads`` are read, never written.
"""

from __future__ import annotations

import torch

__all__ = ["rmsprop_single", "rmsprop_foreach"]


def rmsprop_single(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor] | None,
                   exp_avg_sqs: list[torch.Tensor], *, lr: float, beta1: float, beta2: float, eps: float,
                   weight_decay: float) -> None:
    """One RMSProp step (45): m_t = b1 m + (1-b1) g, v_t = b2 v + (1-b2) g^2, w <- w - lr m_t/(sqrt(v_t)+eps).

    With ``beta1 == 0`` no first moment is kept (``exp_avgs`` is ``None``) and m_t = g_t, which is
    ``torch.optim.RMSprop(alpha=beta2)``. ``weight_decay`` adds the L2 term to g_t first. With ``eps == 0`` a zero
    denominator is replaced by 1, so a coordinate whose gradients have all been zero does not become NaN.
    """
    for i, (w, g, v) in enumerate(zip(params, grads, exp_avg_sqs)):
        if weight_decay != 0:
            g = g.add(w, alpha=weight_decay)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        if beta1 != 0:
            m = exp_avgs[i]
            m.lerp_(g, 1 - beta1)
            g = m
        den = v.sqrt().add_(eps)
        if eps == 0:
            den.masked_fill_(den == 0, 1.0)  # 0/0 := 0: a never-seen coordinate stays put
        w.addcdiv_(g, den, value=-lr)


def rmsprop_foreach(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor] | None,
                    exp_avg_sqs: list[torch.Tensor], *, lr: float, beta1: float, beta2: float, eps: float,
                    weight_decay: float) -> None:
    """The same step as :func:`rmsprop_single` with ``torch._foreach_*`` kernels (bitwise equal)."""
    if not params:
        return
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    if beta1 != 0:
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        grads = exp_avgs
    den = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(den, eps)
    if eps == 0:
        for d in den:
            d.masked_fill_(d == 0, 1.0)
    torch._foreach_addcdiv_(params, grads, den, value=-lr)
