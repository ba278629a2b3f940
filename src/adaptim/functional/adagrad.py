"""AdaGrad: diagonal (44), the scalar step (33) and the full-matrix preconditioner of Section 3.2.1.

Diagonal AdaGrad (44), with eps outside the root as ``torch.optim.Adagrad`` and L2 coefficient wd::

    g   <- g_t + wd * w_t                        (L2, added to the gradient)
    S_t  = S_{t-1} + g * g                       (S_0 = ``initial_accumulator_value``)
    d_t  = g / (sqrt(S_t) + eps)                 (eps = 0: a zero denominator counts as 1, so 0/0 := 0)
    w_{t+1} = w_t - eta d_t                      (the last stage)

AdaGrad-Norm (33): eta_t = D / (sqrt(sum_{l<=t} ||g_l||^2) + eps), w_{t+1} = w_t - eta_t g_t, the norm over all
parameters together. Full-matrix AdaGrad (Section 3.2.1): O_t = O_{t-1} + g g^T, d_t = (O_t + eps I)^{-1/2} g,
w_{t+1} = w_t - eta d_t.

Each rule computes its direction (``*_direction*``; :func:`adagrad_norm_step_size` the scalar step) and hands it
to a last stage ``step_fn`` (default :func:`~adaptim.functional.common.apply_update_`, w <- w - lr d): the
``*_single`` / ``*_foreach`` functions are that whole step. Diagonal AdaGrad comes as a literal loop
(``*_single``) and a ``torch._foreach_*`` version (``*_foreach``) with the same arithmetic op for op (bitwise
equal). ``grads`` are read, never written.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from adaptim.functional.common import add_l2, apply_update_, safe_denominator_
from adaptim.linalg import psd_power

__all__ = [
    "adagrad_single",
    "adagrad_foreach",
    "adagrad_direction_single",
    "adagrad_direction_foreach",
    "adagrad_norm_step",
    "adagrad_norm_step_size",
    "full_matrix_adagrad_single",
    "full_matrix_adagrad_direction",
]


def _direction(w: torch.Tensor, g: torch.Tensor, s: torch.Tensor, eps: float, weight_decay: float) -> torch.Tensor:
    g = add_l2(g, w, weight_decay)
    s.addcmul_(g, g)
    den = s.sqrt().add_(eps)
    safe_denominator_(den, eps)  # 0/0 := 0: a never-seen coordinate stays put
    return torch.div(g, den, out=den)


def adagrad_direction_single(
    params: list[torch.Tensor], grads: list[torch.Tensor], sums: list[torch.Tensor], *, eps: float, weight_decay: float
) -> list[torch.Tensor]:
    """The directions d_t = g / (sqrt(S_t) + eps) of diagonal AdaGrad (44) (module doc), updating S in place.

    Args:
        params: parameters w_t (any shape); read only (the L2 term).
        grads: gradients g_t, same shapes; read only.
        sums: accumulators S_{t-1} (initially ``initial_accumulator_value``), updated in place to S_t.
        eps: >= 0, added to the root.   weight_decay: the L2 coefficient wd >= 0.

    Returns:
        d_t per parameter, new tensors of the parameters' shapes and dtypes.
    """
    return [_direction(w, g, s, eps, weight_decay) for w, g, s in zip(params, grads, sums)]


def adagrad_direction_foreach(
    params: list[torch.Tensor], grads: list[torch.Tensor], sums: list[torch.Tensor], *, eps: float, weight_decay: float
) -> list[torch.Tensor]:
    """The same directions as :func:`adagrad_direction_single` with ``torch._foreach_*`` kernels (bitwise equal)."""
    if not params:
        return []
    grads = add_l2(grads, params, weight_decay)
    torch._foreach_addcmul_(sums, grads, grads)
    den = torch._foreach_sqrt(sums)
    torch._foreach_add_(den, eps)
    safe_denominator_(den, eps)
    return list(torch._foreach_div(grads, den))


def adagrad_single(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    sums: list[torch.Tensor],
    *,
    lr: float,
    eps: float,
    weight_decay: float,
    step_fn: Callable = apply_update_,
) -> None:
    """One diagonal AdaGrad step (44) on each parameter, in place: d_t of :func:`adagrad_direction_single`, then
    ``step_fn(w, d, lr, 0.0)`` per parameter (default: w <- w - lr d).

    Args:
        params: parameters (any shape), updated in place.
        grads: gradients, same shapes.
        sums: accumulators S_{t-1} (initially ``initial_accumulator_value``), updated in place to S_t.
        step_fn: the last stage, ``step_fn(params, directions, lr, decay)`` (one tensor or lists of them).
    """
    for w, g, s in zip(params, grads, sums):
        step_fn(w, _direction(w, g, s, eps, weight_decay), lr, 0.0)


def adagrad_foreach(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    sums: list[torch.Tensor],
    *,
    lr: float,
    eps: float,
    weight_decay: float,
    step_fn: Callable = apply_update_,
) -> None:
    """The same step as :func:`adagrad_single` with ``torch._foreach_*`` kernels (bitwise equal); ``step_fn`` is
    called once, on the lists."""
    if not params:
        return
    step_fn(params, adagrad_direction_foreach(params, grads, sums, eps=eps, weight_decay=weight_decay), lr, 0.0)


def adagrad_norm_step_size(grads: list[torch.Tensor], sum_sq: float, *, lr: float, eps: float) -> tuple[float, float]:
    """The step size eta_t = D / (sqrt(sum_{l<=t} ||g_l||^2) + eps) of (33) and the new running sum.

    ``lr`` plays D (a distance, in parameter units); the norm is taken over all of ``grads`` together, in float64
    (one reduction for every path and dtype). While every gradient so far is zero, eta_t = 0 (whatever eps, also
    eps = 0): there is nothing to move.

    Args:
        grads: g_t of every parameter of the group; read only.
        sum_sq: sum_{l<t} ||g_l||^2 so far (a Python float, 0.0 at the start).

    Returns:
        ``(eta_t, sum_{l<=t} ||g_l||^2)``; the step is w <- w - eta_t g_t (direction g_t).
    """
    sum_sq = sum_sq + sum(float(g.double().pow(2).sum()) for g in grads)
    if sum_sq == 0:
        return 0.0, sum_sq
    return lr / (sum_sq**0.5 + eps), sum_sq


def adagrad_norm_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    sum_sq: float,
    *,
    lr: float,
    eps: float,
    foreach: bool = True,
    step_fn: Callable = apply_update_,
) -> float:
    """The scalar AdaGrad step (33): eta_t of :func:`adagrad_norm_step_size`, then ``step_fn(params, grads, eta_t,
    0.0)`` (default: w <- w - eta_t g_t; skipped while every gradient so far is zero).

    Args:
        params: parameters, updated in place.   grads: g_t, read only.
        sum_sq: sum_{l<t} ||g_l||^2 so far (a Python float, 0.0 at the start).
        foreach: call ``step_fn`` once on the lists (``torch._foreach_*`` kernels) or once per tensor.

    Returns:
        The new sum, sum_{l<=t} ||g_l||^2.
    """
    eta, sum_sq = adagrad_norm_step_size(grads, sum_sq, lr=lr, eps=eps)
    if sum_sq == 0:  # every gradient so far is zero: nothing to move
        return sum_sq
    if foreach:
        step_fn(params, grads, eta, 0.0)
    else:
        for w, g in zip(params, grads):
            step_fn(w, g, eta, 0.0)
    return sum_sq


def full_matrix_adagrad_direction(
    grads: list[torch.Tensor], outer_sums: list[torch.Tensor], *, eps: float
) -> list[torch.Tensor]:
    """Full-matrix AdaGrad's directions (Section 3.2.1): O_t = O_{t-1} + g g^T, d_t = (O_t + eps I)^{-1/2} g.

    Each gradient is flattened (row-major) to a vector of length d. The inverse root comes from a symmetric
    eigendecomposition of O_t (eigenvalues clamped at 0, then damped by eps), computed in float64. Eigenvalues
    below float64's unit roundoff times the largest one are rounding noise and are first raised to that floor
    (``psd_power``'s ``rtol``, as Shampoo does): otherwise eps^{-1/2} amplifies the noise directions and the first
    step, lr g / ||g|| in exact arithmetic, is off by about ||g|| 1e-16 eps^{-1/2} (76x at ||g|| = 1e12).

    Args:
        grads: g_t, any shapes, float32/float64; read only.
        outer_sums: O_{t-1}, one float64 tensor per gradient, of shape (d, d) or (*g.shape, *g.shape) (viewed as
            (d, d)), updated in place.
        eps: > 0, the damping.

    Returns:
        d_t per gradient, of its shape and dtype.
    """
    out = []
    for g, o in zip(grads, outer_sums):
        gv = g.reshape(-1).to(torch.float64)
        o = o.view(gv.numel(), gv.numel())
        o.addr_(gv, gv)
        direction = psd_power(o, -0.5, eps=eps, rtol=torch.finfo(o.dtype).eps) @ gv
        out.append(direction.reshape(g.shape).to(g.dtype))
    return out


def full_matrix_adagrad_single(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    outer_sums: list[torch.Tensor],
    *,
    lr: float,
    eps: float,
    step_fn: Callable = apply_update_,
) -> None:
    """One full-matrix AdaGrad step (Section 3.2.1) per parameter: d_t of
    :func:`full_matrix_adagrad_direction`, then ``step_fn(w, d, lr, 0.0)`` (default: w <- w - lr d).

    Args:
        outer_sums: O_{t-1}, one float64 tensor per parameter, of shape (d, d) or (*w.shape, *w.shape) (viewed as
            (d, d)), updated in place.
    """
    for w, g, o in zip(params, grads, outer_sums):
        step_fn(w, full_matrix_adagrad_direction([g], [o], eps=eps)[0], lr, 0.0)
