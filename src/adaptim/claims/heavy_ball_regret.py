"""(155), Lemma S.3: SGD with Polyak momentum (25)-(26) has regret at most D_1 L sqrt(T) sqrt((1 + mu)/(1 - mu))."""

from __future__ import annotations

import math

import torch

import adaptim
from adaptim.claims._core import Claim, Context
from adaptim.online import (
    LinearLosses,
    LogisticLosses,
    breast_cancer_stream,
    heavy_ball_bound,
    heavy_ball_optimal_bound,
    heavy_ball_optimal_lr,
    run_online,
)


def run(ctx: Context):
    import matplotlib.pyplot as plt

    X, y = breast_cancer_stream(seed=ctx.seed)
    T = ctx.size(120, 569)
    G = -(y[:, None] * X)
    # V = R^d (Lemma S.3 needs the unprojected update); the comparator u is the best point of a ball, for which
    # the bound holds as for any fixed u (D_1 = ||w_1 - u||); L: max ||x_t|| bounds every gradient in advance
    problems = {
        "linear": (LinearLosses(G[:T], radius=1.0), float(G[:T].norm(dim=1).max())),
        "logistic": (LogisticLosses(X[:T], y[:T], radius=5.0), LogisticLosses(X[:T], y[:T]).lipschitz),
    }
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    for name, (adv, L) in problems.items():
        u, _ = adv.best_fixed()
        D1 = float(u.norm())
        for mu in (0.5, 0.9):
            factors = (0.1, 1.0, 10.0) if (name, mu) == ("logistic", 0.9) else (1.0,)
            for factor in factors:
                eta = D1 / L * math.sqrt((1 - mu) ** 3 / ((1 + mu) * T)) * factor
                r = run_online(lambda p, eta=eta, mu=mu: adaptim.SGD(p, lr=eta, momentum=mu, foreach=True), adv)
                reg = r.regret(u)
                ctx.le(
                    f"{name}, T = {T}, mu = {mu}, lr = {factor:g} x the lemma's eta: regret against u <= "
                    "D_1²(1-mu)/(2 eta) + eta T L² (1+mu)/(2(1-mu)²)",
                    reg,
                    heavy_ball_bound(r, eta, mu, L=L, u=u),
                )
                if factor != 1.0:
                    continue
                ctx.close(
                    f"{name}, mu = {mu}: the lemma's eta (from the notes' formula)",
                    eta,
                    heavy_ball_optimal_lr(r, mu, L=L, u=u),
                    rtol=1e-12,
                )
                bound = heavy_ball_optimal_bound(r, mu, L=L, u=u)
                ctx.close(
                    f"{name}, mu = {mu}: (155) = D_1 L sqrt(T) sqrt((1+mu)/(1-mu)) evaluated from the run's D_1, L, T",
                    D1 * L * math.sqrt(T) * math.sqrt((1 + mu) / (1 - mu)),
                    bound,
                    rtol=1e-12,
                )
                ctx.close(
                    f"{name}, mu = {mu}: (155) is the lemma's bound at its eta (the minimum over eta)",
                    heavy_ball_bound(r, eta, mu, L=L, u=u),
                    bound,
                    rtol=1e-12,
                )
                ctx.le(f"{name}, mu = {mu}: regret <= (155) D_1 L sqrt(T) sqrt((1+mu)/(1-mu))", reg, bound)
                # Claim I of the proof: y_t = w_t + mu/(1-mu) (w_t - w_{t-1}) moves by -eta/(1-mu) g_t
                W = torch.cat([r.iterates[:1], r.iterates, r.final[None]])  # w_0 = w_1 (v_0 = 0), ..., w_{T+1}
                beta = mu / (1 - mu)
                Y = W[1:] + beta * (W[1:] - W[:-1])
                ctx.close(
                    f"{name}, mu = {mu}: Claim I, y_(t+1) - y_t = -eta/(1-mu) g_t (adaptim.SGD's momentum)",
                    -eta / (1 - mu) * r.grads,
                    Y[1:] - Y[:-1],
                    atol=1e-12 * D1,
                    rtol=1e-9,
                )
                # Claim II: ||v_t|| <= L/(1-mu) with v_t = (w_t - w_{t+1})/eta
                v = (W[1:-1] - W[2:]) / eta
                ctx.le(
                    f"{name}, mu = {mu}: Claim II, max_t ||v_t|| <= L/(1-mu)", float(v.norm(dim=1).max()), L / (1 - mu)
                )
                curve = r.regret_curve(u)
                line = ax.plot(range(1, T + 1), curve, label=f"{name}, mu = {mu}")[0]
                ax.axhline(bound, ls="--", color=line.get_color(), lw=0.8)
    ctx.note("typo", "Lemma S.3's eta = (D_1/L) sqrt((1-mu)³/((1+mu)T)) is printed with (1+mu)^T")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("round t")
    ax.set_ylabel("regret of the first t rounds against u")
    ax.set_title("heavy-ball-regret (2.2, (155)); dashed: (155) at T")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


CLAIM = Claim(
    name="heavy-ball-regret",
    section="2.2, (155), Lemma S.3",
    statement="Heavy-ball SGD (25)-(26) with constant lr eta = (D_1/L) sqrt((1-mu)³/((1+mu)T)) has regret at most "
    "D_1 L sqrt(T) sqrt((1+mu)/(1-mu)), which is (23) at mu = 0 and blows up as mu -> 1.",
    run=run,
)
