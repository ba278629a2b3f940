"""Appendix M.2.1-M.3.1, (125)-(127): the library's dual norms against the definition sup <w, v> / ||w||, the
weighted norm's dual ||v||_{A^-1}, and the PSD-singular case (||v||_{A^+} on range(A), infinite off it)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from adaptim.claims._core import Claim, Context
from adaptim.claims._matrix import np_norm, numerical_max, sym_power
from adaptim.linalg import DUAL_NORM, NORMS, dual_norm, matrix_norm
from adaptim.mirror import dual_weighted_norm, weighted_norm


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


def _check_matrix_norms(ctx: Context, rng: np.random.Generator) -> None:
    for shape in ((4, 3), (5, 1)):
        X = rng.standard_normal(shape)
        for norm in NORMS:
            sup = numerical_max(X, norm, rng, ctx.size(2, 8))
            ctx.close(
                f"(125) sup_(||W|| <= 1) <W, X> (numerical) = dual_norm(X, {norm!r}) = ||X||_{DUAL_NORM[norm]}, "
                f"X {shape[0]}x{shape[1]}",
                sup,
                float(dual_norm(_t(X), norm)),
                rtol=1e-7,
            )
        if shape[1] == 1:  # a column: the spectral and nuclear norms are the Euclidean norm, self-dual
            ctx.close(
                "vector: spectral and nuclear duals of a column are both ||x||_2",
                [np.linalg.norm(X)] * 2,
                [float(dual_norm(_t(X), "spectral")), float(dual_norm(_t(X), "nuclear"))],
                rtol=1e-12,
            )
    # (126) Hölder: <W, X> <= ||W|| ||X||_* for every pair, on heavy-tailed random pairs
    W, X = (rng.standard_t(2.0, size=(ctx.size(2000, 20000), 4, 3)) for _ in range(2))
    inner = (W * X).sum(axis=(1, 2))
    for norm in NORMS:
        ratio = inner / (matrix_norm(_t(W), norm).numpy() * dual_norm(_t(X), norm).numpy())
        ctx.le(
            f"(126) max over {len(W)} random pairs of <W, X> / (||W|| ||X||_*), {norm}", ratio.max(), 1.0, atol=1e-12
        )
    # the dual of the dual is the norm: an involution
    X = rng.standard_normal((4, 3))
    ctx.close(
        "||X||_** = ||X|| for the five norms (DUAL_NORM applied twice)",
        [np_norm(X, n) for n in NORMS],
        [float(dual_norm(_t(X), DUAL_NORM[n])) for n in NORMS],
        rtol=1e-12,
    )


def _sup_ratio(y: np.ndarray, A: np.ndarray, rng: np.random.Generator, starts: int) -> float:
    """sup_w <w, y> / ||w||_A by BFGS on the (smooth, scale-invariant) ratio, over random starts."""

    def f(w):
        q = float(w @ A @ w)
        val = float(w @ y) / np.sqrt(q)
        return -val, -(y / np.sqrt(q) - val * (A @ w) / q)

    return max(
        -minimize(f, rng.standard_normal(len(y)), jac=True, method="BFGS", options=dict(gtol=1e-12)).fun
        for _ in range(starts)
    )


def _check_weighted(ctx: Context, rng: np.random.Generator) -> None:
    d, starts = 6, ctx.size(2, 8)
    B = rng.standard_normal((d, d))
    A = B @ B.T + 0.1 * np.eye(d)
    x, y = rng.standard_normal(d), rng.standard_normal(d)
    ctx.close(
        "(127) weighted_norm(x, A) = ||A^1/2 x||_2 = sqrt(x^T A x)",
        [np.linalg.norm(sym_power(A, 0.5) @ x)] * 2,
        [float(weighted_norm(_t(x), _t(A))), float(np.sqrt(x @ A @ x))],
        rtol=1e-12,
    )
    lib = float(dual_weighted_norm(_t(y), _t(A)))
    ctx.close(
        "M.3: dual_weighted_norm(y, A) vs the numerical sup_w <w, y> / ||w||_A",
        _sup_ratio(y, A, rng, starts),
        lib,
        rtol=1e-9,
    )
    ctx.close("M.3: ... = ||y||_(A^-1) = sqrt(y^T A^-1 y)", float(np.sqrt(y @ np.linalg.solve(A, y))), lib, rtol=1e-12)
    w = np.linalg.solve(A, y)  # the maximizer u ∝ A^-1/2 y, i.e. w ∝ A^-1 y
    ctx.close("M.3: w = A^-1 y attains it", lib, float(w @ y) / float(weighted_norm(_t(w), _t(A))), rtol=1e-12)
    ctx.close(
        "the dual of ||.||_(A^-1) is ||.||_A (involution)",
        float(weighted_norm(_t(x), _t(A))),
        float(dual_weighted_norm(_t(x), _t(np.linalg.inv(A)))),
        rtol=1e-10,
    )

    # M.3.1: A >= 0 of rank r < d
    r = 3
    Vr = np.linalg.qr(rng.standard_normal((d, d)))[0]
    lam = np.array([3.0, 1.0, 0.2])
    As = (Vr[:, :r] * lam) @ Vr[:, :r].T
    y_in = Vr[:, :r] @ rng.standard_normal(r)  # in range(A)
    lib = float(dual_weighted_norm(_t(y_in), _t(As)))
    ctx.close(
        f"M.3.1, rank {r} of {d}: dual_weighted_norm(y in range(A)) vs the numerical sup",
        _sup_ratio(y_in, As, rng, starts),
        lib,
        rtol=1e-8,
    )
    ctx.close(
        "M.3.1: ... = ||y||_(A^+) = sqrt(y^T A^+ y)", float(np.sqrt(y_in @ np.linalg.pinv(As) @ y_in)), lib, rtol=1e-10
    )
    v = Vr[:, r]  # in null(A)
    ctx.close(
        "M.3.1: ||v||_A = 0 for a nonzero v in null(A) (a seminorm)",
        0.0,
        float(weighted_norm(_t(v), _t(As))),
        atol=1e-7,
    )
    y_off = y_in + 0.5 * v
    ctx.true(
        "M.3.1: dual_weighted_norm(y off range(A)) = +inf",
        np.isinf(float(dual_weighted_norm(_t(y_off), _t(As)))),
        measured=float(dual_weighted_norm(_t(y_off), _t(As))),
    )
    # the notes' witness: w(α) = w0 + α v keeps w^T A w = 1 while <w(α), y> grows like α ||v_y||^2
    w0 = Vr[:, 0] / np.sqrt(lam[0])
    vals = []
    for alpha in (1e2, 1e4, 1e6):
        wa = w0 + alpha * 0.5 * v
        # As's null space is exact only to rounding, eps ||A||: w^T A w then moves by about α^2 eps ||A||
        tol = 1e-10 + 4 * alpha**2 * np.finfo(float).eps * lam[0]
        ctx.close(
            f"M.3.1: ||w0 + α v||_A = 1 at α = {alpha:g} (tolerance: rounding of null(A))",
            1.0,
            float(weighted_norm(_t(wa), _t(As))),
            atol=tol,
        )
        vals.append(float(wa @ y_off))
    ctx.close("M.3.1: <w(α), y> / α -> ||v||^2 (unbounded): at α = 1e6", 0.25, vals[-1] / 1e6, rtol=1e-5)


def run(ctx: Context) -> None:
    rng = np.random.default_rng(ctx.seed)
    _check_matrix_norms(ctx, rng)
    _check_weighted(ctx, rng)


CLAIM = Claim(
    name="dual-norms",
    section="M.2.1, M.3, M.3.1, (125)-(127)",
    statement="The dual norm sup_(||w|| <= 1) <w, v> (125) of the Frobenius, spectral, nuclear, elementwise-inf and "
    "-l1 norms is the Frobenius, nuclear, spectral, l1 and inf norm, with Hölder's inequality (126); the dual of "
    "||.||_A is ||.||_(A^-1) (M.3), and for singular A >= 0 it is ||.||_(A^+) on range(A) and infinite off it "
    "(M.3.1).",
    run=run,
)
