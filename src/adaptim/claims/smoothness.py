"""Appendix O, Lemmas S.17, S.18: for the Euclidean norm, ||grad^2 f|| <= L (132), the L-Lipschitz gradient (133)
and the quadratic bound on the linearization error (134) hold with the same L."""

from __future__ import annotations

import numpy as np
import torch

from adaptim.claims._appendix_a import logistic_problem
from adaptim.claims._core import Claim, Context
from adaptim.solvers import gradient, hessian

D = torch.float64


def _ratios(f, L: float, x: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
    """The ratios of (133), ||grad f(x) - grad f(z)|| / (L ||x - z||), and of (134), |f(x) - f(z) -
    <grad f(z), x - z>| / (L/2 ||x - z||^2), each <= 1 for L-smooth f."""
    gx, gz = gradient(f, x), gradient(f, z)
    r = float(torch.linalg.vector_norm(x - z))
    lin = abs(float(f(x) - f(z) - gz @ (x - z)))
    return float(torch.linalg.vector_norm(gx - gz)) / (L * r), lin / (0.5 * L * r * r)


def run(ctx: Context):
    gen = torch.Generator().manual_seed(ctx.seed)
    n = ctx.size(100, 1000)
    # 1. an indefinite quadratic (nonconvex): L = max |eigenvalue| of its Hessian A, exactly
    d = 6
    b = torch.randn(d, d, dtype=D, generator=gen)
    A = (b + b.T) / 2
    c = torch.randn(d, dtype=D, generator=gen)
    f = lambda w: 0.5 * w @ A @ w + c @ w
    eig, vec = np.linalg.eigh(A.numpy())
    L = float(np.abs(eig).max())
    pts = 3 * torch.randn(2 * n, d, dtype=D, generator=gen)
    hess_norm = max(float(np.abs(np.linalg.eigvalsh(hessian(f, p).numpy())).max()) for p in pts[:10])
    ctx.close("quadratic: (132) ||grad^2 f(x)||_2 from autograd = max|eig(A)|", L, hess_norm, rtol=1e-12)
    r133, r134 = zip(*(_ratios(f, L, pts[i], pts[n + i]) for i in range(n)))
    ctx.le(
        f"quadratic: (133) max over {n} random pairs of ||grad f(x) - grad f(z)|| / (L ||x - z||)",
        max(r133),
        1.0,
        atol=1e-12,
    )
    ctx.le(
        f"quadratic: (134) max over {n} pairs of |linearization error| / (L/2 ||x - z||^2)", max(r134), 1.0, atol=1e-12
    )
    # L is the smallest constant (Lemma S.18's converse): along the top eigenvector both ratios equal 1
    top = torch.from_numpy(vec[:, int(np.abs(eig).argmax())])
    e133, e134 = _ratios(f, L, pts[0] + 2.0 * top, pts[0])
    ctx.close(
        "quadratic: both ratios along the top eigenvector (L cannot be lowered)", [1.0, 1.0], [e133, e134], atol=1e-10
    )

    # 2. real data: logistic regression (convex), L = lambda_max(X^T X)/(4n) + lam bounds every Hessian
    prob = logistic_problem()
    g = prob.f
    pts = torch.from_numpy(prob.w_star) + torch.randn(2 * n, prob.d, dtype=D, generator=gen)
    hmax = max(float(np.linalg.eigvalsh(hessian(g, p).numpy()).max()) for p in pts[:5])
    ctx.le("logistic: (132) max eigenvalue of the Hessian at 5 random points / L", hmax / prob.L, 1.0)
    h0 = float(np.linalg.eigvalsh(hessian(g, torch.zeros(prob.d, dtype=D)).numpy()).max())
    ctx.close(
        "logistic: at w = 0 (all margins 0, sigma' = 1/4) the Hessian's top eigenvalue is L", prob.L, h0, rtol=1e-12
    )
    r133, r134 = zip(*(_ratios(g, prob.L, pts[i], pts[n + i]) for i in range(n)))
    ctx.le(f"logistic: (133) max over {n} random pairs of the gradient ratio", max(r133), 1.0)
    ctx.le(f"logistic: (134) max over {n} random pairs of the linearization-error ratio", max(r134), 1.0)
    # the gradient-norm inequality of a convex L-smooth f ((134) at x - grad f(x)/L, as in (159))
    gaps = []
    for p in pts[:n]:
        gr = gradient(g, p)
        gaps.append(float(g(p)) - prob.j_star - float(gr @ gr) / (2 * prob.L))
    ctx.ge(f"logistic: min over {n} points of f(x) - f* - ||grad f(x)||^2/(2L)", min(gaps), 0.0, atol=1e-14)
    return None


CLAIM = Claim(
    name="smoothness",
    section="O, Lemmas S.17, S.18",
    statement="For the Euclidean norm the Hessian bound ||grad^2 f||_2 <= L (132), the L-Lipschitz gradient (133) "
    "and |f(x) - f(z) - <grad f(z), x - z>| <= (L/2)||x - z||^2 (134) are equivalent and hold with L the largest "
    "|eigenvalue| of the Hessian; for convex f this gives f(x) - f* >= ||grad f(x)||^2/(2L).",
    run=run,
)
