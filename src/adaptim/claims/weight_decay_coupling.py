"""Section 4.4: weight decay is L2 regularization in SGD, but not under a preconditioner (Adam vs AdamW).

SGD: the L2 term lambda' w added to the gradient is the decay factor lambda = eta lambda'. Adam: the L2 term goes
through the preconditioner, eta lambda' A^{-1} w, so each coordinate is decayed by eta lambda' / A_ii (A ~ sqrt(E g^2)
= sigma_i for pure-noise gradients), while AdamW decays every coordinate by the same eta lambda. The effective decay
is measured as 1 - (lag-1 autocorrelation of w), which is exactly lambda for w_{t+1} = (1 - lambda) w_t - eta o_t
with o_t uncorrelated with w_t (Section 4.4.1; beta1 = 0 makes o_t a martingale difference).
"""

from __future__ import annotations

import math

import numpy as np
import torch

import adaptim
from adaptim.claims._core import Claim, Context

_F64 = torch.float64


def _quadratic_grads(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor, l2: float = 0.0) -> torch.Tensor:
    """The gradient of 1/2 mean (Xw - y)^2 (+ l2/2 ||w||^2) by autograd (a loss, not a method)."""
    w = w.detach().requires_grad_(True)
    loss = 0.5 * ((X @ w - y) ** 2).mean() + 0.5 * l2 * (w * w).sum()
    (g,) = torch.autograd.grad(loss, w)
    return g


def _exact_part(ctx: Context) -> None:
    gen = torch.Generator().manual_seed(ctx.seed)
    d, steps, eta, lam_prime = 12, 25, 0.05, 0.3
    data = [
        (torch.randn(16, d, generator=gen, dtype=_F64), torch.randn(16, generator=gen, dtype=_F64))
        for _ in range(steps)
    ]
    w0 = torch.randn(d, generator=gen, dtype=_F64)

    # SGD with the L2 term == SGD with decay factor lambda = eta lambda' (the notes print l - lambda'/2 ||w||^2;
    # the decay needs the + sign, which is what adaptim and torch implement)
    w_l2, w_decay = w0.clone(), w0.clone()
    opt_l2 = adaptim.SGD([w_l2], lr=eta, weight_decay=lam_prime, fused=False)
    opt_plain = adaptim.SGD([w_decay], lr=eta, fused=False)
    for X, y in data:
        w_l2.grad = _quadratic_grads(w_l2, X, y)
        opt_l2.step()
        w_decay.grad = _quadratic_grads(w_decay, X, y)
        with torch.no_grad():
            w_decay.mul_(1 - eta * lam_prime)  # w_t - eta grad l(w_t) - eta lambda' w_t
        opt_plain.step()
    ctx.note(
        "reading",
        "4.4 prints the L2-regularized loss as l - lambda'/2 ||w||^2; the decay factor (1 - eta lambda') needs "
        "l + lambda'/2 ||w||^2, which is what is checked",
    )
    ctx.close(
        "SGD: L2 term lambda' = decay factor eta lambda' (25 steps, float64)", w_decay, w_l2, rtol=1e-12, atol=1e-14
    )

    # Adam's L2 term is Adam on l + lambda'/2 ||w||^2: the decay passes through A^{-1}
    w_a, w_b = w0.clone(), w0.clone()
    opt_a = adaptim.Adam([w_a], lr=eta, weight_decay=lam_prime, fused=False)
    opt_b = adaptim.Adam([w_b], lr=eta, fused=False)
    for X, y in data:
        w_a.grad = _quadratic_grads(w_a, X, y)
        opt_a.step()
        w_b.grad = _quadratic_grads(w_b, X, y, l2=lam_prime)
        opt_b.step()
    ctx.close(
        "Adam(weight_decay=lambda') = Adam on l + lambda'/2 ||w||^2 (eta A^{-1} lambda' w)",
        w_b,
        w_a,
        rtol=1e-12,
        atol=1e-14,
    )

    # AdamW: (1 - eta lambda) w_t - eta mbar/sqrt(vbar), the direction computed from l alone
    lam = 0.3
    w_c, w_d = w0.clone(), w0.clone()
    opt_c = adaptim.AdamW([w_c], lr=eta, weight_decay=lam, fused=False)
    opt_d = adaptim.Adam([w_d], lr=eta, fused=False)
    for X, y in data:
        w_c.grad = _quadratic_grads(w_c, X, y)
        opt_c.step()
        w_d.grad = _quadratic_grads(w_d, X, y)
        with torch.no_grad():
            w_d.mul_(1 - eta * lam)
        opt_d.step()
    ctx.close(
        "AdamW(weight_decay=lambda) = (1 - eta lambda) w - eta Adam direction of l", w_d, w_c, rtol=1e-12, atol=1e-14
    )
    gap = (w_a - w_c).norm() / w_c.norm()
    ctx.ge("Adam L2 and AdamW trajectories differ (relative distance after 25 steps)", gap, 1e-3)


