"""Online-to-batch conversion (Appendix A): the averaged iterate of an online run on i.i.d. samples.

If the x_t are i.i.d. from pop and the online method has regret at most B(T) against every fixed u, then
E[J(w̄_T)] - J* <= B(T) / T for w̄_T = (1/T) sum_t w_t and J(w) = E_x J_x(w) (convexity of J, Appendix A).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from adaptim.online import _checks
from adaptim.online.protocol import OnlineRun

__all__ = ["OnlineToBatch", "online_to_batch", "sample_stream", "excess_risk"]


class OnlineToBatch(NamedTuple):
    """``w_bar``: the averaged iterate (1/T) sum_t w_t (float64, the run's shape); ``mean_loss``: (1/T) sum_t
    l_t(w_t), the online estimate of the risk; ``T``: the number of rounds."""

    w_bar: torch.Tensor
    mean_loss: float
    T: int


def online_to_batch(run: OnlineRun) -> OnlineToBatch:
    """Appendix A's averaged iterate w̄_T = (1/T) sum_{t=1}^T w_t of a run (the played w_1..w_T, not w_{T+1}).

    Raises:
        TypeError: ``run`` not an :class:`OnlineRun`; ValueError: a run made with ``record_iterates=False``.
    """
    if not isinstance(run, OnlineRun):
        raise TypeError(f"run must be an OnlineRun (from run_online), got {type(run).__name__}")
    W = run._need_iterates()
    return OnlineToBatch(W.mean(0).reshape(run.shape), float(run.losses.mean()), run.T)


def sample_stream(X: Any, y: Any, T: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """T i.i.d. draws (uniform, with replacement) from the examples (X, y): Appendix A's x_1..x_T ~ pop when pop is
    the empirical distribution of (X, y).

    Args:
        X: (n, d) finite float features; y: (n,) finite labels; T: an integer >= 1 (Python, numpy or one-entry
            torch); seed: an integer seeding a ``torch.Generator``.

    Returns:
        ``(X_T, y_T)``: (T, d) and (T,) float64.

    Raises:
        ValueError: ``T`` not an integer >= 1, ``seed`` not an integer, X and y of different lengths, X not 2-D,
            non-finite or non-numeric X or y.
    """
    T = _checks.count(T, "T", low=1)
    seed = _checks.number(seed, "seed", integer=True)
    X = _checks.finite_tensor(X, "X")
    y = _checks.finite_tensor(y, "y")
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0] or X.shape[0] < 1:
        raise ValueError(f"X must be (n, d) and y (n,) with n >= 1, got {tuple(X.shape)} and {tuple(y.shape)}")
    idx = torch.randint(0, X.shape[0], (T,), generator=torch.Generator().manual_seed(seed))
    return X[idx], y[idx]


def excess_risk(population: Any, w: torch.Tensor) -> float:
    """J(w) - J* for J(w) = (1/n) sum_i l_i(w), the mean loss of a finite population (an adversary whose rounds
    are the population's examples, e.g. ``LogisticLosses(X, y, radius)``), and J* = min over its domain.

    Raises:
        ValueError: ``w`` with the wrong number of entries, not numeric or not finite; as ``population.best_fixed()``.
    """
    w = _checks.finite_tensor(w, "w")
    _, v = population.best_fixed()
    return (population.cumulative_loss(w) - v) / population.rounds
