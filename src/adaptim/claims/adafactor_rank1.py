"""Section 4.7, (52) and footnote 9: Adafactor's factored second moment is the rank-1 I-divergence optimum.

Adafactor keeps EMAs of the row sums a_t and column sums s_t of G_t^2 and uses Vhat_t = c_t a_t s_t^T / (1^T a_t)
(52). Since row and column sums commute with the EMA, Vhat_t is exactly the rank-1 NMF optimum
C 1 1^T C / (1^T C 1) (4.7, Appendix L "Rank one") of the full bias-corrected second moment C = vbar_t that Adam
keeps. Footnote 9: as an estimator of the optimum for E[G^2] it is biased, E[Vhat_t] != a* b*^T, although E[abar_t]
and E[sbar_t] are unbiased. One Adafactor parameter of shape (R, m, n) runs R independent copies at once (it is
factored over its last two dimensions), which gives the Monte Carlo expectations.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize
import torch

import adaptim
from adaptim.claims._core import Claim, Context
from adaptim.linalg import idiv, nmf, rank1_nmf

_F64 = torch.float64


def _closed_form(C: np.ndarray) -> np.ndarray:
    """C 1_n 1_m^T C / (1_m^T C 1_n) for C of shape (..., m, n) (the notes' formula, in numpy)."""
    rows = C.sum(axis=-1, keepdims=True)
    cols = C.sum(axis=-2, keepdims=True)
    return rows * cols / C.sum(axis=(-2, -1), keepdims=True)


def _idiv_np(C: np.ndarray, Y: np.ndarray) -> float:
    return float(np.sum(C * np.log(C / Y) - C + Y))


def _numerical_rank1(C: np.ndarray, rng: np.random.Generator) -> float:
    """min over a, b > 0 of IDiv(C, a b^T) by L-BFGS on log a, log b from a random start."""
    m, n = C.shape

    def f(z):
        a, b = np.exp(z[:m]), np.exp(z[m:])
        Y = np.outer(a, b)
        R = 1 - C / Y  # d/dY of IDiv
        return _idiv_np(C, Y), np.concatenate([(R * Y).sum(axis=1), (R * Y).sum(axis=0)])

    res = scipy.optimize.minimize(
        f, rng.normal(size=m + n), jac=True, method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 2000}
    )
    return float(res.fun)


