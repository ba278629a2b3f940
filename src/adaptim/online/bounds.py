"""The regret bounds of Sections 1.3.1, 2.1 and Lemma S.3, each evaluated on a finished :class:`OnlineRun`.

Every function returns a float B such that the notes prove sum_t l_t(w_t) - l_t(u) <= B for the run's losses
(convex l_t, the method and hyperparameters named), with u the run's best fixed point in hindsight u* unless a
``u`` is given. The quantities come from the run: D = max_t ||w_t - u||_2, D_1 = ||w_1 - u||_2, L = max_t ||g_t||_2
(``L=`` replaces it by any larger gradient bound, e.g. a Lipschitz constant known in advance), T, sum ||g_t||².

All raise ``ValueError`` (naming the argument) for a learning rate that is not a finite number > 0 (or a sequence
of them of length T), a momentum outside [0, 1), an ``L`` that is not a finite number or is smaller than the run's
largest gradient norm, or a ``u`` of the wrong size or not finite. A number may be a Python int or float, a numpy
scalar or a one-entry torch tensor; bools are not numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from adaptim.online import _checks
from adaptim.online.protocol import OnlineRun

__all__ = [
    "mirror_descent_bound",
    "sgd_bound",
    "sgd_optimal_lr",
    "sgd_optimal_bound",
    "sgd_anytime_bound",
    "heavy_ball_bound",
    "heavy_ball_optimal_lr",
    "heavy_ball_optimal_bound",
]


def _check_run(run: Any) -> OnlineRun:
    if not isinstance(run, OnlineRun):
        raise TypeError(f"run must be an OnlineRun (from run_online), got {type(run).__name__}")
    return run


def _lr_scalar(lr: Any, name: str = "lr") -> float:
    return _checks.positive(lr, name)


def _is_scalar(x: Any) -> bool:
    """A number-like value to broadcast (a Python/numpy scalar, a 0-d array or tensor), as opposed to a sequence."""
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return x.ndim == 0
    return isinstance(x, (int, float, np.generic))


def _lrs(run: OnlineRun, lr: Any) -> torch.Tensor:
    """(T,) float64 learning rates: a scalar broadcast, a sequence of length T, or ``None`` (the run's own)."""
    if lr is None:
        etas = run.lrs
    elif _is_scalar(lr):
        etas = torch.full((run.T,), _lr_scalar(lr), dtype=torch.float64)
    else:
        if isinstance(lr, (torch.Tensor, np.ndarray)) and lr.dtype in (torch.bool, np.bool_):
            raise ValueError("lr must hold numbers, got bools")
        etas = _checks.finite_tensor(lr, "lr").reshape(-1)
        if etas.numel() != run.T:
            raise ValueError(f"lr must be a number or a sequence of T = {run.T} learning rates, got {etas.numel()}")
    if not (torch.isfinite(etas).all() and (etas > 0).all()):
        raise ValueError("every learning rate must be a finite number > 0")
    return etas


def _momentum(mu: Any) -> float:
    v = _checks.number(mu, "momentum")
    if not (0 <= v < 1):
        raise ValueError(f"momentum must be a number in [0, 1), got {mu!r}")
    return v


def _L(run: OnlineRun, L: float | None) -> float:
    if L is None:
        return run.L
    L = _checks.finite(L, "L")
    if L < run.L * (1 - 1e-12):
        raise ValueError(f"L = {L!r} is smaller than the run's largest gradient norm {run.L!r}: not a gradient bound")
    return float(L)


def _constant(etas: torch.Tensor) -> bool:
    return bool(torch.all(etas == etas[0]))


def _preconditioners(run: OnlineRun, A: Any) -> tuple[torch.Tensor, bool]:
    """(T, d, d) float64 preconditioners A_1..A_T and whether they are one fixed A."""
    T, d = run.T, run.dim
    if A is None:
        return torch.eye(d, dtype=torch.float64).expand(T, d, d), True
    if isinstance(A, (torch.Tensor, np.ndarray)) and A.dtype in (torch.bool, np.bool_):
        raise ValueError("A must hold numbers, got bools")
    try:
        A = A.detach().to(torch.float64) if isinstance(A, torch.Tensor) else torch.as_tensor(np.asarray(A, np.float64))
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"A must be an array of numbers: {e}") from None
    # (T, d) is also (d, d) when T = d: the fixed matrix wins, as before
    if A.shape == (d,) or (A.shape == (T, d) and A.shape != (d, d)):
        _checks.positive_entries(A, "A")
        if A.shape == (d,):
            return torch.diag(A).expand(T, d, d), True
        return torch.diag_embed(A), bool(torch.all(A[0] == A))
    if A.shape == (d, d) or A.shape == (T, d, d):
        _checks.spd(A, "A")
        if A.shape == (d, d):
            return A.expand(T, d, d), True
        return A, bool(torch.all(A[0] == A))
    raise ValueError(f"A must be None, (d,), (d, d), (T, d) or (T, d, d) with d = {d}, T = {T}; got {tuple(A.shape)}")


