"""Section 3.2, (40): the trace-constrained minimizer of tr(A^{-1} O_T) is c O_T^{1/2} / tr(O_T^{1/2})."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from adaptim.claims._core import Claim, Context
from adaptim.linalg import psd_power
from adaptim.online import breast_cancer_stream


def _objective(b: np.ndarray, O: np.ndarray, c: float) -> tuple[float, np.ndarray]:
    """tr(A^{-1} O) at A = c B B^T / tr(B B^T) (every PSD A of trace c), and its gradient in B."""
    d = O.shape[0]
    B = b.reshape(d, d)
    S = B @ B.T
    tau = np.trace(S)
    Sinv = np.linalg.inv(S)
    f0 = np.trace(Sinv @ O)
    value = tau / c * f0
    dS = f0 / c * np.eye(d) - tau / c * Sinv @ O @ Sinv  # d value / d S
    return value, ((dS + dS.T) @ B).ravel()


def run(ctx: Context):
    # O_T from a real stream: the gradients of linear losses on the breast-cancer features (correlated columns)
    d = ctx.size(5, 8)
    X, _ = breast_cancer_stream(seed=0)
    G = X[:, :d].numpy()
    O = G.T @ G / G.shape[0]
    c = 2.0
    root = psd_power(torch.from_numpy(O), 0.5).numpy()
    A_star = c * root / np.trace(root)  # (40)
    predicted_value = np.trace(root) ** 2 / c  # tr(A*^{-1} O) = tr(O^{1/2})^2 / c

    res = minimize(
        _objective,
        np.eye(d).ravel(),
        args=(O, c),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 5000},
    )
    B = res.x.reshape(d, d)
    A_num = c * B @ B.T / np.trace(B @ B.T)
    ctx.note("scipy", f"L-BFGS-B over B (A = c B B^T / tr(B B^T)), {res.nit} iterations, {res.message}")
    ctx.close(
        f"d = {d}: min of tr(A^-1 O_T) over PSD A with tr(A) = c (scipy) vs tr(O_T^(1/2))^2 / c",
        predicted_value,
        res.fun,
        rtol=1e-9,
    )
    ctx.note(
        "tolerance",
        "value to 1e-9 (L-BFGS-B's ftol); the minimizer to 1e-4 relative (the square root of the value's error: "
        "the objective is quadratic at its minimum)",
    )
    ctx.close(
        "numerical minimizer vs c O_T^(1/2) / tr(O_T^(1/2)) (relative Frobenius error)",
        0.0,
        np.linalg.norm(A_num - A_star) / np.linalg.norm(A_star),
        atol=1e-4,
    )
    # the closed form is feasible and no feasible A does better: random PSD A of trace c, and AdaGrad's diagonal
    # optimum c diag(sqrt O_ii) / sum sqrt O_ii (value (sum_i sqrt O_ii)^2 / c, larger by Lemma S.1)
    rng = np.random.default_rng(0)
    best_random = np.inf
    for _ in range(ctx.size(200, 2000)):
        M = rng.standard_normal((d, d))
        A = c * (M @ M.T) / np.trace(M @ M.T)
        best_random = min(best_random, float(np.trace(np.linalg.solve(A, O))))
    ctx.ge("random PSD A with tr(A) = c: min tr(A^-1 O_T) >= the closed form's", best_random, predicted_value)
    diag = np.sqrt(np.diag(O))
    ctx.ge(
        "diagonal optimum c diag(sqrt O_ii)/sum sqrt O_ii: its value >= the closed form's",
        np.sum(diag) ** 2 / c,
        predicted_value,
        factor=1.0,
    )
    Ainv = np.linalg.inv(A_star)
    K = Ainv @ O @ Ainv  # stationarity on {tr(A) = c}: -A^-1 O A^-1 + lambda I = 0
    ctx.close(
        "KKT: A*^-1 O_T A*^-1 = lambda I, lambda = tr(.)/d", np.trace(K) / d * np.eye(d), K, atol=1e-9 * np.trace(K)
    )

    # (35) without the trace constraint has no minimizer: J(A) = delta^T A delta + tr(A^{-1} O) >= 2 sqrt(delta^T O
    # delta) (Cauchy-Schwarz: (delta^T g)^2 <= (delta^T A delta)(g^T A^{-1} g)), approached only as A's eigenvalues
    # off delta grow without bound
    delta = rng.standard_normal(d)
    inf_J = 2 * np.sqrt(delta @ O @ delta)
    dh = delta / np.linalg.norm(delta)
    a = np.sqrt(dh @ O @ dh) / np.linalg.norm(delta)
    gaps = []
    Ms = np.logspace(1, 7, 7)
    for M in Ms:
        A = a * np.outer(dh, dh) + M * (np.eye(d) - np.outer(dh, dh))
        gaps.append(delta @ A @ delta + np.trace(np.linalg.solve(A, O)) - inf_J)
    gaps = np.array(gaps)
    ctx.true(
        "(35): J(A_M) > inf J for every M (the infimum is not attained)",
        bool(np.all(gaps > 0)),
        measured=float(gaps.min()),
    )
    ctx.true(
        "(35): J(A_M) decreases to inf J as M grows",
        bool(np.all(np.diff(gaps) < 0)),
        measured=[float(g) for g in gaps[[0, -1]]],
    )
    ctx.le("(35): J(A_M) - inf J at M = 1e7, relative", gaps[-1] / inf_J, 1e-6)

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ax.loglog(Ms, gaps, "o-", label="J(A_M) - 2 sqrt(δᵀ O_T δ)")
    ax.set_xlabel("M (eigenvalue of A_M off δ)")
    ax.set_ylabel("gap to the infimum")
    ax.set_title("optimal-preconditioner (3.2, (35), (40)): no minimizer without tr(A) ≤ c", fontsize=9)
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="optimal-preconditioner",
    section="3.2, (35), (40)",
    statement="Over PSD A with tr(A) <= c, tr(A^{-1} O_T) is minimized by c O_T^{1/2} / tr(O_T^{1/2}) (value "
    "tr(O_T^{1/2})^2 / c) (40); without the trace constraint, delta_1^T A delta_1 + tr(A^{-1} O_T) (35) has an "
    "infimum but no minimizer.",
    run=run,
)
