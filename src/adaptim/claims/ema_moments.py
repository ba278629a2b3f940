"""Lemma S.11 (Section 4): the EMA of iid draws has mean (1 - beta^t) mu and variance sigma^2 (1-beta)/(1+beta)
(1 - beta^(2t)); Adam's bias correction makes its moments unbiased at every t."""

from __future__ import annotations

import math

import numpy as np
import torch

import adaptim
from adaptim.claims._core import Claim, Context
from adaptim.functional.adam import bias_corrections

BETA1, BETA2 = 0.9, 0.99
MU, SIGMA = 0.5, 1.5  # g = MU + SIGMA (E - 1), E ~ Exp(1): skewed, mean MU, variance SIGMA^2
Z_MAX = 5.0


def _stats(x: torch.Tensor) -> tuple[float, float, float]:
    """Sample mean, variance and the standard error of that variance (from the 4th central moment)."""
    mean = x.mean()
    c = x - mean
    var = (c * c).mean()
    m4 = (c**4).mean()
    n = x.numel()
    return mean.item(), var.item() * n / (n - 1), math.sqrt(max((m4 - var * var).item(), 0.0) / n)


def run(ctx: Context):
    import matplotlib.pyplot as plt

    n, steps = ctx.size(100_000, 500_000), ctx.size(60, 400)
    gen = torch.Generator().manual_seed(ctx.seed)
    # the moments of g and of g^2 (Y = E - 1 has E Y = 0, E Y^2 = 1, E Y^3 = 2, E Y^4 = 9)
    eg, eg2 = MU, MU**2 + SIGMA**2
    eg4 = MU**4 + 6 * MU**2 * SIGMA**2 + 8 * MU * SIGMA**3 + 9 * SIGMA**4
    var_g, var_g2 = SIGMA**2, eg4 - eg2**2
    # n coordinates of one parameter are n independent runs: Adam acts elementwise
    p = torch.zeros(n, dtype=torch.float64)
    opt = adaptim.Adam([p], lr=1e-3, betas=(BETA1, BETA2), fused=False)
    rows = []  # t, mean/var/se of m_t and v_t, means of the bias-corrected estimates
    for t in range(1, steps + 1):
        p.grad = MU + SIGMA * (torch.empty(n, dtype=torch.float64).exponential_(generator=gen) - 1)
        opt.step()
        m, v = opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]
        cm, _, bc2 = bias_corrections(t, BETA1, BETA2, False)  # the library's 1/(1 - b1^t) and 1 - b2^t
        rows.append((*_stats(m), *_stats(v), (m * cm).mean().item(), (v / bc2).mean().item()))
    r = np.asarray(rows)
    t = np.arange(1, steps + 1)
    mean_m, var_m, se_var_m, mean_v, var_v, se_var_v, mean_mbar, mean_vbar = r.T

    def lemma(beta, mu, sigma2):  # (169) and (170)
        return (1 - beta**t) * mu, sigma2 * (1 - beta) / (1 + beta) * (1 - beta ** (2 * t))

    em, vm = lemma(BETA1, eg, var_g)
    ev, vv = lemma(BETA2, eg2, var_g2)
    se_m, se_v = np.sqrt(vm / n), np.sqrt(vv / n)
    ctx.note(
        "tolerance",
        f"each check is the largest |measured - predicted| / standard error over t = 1..{steps} with n = {n} "
        f"independent runs; {Z_MAX:g} standard errors (a false alarm has probability ~ {steps} x 6e-7)",
    )
    zs = {
        "(169) E[m_t] = (1 - b1^t) E[g]": np.abs(mean_m - em) / se_m,
        "(170) Var(m_t) = Var(g) (1-b1)/(1+b1) (1 - b1^(2t))": np.abs(var_m - vm) / se_var_m,
        "(169) E[v_t] = (1 - b2^t) E[g^2]": np.abs(mean_v - ev) / se_v,
        "(170) Var(v_t) = Var(g^2) (1-b2)/(1+b2) (1 - b2^(2t))": np.abs(var_v - vv) / se_var_v,
        "bias-corrected E[m_t / (1 - b1^t)] = E[g]": np.abs(mean_mbar - eg) / (se_m / (1 - BETA1**t)),
        "bias-corrected E[v_t / (1 - b2^t)] = E[g^2]": np.abs(mean_vbar - eg2) / (se_v / (1 - BETA2**t)),
    }
    for label, z in zs.items():
        ctx.le(f"{label}: largest |error| / standard error over t", z.max(), Z_MAX)
    # the uncorrected EMA is biased: at t = 1, E[m_1] = (1 - b1) E[g], far from E[g] in standard errors
    ctx.ge(
        "uncorrected m_1: |mean m_1 - E[g]| / standard error (the bias the correction removes)",
        abs(mean_m[0] - eg) / se_m[0],
        20 * Z_MAX,
    )
    ctx.ge(
        "uncorrected v_1: |mean v_1 - E[g^2]| / standard error",
        abs(mean_v[0] - eg2) / se_v[0],
        20 * Z_MAX,
    )

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t, mean_m / eg, label="mean m_t / E[g] (adaptim.Adam exp_avg)")
    ax.plot(t, mean_v / eg2, label="mean v_t / E[g^2] (exp_avg_sq)")
    ax.plot(t, mean_mbar / eg, label="bias-corrected m_t / E[g]")
    ax.plot(t, mean_vbar / eg2, label="bias-corrected v_t / E[g^2]")
    ax.plot(t, 1 - BETA1**t, "k--", lw=0.8, label="(169): 1 - b^t, b = 0.9 and 0.99")
    ax.plot(t, 1 - BETA2**t, "k--", lw=0.8)
    ax.set_xlabel("step t")
    ax.set_ylabel("mean over runs / true moment")
    ax.set_title(f"ema-moments (Lemma S.11), {n} runs")
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="ema-moments",
    section="4, Lemma S.11",
    statement="For iid gradients the EMA X_t = b X_(t-1) + (1 - b) Z_t from X_0 = 0 has E[X_t] = (1 - b^t) E[Z] and "
    "Var(X_t) = Var(Z) (1-b)/(1+b) (1 - b^(2t)); dividing by 1 - b^t (Adam's bias correction) makes m_t and v_t "
    "unbiased estimates of E[g] and E[g^2].",
    run=run,
)