def mirror_descent_bound(
    run: OnlineRun, lr: Any = None, A: Any = None, *, equation: int | None = None, u: Any = None
) -> float:
    """The Euclidean mirror-descent regret bounds (18), (19) and (20) of Section 1.3.1.

    (18)  D² tr(A_T) / (2 eta_T) + ½ sum_t eta_t ||g_t||²_{A_t^{-1}}          (always)
    (19)  D_A² / (2 eta_T) + ½ sum_t eta_t ||g_t||²_{A^{-1}}                  (A_t = A)
    (20)  D_{A,1}² / (2 eta) + (eta/2) sum_t ||g_t||²_{A^{-1}}                (A_t = A, eta_t = eta)

    with D = max_t ||w_t - u||_2, D_A = max_t ||w_t - u||_A, D_{A,1} = ||w_1 - u||_A. They hold for the update
    w_{t+1} = Proj_V(w_t - eta_t A_t^{-1} g_t) (projection in the A_t-norm) under (14)-(15).

    Args:
        run: the finished run.
        lr: eta: a number, a length-T sequence eta_1..eta_T, or ``None`` (the run's recorded learning rates).
        A: the preconditioner: ``None`` (I_d), a (d,) diagonal or (d, d) matrix held fixed, or per-step (T, d)
            diagonals / (T, d, d) matrices A_1..A_T; finite and symmetric positive definite (diagonals > 0).
        equation: 18, 19 or 20; ``None`` takes the sharpest that applies (20, then 19, then 18).
        u: the comparator ((d,) or the run's shape); ``None``: u*.

    Returns:
        The bound (float).

    Raises:
        ValueError: ``A`` not finite, not symmetric positive definite or of a bad shape; (14) violated (eta_t
            increasing), (15) violated (A_t - A_{t-1} not PSD), an ``equation`` whose condition fails (19/20 need
            one fixed A; 20 a constant eta), an unknown equation, bad shapes.
    """
    run = _check_run(run)
    etas = _lrs(run, lr)
    As, fixed = _preconditioners(run, A)
    const = _constant(etas)
    if equation is None:
        equation = 20 if fixed and const else (19 if fixed else 18)
    elif not isinstance(equation, bool) and isinstance(equation, (int, np.integer)):
        equation = int(equation)
    if isinstance(equation, bool) or equation not in (18, 19, 20):
        raise ValueError(f"equation must be 18, 19, 20 or None, got {equation!r}")
    if equation in (19, 20) and not fixed:
        raise ValueError(f"({equation}) needs a fixed preconditioner A_t = A; use equation=18")
    if equation == 20 and not const:
        raise ValueError("(20) needs a constant learning rate; use equation=19 or 18")
    if bool((etas[1:] > etas[:-1] * (1 + 1e-12)).any()):
        raise ValueError("(14) fails: the learning rates must be nonincreasing, eta_t <= eta_{t-1}")
    if not fixed:
        diffs = As[1:] - As[:-1]
        low = torch.linalg.eigvalsh(0.5 * (diffs + diffs.mT)).min() if run.T > 1 else torch.tensor(0.0)
        if float(low) < -1e-10 * float(As.abs().max()):
            raise ValueError("(15) fails: the preconditioners must be nondecreasing, A_t - A_{t-1} PSD")
    g = run.grads
    dual = torch.einsum("ti,ti->t", g, torch.linalg.solve(As, g.unsqueeze(-1)).squeeze(-1))  # ||g_t||²_{A_t^{-1}}
    second = 0.5 * float((etas * dual).sum())
    diff = run._need_iterates() - run._u(u)
    if equation == 18:
        D2 = float((diff**2).sum(1).max())
        return D2 * float(torch.diagonal(As[-1]).sum()) / (2 * float(etas[-1])) + second
    A0 = As[0]
    normsA = torch.einsum("ti,ij,tj->t", diff, A0, diff)
    if equation == 19:
        return float(normsA.max()) / (2 * float(etas[-1])) + second
    return float(normsA[0]) / (2 * float(etas[0])) + second


def sgd_bound(run: OnlineRun, lr: Any = None, *, L: float | None = None, u: Any = None) -> float:
    """SGD's regret bound of Section 2.1: (22) for a constant learning rate, (24)'s first form for a decreasing one.

    constant eta:  D_1²/(2 eta) + (eta/2) sum_t ||g_t||²        ((22); with ``L``: D_1²/(2 eta) + (eta/2) L² T)
    eta_1 >= ... >= eta_T:  D²/(2 eta_T) + ½ sum_t eta_t ||g_t||²   ((24), first inequality; from (19))

    Args:
        run: a run of SGD (21), projected or not (projection onto a convex V keeps the bounds).
        lr: a number, a length-T nonincreasing sequence, or ``None`` (the run's recorded learning rates).
        L: a gradient bound >= max_t ||g_t||_2 to use the right-hand form of (22) (``None``: sum ||g_t||²);
            with a decreasing lr it replaces ||g_t||² by L².
        u: the comparator; ``None``: u*.

    Raises:
        ValueError: as the module says; learning rates that increase.
    """
    run = _check_run(run)
    etas = _lrs(run, lr)
    sq = (run.grads**2).sum(1) if L is None else torch.full((run.T,), _L(run, L) ** 2, dtype=torch.float64)
    dist = run.distances(u)
    if _constant(etas):
        eta = float(etas[0])
        return float(dist[0]) ** 2 / (2 * eta) + 0.5 * eta * float(sq.sum())
    if bool((etas[1:] > etas[:-1] * (1 + 1e-12)).any()):
        raise ValueError("(24) needs nonincreasing learning rates eta_t <= eta_{t-1}")
    return float(dist.max()) ** 2 / (2 * float(etas[-1])) + 0.5 * float((etas * sq).sum())


