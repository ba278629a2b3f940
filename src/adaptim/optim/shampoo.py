"""Shampoo (53)-(54) with sums or a bias-corrected EMA (Section 5.1), and the IdealizedShampooIteration (6.2.1)."""

from __future__ import annotations

from typing import Any

import torch

from adaptim.functional.shampoo import idealized_shampoo_batched, init_shampoo_state, shampoo_batched
from adaptim.optim.base import AdaptimOptimizer, check_int, check_range

__all__ = ["Shampoo", "IdealizedShampoo"]

GRAFTING_METHODS = (None, "adagrad", "adam")


class Shampoo(AdaptimOptimizer):
    """Shampoo (Gupta et al., 2018), notes (53)-(54), with the practical options of distributed Shampoo.

    For a matrix parameter W (m, n) with gradients G_1 .. G_t:

        L_t = sum_l G_l G_l^T,  R_t = sum_l G_l^T G_l                           (53), ``beta2=None``
        L_t = b2 L_{t-1} + (1 - b2) G_t G_t^T (same for R), used as L_t / (1 - b2^t)   (5.1), ``beta2`` a float
        W <- W - lr (L_t + eps I)^{-1/4} G_t (R_t + eps I)^{-1/4}

    i.e. (54): w <- w - lr (L^{1/4} (x) R^{1/4})^{-1} g with row-major vec. The first step from zero statistics
    is -lr U V^T for G = U S V^T (eps -> 0). A tensor of order k has one statistic per dimension (the Gram
    matrix of its mode-i unfolding) and the exponent -1/(2k) on each, so the first step is invariant to the
    gradient's scale for every k; a vector gets the full-matrix root -1/2 (full-matrix AdaGrad), or the diagonal
    one when it is longer than ``max_preconditioner_dim``; a scalar is a vector of length 1. A dimension longer
    than ``max_preconditioner_dim`` is cut into chunks of that length and every block of the grid is
    preconditioned on its own. Matrix roots come from :func:`adaptim.linalg.psd_power`, one batched
    eigendecomposition per (size, exponent) bucket of the group (eigenvalues below the statistics' machine
    epsilon times the largest one are rounding noise and are raised to that floor before eps is added, so that
    eps^{-1/(2k)} does not amplify them); they are cached in the state and recomputed
    only at the parameter's steps t = f, 2f, 3f, ... (f = ``precondition_frequency``); in between the stale
    roots precondition the current gradient (statistics still accumulate every step).

    Before step ``start_preconditioning_step`` the update is the grafted method's (or, without grafting, the
    plain gradient: SGD); statistics accumulate from step 1. Since the first root exists at step f, a
    ``start_preconditioning_step`` below ``precondition_frequency`` is refused at construction.

    Grafting (Agarwal et al., 2020, as distributed Shampoo): ``"adagrad"`` or ``"adam"`` keeps that method's
    diagonal second moment (AdaGrad: sum of g^2; Adam: bias-corrected EMA of g^2 with ``grafting_beta2``, no
    first moment) and rescales each block's Shampoo direction to the norm of that method's direction
    g / (sqrt(v) + grafting_eps) on the same block (a zero Shampoo direction stays zero).

    ``momentum`` is heavy ball on the search direction as distributed Shampoo does (M = momentum M + P, step
    along M; like :class:`adaptim.SGD`'s Polyak form). ``weight_decay`` is decoupled: wd * W is added to the
    search direction after preconditioning and grafting, so with ``momentum=0`` the step is
    W <- (1 - lr wd) W - lr D (AdamW's default lambda_t = lr wd); it never enters the statistics.

    Args:
        params: tensors or param groups; real floating point of any shape (complex is refused: optimize
            ``torch.view_as_real(p)``). Statistics are float32 (float64 for float64 parameters);
            float16/bfloat16 parameters are updated through a float32 copy.
        lr: eta >= 0, parameter units per unit of preconditioned gradient.
        beta2: None (sums, (53)) or the EMA coefficient in [0, 1) of 5.1.
        eps: > 0, added to every eigenvalue of the (bias-corrected) statistic before the root.
        momentum: heavy-ball coefficient in [0, 1).
        weight_decay: decoupled decay coefficient >= 0 (multiplied by lr).
        precondition_frequency: f >= 1, steps between recomputations of the roots.
        start_preconditioning_step: the first step (>= f) that uses the Shampoo direction.
        max_preconditioner_dim: the largest preconditioner side, >= 1.
        exponent_override: a negative exponent used instead of -1/(2k) for every statistic, or None.
        grafting: None, ``"adagrad"`` or ``"adam"``.
        grafting_beta2: the grafted Adam's second-moment coefficient, in [0, 1).
        grafting_eps: > 0, added to the grafted method's sqrt(v).
        maximize: ascend instead of descend (weight decay still pulls toward 0).

    Raises:
        ValueError: a hyperparameter outside its range, an unknown ``grafting``, or
            ``start_preconditioning_step < precondition_frequency``.
        TypeError: complex or sparse parameters.
    """

    supports_complex = False
    squares_gradients = True

    def __init__(self, params, lr: float = 1e-3, beta2: float | None = None, eps: float = 1e-12,
                 momentum: float = 0.0, weight_decay: float = 0.0, precondition_frequency: int = 1,
                 start_preconditioning_step: int = 1, max_preconditioner_dim: int = 1024,
                 exponent_override: float | None = None, grafting: str | None = None,
                 grafting_beta2: float = 0.999, grafting_eps: float = 1e-8, maximize: bool = False) -> None:
        defaults = dict(lr=lr, beta2=beta2, eps=eps, momentum=momentum, weight_decay=weight_decay,
                        precondition_frequency=precondition_frequency,
                        start_preconditioning_step=start_preconditioning_step,
                        max_preconditioner_dim=max_preconditioner_dim, exponent_override=exponent_override,
                        grafting=grafting, grafting_beta2=grafting_beta2, grafting_eps=grafting_eps,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        if group["beta2"] is not None:
            check_range("beta2", group["beta2"], 0.0, 1.0, high_open=True)
        check_range("eps", group["eps"], 0.0, low_open=True)
        check_range("momentum", group["momentum"], 0.0, 1.0, high_open=True)
        check_range("weight_decay", group["weight_decay"], 0.0)
        check_int("precondition_frequency", group["precondition_frequency"], 1)
        check_int("start_preconditioning_step", group["start_preconditioning_step"], 1)
        check_int("max_preconditioner_dim", group["max_preconditioner_dim"], 1)
        if group["start_preconditioning_step"] < group["precondition_frequency"]:
            raise ValueError(
                f"start_preconditioning_step ({group['start_preconditioning_step']}) must be >= "
                f"precondition_frequency ({group['precondition_frequency']}): the roots are first computed at "
                "step precondition_frequency, so an earlier preconditioned step would have no root; set "
                "start_preconditioning_step to a value >= precondition_frequency (the steps before it use the "
                "grafted method, or the plain gradient without grafting)")
        if group["exponent_override"] is not None:
            check_range("exponent_override", group["exponent_override"], None, 0.0, high_open=True)
        if group["grafting"] not in GRAFTING_METHODS:
            raise ValueError(f"grafting must be one of None, 'adagrad', 'adam', got {group['grafting']!r}")
        check_range("grafting_beta2", group["grafting_beta2"], 0.0, 1.0, high_open=True)
        check_range("grafting_eps", group["grafting_eps"], 0.0, low_open=True)

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.new_step()}
        state.update(init_shampoo_state(p, group["max_preconditioner_dim"]))
        if group["grafting"] == "adagrad":
            state["grafting_sum_sq"] = torch.zeros_like(p)
        elif group["grafting"] == "adam":
            state["grafting_exp_avg_sq"] = torch.zeros_like(p)
        if group["momentum"] != 0:
            state["momentum_buffer"] = torch.zeros_like(p)
        return state

    def _accumulated(self, group: dict[str, Any], state: dict[str, Any]) -> list[torch.Tensor]:
        # sums (53) and AdaGrad grafting grow without bound; EMA statistics stay below their inputs
        return [v for k, v in state.items()
                if (group["beta2"] is None and k.startswith("factor_")) or k == "grafting_sum_sq"]

    def _update_group(self, group, params, grads, states) -> None:
        shampoo_batched(params, grads, states, self.step_counts(states), lr=group["lr"], beta2=group["beta2"],
                        eps=group["eps"], momentum=group["momentum"], weight_decay=group["weight_decay"],
                        precondition_frequency=group["precondition_frequency"],
                        start_preconditioning_step=group["start_preconditioning_step"],
                        max_preconditioner_dim=group["max_preconditioner_dim"],
                        exponent_override=group["exponent_override"], grafting=group["grafting"],
                        grafting_beta2=group["grafting_beta2"], grafting_eps=group["grafting_eps"])