def _effective_decay(ws: np.ndarray, batches: int) -> tuple[float, float, float, float]:
    """(lambda_hat, its standard error, RMS of w, its standard error) from a (T, d) record, by batches of
    coordinates (independent of each other)."""
    num = (ws[1:] * ws[:-1]).sum(axis=0)
    den = (ws[:-1] ** 2).sum(axis=0)
    parts = np.array_split(np.arange(ws.shape[1]), batches)
    lam_b = np.array([1 - num[p].sum() / den[p].sum() for p in parts])
    rms_b = np.array([math.sqrt((ws[:, p] ** 2).mean()) for p in parts])
    lam = 1 - num.sum() / den.sum()
    rms = math.sqrt((ws**2).mean())
    return lam, lam_b.std(ddof=1) / math.sqrt(batches), rms, rms_b.std(ddof=1) / math.sqrt(batches)


def run(ctx: Context):
    import matplotlib.pyplot as plt

    _exact_part(ctx)

    # pure-noise gradients with three per-coordinate scales: Adam's A ~ diag(sigma) is not spherical
    sigmas = (0.5, 1.0, 2.0)
    per = ctx.size(1000, 4000)
    burn, keep = ctx.size(200, 1500), ctx.size(250, 2500)
    eta, lam_prime = 0.01, 2.0  # coupled: lambda_i = eta lambda' / sigma_i = 0.04, 0.02, 0.01
    lam_w = 2.0  # AdamW: lambda = eta * 2 = 0.02 for every coordinate
    gen = torch.Generator().manual_seed(ctx.seed + 1)
    scale = torch.cat([torch.full((per,), s, dtype=_F64) for s in sigmas])
    w_l2 = torch.zeros(len(sigmas) * per, dtype=_F64)
    w_dw = torch.zeros_like(w_l2)
    # one adaptim.Adam, two groups: the L2 term (Adam's weight_decay) and torch's AdamW decay
    # (decoupled_weight_decay=True, lambda_t = lr weight_decay; the exact part above checks it against AdamW)
    betas = (0.0, 0.99)  # beta1 = 0: the updates o_t are uncorrelated with w_t (footnote 5)
    opt = adaptim.Adam(
        [
            {"params": [w_l2], "weight_decay": lam_prime},
            {"params": [w_dw], "weight_decay": lam_w, "decoupled_weight_decay": True},
        ],
        lr=eta,
        betas=betas,
        eps=0.0,
        fused=False,
    )
    rec_l2 = np.empty((keep, w_l2.numel()))
    rec_dw = np.empty_like(rec_l2)
    for t in range(burn + keep):
        g = torch.randn(w_l2.numel(), generator=gen, dtype=_F64) * scale
        w_l2.grad = g
        w_dw.grad = g.clone()
        opt.step()
        if t >= burn:
            rec_l2[t - burn] = w_l2.numpy()
            rec_dw[t - burn] = w_dw.numpy()

    batches = 20
    ctx.note(
        "tolerance",
        "5 standard errors (20 batches of independent coordinates) plus, for the coupled L2 case, lambda_i/4 "
        "relative: the L2 term lambda' w adds about lambda_i/2 relative to E g^2, so A_ii is sigma_i (1 + lambda_i/4)",
    )
    measured = {}
    for k, s in enumerate(sigmas):
        cols = slice(k * per, (k + 1) * per)
        lam_i = eta * lam_prime / s
        lam_hat, se, rms, rms_se = _effective_decay(rec_l2[:, cols], batches)
        ctx.close(
            f"Adam L2: effective decay of coordinates with sigma = {s} is eta lambda'/sigma",
            lam_i,
            lam_hat,
            rtol=lam_i / 4,
            atol=5 * se,
        )
        lam_d, se_d, rms_d, rms_se_d = _effective_decay(rec_dw[:, cols], batches)
        ctx.close(
            f"AdamW: effective decay of coordinates with sigma = {s} is eta lambda (uniform)",
            eta * lam_w,
            lam_d,
            atol=5 * se_d,
        )
        measured[s] = (lam_hat, rms, lam_d, rms_d, rms_se, rms_se_d)
    # the coupled decay is preconditioned: the stationary sizes spread as sqrt(sigma); AdamW's do not
    lo, hi = measured[sigmas[0]], measured[sigmas[-1]]
    ratio_l2 = hi[1] / lo[1]
    ratio_dw = hi[3] / lo[3]
    se_l2 = ratio_l2 * math.hypot(hi[4] / hi[1], lo[4] / lo[1])
    se_dw = ratio_dw * math.hypot(hi[5] / hi[3], lo[5] / lo[3])
    pred_l2 = math.sqrt((eta * lam_prime / sigmas[0]) * (2 - eta * lam_prime / sigmas[0])) / math.sqrt(
        (eta * lam_prime / sigmas[-1]) * (2 - eta * lam_prime / sigmas[-1])
    )
    ctx.close(
        f"Adam L2: stationary size sigma={sigmas[-1]} / sigma={sigmas[0]} by (48), lambda_i = eta lambda'/sigma_i",
        pred_l2,
        ratio_l2,
        rtol=0.05,
        atol=5 * se_l2,
    )
    ctx.close(
        f"AdamW: stationary size sigma={sigmas[-1]} / sigma={sigmas[0]} (uniform decay)",
        1.0,
        ratio_dw,
        atol=5 * se_dw,
    )

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    xs = np.array(sigmas)
    ax.plot(xs, [measured[s][0] for s in sigmas], "o", label="Adam + L2: measured decay")
    ax.plot(xs, eta * lam_prime / xs, "-", label=r"$\eta\lambda'/\sigma$ (preconditioned)")
    ax.plot(xs, [measured[s][2] for s in sigmas], "s", label="AdamW: measured decay")
    ax.axhline(eta * lam_w, ls="--", color="C1", label=r"$\eta\lambda$ (decoupled)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"gradient noise scale $\sigma_i$ of the coordinate")
    ax.set_ylabel(r"effective decay per step $1-\mathrm{corr}(w_{t+1}, w_t)$")
    ax.set_title("weight-decay-coupling (4.4)")
    ax.legend(fontsize=8)
    return fig


CLAIM = Claim(
    name="weight-decay-coupling",
    section="4.4",
    statement="In SGD the L2 term lambda' w is the decay factor lambda = eta lambda'; with a preconditioner the L2 "
    "term becomes eta lambda' A^{-1} w, which is lambda w for no lambda unless A = cI: Adam's coupled L2 decays "
    "each coordinate by eta lambda'/A_ii, AdamW decays all by the same factor.",
    run=run,
)
