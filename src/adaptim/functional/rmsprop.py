"""RMSProp with momentum (45): EMA moments, no bias correction, eps outside the root.

With L2 coefficient wd::

    g   <- g_t + wd * w_t                          (L2, added to the gradient)
    v_t  = b2 v_{t-1} + (1 - b2) g * g             (v_0 = 0)
    m_t  = b1 m_{t-1} + (1 - b1) g                 (m_0 = 0; with b1 = 0 none is kept and m_t = g)
    d_t  = m_t / (sqrt(v_t) + eps)                 (eps = 0: a zero denominator counts as 1, so 0/0 := 0)
    w_{t+1} = w_t - eta_t d_t                      (45), the last stage

With b1 = 0 this is ``torch.optim.RMSprop(alpha=b2, momentum=0)``.

``rmsprop_direction_single`` is the literal loop computing d_t, ``rmsprop_direction_foreach`` the same arithmetic
with ``torch._foreach_*`` kernels (bitwise equal); ``rmsprop_single`` / ``rmsprop_foreach`` are the whole step, d_t
followed by the last stage ``step_fn``. ``grads`` are read, never written.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from adaptim.functional.common import add_l2, apply_update_, ema_, ema_sq_, safe_denominator_

__all__ = ["rmsprop_single", "rmsprop_foreach", "rmsprop_direction_single", "rmsprop_direction_foreach"]


def _direction(w, g, m, v, beta1: float, beta2: float, eps: float, weight_decay: float) -> torch.Tensor:
    g = add_l2(g, w, weight_decay)
    ema_sq_(v, g, beta2)
    if beta1 != 0:
        ema_(m, g, beta1)
        g = m
    den = v.sqrt().add_(eps)
    safe_denominator_(den, eps)  # 0/0 := 0: a never-seen coordinate stays put
    return torch.div(g, den, out=den)


def rmsprop_direction_single(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor] | None,
    exp_avg_sqs: list[torch.Tensor],
    *,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> list[torch.Tensor]:
    """The directions d_t = m_t / (sqrt(v_t) + eps) of (45) (module doc), updating the moments in place.

    Args:
        params: w_t, real tensors of any shapes; read only (the L2 term).
        grads: g_t, same shapes; read only.
        exp_avgs: m_{t-1}, or ``None`` when ``beta1 == 0`` (no first moment is kept).
        exp_avg_sqs: v_{t-1}.
        beta1, beta2: in [0, 1).   eps: >= 0.   weight_decay: the L2 coefficient wd >= 0.

    Returns:
        d_t per parameter, new tensors of the parameters' shapes and dtypes.
    """
    return [
        _direction(w, g, exp_avgs[i] if beta1 != 0 else None, v, beta1, beta2, eps, weight_decay)
        for i, (w, g, v) in enumerate(zip(params, grads, exp_avg_sqs))
    ]


def rmsprop_direction_foreach(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor] | None,
    exp_avg_sqs: list[torch.Tensor],
    *,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> list[torch.Tensor]:
    """The same directions as :func:`rmsprop_direction_single` with ``torch._foreach_*`` kernels (bitwise equal)."""
    if not params:
        return []
    grads = add_l2(grads, params, weight_decay)
    ema_sq_(exp_avg_sqs, grads, beta2)
    if beta1 != 0:
        ema_(exp_avgs, grads, beta1)
        grads = exp_avgs
    den = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(den, eps)
    safe_denominator_(den, eps)
    return list(torch._foreach_div(grads, den))


def rmsprop_single(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor] | None,
    exp_avg_sqs: list[torch.Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step_fn: Callable = apply_update_,
) -> None:
    """One RMSProp step (45) on each parameter, in place: d_t of :func:`rmsprop_direction_single`, then
    ``step_fn(w, d, lr, 0.0)`` per parameter (default: w <- w - lr d).

    ``step_fn`` is the last stage, ``step_fn(params, directions, lr, decay)`` (one tensor or lists of them).
    """
    for i, (w, g, v) in enumerate(zip(params, grads, exp_avg_sqs)):
        d = _direction(w, g, exp_avgs[i] if beta1 != 0 else None, v, beta1, beta2, eps, weight_decay)
        step_fn(w, d, lr, 0.0)


def rmsprop_foreach(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor] | None,
    exp_avg_sqs: list[torch.Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step_fn: Callable = apply_update_,
) -> None:
    """The same step as :func:`rmsprop_single` with ``torch._foreach_*`` kernels (bitwise equal); ``step_fn`` is
    called once, on the lists."""
    if not params:
        return
    step_fn(
        params,
        rmsprop_direction_foreach(
            params, grads, exp_avgs, exp_avg_sqs, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay
        ),
        lr,
        0.0,
    )