class IdealizedShampoo(AdaptimOptimizer):
    """The IdealizedShampooIteration of Section 6.2.1 (Morwani et al., 2024).

    With bias-corrected EMA estimates Lhat_t ~ E[G G^T] and Rhat_t ~ E[G^T G] (step 2 of the iteration),

        W <- W - lr sqrt(tr Lhat_t) (Lhat_t + eps I)^{-1/2} G_t (Rhat_t + eps I)^{-1/2}       (step 3)

    the Newton step w <- w - lr H^{-1} g with H ~ I_emp^{1/2} and I_emp = Lhat (x) Rhat / tr Lhat, exact when
    E[G (x) G] has rank 1 (Lemma 6.1, (64)). Note the square of Shampoo's preconditioner (exponent -1/2, (63))
    and the trace factor, which makes the step invariant to the gradient's scale. Each parameter is viewed as a
    matrix: a vector as one column (then the step is full-matrix RMSProp (Lhat + eps I)^{-1/2} g, up to eps), a
    scalar as 1 x 1, a k > 2 tensor as (shape[0], product of the rest); sides longer than
    ``max_preconditioner_dim`` are cut into blocks preconditioned on their own. Roots are recomputed every step
    (one batched eigendecomposition per size bucket of the group) and not stored: the state holds the two
    statistics per block and the step count. ``weight_decay`` is decoupled: W <- W - lr (D + wd W).

    Args:
        params: tensors or param groups, real floating point (complex refused); float32 statistics (float64 for
            float64 parameters).
        lr: eta >= 0 (parameter units per unit of whitened gradient).
        beta2: EMA coefficient in [0, 1).
        eps: damping > 0 added to every eigenvalue of Lhat and Rhat.
        weight_decay: decoupled decay coefficient >= 0 (multiplied by lr).
        max_preconditioner_dim: the largest preconditioner side, >= 1.
        maximize: ascend instead of descend.

    Raises:
        ValueError: a hyperparameter outside its range.  TypeError: complex or sparse parameters.
    """

    supports_complex = False
    squares_gradients = True

    def __init__(self, params, lr: float = 1e-3, beta2: float = 0.999, eps: float = 1e-12,
                 weight_decay: float = 0.0, max_preconditioner_dim: int = 1024, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, beta2=beta2, eps=eps, weight_decay=weight_decay,
                                      max_preconditioner_dim=max_preconditioner_dim, maximize=maximize))

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_range("beta2", group["beta2"], 0.0, 1.0, high_open=True)
        check_range("eps", group["eps"], 0.0, low_open=True)
        check_range("weight_decay", group["weight_decay"], 0.0)
        check_int("max_preconditioner_dim", group["max_preconditioner_dim"], 1)

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.new_step()}
        state.update(init_shampoo_state(p, group["max_preconditioner_dim"], matrix_view=True, cache_roots=False))
        return state

    def _update_group(self, group, params, grads, states) -> None:
        idealized_shampoo_batched(params, grads, states, self.step_counts(states), lr=group["lr"],
                                  beta2=group["beta2"], eps=group["eps"], weight_decay=group["weight_decay"],
                                  max_preconditioner_dim=group["max_preconditioner_dim"])
