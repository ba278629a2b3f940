"""(115), Lemmas J.1, J.2, (118): the integral form of the Taylor expansion, evaluated numerically, and the strong
convexity / smoothness bounds it gives from the Hessian's eigenvalues."""

from __future__ import annotations

import numpy as np
import torch
from scipy.integrate import quad, quad_vec

from adaptim.claims._appendix_a import logistic_problem, softplus_problem
from adaptim.claims._core import Claim, Context
from adaptim.solvers import gradient, hessian

D = torch.float64


def _curvature(f, u: torch.Tensor, v: torch.Tensor, t: float) -> float:
    """v^T grad^2 f(u + t v) v, as the second derivative of s -> f(u + s v) at s = t (autograd, two backward passes:
    the same number as the Hessian's quadratic form, without building the d x d matrix)."""
    s = torch.tensor(t, dtype=D, requires_grad=True)
    with torch.enable_grad():
        (d1,) = torch.autograd.grad(f(u + s * v), s, create_graph=True)
        (d2,) = torch.autograd.grad(d1, s)
    return float(d2)


def _remainder(f, u: torch.Tensor, w: torch.Tensor) -> tuple[float, float]:
    """(f(w) - f(u) - <grad f(u), w - u>, int_0^1 (1-t) (w-u)^T grad^2 f(u + t(w-u)) (w-u) dt by scipy quad)."""
    v = w - u
    lhs = float(f(w) - f(u) - gradient(f, u) @ v)
    integral, _ = quad(lambda t: (1 - t) * _curvature(f, u, v, t), 0.0, 1.0, epsabs=0, epsrel=1e-11)
    return lhs, integral


def run(ctx: Context):
    gen = torch.Generator().manual_seed(ctx.seed)
    n = ctx.size(2, 10)
    # (115) on the softplus problem (m-strongly convex, (m + 1/4)-smooth) and on logistic regression (real data)
    f, w_star, m, M, _ = softplus_problem(10, 0.05)
    prob = logistic_problem()
    for name, fn, center, d in (
        ("softplus problem", f, w_star, 10),
        ("logistic (breast cancer)", prob.f, torch.from_numpy(prob.w_star), prob.d),
    ):
        pairs = [
            (center + 0.5 * torch.randn(d, dtype=D, generator=gen), center + torch.randn(d, dtype=D, generator=gen))
            for _ in range(n)
        ]
        lhs, rhs = zip(*(_remainder(fn, u, w) for u, w in pairs))
        ctx.close(
            f"{name}: (115) f(w) - f(u) - <grad f(u), w - u> = the integral, {n} random pairs",
            lhs,
            rhs,
            rtol=1e-9,
            atol=1e-13,
        )
    # Lemmas J.1, J.2: m ||w-u||^2/2 <= D_f(w, u) <= M ||w-u||^2/2 when m I <= grad^2 f <= M I, and the
    # constants are the best ones: the ratio 2 D_f / ||w-u||^2 nears m far out (sigma' -> 0) and M near z = 0
    k = ctx.size(200, 2000)
    ratios = []
    for scale in (0.01, 1.0, 10.0, 100.0):
        for _ in range(k // 4):
            u = w_star + scale * torch.randn(10, dtype=D, generator=gen)
            w = u + scale * torch.randn(10, dtype=D, generator=gen)
            v = w - u
            ratios.append(2 * float(f(w) - f(u) - gradient(f, u) @ v) / float(v @ v))
    # the point where every z_i = 0 is w = 0 (z = Q^T w); tiny pairs there see the top curvature M
    for _ in range(5):
        v = 1e-2 * torch.randn(10, dtype=D, generator=gen)
        ratios.append(
            2 * float(f(v) - f(torch.zeros(10, dtype=D)) - gradient(f, torch.zeros(10, dtype=D)) @ v) / float(v @ v)
        )
    ratios = np.array(ratios)
    ctx.ge(f"Lemma J.1: min over {ratios.size} pairs of 2 D_f(w, u) / ||w - u||^2 (>= m)", ratios.min(), m, atol=1e-9)
    ctx.le(
        f"Lemma J.2: max over {ratios.size} pairs of 2 D_f(w, u) / ||w - u||^2 (<= M = m + 1/4)",
        ratios.max(),
        M,
        atol=1e-9,
    )
    ctx.le("Lemma J.1 is tight: min ratio within 5% of m (pairs far out)", ratios.min(), m, factor=1.05)
    ctx.ge("Lemma J.2 is tight: max ratio within 1% of M (tiny pairs at w = 0)", ratios.max(), M, factor=0.99)
    eigs = np.concatenate(
        [
            np.linalg.eigvalsh(hessian(f, w_star + s * torch.randn(10, dtype=D, generator=gen)).numpy())
            for s in (0.1, 1.0, 10.0)
        ]
    )
    ctx.true(
        "the Hessian's eigenvalues at random points lie in [m, M]",
        bool((eigs >= m - 1e-12).all() and (eigs <= M + 1e-12).all()),
        measured=f"[{eigs.min():.4g}, {eigs.max():.4g}]",
        predicted=f"[{m:g}, {M:g}]",
    )
    # (118): grad f(w) = (int_0^1 grad^2 f(w* + t(w - w*)) dt)(w - w*) at a stationary point w*
    w = w_star + torch.randn(10, dtype=D, generator=gen)
    hbar, _ = quad_vec(lambda t: hessian(f, w_star + t * (w - w_star)).numpy(), 0.0, 1.0, epsrel=1e-10)
    ctx.close(
        "(118): grad f(w) = H_bar(w*, w)(w - w*)", gradient(f, w).numpy(), hbar @ (w - w_star).numpy(), atol=1e-12
    )
    return None


CLAIM = Claim(
    name="taylor-integral",
    section="J, (115), Lemmas J.1, J.2, (118)",
    statement="J(w) = J(u) + <grad J(u), w - u> + int_0^1 (1-t)(w-u)^T grad^2 J(u + t(w-u))(w-u) dt exactly; hence "
    "m I <= grad^2 J <= M I gives (m/2)||w-u||^2 <= J(w) - J(u) - <grad J(u), w-u> <= (M/2)||w-u||^2 (Lemmas J.1, "
    "J.2), and grad J(w) = (int_0^1 grad^2 J(w* + t(w - w*)) dt)(w - w*) (118).",
    run=run,
)
