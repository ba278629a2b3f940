"""Appendix G: the Kronecker identities (98)-(107), Lemma G.1 and the nearest Kronecker product of Corollary G.2
(rearrangement + rank-1 SVD) against a numerical minimization, and the outer-product bounds of G.3."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from adaptim.claims._core import Claim, Context
from adaptim.claims._matrix import sym_power
from adaptim.linalg import kron, nearest_kronecker_product, psd_power, rearrange, vec


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


def _psd(rng, d, rank=None):
    X = rng.standard_normal((d, rank or d))
    return X @ X.T


def _below(rng, P):
    """A random P' with P >= P' >= 0: P^1/2 (I - W) P^1/2 for a random 0 <= W <= I."""
    Qr, _ = np.linalg.qr(rng.standard_normal(P.shape))
    W = (Qr * rng.random(P.shape[0])) @ Qr.T
    Ph = sym_power(P, 0.5)
    return Ph @ (np.eye(P.shape[0]) - W) @ Ph


def _check_identities(ctx: Context, rng: np.random.Generator) -> None:
    m, d, n, l = 2, 3, 3, 2
    A, B = rng.standard_normal((m, d)), rng.standard_normal((n, l))
    K = kron(_t(A), _t(B)).numpy()
    # (98) entry by entry (0-based): K[i1 n + j1, i2 l + j2] = A[i1, i2] B[j1, j2]
    loop = np.zeros((m * n, d * l))
    for i1 in range(m):
        for j1 in range(n):
            for i2 in range(d):
                for j2 in range(l):
                    loop[i1 * n + j1, i2 * l + j2] = A[i1, i2] * B[j1, j2]
    ctx.close("(98) kron(A, B) against its index formula, A 2x3, B 3x2", 0.0, np.abs(K - loop).max(), atol=0)
    # (99) vec(A X C) = (A ⊗ C^T) vec(X) with row-major vec
    X, C = rng.standard_normal((d, n)), rng.standard_normal((n, l))
    lhs = vec(_t(A @ X @ C)).numpy()
    rhs = kron(_t(A), _t(C.T)).numpy() @ vec(_t(X)).numpy()
    ctx.close("(99) vec(A X C) = (A ⊗ C^T) vec(X), row-major vec", 0.0, np.abs(lhs - rhs).max(), atol=1e-13)
    # (100) mixed product and the transpose rule
    A2, B2 = rng.standard_normal((d, 2)), rng.standard_normal((l, 4))
    mixed = K @ kron(_t(A2), _t(B2)).numpy() - kron(_t(A @ A2), _t(B @ B2)).numpy()
    ctx.close("(100) (A ⊗ B)(C ⊗ D) = AC ⊗ BD", 0.0, np.abs(mixed).max(), atol=1e-13)
    ctx.close("(A ⊗ B)^T = A^T ⊗ B^T", 0.0, np.abs(K.T - kron(_t(A.T), _t(B.T)).numpy()).max(), atol=0)
    # (101) and (103)
    R = rearrange(_t(K), (m, d), (n, l)).numpy()
    ctx.close("(101) rearrange(A ⊗ B) = vec(A) vec(B)^T", 0.0, np.abs(R - np.outer(A, B)).max(), atol=0)
    H = rng.standard_normal((m * n, d * l))
    back = rearrange(rearrange(_t(H), (m, d), (n, l)), (m, n), (d, l)).numpy()
    ctx.close("(103) rearrange is an involution", 0.0, np.abs(back - H).max(), atol=0)
    # Lemma G.1 for arbitrary C, A, B
    lhs = np.linalg.norm(H - K)
    rhs = np.linalg.norm(rearrange(_t(H), (m, d), (n, l)).numpy() - np.outer(A, B))
    ctx.close("Lemma G.1: ||C - A ⊗ B||_F = ||rearrange(C) - vec(A) vec(B)^T||_F", lhs, rhs, rtol=1e-14)
    # G.2: eigenvalues of A ⊗ B are the products; (104)-(107)
    P, Q = _psd(rng, 3), _psd(rng, 4)
    Kpq = kron(_t(P), _t(Q)).numpy()
    prods = np.sort(np.outer(np.linalg.eigvalsh(P), np.linalg.eigvalsh(Q)).reshape(-1))
    ctx.close(
        "G.2: eigenvalues of P ⊗ Q are the products λ_i μ_j (max rel. error)",
        0.0,
        np.abs(np.linalg.eigvalsh(Kpq) - prods).max() / prods.max(),
        atol=1e-13,
    )
    ctx.close("(104) tr(P ⊗ Q) = tr(P) tr(Q)", np.trace(P) * np.trace(Q), np.trace(Kpq), rtol=1e-13)
    for p in (0.5, -0.25):
        lhs = psd_power(_t(Kpq), p).numpy()
        rhs = kron(psd_power(_t(P), p), psd_power(_t(Q), p)).numpy()
        ctx.close(
            f"(105) (P ⊗ Q)^p = P^p ⊗ Q^p, p = {p} (max rel. error)",
            0.0,
            np.abs(lhs - rhs).max() / np.abs(rhs).max(),
            atol=1e-11,
        )
    ctx.ge(
        "(106) P, Q >= 0 => P ⊗ Q >= 0: smallest eigenvalue / largest",
        np.linalg.eigvalsh(Kpq).min() / np.linalg.eigvalsh(Kpq).max(),
        0.0,
        atol=1e-14,
    )
    P2, Q2 = _below(rng, P), _below(rng, Q)
    D = Kpq - kron(_t(P2), _t(Q2)).numpy()
    ctx.ge(
        "(107) P >= P' >= 0, Q >= Q' >= 0 => P ⊗ Q - P' ⊗ Q' >= 0: smallest eigenvalue / largest",
        np.linalg.eigvalsh(D).min() / np.linalg.eigvalsh(D).max(),
        0.0,
        atol=1e-13,
    )


def _objective(C, m, d, n, l):
    def f(x):
        A, B = x[: m * d].reshape(m, d), x[m * d :].reshape(n, l)
        Rs = (C - np.kron(A, B)).reshape(m, n, d, l)  # block (i1, i2) of the residual is Rs[i1, :, i2, :]
        gA = -2 * np.einsum("ajbk,jk->ab", Rs, B)
        gB = -2 * np.einsum("ajbk,ab->jk", Rs, A)
        return float((Rs**2).sum()), np.concatenate([gA.reshape(-1), gB.reshape(-1)])

    return f


def _check_nearest(ctx: Context, rng: np.random.Generator):
    m, d, n, l = 2, 3, 3, 2
    C = rng.standard_normal((m * n, d * l))
    A, B = (x.numpy() for x in nearest_kronecker_product(_t(C), (m, d), (n, l)))
    res_lib = float(np.linalg.norm(C - np.kron(A, B)) ** 2)
    s = np.linalg.svd(rearrange(_t(C), (m, d), (n, l)).numpy(), compute_uv=False)
    ctx.close(
        "Corollary G.2: ||C - A* ⊗ B*||_F^2 = ||C||_F^2 - sigma_1^2 (Eckart-Young)",
        np.linalg.norm(C) ** 2 - s[0] ** 2,
        res_lib,
        rtol=1e-12,
    )
    ctx.close("||A*||_F ||B*||_F = sigma_1 (a b = sigma_1)", s[0], np.linalg.norm(A) * np.linalg.norm(B), rtol=1e-12)
    f = _objective(C, m, d, n, l)
    traces, best = [], np.inf
    for _ in range(ctx.size(4, 12)):
        x0 = rng.standard_normal(m * d + n * l)
        trace = [f(x0)[0]]
        out = minimize(
            f,
            x0,
            jac=True,
            method="L-BFGS-B",
            options=dict(ftol=1e-15, gtol=1e-12, maxiter=2000),
            callback=lambda xk, tr=trace: tr.append(f(xk)[0]),
        )
        traces.append(trace)
        best = min(best, float(out.fun))
    ctx.ge(
        "nearest_kronecker_product's residual <= the best of L-BFGS from random starts (no start does better)",
        best,
        res_lib,
        atol=1e-10 * res_lib,
    )
    ctx.close("the numerical minimum of ||C - A ⊗ B||_F^2 equals the rank-1 SVD's", res_lib, best, rtol=1e-8)
    # a symmetric PSD C (an empirical Fisher of 3 x 2 gradients): the nearest factors are PSD (used in (61)-(62))
    Gs = rng.standard_normal((40, 3, 2))
    F = np.mean([np.outer(G.reshape(-1), G.reshape(-1)) for G in Gs], axis=0)
    A, B = (x.numpy() for x in nearest_kronecker_product(_t(F), (3, 3), (2, 2)))
    ctx.ge(
        "PSD I_emp (6 x 6): smallest eigenvalue of A* and B* over their largest",
        min(
            np.linalg.eigvalsh(A).min() / np.linalg.eigvalsh(A).max(),
            np.linalg.eigvalsh(B).min() / np.linalg.eigvalsh(B).max(),
        ),
        0.0,
        atol=1e-12,
    )
    return traces, res_lib


def _needed_constant(M: np.ndarray, a: np.ndarray) -> float:
    """The smallest c with a a^T <= c M (M >= 0, a in range(M)): a^T M^+ a; +inf if a is off the range."""
    Mp = np.linalg.pinv(M, rcond=1e-10, hermitian=True)
    off = np.linalg.norm(a - M @ (Mp @ a)) / np.linalg.norm(a)
    return float(a @ Mp @ a) if off < 1e-8 else float("inf")


def _check_outer_bounds(ctx: Context, rng: np.random.Generator) -> None:
    m, n = 4, 3
    for r in (1, 2, 3):
        A = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
        a = vec(_t(A)).numpy()
        c1 = _needed_constant(kron(_t(A @ A.T), torch.eye(n, dtype=torch.float64)).numpy(), a)
        c2 = _needed_constant(kron(torch.eye(m, dtype=torch.float64), _t(A.T @ A)).numpy(), a)
        M = kron(psd_power(_t(A @ A.T), 0.5), psd_power(_t(A.T @ A), 0.5)).numpy()
        c3 = _needed_constant(M, a)
        ctx.close(
            f"Lemma G.3, rank {r}: smallest c with aa^T <= c (AA^T) ⊗ I_n is r (the bound is tight)", r, c1, rtol=1e-8
        )
        ctx.close(f"Lemma G.3, rank {r}: smallest c with aa^T <= c I_m ⊗ (A^T A)", r, c2, rtol=1e-8)
        ctx.close(f"Corollary G.5 (110), rank {r}: smallest c with aa^T <= c (AA^T ⊗ A^T A)^1/2", r, c3, rtol=1e-7)


def run(ctx: Context):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(ctx.seed)
    _check_identities(ctx, rng)
    traces, res_lib = _check_nearest(ctx, rng)
    _check_outer_bounds(ctx, rng)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, tr in enumerate(traces):
        ax.semilogy(
            np.array(tr) - res_lib + 1e-16, label="L-BFGS, random start" if i == 0 else None, color="C0", alpha=0.7
        )
    ax.set_xlabel("L-BFGS iteration")
    ax.set_ylabel(r"$\|C - A\otimes B\|_F^2$ minus the SVD optimum")
    ax.set_title("nearest-kronecker (Corollary G.2): numerical minimization\nreaches the rank-1 SVD's residual")
    ax.legend()
    return fig


CLAIM = Claim(
    name="nearest-kronecker",
    section="G, (98)-(107), Lemmas G.1, G.3, Corollaries G.2, G.5",
    statement="rearrange (102) turns A ⊗ B into vec(A) vec(B)^T and keeps Frobenius distances (Lemma G.1), so the "
    "nearest Kronecker product of C is the top singular pair of rearrange(C) (Corollary G.2); Kronecker products "
    "multiply eigenvalues and respect the PSD order (104)-(107); and aa^T <= r (AA^T) ⊗ I_n, r I_m ⊗ A^T A, "
    "r (AA^T ⊗ A^T A)^{1/2} for rank(A) <= r (Lemma G.3, (110)).",
    run=run,
)
