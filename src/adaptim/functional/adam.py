"""The Adam family: Adam (46), AdamW and every flag of Figure 1, and Adam-atan2 (Section 4.1.2).

One rule covers them all (Figure 1, steps (b)-(e)):

    g   <- g + l2 * w                                   (Adam's L2 ``weight_decay``, as torch.optim.Adam)
    m_t  = b1 m + (1-b1) g,   v_t = b2 v + (1-b2) g^2
    mbar = m_t / (1-b1^t)   or, Nesterov (Dozat, Section 4.3),  b1/(1-b1^(t+1)) m_t + (1-b1)/(1-b1^t) g
    vbar = v_t / (1-b2^t);    AMSGrad: vmax = max(vmax, vbar) *after* bias correction, vbar <- vmax
    w   <- (1 - decay) w - lr * mbar / den,   den = sqrt(vbar) + eps   (4.1.1)   or   sqrt(vbar + eps) (Fig. 1)
    Adam-atan2 replaces mbar/den by  a * atan2(mbar, b * sqrt(vbar))  (no eps; atan2(0, 0) = 0).

With eps = 0 a zero denominator is replaced by 1: a coordinate whose gradients have all been zero stays put
(0/0 := 0, as atan2(0, 0) = 0) instead of becoming NaN, and one whose v underflowed moves by a finite amount.

``adam_single`` is the literal loop, ``adam_foreach`` the same arithmetic op for op with ``torch._foreach_*``
kernels (bitwise equal). ``grads`` are read, never written; moments are updated in place.
"""

from __future__ import annotations

import torch

__all__ = ["adam_single", "adam_foreach", "bias_corrections"]


def bias_corrections(step: int, beta1: float, beta2: float, nesterov: bool) -> tuple[float, float, float]:
    """Return (coefficient of m_t, coefficient of g_t, 1 - b2^t) of Figure 1 (b) at step ``step`` (>= 1)."""
    bc1 = 1 - beta1 ** step
    if nesterov:
        return beta1 / (1 - beta1 ** (step + 1)), (1 - beta1) / bc1, 1 - beta2 ** step
    return 1 / bc1, 0.0, 1 - beta2 ** step


def adam_single(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, *, lr: float, beta1: float,
                beta2: float, eps: float, l2: float = 0.0, decay: float = 0.0, amsgrad: bool = False,
                nesterov: bool = False, eps_inside_sqrt: bool = False,
                atan2: tuple[float, float] | None = None) -> None:
    """One step of Figure 1 on each parameter, in place.

    Args:
        params, grads, exp_avgs, exp_avg_sqs: w_t, g_t, m_{t-1}, v_{t-1}; real tensors of equal shapes.
        max_exp_avg_sqs: the running max of the bias-corrected vbar (AMSGrad), or ``None``.
        steps: t for each parameter (Python ints, already incremented, >= 1).
        lr: eta_t = s_t * eta_max.   decay: lambda_t of Figure 1 (d), a fraction in [0, 1).
        l2: the coefficient of the L2 term added to the gradient (torch.optim.Adam's ``weight_decay``).
        atan2: ``(a, b)`` for Adam-atan2, or ``None``.
    """
    for i, (w, g, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        cm, cg, bc2 = bias_corrections(steps[i], beta1, beta2, nesterov)
        if l2 != 0:
            g = g.add(w, alpha=l2)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        mbar = m.mul(cm)
        if nesterov:
            mbar.add_(g.mul(cg))
        vbar = v.div(bc2)
        if amsgrad:
            torch.maximum(max_exp_avg_sqs[i], vbar, out=max_exp_avg_sqs[i])
            vbar = max_exp_avg_sqs[i].clone()
        if decay != 0:
            w.mul_(1 - decay)
        if atan2 is not None:
            a, b = atan2
            u = torch.atan2(mbar, vbar.sqrt_().mul_(b))
            w.add_(u, alpha=-lr * a)
        else:
            den = vbar.add_(eps).sqrt_() if eps_inside_sqrt else vbar.sqrt_().add_(eps)
            if eps == 0:
                den.masked_fill_(den == 0, 1.0)  # 0/0 := 0, as atan2(0, 0) = 0
            w.addcdiv_(mbar, den, value=-lr)


def adam_foreach(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, *, lr: float, beta1: float,
                 beta2: float, eps: float, l2: float = 0.0, decay: float = 0.0, amsgrad: bool = False,
                 nesterov: bool = False, eps_inside_sqrt: bool = False,
                 atan2: tuple[float, float] | None = None) -> None:
    """The same step as :func:`adam_single` with ``torch._foreach_*`` kernels (bitwise equal)."""
    if not params:
        return
    coeffs = [bias_corrections(t, beta1, beta2, nesterov) for t in steps]
    if l2 != 0:
        grads = torch._foreach_add(grads, params, alpha=l2)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    mbar = torch._foreach_mul(exp_avgs, [c[0] for c in coeffs])
    if nesterov:
        torch._foreach_add_(mbar, torch._foreach_mul(grads, [c[1] for c in coeffs]))
    vbar = torch._foreach_div(exp_avg_sqs, [c[2] for c in coeffs])
    if amsgrad:
        torch._foreach_maximum_(max_exp_avg_sqs, vbar)
        vbar = torch._foreach_mul(max_exp_avg_sqs, 1.0)
    if decay != 0:
        torch._foreach_mul_(params, 1 - decay)
    if atan2 is not None:
        a, b = atan2
        torch._foreach_sqrt_(vbar)
        torch._foreach_mul_(vbar, b)
        u = [torch.atan2(x, y) for x, y in zip(mbar, vbar)]  # no foreach atan2 kernel in torch
        torch._foreach_add_(params, u, alpha=-lr * a)
    else:
        if eps_inside_sqrt:
            torch._foreach_add_(vbar, eps)
            torch._foreach_sqrt_(vbar)
        else:
            torch._foreach_sqrt_(vbar)
            torch._foreach_add_(vbar, eps)
        if eps == 0:
            for den in vbar:
                den.masked_fill_(den == 0, 1.0)
        torch._foreach_addcdiv_(params, mbar, vbar, value=-lr)
