"""The best fixed point in hindsight, u* = argmin_{u in V} sum_t l_t(u) (Section 1), for the adversaries' losses.

Closed forms where one exists (linear losses on a ball or box, quadratic losses); a linear program (scipy's HiGHS)
for absolute and hinge losses; a damped Newton method with a bisection on the ball's multiplier for logistic
losses. Every solver returns ``(u, value)`` with ``u`` a float64 numpy array and ``value = sum_t l_t(u)``, the
value accurate to about 1e-9 relative. Non-finite or non-numeric data and a radius/bound that is not a finite
number > 0 raise ``ValueError`` naming the argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptim.online import _checks

__all__ = [
    "best_fixed",
    "linear_best_fixed",
    "quadratic_best_fixed",
    "lp_best_fixed",
    "logistic_best_fixed",
]


def best_fixed(adversary: Any) -> tuple[np.ndarray, float]:
    """``adversary.best_fixed()``: u* (float64 array of ``adversary.shape``) and sum_t l_t(u*).

    Raises:
        TypeError: an adversary without ``best_fixed``.
    """
    f = getattr(adversary, "best_fixed", None)
    if not callable(f):
        raise TypeError(f"adversary must have best_fixed(), {type(adversary).__name__} has none")
    return f()


def _array(x: Any, name: str) -> np.ndarray:
    return _checks.finite_tensor(x, name).numpy()


def _examples(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X, y = _array(X, "X"), _array(y, "y")
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (T, d) and y (T,), got {X.shape} and {y.shape}")
    return X, y


def linear_best_fixed(c: np.ndarray, domain: Any) -> tuple[np.ndarray, float]:
    """argmin of <c, u> over the domain, c = sum_t g_t (d,).

    On the l2 ball of radius R about 0: u* = -R c / ||c||_2, value -R ||c||_2 (u* = 0 when c = 0). On a box
    [lo, hi]: u*_i = lo_i where c_i > 0, hi_i where c_i < 0, and the point of [lo_i, hi_i] nearest 0 where c_i = 0.

    Raises:
        ValueError: ``domain`` is ``None`` (R^d) and c != 0 (the infimum is -inf); an unknown domain.
    """
    from adaptim.online.protocol import Box, L2Ball

    c = _array(c, "c").reshape(-1)
    if domain is None:
        if np.any(c != 0):
            raise ValueError("linear losses on R^d with sum_t g_t != 0 have no best fixed point: give a radius")
        return np.zeros_like(c), 0.0
    if isinstance(domain, L2Ball):
        if domain.center is not None:
            center = np.asarray(domain.center, dtype=np.float64).reshape(-1)
        else:
            center = np.zeros_like(c)
        n = float(np.linalg.norm(c))
        u = center.copy() if n == 0 else center - domain.radius * c / n
        return u, float(c @ u)
    if isinstance(domain, Box):
        lo = np.broadcast_to(domain.lo.numpy(), c.shape).astype(np.float64)
        hi = np.broadcast_to(domain.hi.numpy(), c.shape).astype(np.float64)
        u = np.where(c > 0, lo, np.where(c < 0, hi, np.clip(0.0, lo, hi)))
        return u, float(c @ u)
    raise ValueError(f"unknown domain {domain!r} (expected None, an L2Ball or a Box)")


def quadratic_best_fixed(targets: np.ndarray, radius: float | None = None) -> tuple[np.ndarray, float]:
    """argmin of sum_t ½||u - z_t||² over ||u||_2 <= radius (or R^d): the projection of the mean target.

    sum_t ½||u - z_t||² = (T/2)||u - z̄||² + const, so u* is the projection of z̄ onto the ball.

    Args:
        targets: (T, d) float array z_1..z_T.
        radius: the ball's radius, or ``None``.
    """
    Z = _array(targets, "targets")
    if Z.ndim < 1 or Z.shape[0] < 1:
        raise ValueError(f"targets must have at least one row, got shape {Z.shape}")
    Z = Z.reshape(Z.shape[0], -1)
    radius = None if radius is None else _checks.positive(radius, "radius")
    u = Z.mean(0)
    if radius is not None and np.linalg.norm(u) > radius:
        u = u * (radius / np.linalg.norm(u))
    return u, float(0.5 * ((Z - u) ** 2).sum())


def lp_best_fixed(X: np.ndarray, y: np.ndarray, kind: str, bound: float | None = None) -> tuple[np.ndarray, float]:
    """argmin over u of sum_t |x_t^T u - y_t| (``kind="absolute"``) or sum_t max(0, 1 - y_t x_t^T u)
    (``kind="hinge"``), over R^d or the box |u_i| <= bound, as a linear program in (u, s) with slacks
    s_t >= the loss (scipy's HiGHS, tolerances 1e-10).

    Raises:
        ValueError: an unknown ``kind``; RuntimeError: the solver failed.
    """
    from scipy.optimize import linprog

    X, y = _examples(X, y)
    bound = None if bound is None else _checks.positive(bound, "bound")
    T, d = X.shape
    c = np.concatenate([np.zeros(d), np.ones(T)])
    eye = np.eye(T)
    if kind == "absolute":  # s >= Xu - y and s >= y - Xu
        A = np.block([[X, -eye], [-X, -eye]])
        b = np.concatenate([y, -y])
    elif kind == "hinge":  # s >= 1 - y * Xu, s >= 0
        A = np.hstack([-(y[:, None] * X), -eye])
        b = -np.ones(T)
    else:
        raise ValueError(f"kind must be 'absolute' or 'hinge', got {kind!r}")
    ub = (None, None) if bound is None else (-bound, bound)
    bounds = [ub] * d + [(0, None)] * T
    res = linprog(
        c,
        A_ub=A,
        b_ub=b,
        bounds=bounds,
        method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    if res.status != 0:
        raise RuntimeError(f"linear program for the best fixed point failed: {res.message}")
    u = res.x[:d]
    z = X @ u
    value = np.abs(z - y).sum() if kind == "absolute" else np.maximum(0.0, 1.0 - y * z).sum()
    return u, float(value)


def _logistic_value(X: np.ndarray, y: np.ndarray, u: np.ndarray) -> float:
    return float(np.logaddexp(0.0, -y * (X @ u)).sum())


def _ridge_newton(
    X: np.ndarray, y: np.ndarray, lam: float, u0: np.ndarray, max_iter: int = 100, max_norm: float = 1e8
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """argmin sum_t log(1 + exp(-y_t x_t^T u)) + lam/2 ||u||² by damped Newton from u0.

    Returns ``(u, H)`` with H the Hessian at u, or ``(None, None)`` when the iterates leave ||u|| <= max_norm or
    do not converge in ``max_iter`` steps.
    """
    from scipy.special import expit

    u = u0.copy()
    d = X.shape[1]

    def F(v: np.ndarray) -> float:
        return _logistic_value(X, y, v) + 0.5 * lam * float(v @ v)

    f = F(u)
    scale = max(1.0, float(np.abs(X).sum()))
    for _ in range(max_iter):
        s = expit(-y * (X @ u))  # -dl/dz at z = y x^T u
        g = -(X.T @ (y * s)) + lam * u
        H = (X.T * (s * (1 - s))) @ X + lam * np.eye(d)
        if np.linalg.norm(g) <= 1e-13 * scale:
            return u, H
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(H, g, rcond=None)[0]
        decrement = float(g @ step)  # Newton decrement²: f - min of the local quadratic model is half of it
        if decrement <= 1e-15 * max(1.0, abs(f)):
            return u, H
        a = 1.0
        while True:  # backtracking (Armijo)
            v = u - a * step
            fv = F(v)
            if fv <= f - 1e-4 * a * decrement or a < 1e-10:
                break
            a *= 0.5
        if a < 1e-10 or fv >= f:  # no decrease possible: at the minimum to rounding
            return u, H
        u, f = v, fv
        if np.linalg.norm(u) > max_norm:  # heading off to infinity (separable data without a ball)
            return None, None
    return None, None


def _separable(X: np.ndarray, y: np.ndarray) -> bool:
    """Whether some v != 0 has y_t x_t^T v >= 0 for every t with one > 0 (then the logistic sum decreases
    forever along v: no minimizer on R^d). A linear program: max sum_t y_t x_t^T v over that cone, |v_i| <= 1."""
    from scipy.optimize import linprog

    M = y[:, None] * X
    res = linprog(-M.sum(0), A_ub=-M, b_ub=np.zeros(len(y)), bounds=[(-1, 1)] * X.shape[1], method="highs")
    return res.status == 0 and -res.fun > 1e-9 * max(1.0, float(np.abs(M).sum()))


def logistic_best_fixed(X: np.ndarray, y: np.ndarray, radius: float | None = None) -> tuple[np.ndarray, float]:
    """argmin over ||u||_2 <= radius (or R^d) of sum_t log(1 + exp(-y_t x_t^T u)).

    Separable data (a linear program decides) have no minimizer on R^d; otherwise Newton's method. On the ball,
    when the unconstrained minimizer lies outside it (or there is none), the KKT point u(lam) = argmin
    sum_t l_t(u) + lam/2 ||u||² with ||u(lam)|| = radius, lam found by a safeguarded Newton iteration on
    1/||u(lam)|| - 1/radius (which increases in lam).

    Args:
        X: (T, d) features; y: (T,) labels in {-1, +1}.
        radius: the ball's radius, or ``None``.

    Raises:
        ValueError: ``radius=None`` and the data are linearly separable (the infimum 0 is not attained).
    """
    X, y = _examples(X, y)
    radius = None if radius is None else _checks.positive(radius, "radius")
    d = X.shape[1]
    if not _separable(X, y):
        u, _ = _ridge_newton(X, y, 0.0, np.zeros(d), max_iter=500)
        if u is None:
            raise RuntimeError("Newton's method did not converge on the logistic losses")
        if radius is None or np.linalg.norm(u) <= radius:
            return u, _logistic_value(X, y, u)
    elif radius is None:
        raise ValueError("the logistic losses are separable: no best fixed point on R^d; give a radius")
    # the multiplier: phi(lam) = 1/||u(lam)|| - 1/radius is increasing and nearly linear in lam (as in trust-region
    # subproblems); safeguarded Newton with d u / d lam = -(H + lam I)^{-1} u, bisection on a bracket as fallback
    lo, hi = 0.0, max(float(np.linalg.norm(X.T @ (0.5 * y))) / radius, 1e-12) * 1.01  # ||u(hi)|| < radius
    lam = hi
    v = np.zeros(d)
    for _ in range(200):
        w, H = _ridge_newton(X, y, lam, v)
        if w is None:
            w, H = _ridge_newton(X, y, lam, np.zeros(d), max_iter=500)
        v = w
        n = float(np.linalg.norm(w))
        phi = 1.0 / n - 1.0 / radius
        if abs(n - radius) <= 1e-13 * radius:
            break
        if phi < 0:
            lo = lam
        else:
            hi = lam
        du = -np.linalg.solve(H, w)  # d u / d lam
        dphi = -float(w @ du) / n**3
        new = lam - phi / dphi if dphi > 0 else -1.0
        lam = new if lo < new < hi else (0.5 * (lo + hi) if lo > 0 else hi / 16)
    v = v * (radius / np.linalg.norm(v))  # on the sphere exactly
    return v, _logistic_value(X, y, v)
