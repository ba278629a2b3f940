"""(137)-(140), Appendix P: a majorize-minimize step never increases f; gradient descent with eta = 1/L is the MM
step of the quadratic upper bound U(x; z) = f(z) + <grad f(z), x - z> + (1/2 eta)||x - z||^2."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

import adaptim
from adaptim.claims._appendix_a import logistic_problem
from adaptim.claims._core import Claim, Context
from adaptim.solvers import gradient


def _argmin_surrogate(z: np.ndarray, g: np.ndarray, L: float) -> np.ndarray:
    """argmin_x U(x; z) found numerically by scipy (U up to its constant f(z))."""
    res = minimize(
        lambda y: g @ (y - z) + 0.5 * L * (y - z) @ (y - z),
        z,
        jac=lambda y: g + L * (y - z),
        method="BFGS",
        options={"gtol": 1e-12},
    )
    return res.x


def run(ctx: Context):
    import matplotlib.pyplot as plt

    prob = logistic_problem()
    L, K = prob.L, ctx.size(100, 1000)
    x = torch.zeros(prob.d, dtype=torch.float64, requires_grad=True)
    opt = adaptim.SGD([x], lr=1.0 / L, foreach=True)
    f_prev, upper_gap, lower_gap, values = [], [], [], []
    argmin_err = 0.0
    for k in range(K):
        z = x.detach().clone()
        opt.zero_grad()
        loss = prob.f(x)
        loss.backward()
        fz = loss.detach()
        g = x.grad.detach().clone()
        opt.step()
        x_next = x.detach()
        u = float(fz + g @ (x_next - z) + 0.5 * L * (x_next - z) @ (x_next - z))  # U(x_{k+1}; x_k)
        f_next = float(prob.f(x_next))
        upper_gap.append(float(fz) - u)  # f(x_k) = U(x_k; x_k) >= U(x_{k+1}; x_k)
        lower_gap.append(u - f_next)  # U(x_{k+1}; x_k) >= f(x_{k+1})
        values.append(float(fz))
        if k in (0, K // 2):  # (139): the step is argmin_x U(x; x_k), found numerically by scipy
            y = _argmin_surrogate(z.numpy(), g.numpy(), L)
            argmin_err = max(argmin_err, float(np.abs(y - x_next.numpy()).max()))
        f_prev.append(f_next)
    rounding = 4 * np.finfo(float).eps * max(values)
    ctx.ge("(140): min_k f(x_k) - U(x_k+1; x_k)", min(upper_gap), 0.0, atol=rounding)
    ctx.ge("(140): min_k U(x_k+1; x_k) - f(x_k+1)", min(lower_gap), 0.0, atol=rounding)
    ctx.ge(
        f"f never increases over {K} adaptim.SGD(lr=1/L) steps: min_k f(x_k) - f(x_k+1)",
        min(a - b for a, b in zip(values, f_prev)),
        0.0,
        atol=rounding,
    )
    ctx.le("(139): |adaptim.SGD step - scipy's argmin_x U(x; x_k)| (max entry)", argmin_err, 1e-7)
    # (138): U(.; z) majorizes f for eta = 1/L, at random points around an iterate, at several distances
    gen = torch.Generator().manual_seed(ctx.seed)
    z = x.detach().clone()
    gz = gradient(prob.f, z)
    fz = float(prob.f(z))
    worst = np.inf
    n = ctx.size(200, 2000)
    for scale in (0.01, 0.1, 1.0, 10.0):
        pts = z + scale * torch.randn(n, prob.d, dtype=torch.float64, generator=gen)
        # f at every point at once (the same J as prob.f, batched)
        margins = -prob.y[:, None] * (prob.x @ pts.T)
        fx = torch.nn.functional.softplus(margins).mean(0) + 0.5 * prob.lam * (pts * pts).sum(1)
        diff = pts - z
        u = fz + diff @ gz + 0.5 * L * (diff * diff).sum(1)
        worst = min(worst, float((u - fx).min()))
    ctx.ge(f"(138): min over {4 * n} random x of U(x; z) - f(x), eta = 1/L", worst, 0.0, atol=rounding)

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.semilogy(np.arange(K), np.array(values) - prob.j_star, label="f(x_k) - f*")
    ax.semilogy(np.arange(K), np.maximum(np.array(upper_gap), 1e-18), label="f(x_k) - U(x_k+1; x_k)")
    ax.semilogy(np.arange(K), np.maximum(np.array(lower_gap), 1e-18), label="U(x_k+1; x_k) - f(x_k+1)")
    ax.set_xlabel("k")
    ax.set_title("majorization-minimization: GD at 1/L, (140)")
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="majorization-minimization",
    section="P, (137)-(140)",
    statement="With a surrogate that touches f at x_k and majorizes it, the MM step gives f(x_k) = U(x_k; x_k) >= "
    "U(x_{k+1}; x_k) >= f(x_{k+1}); for L-smooth f the quadratic bound with eta = 1/L majorizes and its minimizer "
    "is the gradient step, so gradient descent at 1/L never increases f.",
    run=run,
)