def run(ctx: Context):
    import matplotlib.pyplot as plt

    R, m, n = ctx.size(10000, 100000), 4, 3
    steps, beta2 = ctx.size(10, 30), 0.5  # a short memory makes footnote 9's bias visible
    gen = torch.Generator().manual_seed(ctx.seed)
    sigma2 = 0.2 + 3 * torch.rand(m, n, generator=gen, dtype=_F64)  # E[G^2], not rank 1
    W = torch.zeros(R, m, n, dtype=_F64)
    V = torch.zeros(R, m, n, dtype=_F64)
    ada = adaptim.Adafactor(
        [W], lr=1.0, beta2=beta2, relative_step=False, scale_parameter=False, clip_threshold=None, eps=(1e-30, 1e-3)
    )
    adam = adaptim.Adam([V], lr=1.0, betas=(0.0, beta2), eps=0.0, fused=False)
    for _ in range(steps):
        G = torch.randn(R, m, n, generator=gen, dtype=_F64) * sigma2.sqrt()
        W.grad, V.grad = G, G.clone()
        before = W.clone()
        ada.step()
        adam.step()
    corr = 1 / (1 - beta2**steps)
    st = ada.state[W]
    a_t, s_t = st["exp_avg_sq_row"], st["exp_avg_sq_col"]
    vhat = corr * a_t.unsqueeze(-1) * s_t.unsqueeze(-2) / a_t.sum(-1)[..., None, None]  # (52) on the state
    C = adam.state[V]["exp_avg_sq"] * corr  # the full bias-corrected second moment vbar_t
    ctx.close(
        "Adafactor's row sums a_t = row sums of Adam's full EMA v_t (all R copies)", C.sum(-1) / corr, a_t, rtol=1e-12
    )
    a, b = rank1_nmf(C)
    ctx.close(
        "(52) Vhat_t = rank1_nmf(vbar_t): Adafactor's factored moment is the rank-1 NMF optimum (all R copies)",
        a @ b,
        vhat,
        rtol=1e-12,
    )
    ctx.close(
        "rank1_nmf(C) = C 1 1^T C / (1^T C 1) (4.7's closed form)", _closed_form(C.numpy()), (a @ b).numpy(), rtol=1e-13
    )
    ctx.close(
        "Adafactor's last step = -G_t / sqrt(Vhat_t) (lr 1, no clipping, no scaling)",
        -G / vhat.sqrt(),
        W - before,
        rtol=1e-10,
        atol=1e-12,
    )
    # optimality: no rank-1 factorization has a smaller I-divergence
    rng = np.random.default_rng(ctx.seed)
    best = idiv(C[:3], vhat[:3], dim=(-2, -1))
    A, B = nmf(C[:3], 1, steps=100, generator=torch.Generator().manual_seed(ctx.seed))
    gaps_em = idiv(C[:3], A @ B, dim=(-2, -1)) - best
    gaps_opt = [_numerical_rank1(C[r].numpy(), rng) - float(best[r]) for r in range(3)]
    ctx.ge(
        "IDiv after 100 EM rounds from random factors - IDiv(C, Vhat) (3 copies, smallest)",
        gaps_em.min(),
        0.0,
        atol=1e-12,
    )
    ctx.close(
        "L-BFGS minimum of IDiv(C, a b^T) - IDiv(C, Vhat) (3 copies, largest |.|)",
        0.0,
        max(gaps_opt, key=abs),
        atol=1e-8,
    )

    # footnote 9: abar, sbar are unbiased, Vhat is not
    abar, sbar = (a_t * corr).numpy(), (s_t * corr).numpy()
    s2 = sigma2.numpy()
    for name, x, pred in (("abar_t", abar, s2.sum(1)), ("sbar_t", sbar, s2.sum(0))):
        z = (x.mean(0) - pred) / (x.std(0, ddof=1) / math.sqrt(R))
        ctx.le(f"E[{name}] = E[G^2] sums (unbiased): largest |z| over entries", np.abs(z).max(), 5.0)
    target = _closed_form(s2)  # a* b*^T for E[G^2]
    V_np = vhat.numpy()
    z = (V_np.mean(0) - target) / (V_np.std(0, ddof=1) / math.sqrt(R))
    ctx.ge("footnote 9: E[Vhat_t] != a* b*^T of E[G^2]: largest |z| over entries", np.abs(z).max(), 5.0)
    rel_bias = (V_np.mean(0) - target) / target
    ctx.note("relative bias of E[Vhat_t] (min, max over entries)", [float(rel_bias.min()), float(rel_bias.max())])

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(target.ravel(), V_np.mean(0).ravel(), "o", label=r"$E[\widehat V_t]$ (Monte Carlo)")
    ax.errorbar(
        target.ravel(),
        V_np.mean(0).ravel(),
        yerr=5 * V_np.std(0, ddof=1).ravel() / math.sqrt(R),
        fmt="none",
        color="C0",
        lw=0.8,
    )
    lim = [target.min() * 0.9, target.max() * 1.1]
    ax.plot(lim, lim, "k--", lw=0.8, label=r"$a^* b^{*\top}$ of $E[G^2]$")
    ax.set_xlabel(r"rank-1 optimum $a^* b^{*\top}$ of $E[G^2]$, entry")
    ax.set_ylabel(r"$E[\widehat V_t]$, entry (5 s.e. bars)")
    ax.set_title(f"adafactor-rank1 (4.7, fn. 9): bias at t={steps}, b2={beta2}")
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="adafactor-rank1",
    section="4.7, (52), footnote 9",
    statement="Adafactor's Vhat_t = c_t a_t s_t^T / (1^T a_t) (52) is the rank-1 I-divergence (NMF) optimum "
    "C 1 1^T C / (1^T C 1) of the full second moment Adam keeps; as an estimator of that optimum for E[G^2] it "
    "is biased (footnote 9), though its row and column sums are not.",
    run=run,
)
