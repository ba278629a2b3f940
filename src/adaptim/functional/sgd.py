"""SGD, Polyak heavy-ball and Nesterov momentum: notes (21), (25)-(26), (28)-(31) and Section 2.3.1.

The update, with L2 coefficient wd (as ``torch.optim.SGD``'s ``weight_decay``) and momentum mu::

    g   <- g_t + wd * w_t                                   (L2, added to the gradient)
    d_t  = g                                     mu = 0     (21)
    v_t  = g + mu v_{t-1},  d_t = v_t            mu > 0     (25)-(26), Polyak heavy ball, v_0 = 0
    d_t  = g + mu v_t                            nesterov   (Section 2.3.1, the double-momentum form)
    w_{t+1} = w_t - eta_t d_t                               (21)/(26), the last stage: apply_update_

The literal Nesterov look-ahead (28)-(31) evaluates the gradient elsewhere::

    x_t  = w_t - eta_t mu v_{t-1}                           (28)  :func:`lookahead_point`
    g'_t = grad l_t(x_t) + wd * x_t                         (29)  (the L2 term at x_t as well)
    v_t  = g'_t + mu v_{t-1},   w_{t+1} = w_t - eta_t v_t   (30)-(31)  heavy ball with g'_t

``sgd_direction_single`` / ``sgd_direction_foreach`` compute d_t (the literal loop over tensors, and the same
arithmetic op for op with ``torch._foreach_*`` kernels: bitwise equal); ``sgd_single`` / ``sgd_foreach`` are the
whole step, d_t followed by the last stage ``step_fn``.

All tensors are real (float32 or float64). ``grads`` are read, never written. ``bufs`` are the velocities
``v_{t-1}`` (zeros at ``t = 1``, the notes' ``v_0 = 0``), updated in place to ``v_t``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from adaptim.functional.common import add_l2, apply_update_

__all__ = ["sgd_single", "sgd_foreach", "sgd_direction_single", "sgd_direction_foreach", "lookahead_point"]


def _direction(
    w: torch.Tensor, g: torch.Tensor, v: torch.Tensor | None, momentum: float, nesterov: bool, weight_decay: float
) -> torch.Tensor:
    g = add_l2(g, w, weight_decay)
    if momentum != 0:
        v.mul_(momentum).add_(g)
        g = g.add(v, alpha=momentum) if nesterov else v
    return g


def sgd_direction_single(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    bufs: list[torch.Tensor] | None,
    *,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
) -> list[torch.Tensor]:
    """The direction d_t of each parameter (see the module doc), updating the velocities in place.

    Args:
        params: parameters w_t, each of any shape; read only (the L2 term).
        grads: gradients g_t, one per parameter, same shapes and dtypes; read only.
        bufs: velocities v_{t-1} (same shapes), updated to v_t; ``None`` when ``momentum == 0``.
        momentum: mu in [0, 1).   nesterov: the double-momentum direction g + mu v_t.
        weight_decay: the L2 coefficient wd >= 0.

    Returns:
        d_t per parameter: ``grads[i]`` itself (mu = 0, wd = 0) or ``bufs[i]`` itself (heavy ball) where no new
        tensor is needed; treat them as read only.
    """
    return [
        _direction(w, g, bufs[i] if momentum != 0 else None, momentum, nesterov, weight_decay)
        for i, (w, g) in enumerate(zip(params, grads))
    ]


def sgd_direction_foreach(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    bufs: list[torch.Tensor] | None,
    *,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
) -> list[torch.Tensor]:
    """The same directions as :func:`sgd_direction_single` with ``torch._foreach_*`` kernels (bitwise equal)."""
    if not params:
        return []
    grads = add_l2(grads, params, weight_decay)
    if momentum != 0:
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, grads)
        grads = torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
    return list(grads)


def sgd_single(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    bufs: list[torch.Tensor] | None,
    *,
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
    step_fn: Callable = apply_update_,
) -> None:
    """One SGD step on each parameter, in place: d_t of :func:`sgd_direction_single`, then
    ``step_fn(w, d, lr, 0.0)`` per parameter (default: w <- w - lr d, (21)/(26)).

    Args:
        params: parameters w_t, each of any shape; updated in place.
        grads: gradients g_t, one per parameter, same shapes and dtypes.
        bufs: velocities v_{t-1} (same shapes), or ``None`` when ``momentum == 0``.
        lr: eta_t, in parameter units per gradient unit.
        step_fn: the last stage, ``step_fn(params, directions, lr, decay)`` (one tensor or lists of them).
    """
    for i, (w, g) in enumerate(zip(params, grads)):
        step_fn(w, _direction(w, g, bufs[i] if momentum != 0 else None, momentum, nesterov, weight_decay), lr, 0.0)


def sgd_foreach(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    bufs: list[torch.Tensor] | None,
    *,
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
    step_fn: Callable = apply_update_,
) -> None:
    """The same step as :func:`sgd_single` with ``torch._foreach_*`` kernels (bitwise equal); ``step_fn`` is
    called once, on the lists."""
    if not params:
        return
    step_fn(
        params,
        sgd_direction_foreach(params, grads, bufs, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay),
        lr,
        0.0,
    )


def lookahead_point(
    params: list[torch.Tensor], bufs: list[torch.Tensor], *, lr: float, momentum: float, foreach: bool = True
) -> list[torch.Tensor]:
    """The look-ahead points x_t = w_t - eta_t mu v_{t-1} of (28), as new tensors (``params`` and ``bufs`` are read).

    Args:
        params: w_t, float32/float64, any shapes.
        bufs: the velocities v_{t-1}, same shapes and dtypes (zeros before the first step: x_1 = w_1).
        lr: eta_t, the group's current lr.   momentum: mu.
        foreach: use ``torch._foreach_*`` kernels (bitwise equal to the per-tensor loop).
    """
    if foreach:
        return list(torch._foreach_sub(params, torch._foreach_mul(bufs, lr * momentum))) if params else []
    return [w.sub(v * (lr * momentum)) for w, v in zip(params, bufs)]