def sgd_optimal_lr(run: OnlineRun, *, L: float | None = None, u: Any = None) -> float:
    """eta* = D_1 / (L sqrt(T)), the minimizer of (22)'s right-hand side over eta (Section 2.1).

    Raises:
        ValueError: D_1 = 0 or L = 0 (no positive minimizer), and as the module says.
    """
    run = _check_run(run)
    D1, Lv = float(run.distances(u)[0]), _L(run, L)
    if D1 == 0 or Lv == 0:
        raise ValueError(f"the optimal learning rate needs D_1 > 0 and L > 0, got D_1 = {D1}, L = {Lv}")
    return D1 / (Lv * math.sqrt(run.T))


def sgd_optimal_bound(run: OnlineRun, *, L: float | None = None, u: Any = None) -> float:
    """(23): D_1 L sqrt(T), the value of (22) at eta* = D_1 / (L sqrt(T)); it bounds the regret of SGD run with
    that constant learning rate (D_1 and L measured on, or bounding, the same run)."""
    run = _check_run(run)
    return float(run.distances(u)[0]) * _L(run, L) * math.sqrt(run.T)


def sgd_anytime_bound(run: OnlineRun, lr: float = 1.0, *, L: float | None = None, u: Any = None) -> float:
    """(24)'s last form for eta_t = eta / sqrt(t): (D² / (2 eta) + eta L²) sqrt(T), which is
    ((D² + 2 L²) / 2) sqrt(T) at the notes' eta = 1 (using sum_t 1/sqrt(t) <= 2 sqrt(T), Fact 2.1).

    Args:
        lr: eta, the scale of the schedule eta_t = eta / sqrt(t) (> 0).
    """
    run = _check_run(run)
    eta = _lr_scalar(lr)
    D = float(run.distances(u).max())
    return (D**2 / (2 * eta) + eta * _L(run, L) ** 2) * math.sqrt(run.T)


def heavy_ball_bound(run: OnlineRun, lr: float, momentum: float, *, L: float | None = None, u: Any = None) -> float:
    """Lemma S.3 before the choice of eta: heavy-ball SGD (25)-(26) with constant eta and mu has regret at most

        D_1² (1 - mu) / (2 eta) + eta T L² (1 + mu) / (2 (1 - mu)²)

    ((156) + (157)); its minimum over eta is (155). Holds for the unprojected update with v_0 = 0 and
    L >= max_t ||g_t||_2 (the notes assume L-Lipschitz losses; by convexity the run's own max ||g_t|| suffices).

    Raises:
        ValueError: as the module says.
    """
    run = _check_run(run)
    eta, mu = _lr_scalar(lr), _momentum(momentum)
    D1, Lv = float(run.distances(u)[0]), _L(run, L)
    return D1**2 * (1 - mu) / (2 * eta) + eta * run.T * Lv**2 * (1 + mu) / (2 * (1 - mu) ** 2)


def heavy_ball_optimal_lr(run: OnlineRun, momentum: float, *, L: float | None = None, u: Any = None) -> float:
    """eta = (D_1 / L) sqrt((1 - mu)³ / ((1 + mu) T)), the minimizer of :func:`heavy_ball_bound` over eta.

    (The notes print (1 + mu)^T in the denominator; minimizing the bound gives (1 + mu) T.)

    Raises:
        ValueError: D_1 = 0 or L = 0, and as the module says.
    """
    run = _check_run(run)
    mu = _momentum(momentum)
    D1, Lv = float(run.distances(u)[0]), _L(run, L)
    if D1 == 0 or Lv == 0:
        raise ValueError(f"the optimal learning rate needs D_1 > 0 and L > 0, got D_1 = {D1}, L = {Lv}")
    return D1 / Lv * math.sqrt((1 - mu) ** 3 / ((1 + mu) * run.T))


def heavy_ball_optimal_bound(run: OnlineRun, momentum: float, *, L: float | None = None, u: Any = None) -> float:
    """(155): D_1 L sqrt(T) sqrt((1 + mu) / (1 - mu)), heavy ball's bound at :func:`heavy_ball_optimal_lr`.

    Raises:
        ValueError: as the module says.
    """
    run = _check_run(run)
    mu = _momentum(momentum)
    return float(run.distances(u)[0]) * _L(run, L) * math.sqrt(run.T) * math.sqrt((1 + mu) / (1 - mu))
