"""(158), Lemma S.5: GD with step 1/L on a convex L-smooth J has J(w_{T+1}) - J^* <= L||w_1 - w^*||^2/(2T)."""

from __future__ import annotations

import numpy as np
import torch

import adaptim
from adaptim.claims._appendix_a import logistic_problem, slow_quadratic
from adaptim.claims._core import Claim, Context
from adaptim.solvers import gradient, gradient_descent, newton


def run(ctx: Context):
    import matplotlib.pyplot as plt

    # real data: L2-regularized logistic regression on the breast-cancer table
    prob = logistic_problem()
    T = ctx.size(200, 2000)
    w1 = torch.zeros(prob.d, dtype=torch.float64)
    hist = gradient_descent(prob.f, w1, prob.L, T)
    e = hist.errors(prob.j_star).numpy()
    d2 = float(np.sum(prob.w_star**2))
    t = np.arange(1, T + 1)
    ratio = e[1:] / (prob.L * d2 / (2 * t))
    ctx.le(f"logistic (breast cancer): max over T <= {T} of (J(w_T+1) - J*) / (L D^2 / 2T)", ratio.max(), 1.0)
    # (159): each step decreases J by at least ||g_t||^2 / (2L) (rounding of J ~ 1e-16 relative)
    gaps = []
    for k in range(T):
        g = gradient(prob.f, hist.iterates[k])
        gaps.append(hist.values[k] - hist.values[k + 1] - (g @ g) / (2 * prob.L))
    ctx.ge("(159): min_t J(w_t) - J(w_t+1) - ||g_t||^2/(2L)", min(float(x) for x in gaps), 0.0, atol=1e-15)
    # the public optimizer: adaptim.SGD at lr = 1/L takes the same steps
    w = w1.clone().requires_grad_(True)
    opt = adaptim.SGD([w], lr=1.0 / prob.L, foreach=True)
    for _ in range(T):
        opt.zero_grad()
        prob.f(w).backward()
        opt.step()
    ctx.close(
        f"adaptim.SGD(lr=1/L) after {T} steps = gradient_descent's w_T+1", hist.iterates[-1], w.detach(), atol=1e-12
    )
    # J* from adaptim.solvers.newton agrees with scipy's Newton-CG
    jn = newton(prob.f, w1, ctx.size(12, 20)).values[-1]
    ctx.close("J* by adaptim.solvers.newton vs scipy Newton-CG", prob.j_star, jn, rtol=1e-13)
    mid = slice(T // 10, T + 1)
    fit_real = adaptim.solvers.fit_rate(e[mid], t=np.arange(T + 1)[mid])
    ctx.note("logistic: fitted exponent alpha over t in [T/10, T]", round(fit_real.alpha, 3))
    ctx.note(
        "logistic: why alpha may differ from 1",
        "(158) is a worst-case ceiling; on real data J - J* sits far below it (the ratio above), and the "
        "lam-strong convexity makes the tail eventually linear",
    )

    # a quadratic on which the O(1/t) is attained: the closed form and the fitted exponent
    q = slow_quadratic(ctx.size(2000, 4000))
    Tq = ctx.size(300, 1000)
    hq = gradient_descent(q.f, q.w1, q.L, Tq, grad=q.grad)
    eq = hq.values.numpy()
    ctx.close(
        "quadratic: GD's J(w_t) - J* = closed form (1/2) sum a_i w_1i^2 (1 - a_i/L)^2t", q.gd_errors(Tq), eq, rtol=1e-10
    )
    dq2 = float((q.w1**2).sum())
    tq = np.arange(1, Tq + 1)
    ctx.le("quadratic: max over T of (J(w_T+1) - J*) / (L D^2 / 2T)", (eq[1:] / (q.L * dq2 / (2 * tq))).max(), 1.0)
    k = np.arange(Tq // 10, Tq + 1)
    fit = adaptim.solvers.fit_rate(eq[k], t=k)
    ctx.true("quadratic: fit_rate says sublinear", fit.kind == "sublinear", predicted="sublinear", measured=fit.kind)
    ctx.close("quadratic: fitted exponent alpha over t in [T/10, T]", 1.0, fit.alpha, atol=0.02)
    ctx.note(
        "tolerance",
        "alpha: the error is (d/2) int_0^1 (1-x)^2t dx (1 + O(t/d)) = d/(2(2t+1)), whose log-log slope is "
        "2t/(2t+1) >= 0.98 for t >= T/10 >= 30",
    )

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(t, e[1:] / (prob.L * d2), label="logistic regression (breast cancer)")
    ax.loglog(tq, eq[1:] / (q.L * dq2), label="quadratic with evenly spread spectrum")
    ax.loglog(tq, 1 / (2 * tq), "k--", label="bound (158): 1/(2T)")
    ax.set_xlabel("T (steps)")
    ax.set_ylabel("(J(w_{T+1}) - J*) / (L ||w_1 - w*||²)")
    ax.set_title("gd-rate: GD with step 1/L, (158)")
    ax.legend()
    return fig


CLAIM = Claim(
    name="gd-rate",
    section="A.1, Lemma S.5, (158)",
    statement="Gradient descent with step 1/L on a convex L-smooth J satisfies J(w_{T+1}) - J* <= "
    "L||w_1 - w*||^2/(2T): an O(1/T) rate, and every step decreases J by at least ||g_t||^2/(2L) (159).",
    run=run,
)
