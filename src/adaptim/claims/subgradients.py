"""Appendix R: adaptim.linalg.norm_subgradient returns subgradients (148) characterized by (152), composed through
the linear chain rule (149)-(151); Lemma S.20 (<M, S> = <sym(M), S> for symmetric S)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from adaptim.claims._core import Claim, Context
from adaptim.linalg import DUAL_NORM, NORMS, matrix_norm, norm_subgradient
from adaptim.manifolds.stiefel import sym


def _norm(Y: np.ndarray, norm: str) -> np.ndarray:
    """||Y|| for each matrix of a (..., m, n) array, evaluated by numpy (the notes' definitions)."""
    if norm == "frobenius":
        return np.sqrt((Y**2).sum(axis=(-2, -1)))
    if norm == "inf":
        return np.abs(Y).max(axis=(-2, -1))
    if norm == "l1":
        return np.abs(Y).sum(axis=(-2, -1))
    s = np.linalg.svd(Y, compute_uv=False)
    return s[..., 0] if norm == "spectral" else s.sum(-1)


def _sub(X: np.ndarray, norm: str) -> np.ndarray:
    return norm_subgradient(torch.tensor(X), norm).numpy()


def _min_gap(X: np.ndarray, Z: np.ndarray, Ys: np.ndarray, norm: str) -> float:
    """min over Y of (||Y|| - ||X|| - <Z, Y - X>) / (1 + ||Y||): >= 0 for a subgradient Z at X (148)."""
    gap = _norm(Ys, norm) - _norm(X, norm) - ((Ys - X) * Z).sum(axis=(-2, -1))
    return float((gap / (1 + _norm(Ys, norm))).min())


def _points(rng, X: np.ndarray, n: int) -> np.ndarray:
    """Test points: Gaussians of several scales, and small perturbations of X (where the bound is tightest)."""
    scale = rng.choice([1e-3, 1e-1, 1.0, 10.0], size=(n, 1, 1))
    far = rng.standard_normal((n,) + X.shape) * scale
    near = X + rng.standard_normal((n,) + X.shape) * scale * 1e-2
    return np.concatenate([far, near])


def run(ctx: Context):
    rng = np.random.default_rng(0)
    m, n = 5, 4
    N = ctx.size(1000, 20000)
    special = {
        "generic": rng.standard_normal((m, n)),
        "rank 2": rng.standard_normal((m, 2)) @ rng.standard_normal((2, n)),
        "ties and zeros": np.array(
            [[2.0, -2.0, 0.0, 1.0], [0.0, 2.0, -1.0, 0.0], [1, 0, 0, -2], [0, 0, 0, 0], [2, 1, 0, 0]]
        ),
        "zero": np.zeros((m, n)),
    }
    for norm in NORMS:
        worst_dual, worst_attain = 0.0, 0.0
        min_gap = np.inf
        for what, X in special.items():
            Z = _sub(X, norm)
            dual = float(matrix_norm(torch.tensor(Z), DUAL_NORM[norm]))
            worst_dual = max(worst_dual, dual) if what != "zero" else worst_dual
            worst_attain = max(worst_attain, abs(float((Z * X).sum()) - float(_norm(X, norm))))
            min_gap = min(min_gap, _min_gap(X, Z, _points(rng, X, N), norm))
        ctx.le(
            f"(152) {norm}: ||Z||_{DUAL_NORM[norm]} <= 1 (max over generic, rank-2, tied, zero X)",
            worst_dual,
            1.0,
            atol=1e-12,
        )
        ctx.close(f"(152) {norm}: <Z, X> = ||X||, max error", 0.0, worst_attain, atol=1e-12)
        ctx.ge(
            f"(148) {norm}: min relative gap ||Y|| - ||X|| - <Z, Y - X> over {2 * N} Y per X", min_gap, 0.0, atol=1e-13
        )
        # at a point of differentiability the subgradient is the gradient
        Xg = special["generic"]
        tx = torch.tensor(Xg, requires_grad=True)
        (grad,) = torch.autograd.grad(matrix_norm(tx, norm), tx)
        ctx.close(
            f"(148) {norm}: at a generic X the subgradient is the gradient (autograd)",
            grad.numpy(),
            _sub(Xg, norm),
            atol=1e-12,
        )
        # a check that can fail: a wrong Z (the subgradient plus a perturbation) breaks (148)
        bad = _sub(Xg, norm) + 0.1 * rng.standard_normal((m, n))
        caught = _min_gap(Xg, bad, _points(rng, Xg, N), norm)
        ctx.true(
            f"(148) {norm}: a perturbed Z is caught (some Y gives a negative gap)",
            caught < 0,
            measured=caught,
            tolerance="min gap < 0",
        )

    # (149): phi(x) = f(L(x) + b), L(x) = sum_i x_i M_i, L*(Z) = (<M_i, Z>)_i; L*(Z) is a subgradient of phi
    k = 3
    Ms = rng.standard_normal((k, m, n))
    b = rng.standard_normal((m, n))
    for norm in NORMS:
        x = rng.standard_normal(k)
        Z = _sub(np.tensordot(x, Ms, 1) + b, norm)
        s = np.tensordot(Ms, Z, ((1, 2), (0, 1)))  # L*(Z)
        xs = np.concatenate([rng.standard_normal((N, k)) * 3, x + 1e-3 * rng.standard_normal((N, k))])
        phi = _norm(np.tensordot(xs, Ms, 1) + b, norm)
        gap = phi - _norm(np.tensordot(x, Ms, 1) + b, norm) - (xs - x) @ s
        ctx.ge(
            f"(149) {norm}: L*(Z) is a subgradient of f(L(x) + b), min relative gap",
            float((gap / (1 + phi)).min()),
            0.0,
            atol=1e-13,
        )

    # (150): phi(lam) = ||lam w + g|| on vectors; x^T z is a subgradient, and 0 lies in the subdifferential at the
    # minimizer (the one-sided slopes straddle 0), the fact Lemma S.21 rests on
    d = 7
    w, g = rng.standard_normal((d, 1)), rng.standard_normal((d, 1))
    lam = np.linspace(-4, 4, 401)
    curves = {}
    for norm in ("l1", "inf", "frobenius"):
        phi = _norm(lam[:, None, None] * w + g, norm)
        curves[norm] = phi
        worst = np.inf
        for l0 in rng.uniform(-3, 3, 20):
            slope = float((w * _sub(l0 * w + g, norm)).sum())
            worst = min(worst, float((phi - _norm(l0 * w + g, norm) - slope * (lam - l0)).min()))
        ctx.ge(f"(150) {norm}: w^T z is a subgradient of ||lam w + g||, min gap on a grid", worst, 0.0, atol=1e-12)
        res = minimize_scalar(
            lambda t, norm=norm: float(_norm(t * w + g, norm)),
            bounds=(-10, 10),
            method="bounded",
            options={"xatol": 1e-12},
        )
        eps = 1e-6
        left = float((w * _sub((res.x - eps) * w + g, norm)).sum())
        right = float((w * _sub((res.x + eps) * w + g, norm)).sum())
        ctx.true(
            f"(150) {norm}: 0 in the subdifferential at the minimizer (left slope <= 0 <= right slope)",
            left <= 1e-9 and right >= -1e-9,
            measured=[left, right],
            tolerance="left <= 0 <= right (1e-9)",
        )

    # (151): phi(Lam) = ||X Lam + B||, X^T Z is a subgradient
    D, dd = 6, 3
    X, B = rng.standard_normal((D, dd)), rng.standard_normal((D, dd))
    for norm in NORMS:
        L0 = rng.standard_normal((dd, dd))
        S = X.T @ _sub(X @ L0 + B, norm)
        Ls = np.concatenate([rng.standard_normal((N, dd, dd)) * 2, L0 + 1e-3 * rng.standard_normal((N, dd, dd))])
        phi = _norm(X @ Ls + B, norm)
        gap = phi - _norm(X @ L0 + B, norm) - ((Ls - L0) * S).sum(axis=(-2, -1))
        ctx.ge(
            f"(151) {norm}: X^T Z is a subgradient of ||X Lam + B||, min relative gap",
            float((gap / (1 + phi)).min()),
            0.0,
            atol=1e-13,
        )

    # Lemma S.20: <M, S> = <sym(M), S> for symmetric S; the skew part is orthogonal to Sym(d)
    Mm = torch.tensor(rng.standard_normal((50, 4, 4)))
    Sm = sym(torch.tensor(rng.standard_normal((50, 4, 4))))
    ctx.close(
        "Lemma S.20: <M, S> - <sym(M), S> over 50 random pairs",
        np.zeros(50),
        ((Mm - sym(Mm)) * Sm).sum((-2, -1)),
        atol=1e-13,
    )
    ctx.close(
        "Lemma S.20: sym(M) is symmetric and M - sym(M) is skew",
        0.0,
        float((sym(Mm) - sym(Mm).mT).abs().max() + ((Mm - sym(Mm)) + (Mm - sym(Mm)).mT).abs().max()),
        atol=1e-15,
    )

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    phi = curves["l1"]
    ax.plot(lam, phi, "k", label=r"$\phi(\lambda) = \|\lambda w + g\|_1$")
    for l0 in (-2.5, -0.8, 0.6, 2.2):
        slope = float((w * _sub(l0 * w + g, "l1")).sum())
        f0 = float(_norm(l0 * w + g, "l1"))
        ax.plot(lam, f0 + slope * (lam - l0), "--", lw=1, label=rf"$\lambda_0$ = {l0}: slope $w^\top z$ = {slope:.2f}")
    ax.set_ylim(0, phi.max())
    ax.set_xlabel(r"$\lambda$")
    ax.set_title("subgradients: (148), (150) supporting lines")
    ax.legend(fontsize=7)
    return fig


CLAIM = Claim(
    name="subgradients",
    section="R, (148)-(152), Lemma S.20",
    statement="norm_subgradient gives Z with ||Z||_* <= 1 and <Z, X> = ||X|| (152), a subgradient (148) for the five "
    "norms (equal to the gradient where the norm is differentiable); the linear chain rule (149)-(151) maps it to "
    "subgradients of ||L(x) + b||; and <M, S> = <sym(M), S> for symmetric S (Lemma S.20).",
    run=run,
)
