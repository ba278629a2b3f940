"""SGD, Polyak heavy-ball and Nesterov (double-momentum) updates: notes (21), (25)-(26), Section 2.3.1.

Each rule comes twice: ``*_single`` is the literal loop over tensors, ``*_foreach`` the same arithmetic, op for op,
with ``torch._foreach_*`` kernels, so that both give bitwise the same parameters and state.

All tensors are real (float32 or float64). ``grads`` are read, never written. ``bufs`` are the velocities
``v_{t-1}`` (zeros at ``t = 1``, the notes' ``v_0 = 0``), updated in place to ``v_t``.
"""

from __future__ import annotations

import torch

__all__ = ["sgd_single", "sgd_foreach"]


def sgd_single(params: list[torch.Tensor], grads: list[torch.Tensor], bufs: list[torch.Tensor] | None, *,
               lr: float, momentum: float, nesterov: bool, weight_decay: float) -> None:
    """One SGD step on each parameter, in place.

    g <- g + weight_decay * w (L2, as ``torch.optim.SGD``); with ``momentum`` mu > 0, v_t = g + mu v_{t-1} (25)
    and the direction is v_t (26) or, with ``nesterov``, g + mu v_t (Section 2.3.1); w <- w - lr * direction (21).

    Args:
        params: parameters w_t, each of any shape; updated in place.
        grads: gradients g_t, one per parameter, same shapes and dtypes.
        bufs: velocities v_{t-1} (same shapes), or ``None`` when ``momentum == 0``.
        lr: eta_t, in parameter units per gradient unit.
    """
    for i, (w, g) in enumerate(zip(params, grads)):
        if weight_decay != 0:
            g = g.add(w, alpha=weight_decay)
        if momentum != 0:
            v = bufs[i]
            v.mul_(momentum).add_(g)
            g = g.add(v, alpha=momentum) if nesterov else v
        w.add_(g, alpha=-lr)


def sgd_foreach(params: list[torch.Tensor], grads: list[torch.Tensor], bufs: list[torch.Tensor] | None, *,
                lr: float, momentum: float, nesterov: bool, weight_decay: float) -> None:
    """The same step as :func:`sgd_single` with ``torch._foreach_*`` kernels (bitwise equal)."""
    if not params:
        return
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if momentum != 0:
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, grads)
        grads = torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
    torch._foreach_add_(params, grads, alpha=-lr)
