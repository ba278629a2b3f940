"""The Adam family: Adam (46), AdamW and every flag of Figure 1, and Adam-atan2 (Section 4.1.2).

One rule covers them all (Figure 1, steps (b)-(e)); each line names the shared helper that computes it::

    g   <- g + l2 * w                                   (Adam's L2 ``weight_decay``, as torch.optim.Adam; add_l2)
    m_t  = b1 m + (1-b1) g,   v_t = b2 v + (1-b2) g^2   (ema_, ema_sq_; m_0 = v_0 = 0)
    mbar = m_t / (1-b1^t)   or, Nesterov (Dozat, Section 4.3),  b1/(1-b1^(t+1)) m_t + (1-b1)/(1-b1^t) g
    vbar = v_t / (1-b2^t)                               (46), bias_correction
           AMSGrad: vmax = max(vmax, vbar) *after* bias correction, vbar <- vmax   (Section 4.2)
    d_t  = mbar / den,   den = sqrt(vbar) + eps   (4.1.1)   or   sqrt(vbar + eps)   (Fig. 1 (e))
           Adam-atan2 (Section 4.1.2): d_t = a * atan2(mbar, b * sqrt(vbar))   (no eps; atan2(0, 0) = 0)
    w   <- (1 - lambda_t) w - eta_t d_t                 (Fig. 1 (d), the last stage: apply_update_)

With eps = 0 a zero denominator is replaced by 1 (safe_denominator_): a coordinate whose gradients have all been
zero stays put (0/0 := 0, as atan2(0, 0) = 0) instead of becoming NaN, and one whose v underflowed moves by a
finite amount.

``adam_direction_single`` is the literal loop computing d_t, ``adam_direction_foreach`` the same arithmetic op for op
with ``torch._foreach_*`` kernels (bitwise equal). ``adam_single`` / ``adam_foreach`` are the whole step: d_t, then
the last stage ``step_fn`` (default :func:`~adaptim.functional.common.apply_update_`). ``grads`` are read, never
written; moments are updated in place. Besides the state, each parameter needs two temporaries (mbar, which
becomes d_t, and vbar, which becomes den).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from adaptim.functional.common import add_l2, apply_update_, bias_correction, ema_, ema_sq_, safe_denominator_

__all__ = ["adam_single", "adam_foreach", "adam_direction_single", "adam_direction_foreach", "bias_corrections"]


def bias_corrections(step: int, beta1: float, beta2: float, nesterov: bool) -> tuple[float, float, float]:
    """Return (coefficient of m_t, coefficient of g_t, 1 - b2^t) of Figure 1 (b) at step ``step`` (>= 1)."""
    bc1 = bias_correction(beta1, step)
    if nesterov:
        return beta1 / bias_correction(beta1, step + 1), (1 - beta1) / bc1, bias_correction(beta2, step)
    return 1 / bc1, 0.0, bias_correction(beta2, step)


def _direction(
    w,
    g,
    m,
    v,
    vmax,
    step: int,
    *,
    beta1: float,
    beta2: float,
    eps: float,
    l2: float,
    amsgrad: bool,
    nesterov: bool,
    eps_inside_sqrt: bool,
    atan2: tuple[float, float] | None,
) -> torch.Tensor:
    cm, cg, bc2 = bias_corrections(step, beta1, beta2, nesterov)
    g = add_l2(g, w, l2)
    ema_(m, g, beta1)
    ema_sq_(v, g, beta2)
    mbar = m.mul(cm)
    if nesterov:
        mbar.add_(g.mul(cg))
    vbar = v.div(bc2)
    if amsgrad:
        torch.maximum(vmax, vbar, out=vmax)
        vbar.copy_(vmax)
    if atan2 is not None:
        a, b = atan2
        d = torch.atan2(mbar, vbar.sqrt_().mul_(b), out=mbar)
        return d.mul_(a) if a != 1 else d
    den = vbar.add_(eps).sqrt_() if eps_inside_sqrt else vbar.sqrt_().add_(eps)
    safe_denominator_(den, eps)  # 0/0 := 0, as atan2(0, 0) = 0
    return mbar.div_(den)


def adam_direction_single(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    max_exp_avg_sqs,
    steps,
    *,
    beta1: float,
    beta2: float,
    eps: float,
    l2: float = 0.0,
    amsgrad: bool = False,
    nesterov: bool = False,
    eps_inside_sqrt: bool = False,
    atan2: tuple[float, float] | None = None,
) -> list[torch.Tensor]:
    """The direction d_t of Figure 1 (module doc) for each parameter, updating the moments in place.

    Args:
        params, grads, exp_avgs, exp_avg_sqs: w_t, g_t, m_{t-1}, v_{t-1}; real tensors of equal shapes (params
            and grads are read only).
        max_exp_avg_sqs: the running max of the bias-corrected vbar (AMSGrad), or ``None``.
        steps: t for each parameter (Python ints, already incremented, >= 1).
        beta1, beta2: in [0, 1).   eps: >= 0 (unused with ``atan2``).
        l2: the coefficient of the L2 term added to the gradient (torch.optim.Adam's ``weight_decay``).
        atan2: ``(a, b)`` for Adam-atan2, or ``None``.

    Returns:
        d_t per parameter, new tensors of the parameters' shapes and dtypes.
    """
    kw = dict(
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        l2=l2,
        amsgrad=amsgrad,
        nesterov=nesterov,
        eps_inside_sqrt=eps_inside_sqrt,
        atan2=atan2,
    )
    return [
        _direction(w, g, m, v, max_exp_avg_sqs[i] if amsgrad else None, steps[i], **kw)
        for i, (w, g, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs))
    ]


def adam_direction_foreach(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    max_exp_avg_sqs,
    steps,
    *,
    beta1: float,
    beta2: float,
    eps: float,
    l2: float = 0.0,
    amsgrad: bool = False,
    nesterov: bool = False,
    eps_inside_sqrt: bool = False,
    atan2: tuple[float, float] | None = None,
) -> list[torch.Tensor]:
    """The same directions as :func:`adam_direction_single` with ``torch._foreach_*`` kernels (bitwise equal)."""
    if not params:
        return []
    coeffs = [bias_corrections(t, beta1, beta2, nesterov) for t in steps]
    grads = add_l2(grads, params, l2)
    ema_(exp_avgs, grads, beta1)
    ema_sq_(exp_avg_sqs, grads, beta2)
    mbar = torch._foreach_mul(exp_avgs, [c[0] for c in coeffs])
    if nesterov:
        torch._foreach_add_(mbar, torch._foreach_mul(grads, [c[1] for c in coeffs]))
    vbar = torch._foreach_div(exp_avg_sqs, [c[2] for c in coeffs])
    if amsgrad:
        torch._foreach_maximum_(max_exp_avg_sqs, vbar)
        torch._foreach_copy_(vbar, max_exp_avg_sqs)
    if atan2 is not None:
        a, b = atan2
        torch._foreach_sqrt_(vbar)
        torch._foreach_mul_(vbar, b)
        for x, y in zip(mbar, vbar):  # no foreach atan2 kernel in torch
            torch.atan2(x, y, out=x)
        if a != 1:
            torch._foreach_mul_(mbar, a)
        return list(mbar)
    if eps_inside_sqrt:
        torch._foreach_add_(vbar, eps)
        torch._foreach_sqrt_(vbar)
    else:
        torch._foreach_sqrt_(vbar)
        torch._foreach_add_(vbar, eps)
    safe_denominator_(vbar, eps)
    torch._foreach_div_(mbar, vbar)
    return list(mbar)


def adam_single(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    max_exp_avg_sqs,
    steps,
    *,
    lr: float,
    decay: float = 0.0,
    step_fn: Callable = apply_update_,
    **rule: Any,
) -> None:
    """One step of Figure 1 on each parameter, in place: d_t of :func:`adam_direction_single`, then
    ``step_fn(w, d, lr, decay)`` per parameter (default: w <- (1 - decay) w - lr d).

    Args:
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps: as :func:`adam_direction_single`.
        lr: eta_t = s_t * eta_max.   decay: lambda_t of Figure 1 (d), a fraction in [0, 1).
        step_fn: the last stage, ``step_fn(params, directions, lr, decay)`` (one tensor or lists of them).
        rule: the keywords of :func:`adam_direction_single` (``beta1``, ``beta2``, ``eps``, ``l2``, ``amsgrad``,
            ``nesterov``, ``eps_inside_sqrt``, ``atan2``).
    """
    directions = adam_direction_single(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, **rule)
    for w, d in zip(params, directions):
        step_fn(w, d, lr, decay)


def adam_foreach(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    max_exp_avg_sqs,
    steps,
    *,
    lr: float,
    decay: float = 0.0,
    step_fn: Callable = apply_update_,
    **rule: Any,
) -> None:
    """The same step as :func:`adam_single` with ``torch._foreach_*`` kernels (bitwise equal); ``step_fn`` is
    called once, on the lists. Same arguments."""
    if not params:
        return
    directions = adam_direction_foreach(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, **rule)
    step_fn(params, directions, lr, decay)
