"""Steepest descent under a norm (Section 7, (65)-(69)): the trust-region and majorization steps in closed form.

With D(M) the unit-norm maximizer of <M, D> (so <M, D(M)> = ||M||_*, :func:`adaptim.linalg.steepest_direction`)
and M the gradient G_t, or with ``momentum = mu > 0`` its EMA M_t = mu M_{t-1} + (1 - mu) G_t (M_0 = 0):

    trust region (67):  W <- W - eta D(M)            the minimizer of <M, Delta> over ||Delta|| <= eta
    majorization (68):  W <- W - eta ||M||_* D(M)    the minimizer of <M, Delta> + ||Delta||^2 / (2 eta)

(69) in closed form, M = U S V^T the thin SVD:

    ============  =======================  ===================================
    norm          trust region              majorization
    ============  =======================  ===================================
    "frobenius"   -eta M / ||M||_F          -eta M  (plain gradient descent)
    "inf"         -eta sign(M)              -eta ||M||_{1,elt} sign(M)
    "spectral"    -eta U V^T (Muon)         -eta ||M||_nuc U V^T
    ============  =======================  ===================================

U V^T is computed exactly by SVD, over the singular values above the rank tolerance; a zero M gives a zero step.
Each tensor is viewed as a matrix by :func:`adaptim.linalg.as_matrix` (a vector as an (n, 1) column, so "spectral"
gives g / ||g||_2, as the notes remark for m x 1 matrices; a scalar as 1 x 1; more than 2 dimensions as
(shape[0], rest)). The direction D(M) or ||M||_* D(M) is :func:`steepest_directions`; the step is the common last
stage :func:`adaptim.functional.common.apply_update_` with lr eta and no decay.

``steepest_single`` is the literal loop; ``steepest_batched`` makes one batched direction (SVD) call per matrix
shape. They agree to rounding.
"""

from __future__ import annotations

import torch

from adaptim.functional.common import StepFn, apply_update_, bucket_indices, ema_, stack
from adaptim.linalg.norms import dual_norm, steepest_direction
from adaptim.linalg.views import as_matrix, matrix_view_shape

__all__ = ["steepest_directions", "steepest_single", "steepest_batched"]


def _delta(M: torch.Tensor, norm: str, rule: str) -> torch.Tensor:
    """D(M) for "trust_region", ||M||_* D(M) for "majorization" (69), on (..., m, n) matrices; sign not applied."""
    D = steepest_direction(M, norm)
    if rule == "trust_region":
        return D
    return D * dual_norm(M, norm)[..., None, None].to(D.dtype)


def steepest_directions(
    grads: list[torch.Tensor],
    momentum_buffers: list[torch.Tensor] | None,
    *,
    norm: str,
    rule: str,
    momentum: float = 0.0,
    batched: bool = True,
) -> list[torch.Tensor]:
    """D(M) (trust region) or ||M||_* D(M) (majorization) per tensor, M the gradient or its EMA.

    Args:
        grads: G_t of any shapes (float32/float64); read, never written.
        momentum_buffers: EMA buffers M_{t-1} (updated in place to M_t and used in place of G), or ``None`` when
            ``momentum == 0``.
        norm: "spectral", "frobenius", "inf" (or "nuclear", "l1").  rule: "trust_region" or "majorization".
        momentum: mu in [0, 1).
        batched: one direction call per (matrix shape, dtype, device) instead of one per tensor.

    Returns:
        New tensors of the gradients' shapes.
    """
    ms = grads
    if momentum_buffers is not None:
        if batched:
            ema_(momentum_buffers, grads, momentum)
        else:
            for g, buf in zip(grads, momentum_buffers):
                ema_(buf, g, momentum)
        ms = momentum_buffers
    if not batched:
        return [_delta(as_matrix(m), norm, rule).view_as(m) for m in ms]
    out: list[torch.Tensor] = [None] * len(ms)  # type: ignore[list-item]
    buckets = bucket_indices(ms, key=lambda k, t: (matrix_view_shape(t.shape), t.dtype, t.device))
    for idx in buckets.values():
        for k, d in zip(idx, _delta(stack(ms, idx, as_matrix), norm, rule).unbind(0)):
            out[k] = d.view_as(ms[k])
    return out


def _steepest(params, grads, momentum_buffers, *, lr, norm, rule, momentum, step, batched) -> None:
    if params:
        step(
            params,
            steepest_directions(grads, momentum_buffers, norm=norm, rule=rule, momentum=momentum, batched=batched),
            lr,
            0.0,
        )


def steepest_single(
    params,
    grads,
    momentum_buffers,
    *,
    lr: float,
    norm: str,
    rule: str,
    momentum: float = 0.0,
    step: StepFn = apply_update_,
) -> None:
    """One steepest-descent step (69) on each parameter, in place; the literal loop.

    Args:
        params: W_t of any shape, viewed as matrices by :func:`adaptim.linalg.as_matrix`.
        grads, momentum_buffers, norm, rule, momentum: as :func:`steepest_directions`.
        lr: eta_t.
        step: the last stage ``step(params, directions, lr, decay)``; default
            :func:`adaptim.functional.common.apply_update_` (W <- W - eta d).
    """
    _steepest(**locals(), batched=False)


def steepest_batched(
    params,
    grads,
    momentum_buffers,
    *,
    lr: float,
    norm: str,
    rule: str,
    momentum: float = 0.0,
    step: StepFn = apply_update_,
) -> None:
    """The step of :func:`steepest_single` with one batched direction (SVD) call per matrix shape."""
    _steepest(**locals(), batched=True)
