"""Helpers shared by the matrix claims (Sections 5-7, Appendices G, M, Q): the notes' side in numpy and scipy.

Nothing here re-implements a method of the library: these are the generic pieces of linear algebra the
predictions are written with (a symmetric matrix power by eigendecomposition, a log-log slope, the largest
principal angle between two subspaces, the five matrix norms from their definitions, a numerical maximization of
a linear function over a norm ball), (the runner runs every claim on one torch thread).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog, minimize


def sym_power(A: np.ndarray, p: float, *, floor: float = 0.0) -> np.ndarray:
    """(A)^p for symmetric PSD ``A`` by numpy's eigendecomposition; eigenvalues <= ``floor`` * max are dropped
    (a pseudo-power on the range) when ``p < 0``, clamped at 0 otherwise."""
    lam, V = np.linalg.eigh((A + A.T) / 2)
    lam = np.clip(lam, 0.0, None)
    if p < 0:
        keep = lam > floor * lam.max()
        out = np.zeros_like(lam)
        out[keep] = lam[keep] ** p
    else:
        out = lam**p
    return (V * out) @ V.T


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def log_rate(y) -> float:
    """Least-squares slope of log y against the index 0, 1, 2, ..., as a per-step factor exp(slope)."""
    y = np.asarray(y, float)
    return float(np.exp(np.polyfit(np.arange(len(y)), np.log(y), 1)[0]))


def sin_theta(V: np.ndarray, W: np.ndarray) -> float:
    """sin of the largest principal angle between span(V) and span(W) (orthonormal columns, same count)."""
    P = V @ V.T
    return float(np.linalg.norm(W - P @ W, 2))


def np_norm(X: np.ndarray, norm: str) -> float:
    """The five norms from their definitions (M.1, Section 7), in numpy."""
    s = np.linalg.svd(X, compute_uv=False)
    return float(
        {
            "frobenius": np.sqrt((X**2).sum()),
            "spectral": s.max(),
            "nuclear": s.sum(),
            "inf": np.abs(X).max(),
            "l1": np.abs(X).sum(),
        }[norm]
    )


def numerical_max(G: np.ndarray, norm: str, rng: np.random.Generator, starts: int) -> float:
    """max <G, D> over ||D|| <= 1, by a generic solver (no closed form of the maximizer).

    A linear function's maximum over a compact convex set is attained at an extreme point, which the
    parametrizations use: the spectral ball's extreme points (m >= n) are the D with D^T D = I (the Q factor of
    any m x n matrix), the nuclear ball's the u v^T with unit u, v. The polyhedral balls are linear programs and
    the Frobenius ball a smooth constrained problem.
    """
    m, n = G.shape
    g = G.reshape(-1)
    if norm == "inf":
        return float(-linprog(-g, bounds=[(-1, 1)] * g.size, method="highs").fun)
    if norm == "l1":  # D = P - N, P, N >= 0, sum(P + N) <= 1
        res = linprog(
            np.concatenate([-g, g]), A_ub=np.ones((1, 2 * g.size)), b_ub=[1.0], bounds=(0, None), method="highs"
        )
        return float(-res.fun)
    best = -np.inf
    for _ in range(starts):
        if norm == "frobenius":
            res = minimize(
                lambda x: -(g @ x),
                rng.standard_normal(g.size),
                method="SLSQP",
                constraints=[{"type": "ineq", "fun": lambda x: 1.0 - x @ x}],
                options=dict(ftol=1e-14),
            )
            val = -res.fun
        elif norm == "spectral":

            def f(x):
                Q, R = np.linalg.qr(x.reshape(m, n))
                Q = Q * np.where(np.diag(R) < 0, -1.0, 1.0)  # Gram-Schmidt signs: continuous in x
                return -float((G * Q).sum())

            res = minimize(f, rng.standard_normal(m * n), method="BFGS", options=dict(gtol=1e-10))
            val = -res.fun
        else:  # nuclear

            def f(x):
                u, v = x[:m], x[m:]
                nu, nv = np.linalg.norm(u), np.linalg.norm(v)
                val = float(u @ G @ v) / (nu * nv)
                gu = G @ v / (nu * nv) - val * u / nu**2
                gv = G.T @ u / (nu * nv) - val * v / nv**2
                return -val, -np.concatenate([gu, gv])

            res = minimize(f, rng.standard_normal(m + n), jac=True, method="BFGS", options=dict(gtol=1e-12))
            val = -res.fun
        best = max(best, float(val))
    return best
