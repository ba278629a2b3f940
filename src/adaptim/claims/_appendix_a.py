"""Problems shared by the claims of Appendix A, O, P and J: L2-regularized logistic regression on the breast-cancer
table (real data) and a convex quadratic on which gradient descent's O(1/t) and Nesterov's O(1/t^2) are attained."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Logistic", "SlowQuadratic", "logistic_problem", "slow_quadratic", "softplus_problem"]


@dataclass(frozen=True)
class Logistic:
    """J(w) = (1/n) sum_i log(1 + exp(-y_i x_i^T w)) + (lam/2) ||w||^2 on the standardized breast-cancer training
    table with a bias column (x of shape (n, d), y in {-1, +1}); float64.

    ``L`` = lambda_max(X^T X)/(4n) + lam bounds the Hessian's norm everywhere (sigma' <= 1/4): J is L-smooth and
    lam-strongly convex. ``w_star`` and ``j_star`` come from scipy's Newton-CG with the analytic gradient and
    Hessian (numpy), independent of adaptim.
    """

    x: torch.Tensor
    y: torch.Tensor
    lam: float
    L: float
    w_star: np.ndarray
    j_star: float

    def f(self, w: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.softplus(-self.y * (self.x @ w)).mean() + 0.5 * self.lam * (w @ w)

    @property
    def d(self) -> int:
        return self.x.shape[1]


def _np_logistic(x: np.ndarray, y: np.ndarray, lam: float):
    n = x.shape[0]

    def value(w):
        return np.logaddexp(0.0, -y * (x @ w)).mean() + 0.5 * lam * w @ w

    def grad(w):
        s = 0.5 * (1 - np.tanh(0.5 * y * (x @ w)))  # sigma(-y x^T w), stable
        return -(x.T @ (y * s)) / n + lam * w

    def hess(w):
        z = x @ w
        p = 0.5 * (1 + np.tanh(0.5 * z))
        return (x.T * (p * (1 - p))) @ x / n + lam * np.eye(x.shape[1])

    return value, grad, hess


@functools.lru_cache(maxsize=4)
def logistic_problem(lam: float = 1e-3) -> Logistic:
    """The regularized logistic regression above (cached: the data load and the scipy solve run once)."""
    from scipy.optimize import minimize

    from adaptim.bench.data import load_breast_cancer_split

    split = load_breast_cancer_split()
    x = torch.cat([split.x_train, torch.ones(split.x_train.shape[0], 1, dtype=torch.float64)], 1)
    y = split.y_train.to(torch.float64) * 2 - 1
    xn, yn = x.numpy(), y.numpy()
    L = float(np.linalg.eigvalsh(xn.T @ xn / xn.shape[0]).max() / 4 + lam)
    value, grad, hess = _np_logistic(xn, yn, lam)
    res = minimize(value, np.zeros(xn.shape[1]), jac=grad, hess=hess, method="Newton-CG", options={"xtol": 1e-14})
    w = res.x
    for _ in range(3):  # polish: a few exact Newton steps in numpy (quadratic convergence)
        w = w - np.linalg.solve(hess(w), grad(w))
    return Logistic(x, y, lam, L, w, float(value(w)))


@dataclass(frozen=True)
class SlowQuadratic:
    """J(w) = (1/2) sum_i a_i w_i^2 with a_i = L (i/d)^2 and the start w_1 chosen so that a_i w_{1,i}^2 = d (a_i -
    a_{i-1}) / L: the error's spectral mass is spread evenly over [0, L], the case where gradient descent's
    J(w_t) - J^* = (1/2) sum_i a_i w_{1,i}^2 (1 - a_i/L)^{2t} ~ d / (4t) and Nesterov's ~ 2d/t^2 (for t^2 << d^2);
    J^* = 0 at w^* = 0.
    """

    a: torch.Tensor
    w1: torch.Tensor
    L: float

    def f(self, w: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.a * w * w).sum()

    def grad(self, w: torch.Tensor) -> torch.Tensor:
        return self.a * w

    def gd_errors(self, steps: int) -> np.ndarray:
        """The closed form of gradient descent's J(w_{t+1}) - J^*, t = 0..steps (numpy, float64)."""
        a, w1 = self.a.numpy(), self.w1.numpy()
        t = np.arange(steps + 1)[:, None]
        return 0.5 * (a * w1**2 * (1 - a / self.L) ** (2 * t)).sum(1)


def slow_quadratic(d: int, L: float = 1.0) -> SlowQuadratic:
    """The quadratic above in dimension d (float64)."""
    a = L * (np.arange(1, d + 1) / d) ** 2
    mass = d * np.diff(np.concatenate([[0.0], a])) / L
    return SlowQuadratic(torch.tensor(a), torch.tensor(np.sqrt(mass / a)), float(L))


def softplus_problem(d: int, m: float):
    """J(w) = sum_i [softplus(q_i^T w) - (sigma(c_i) + m c_i) q_i^T w] + (m/2)||w||^2, Q orthogonal.

    In z = Q^T w it is separable with J_i'' = sigma'(z_i) + m in [m, m + 1/4] and |J_i'''| = |sigma''| <=
    1/(6 sqrt 3); so J is m-strongly convex, M = m + 1/4 smooth, its Hessian is L = 1/(6 sqrt 3)-Lipschitz
    (in operator norm), and w^* = Q c (the gradient vanishes at z = c). J'''(w^*) != 0, so Newton's
    convergence is exactly quadratic (not cubic).
    """
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64))
    c = torch.randn(d, dtype=torch.float64)
    coef = torch.sigmoid(c) + m * c

    def f(w):
        z = q.T @ w
        return (torch.nn.functional.softplus(z) - coef * z).sum() + 0.5 * m * (w @ w)

    return f, q @ c, m, m + 0.25, 1 / (6 * math.sqrt(3))
