"""(22)-(24): SGD's regret on real online problems stays below its bounds and grows like sqrt(T)."""

from __future__ import annotations

import math

import numpy as np

import adaptim
from adaptim.claims._core import Claim, Context
from adaptim.online import (
    LinearLosses,
    LogisticLosses,
    breast_cancer_stream,
    run_online,
    sgd_anytime_bound,
    sgd_bound,
    sgd_optimal_bound,
)

R_LINEAR, R_LOGISTIC = 1.0, 5.0  # the balls V the iterates are projected onto


def _sgd(lr: float):
    return lambda p: adaptim.SGD(p, lr=lr, foreach=True)


def run(ctx: Context):
    import matplotlib.pyplot as plt

    X, y = breast_cancer_stream(seed=ctx.seed)
    T = ctx.size(100, 569)
    G = -(y[:, None] * X)  # linear losses l_t(w) = -y_t x_t^T w: the perceptron's margin loss
    problems = {
        f"linear, ||w|| <= {R_LINEAR:g}": (LinearLosses(G[:T], radius=R_LINEAR), float(G.norm(dim=1).max())),
        f"logistic, ||w|| <= {R_LOGISTIC:g}": (
            LogisticLosses(X[:T], y[:T], radius=R_LOGISTIC),
            LogisticLosses(X, y).lipschitz,
        ),
    }
    for name, (adv, L) in problems.items():
        # eta* = D_1/(L sqrt T) needs u* and L in advance: here the hindsight solver and max ||x_t|| supply them
        u, _ = adv.best_fixed()
        D1 = float(u.norm())  # w_1 = 0
        eta_star = D1 / (L * math.sqrt(T))
        for factor in (0.1, 1.0, 10.0):
            eta = factor * eta_star
            run_ = run_online(_sgd(eta), adv, projection=adv.domain)
            reg = run_.regret()
            ctx.le(
                f"{name}, T = {T}, lr = {factor:g} eta*: regret <= (22) D_1²/(2 eta) + (eta/2) sum ||g_t||²",
                reg,
                sgd_bound(run_, eta),
            )
            ctx.le(
                f"{name}, lr = {factor:g} eta*: regret <= (22) D_1²/(2 eta) + (eta/2) L² T",
                reg,
                sgd_bound(run_, eta, L=L),
            )
            if factor == 1.0:
                ctx.le(
                    f"{name}, lr = eta* = D_1/(L sqrt T) = {eta:.3g}: regret <= (23) D_1 L sqrt(T)",
                    reg,
                    sgd_optimal_bound(run_, L=L),
                )
                ctx.close(
                    f"{name}: (22) at eta* equals (23)",
                    sgd_optimal_bound(run_, L=L),
                    sgd_bound(run_, eta, L=L),
                    rtol=1e-12,
                )
        # eta_t = 1/sqrt(t) (T unknown): (24)
        any_run = run_online(_sgd(1.0), adv, projection=adv.domain, scheduler=adaptim.inverse_sqrt)
        reg = any_run.regret()
        first = sgd_bound(any_run)
        ctx.le(f"{name}, eta_t = 1/sqrt(t): regret <= (24) D²/(2 eta_T) + ½ sum eta_t ||g_t||²", reg, first)
        ctx.le(
            f"{name}, eta_t = 1/sqrt(t): (24)'s first form <= its last ((D² + 2L²)/2) sqrt(T)",
            first,
            sgd_anytime_bound(any_run),
        )

    # sqrt(T) growth: SGD at eta*(T) on the linear stream for a grid of horizons; u*(T) lies on the sphere, so
    # D_1 = R and L is fixed: (23) predicts regret ∝ sqrt(T)
    L = float(G.norm(dim=1).max())
    horizons = ctx.size([20, 40, 80, 160], [36, 71, 142, 284, 569])
    regrets, bounds = [], []
    for h in horizons:
        adv = LinearLosses(G[:h], radius=R_LINEAR)
        D1 = float(adv.best_fixed()[0].norm())
        r = run_online(_sgd(D1 / (L * math.sqrt(h))), adv, projection=adv.domain)
        regrets.append(r.regret())
        bounds.append(sgd_optimal_bound(r, L=L))
        ctx.le(f"linear, T = {h}, lr = eta*(T): regret <= (23)", regrets[-1], bounds[-1])
    slope = float(np.polyfit(np.log(horizons), np.log(regrets), 1)[0])
    tol = ctx.size(0.15, 0.1)
    ctx.close(
        f"log-log slope of SGD's regret at eta*(T) over T = {horizons[0]}..{horizons[-1]} (sqrt(T) growth)",
        0.5,
        slope,
        atol=tol,
    )
    ctx.note(
        "tolerance",
        f"±{tol:g} on the slope of one stream order's regret over an 8-16x range of T: across stream orders 0-7 it "
        "spread over 0.48-0.55 (T = 20..160) and 0.47-0.52 (T = 36..569, orders 0-4); ±0.1-0.15 still separates "
        "sqrt(T) from log T (slope -> 0) and from linear growth (1)",
    )

    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.loglog(horizons, regrets, "o-", label="SGD regret, lr = eta*(T)")
    ax.loglog(horizons, bounds, "s--", label="bound (23) D_1 L sqrt(T)")
    c = regrets[-1] / math.sqrt(horizons[-1])
    ax.loglog(horizons, [c * math.sqrt(h) for h in horizons], ":", color="gray", label="∝ sqrt(T)")
    ax.set_xticks(horizons, [str(h) for h in horizons], minor=False)
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("horizon T (rounds of the breast-cancer stream)")
    ax.set_ylabel("regret against the best u in hindsight")
    ax.set_title(f"sgd-regret (2.1, (22)-(24)): slope {slope:.2f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


CLAIM = Claim(
    name="sgd-regret",
    section="2.1, (22)-(24)",
    statement="SGD with a constant lr eta has regret at most D_1²/(2 eta) + (eta/2) L² T (22), D_1 L sqrt(T) at "
    "eta* = D_1/(L sqrt T) (23), and ((D² + 2L²)/2) sqrt(T) with eta_t = 1/sqrt(t) (24): regret grows like sqrt(T).",
    run=run,
)
