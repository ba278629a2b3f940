"""Loss sequences ("adversaries") for Section 1's protocol, each with its best fixed point in hindsight.

Every adversary has ``rounds`` (T), ``dim`` (d), ``shape`` (the parameter's shape: ``(d,)``, or ``(m, n)`` for
matrix problems), ``loss(t, w)`` (round t = 0..T-1, a 0-dim tensor differentiable in w), ``losses(W)`` (the
(T,) losses of all rounds at one point), ``cumulative_loss(u)`` (sum_t l_t(u), a float), ``domain`` (``None``
for R^d, else an :class:`~adaptim.online.protocol.L2Ball` or :class:`~adaptim.online.protocol.Box`, which are
also projections) and ``best_fixed()`` -> ``(u*, sum_t l_t(u*))`` (u* a float64 tensor of ``shape``).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaptim.online import _checks, hindsight
from adaptim.online.protocol import Box, L2Ball

__all__ = [
    "Adversary",
    "LinearLosses",
    "AbsoluteLosses",
    "HingeLosses",
    "QuadraticLosses",
    "LogisticLosses",
    "RandomSign",
    "ReddiCounterexample",
    "breast_cancer_stream",
    "breast_cancer_table",
]


def _as_float64(x: Any, name: str, ndim: tuple[int, ...]) -> torch.Tensor:
    try:
        t = torch.as_tensor(np.asarray(x, dtype=np.float64) if not isinstance(x, torch.Tensor) else x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be an array of numbers: {e}") from None
    t = t.detach().to(torch.float64)
    if t.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, got shape {tuple(t.shape)}")
    if t.shape[0] < 1:
        raise ValueError(f"{name} must have at least one round (T >= 1), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")
    return t


def _radius(radius: Any) -> float | None:
    if radius is None:
        return None
    return _checks.positive(radius, "radius")


def _labels(y: Any, T: int) -> torch.Tensor:
    y = _as_float64(y, "y", (1,))
    if y.shape[0] != T:
        raise ValueError(f"y must have one label per row of X ({T}), got {y.shape[0]}")
    return y


class Adversary:
    """Common machinery: ``rounds``, ``dim``, ``shape``, ``domain``, ``cumulative_loss`` from ``losses``."""

    rounds: int
    shape: tuple[int, ...]
    domain: L2Ball | Box | None = None

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    def _w(self, w: torch.Tensor) -> torch.Tensor:
        w = torch.as_tensor(w)
        if w.numel() != self.dim:
            raise ValueError(f"w must have {self.dim} entries (shape {self.shape}), got shape {tuple(w.shape)}")
        return w.reshape(-1)

    def _t(self, t: int) -> int:
        if not (isinstance(t, int) and not isinstance(t, bool)):  # the hot path: plain ints skip the checks
            t = _checks.number(t, "round t", integer=True)
        if not (0 <= t < self.rounds):
            raise ValueError(f"round t must be an integer in [0, {self.rounds}), got {t!r}")
        return t

    def loss(self, t: int, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def losses(self, w: torch.Tensor) -> torch.Tensor:
        """(T,) float64: l_t(w) for every round t at one point w."""
        raise NotImplementedError

    def cumulative_loss(self, u: torch.Tensor) -> float:
        """sum_t l_t(u) (float). Raises ValueError: ``u`` with the wrong number of entries, not numeric or not
        finite."""
        with torch.no_grad():
            return float(self.losses(_checks.finite_tensor(u, "u")).sum())

    def best_fixed(self) -> tuple[torch.Tensor, float]:
        """u* = argmin_{u in domain} sum_t l_t(u) (a float64 tensor of ``shape``) and sum_t l_t(u*), computed
        once and cached (closed form, linear program or Newton's method; see :mod:`adaptim.online.hindsight`).

        Raises:
            ValueError: no minimizer is attained (e.g. separable logistic losses on R^d).
        """
        cached = getattr(self, "_best", None)
        if cached is None:
            u, v = self._best_fixed()
            cached = self._best = (u.clone(), float(v))
        return cached[0].clone(), cached[1]

    def _best_fixed(self) -> tuple[torch.Tensor, float]:
        raise NotImplementedError


class _Linear(Adversary):
    """l_t(w) = <g_t, w> over a ball or a box."""

    def __init__(self, gs: torch.Tensor, domain: L2Ball | Box | None) -> None:
        self.gs = gs.reshape(gs.shape[0], -1)
        self.rounds = int(gs.shape[0])
        self.shape = tuple(gs.shape[1:])
        self.domain = domain

    def loss(self, t: int, w: torch.Tensor) -> torch.Tensor:
        return self.gs[self._t(t)].to(w.dtype) @ self._w(w)

    def subgradient(self, t: int, w: torch.Tensor) -> torch.Tensor:
        """g_t (the gradient does not depend on w)."""
        return self.gs[self._t(t)].reshape(self.shape).clone()

    def losses(self, w: torch.Tensor) -> torch.Tensor:
        return self.gs @ self._w(w).to(torch.float64)

    def _best_fixed(self) -> tuple[torch.Tensor, float]:
        u, v = hindsight.linear_best_fixed(self.gs.sum(0).numpy(), self.domain)
        return torch.from_numpy(u).reshape(self.shape), v


class LinearLosses(_Linear):
    """l_t(w) = <g_t, w> on the l2 ball ||w||_2 <= radius (Section 1, the worst case of the linearization).

    u* = -radius * G / ||G||_2 with G = sum_t g_t, and sum_t l_t(u*) = -radius ||G||_2.

    Args:
        gs: (T, d) or (T, m, n) float array of the g_t (a matrix-shaped problem keeps ``shape = (m, n)``).
        radius: the ball's radius (> 0), or ``None`` for R^d (then ``best_fixed`` needs sum_t g_t = 0).

    Raises:
        ValueError: ``gs`` with fewer than 2 or more than 3 dimensions, no rounds, non-finite entries; a bad radius.
        TypeError: ``gs`` not numeric.
    """

    def __init__(self, gs: Any, radius: float | None = None) -> None:
        r = _radius(radius)
        super().__init__(_as_float64(gs, "gs", (2, 3)), None if r is None else L2Ball(r))
        self.radius = r


class RandomSign(_Linear):
    """Appendix B's randomized adversary: l_t(w) = -x_t w with x_t = ±1 i.i.d. fair signs, on V = [-1, 1].

    ``copies`` independent games are played at once, one per coordinate (w in [-1, 1]^copies; a coordinatewise
    learner such as SGD, diagonal AdaGrad or Adam plays each game on its own): l_t(w) = -sum_k x_{t,k} w_k and
    u*_k = sign(S_k) with S_k = sum_t x_{t,k}, so the best fixed loss is -sum_k |S_k|. E|S_k| -> sqrt(2T/pi).

    Args:
        T: rounds, an integer >= 1.
        seed: seeds a ``torch.Generator`` drawing the signs.
        copies: independent games, an integer >= 1.

    Attributes:
        signs: (T, copies) float64 tensor of the x_t.

    Raises:
        ValueError: ``T`` or ``copies`` not an integer >= 1.
    """

    def __init__(self, T: int, seed: int = 0, copies: int = 1) -> None:
        T, copies = _checks.count(T, "T", low=1), _checks.count(copies, "copies", low=1)
        seed = _checks.number(seed, "seed", integer=True)
        g = torch.Generator().manual_seed(seed)
        self.signs = torch.randint(0, 2, (T, copies), generator=g).to(torch.float64) * 2 - 1
        super().__init__(-self.signs, Box(-1.0, 1.0))

    def per_copy_regret(self, run: Any) -> torch.Tensor:
        """(copies,) float64: each game's regret, -sum_t x_t w_t + |sum_t x_t|, from a run's iterates.

        Raises:
            ValueError: a run without iterates or of another shape.
        """
        W = run.iterates
        if W is None or tuple(W.shape) != tuple(self.signs.shape):
            raise ValueError("per_copy_regret needs a run of this adversary made with record_iterates=True")
        return -(self.signs * W).sum(0) + self.signs.sum(0).abs()


class ReddiCounterexample(_Linear):
    """Reddi et al.'s online problem (Section 4.2): on V = [-1, 1], l_t(x) = C x when t = 1, 4, 7, ... (round
    t mod 3 = 1, counting from 1) and l_t(x) = -x otherwise. For C > 2, u* = -1.

    Args:
        C: a finite float (> 2 for the counterexample).
        T: rounds, an integer >= 1.

    Raises:
        ValueError: ``T`` not an integer >= 1 or ``C`` not finite.
    """

    def __init__(self, C: float, T: int) -> None:
        T = _checks.count(T, "T", low=1)
        self.C = _checks.finite(C, "C")
        coef = torch.full((T, 1), -1.0, dtype=torch.float64)
        coef[0::3] = self.C
        super().__init__(coef, Box(-1.0, 1.0))


class QuadraticLosses(Adversary):
    """l_t(w) = ½||w - z_t||_2² (on R^d, or the ball ||w|| <= radius); u* = the (projected) mean target.

    Args:
        targets: (T, d) or (T, m, n) float array of the z_t.
        radius: the ball's radius, or ``None`` for R^d.

    Raises:
        ValueError: bad shapes, non-finite targets, a bad radius; TypeError: non-numeric targets.
    """

    def __init__(self, targets: Any, radius: float | None = None) -> None:
        Z = _as_float64(targets, "targets", (2, 3))
        self.rounds = int(Z.shape[0])
        self.shape = tuple(Z.shape[1:])
        self.Z = Z.reshape(self.rounds, -1)
        self.radius = _radius(radius)
        self.domain = None if self.radius is None else L2Ball(self.radius)

    def loss(self, t: int, w: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((self._w(w) - self.Z[self._t(t)].to(w.dtype)) ** 2).sum()

    def losses(self, w: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((self._w(w).to(torch.float64) - self.Z) ** 2).sum(1)

    def _best_fixed(self) -> tuple[torch.Tensor, float]:
        u, v = hindsight.quadratic_best_fixed(self.Z.numpy(), self.radius)
        return torch.from_numpy(u).reshape(self.shape), v


class _Examples(Adversary):
    def __init__(self, X: Any, y: Any) -> None:
        self.X = _as_float64(X, "X", (2,))
        self.y = _labels(y, self.X.shape[0])
        self.rounds = int(self.X.shape[0])
        self.shape = (int(self.X.shape[1]),)

    def _margin(self, t: int, w: torch.Tensor) -> torch.Tensor:
        t = self._t(t)
        return self.X[t].to(w.dtype) @ self._w(w)


class AbsoluteLosses(_Examples):
    """l_t(w) = |x_t^T w - y_t| (least absolute deviations), on R^d or the box |w_i| <= bound.

    u* by a linear program (:func:`adaptim.online.hindsight.lp_best_fixed`). Autograd's subgradient at a kink
    is 0, a valid one.

    Args:
        X: (T, d) features; y: (T,) targets; bound: the box's half-width, or ``None``.

    Raises:
        ValueError: bad shapes, non-finite entries, ``bound`` not a finite number > 0.
    """

    def __init__(self, X: Any, y: Any, bound: float | None = None) -> None:
        super().__init__(X, y)
        self.bound = _radius(bound)
        self.domain = None if self.bound is None else Box(-self.bound, self.bound)

    def loss(self, t: int, w: torch.Tensor) -> torch.Tensor:
        return (self._margin(t, w) - self.y[t].to(w.dtype)).abs()

    def losses(self, w: torch.Tensor) -> torch.Tensor:
        return (self.X @ self._w(w).to(torch.float64) - self.y).abs()

    def _best_fixed(self) -> tuple[torch.Tensor, float]:
        u, v = hindsight.lp_best_fixed(self.X.numpy(), self.y.numpy(), "absolute", self.bound)
        return torch.from_numpy(u), v


class HingeLosses(_Examples):
    """l_t(w) = max(0, 1 - y_t x_t^T w) (labels ±1), on R^d or the box |w_i| <= bound; u* by a linear program.

    Args:
        X: (T, d) features; y: (T,) labels in {-1, +1}; bound: the box's half-width, or ``None``.

    Raises:
        ValueError: bad shapes, non-finite entries, labels not ±1, a bad ``bound``.
    """

    def __init__(self, X: Any, y: Any, bound: float | None = None) -> None:
        super().__init__(X, y)
        if not bool(((self.y == 1) | (self.y == -1)).all()):
            raise ValueError("y must hold labels in {-1, +1}")
        self.bound = _radius(bound)
        self.domain = None if self.bound is None else Box(-self.bound, self.bound)

    def loss(self, t: int, w: torch.Tensor) -> torch.Tensor:
        return torch.clamp(1 - self.y[t].to(w.dtype) * self._margin(t, w), min=0)

    def losses(self, w: torch.Tensor) -> torch.Tensor:
        return torch.clamp(1 - self.y * (self.X @ self._w(w).to(torch.float64)), min=0)

    def _best_fixed(self) -> tuple[torch.Tensor, float]:
        u, v = hindsight.lp_best_fixed(self.X.numpy(), self.y.numpy(), "hinge", self.bound)
        return torch.from_numpy(u), v


class LogisticLosses(_Examples):
    """l_t(w) = log(1 + exp(-y_t x_t^T w)) (labels ±1), on R^d or the ball ||w||_2 <= radius.

    ||grad l_t|| <= ||x_t||_2 (:attr:`lipschitz` = max_t ||x_t||_2 bounds every gradient: L of (22)). u* by Newton's
    method (:func:`adaptim.online.hindsight.logistic_best_fixed`); on R^d separable data have none.

    Args:
        X: (T, d) features; y: (T,) labels in {-1, +1}; radius: the ball's radius, or ``None``.

    Raises:
        ValueError: bad shapes, non-finite entries, labels not ±1, a bad radius; ``best_fixed`` on separable data
            without a radius.
    """

    def __init__(self, X: Any, y: Any, radius: float | None = None) -> None:
        super().__init__(X, y)
        if not bool(((self.y == 1) | (self.y == -1)).all()):
            raise ValueError("y must hold labels in {-1, +1}")
        self.radius = _radius(radius)
        self.domain = None if self.radius is None else L2Ball(self.radius)

    @property
    def lipschitz(self) -> float:
        """max_t ||x_t||_2, a bound on every ||grad l_t(w)||_2."""
        return float(torch.linalg.vector_norm(self.X, dim=1).max())

    def loss(self, t: int, w: torch.Tensor) -> torch.Tensor:
        z = self.y[t].to(w.dtype) * self._margin(t, w)
        return torch.logaddexp(torch.zeros((), dtype=z.dtype), -z)

    def subgradient(self, t: int, w: torch.Tensor) -> torch.Tensor:
        """grad l_t(w) = -y_t sigmoid(-y_t x_t^T w) x_t (the autograd value, without the graph)."""
        with torch.no_grad():
            z = self.y[t] * self._margin(t, w.to(torch.float64))
            return -self.y[t] * torch.sigmoid(-z) * self.X[t]

    def losses(self, w: torch.Tensor) -> torch.Tensor:
        z = self.y * (self.X @ self._w(w).to(torch.float64))
        return torch.logaddexp(torch.zeros((), dtype=torch.float64), -z)

    def _best_fixed(self) -> tuple[torch.Tensor, float]:
        u, v = hindsight.logistic_best_fixed(self.X.numpy(), self.y.numpy(), self.radius)
        return torch.from_numpy(u), v


@functools.lru_cache(maxsize=1)
def breast_cancer_table() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's breast-cancer table, read from the CSV it ships without importing scikit-learn (whose import
    takes seconds); ``sklearn.datasets.load_breast_cancer`` as fallback.

    Returns:
        ``(X, target)``: X (569, 30) float64 features, target (569,) int64 (0 = malignant, 1 = benign).
    """
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / "datasets" / "data" / "breast_cancer.csv"
        if path.is_file():
            table = np.loadtxt(path, delimiter=",", skiprows=1)
            return table[:, :-1].copy(), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target, dtype=np.int64)


def breast_cancer_stream(seed: int = 0, standardize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's breast-cancer data (569 examples, 30 features) in a fixed shuffled order.

    Args:
        seed: seeds the permutation (``numpy.random.default_rng(seed)``).
        standardize: center each feature and scale it to unit variance (over the whole set).

    Returns:
        ``(X, y)``: X (569, 30) float64, y (569,) float64 in {-1, +1} (+1 = benign).
    """
    X, target = breast_cancer_table()
    y = np.where(target == 1, 1.0, -1.0)
    if standardize:
        X = (X - X.mean(0)) / X.std(0)
    perm = np.random.default_rng(_checks.number(seed, "seed", integer=True)).permutation(len(y))
    return torch.from_numpy(X[perm].copy()), torch.from_numpy(y[perm].copy())
