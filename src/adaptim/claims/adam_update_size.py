"""Section 4.5, (50)-(51): Adam's asymptotic update size sqrt(E[O^2]) = sqrt((1 - b1)/(1 + b1)) + O(1 - b2).

adaptim.Adam (lr = 1, eps = 0) is fed pure-noise gradients g ~ N(0, 42) as in the notes; the update o_t is read
back from the parameter (w_t - w_{t+1}), the moments from the optimizer's state. Many independent coordinates run
side by side (one param group per (b1, b2)), so standard errors come from batches of coordinates.
"""

from __future__ import annotations

import math

import numpy as np
import torch

import adaptim
from adaptim.claims._core import Claim, Context

_F64 = torch.float64
SIGMA2 = 42.0
BETA1S = (0.0, 0.5, 0.9, 0.95)
BETA2S = (0.99, 0.999)


def run(ctx: Context):
    import matplotlib.pyplot as plt

    per = ctx.size(500, 2000)
    burn, keep = ctx.size(150, 1000), ctx.size(400, 3000)
    batches = 20
    beta1s = ctx.size((0.0, 0.9), BETA1S)  # each (b1, b2) is a param group; quick mode keeps four
    combos = [(b1, b2) for b2 in BETA2S for b1 in beta1s]
    gen = torch.Generator().manual_seed(ctx.seed)
    params = [torch.zeros(per, dtype=_F64) for _ in combos]
    opt = adaptim.Adam([{"params": [p], "betas": c} for p, c in zip(params, combos)], lr=1.0, eps=0.0, fused=False)
    n, T = len(combos), burn + keep
    sum_o2 = np.zeros((n, per))  # time sums over the kept steps, per coordinate
    sum_m2 = np.zeros((n, per))
    sum_v = np.zeros((n, per))
    sum_v2 = np.zeros((n, per))
    first = np.empty((T, n, 3))  # coordinate 0: o_t, mbar_t, vbar_t (the notes' d = 1 running estimates)
    for t in range(1, T + 1):
        g = torch.randn(n, per, generator=gen, dtype=_F64) * math.sqrt(SIGMA2)
        before = torch.stack([p.detach().clone() for p in params])
        for k, p in enumerate(params):
            p.grad = g[k]
        opt.step()
        o = (before - torch.stack(params)).numpy()  # lr = 1: the update o_t = mbar_t / sqrt(vbar_t)
        mbar = np.stack([(opt.state[p]["exp_avg"] / (1 - b1**t)).numpy() for p, (b1, _) in zip(params, combos)])
        vbar = np.stack([(opt.state[p]["exp_avg_sq"] / (1 - b2**t)).numpy() for p, (_, b2) in zip(params, combos)])
        first[t - 1] = np.stack([o[:, 0], mbar[:, 0], vbar[:, 0]], axis=1)
        if t > burn:
            sum_o2 += o**2
            sum_m2 += mbar**2
            sum_v += vbar
            sum_v2 += vbar**2
    parts = np.array_split(np.arange(per), batches)

    def mean_se(x: np.ndarray) -> tuple[float, float]:
        b = np.array([x[p].mean() for p in parts]) / keep
        return b.mean(), b.std(ddof=1) / math.sqrt(batches)

    ctx.note(
        "tolerance",
        "5 standard errors over batches of independent coordinates; for the update size also 2 (1 - b2) relative "
        "(the O(1 - b2) of (50): a second-order expansion of E[M^2/V] gives about (1 - b2)/2) plus half the "
        "relative variance of vbar at the first kept step (bias-corrected EMAs start noisier than stationary)",
    )
    measured = {}
    for k, (b1, b2) in enumerate(combos):
        rms_b = np.sqrt(np.array([sum_o2[k, p].mean() for p in parts]) / keep)
        rms, se = rms_b.mean(), rms_b.std(ddof=1) / math.sqrt(batches)
        pred = math.sqrt((1 - b1) / (1 + b1))
        # excess variance of the bias-corrected vbar_t over the stationary one, averaged over the kept steps
        # (Lemma S.11: Var(vbar_t) = Var(g^2) (1 - b2)/(1 + b2) (1 + b2^t)/(1 - b2^t))
        excess = float(np.mean([(1 + b2**t) / (1 - b2**t) - 1 for t in range(burn + 1, T + 1)]))
        start = 2 * (1 - b2) / (1 + b2) * (1 + excess)  # Var(vbar) / E[vbar]^2
        measured[(b1, b2)] = rms
        ctx.close(
            f"(51) RMS of Adam's update, b1={b1:g}, b2={b2:g}: sqrt((1 - b1)/(1 + b1))",
            pred,
            rms,
            rtol=2 * (1 - b2) + start / 2,
            atol=5 * se,
        )
        m2, m2_se = mean_se(sum_m2[k])
        ctx.close(f"E[mbar^2] = 42 (1 - b1)/(1 + b1), b1={b1:g}, b2={b2:g}", SIGMA2 * pred**2, m2, atol=5 * m2_se)
        v, v_se = mean_se(sum_v[k])
        ctx.close(f"E[vbar] = E[g^2] = 42, b1={b1:g}, b2={b2:g}", SIGMA2, v, atol=5 * v_se)
        if b2 == BETA2S[0] and b1 == 0.0:
            var_b = np.array([sum_v2[k, p].mean() / keep - (sum_v[k, p].mean() / keep) ** 2 for p in parts])
            var_pred = 2 * SIGMA2**2 * (1 - b2) / (1 + b2)  # Var(g^2) = 2 sigma^4 for Gaussian g
            ctx.close(
                f"Var(vbar) = Var(g^2) (1 - b2)/(1 + b2), b2={b2:g} (tolerance: + the finite-t excess of Lemma S.11)",
                var_pred,
                var_b.mean(),
                rtol=excess,
                atol=5 * var_b.std(ddof=1) / math.sqrt(batches),
            )
    # b2's effect is mild next to b1's
    spread_b2 = max(abs(measured[(b1, BETA2S[0])] - measured[(b1, BETA2S[1])]) for b1 in beta1s)
    spread_b1 = measured[(beta1s[0], BETA2S[1])] - measured[(beta1s[-1], BETA2S[1])]
    ctx.le(
        f"change of the update RMS from b2=0.99 to 0.999 (largest over b1) < 5% of the change from b1=0 to "
        f"{beta1s[-1]:g}",
        spread_b2,
        0.05 * spread_b1,
    )
    # the caveat: |o_t| itself keeps fluctuating; its distribution converges, not o_t
    o_tail = first[-keep:, :, 0]
    cvs = np.std(o_tail**2, axis=0) / np.mean(o_tail**2, axis=0)
    ctx.ge(
        "coefficient of variation of o_t^2 over the last steps (smallest over (b1, b2)); sqrt(2) if O were Gaussian",
        cvs.min(),
        1.0,
    )

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    steps = np.arange(1, T + 1)
    for k, (b1, b2) in enumerate(combos):
        ls = "-" if b2 == BETA2S[0] else ":"
        color = f"C{beta1s.index(b1)}"
        lab = f"b1={b1:g}, b2={b2:g}"
        axes[0].plot(steps, np.sqrt(np.cumsum(first[:, k, 1] ** 2) / steps), ls, color=color, lw=1, label=lab)
        axes[1].plot(steps, np.cumsum(first[:, k, 2]) / steps, ls, color=color, lw=1, label=lab)
        axes[2].plot(steps, np.sqrt(np.cumsum(first[:, k, 0] ** 2) / steps), ls, color=color, lw=1, label=lab)
    for b1 in beta1s:
        color = f"C{beta1s.index(b1)}"
        axes[0].axhline(math.sqrt(SIGMA2 * (1 - b1) / (1 + b1)), color=color, ls="--", lw=0.7)
        axes[2].axhline(math.sqrt((1 - b1) / (1 + b1)), color=color, ls="--", lw=0.7)
    axes[1].axhline(SIGMA2, color="k", ls="--", lw=0.7)
    axes[0].set_ylabel(r"running $\sqrt{\frac{1}{t}\sum_s \bar m_s^2}$")
    axes[1].set_ylabel(r"running $\frac{1}{t}\sum_s \bar v_s$")
    axes[2].set_ylabel(r"running $\sqrt{\frac{1}{t}\sum_s o_s^2}$")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("step t")
    axes[2].legend(fontsize=7)
    fig.suptitle("adam-update-size (4.5, (50)-(51)): g ~ N(0, 42), one coordinate; dashed: the predictions")
    fig.tight_layout()
    return fig


CLAIM = Claim(
    name="adam-update-size",
    section="4.5, (50)-(51)",
    statement="For zero-mean iid gradients Adam's update o_t = mbar_t/sqrt(vbar_t) has the stationary size "
    "sqrt(E[O^2]) = sqrt((1 - b1)/(1 + b1)) + O(1 - b2): strongly set by b1, mildly by b2; the running estimates "
    "converge while |o_t| itself keeps fluctuating.",
    run=run,
)
