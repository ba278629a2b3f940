"""Lemmas S.14-S.16 (Section 4.5): the stationary moments of Adam's EMAs, measured on adaptim.Adam's state.

With iid gradients of mean 0, variance sigma^2 and 4th moment m4, the stationary m (EMA with b1) is M and the
stationary v (EMA of g^2 with b2) is V = sigma^2 + Delta:
S.14  E[M^2 Delta] = (m4 - sigma^4) (1-b1)^2 (1-b2) / (1 - b1^2 b2) = O(1 - b2);
S.15  E[Delta^4] = (kappa4 - 3 tau^4) sum_i b_i^4 + 3 tau^4 (sum_i b_i^2)^2 = O((1 - b2)^2), b_i = (1-b2) b2^i,
      tau^2 and kappa4 the 2nd and 4th moments of g^2 - sigma^2;
S.16  sqrt(E[O^2]) = sqrt((1-b1)/(1+b1)) + O(1 - b2) for Adam's update O = M / sqrt(V).
"""

from __future__ import annotations

import math

import numpy as np
import torch

import adaptim
from adaptim.claims._core import Claim, Context

BETA1, LR = 0.9, 2.0**-10
SIGMA2, M4 = 1.0, 3.0  # g ~ N(0, 1)
TAU2, KAPPA4 = 2.0, 60.0  # g^2 - 1 for g ~ N(0, 1): variance 2, 4th central moment of chi^2_1 = 12 * 1 * 5
Z_MAX = 5.0


def _s14(b2: float) -> float:
    return (M4 - SIGMA2**2) * (1 - BETA1) ** 2 * (1 - b2) / (1 - BETA1**2 * b2)


def _s15(b2: float) -> float:
    sum_b4 = (1 - b2) ** 4 / (1 - b2**4)
    sum_b2 = (1 - b2) ** 2 / (1 - b2**2)
    return (KAPPA4 - 3 * TAU2**2) * sum_b4 + 3 * TAU2**2 * sum_b2**2


def run(ctx: Context):
    import matplotlib.pyplot as plt

    beta2s = ctx.size((0.8, 0.9, 0.95), (0.8, 0.9, 0.95, 0.98))
    n, samples = ctx.size(10_000, 100_000), ctx.size(150, 1000)
    burn = math.ceil(math.log(1e-7) / math.log(max(beta2s)))  # b2^t < 1e-7: the EMAs are stationary to 1e-7
    gen = torch.Generator().manual_seed(ctx.seed)
    # one (n,) parameter per b2: n independent runs each (Adam is elementwise), all fed the same N(0, 1) draws
    ps = [torch.zeros(n, dtype=torch.float64) for _ in beta2s]
    opt = adaptim.Adam(
        [{"params": [p], "betas": (BETA1, b2)} for p, b2 in zip(ps, beta2s)], lr=LR, eps=0.0, fused=False
    )
    sums = torch.zeros(3, len(beta2s), n, dtype=torch.float64)  # per run: sum of M^2 Delta, Delta^4, O^2
    for t in range(burn + samples):
        g = torch.randn(n, generator=gen, dtype=torch.float64)
        before = [p.clone() for p in ps] if t >= burn else None
        for p in ps:
            p.grad = g
        opt.step()
        if before is not None:
            for k, p in enumerate(ps):
                o = (before[k] - p) / LR  # Adam's update mbar / sqrt(vbar), from the step it took
                m, delta = opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"] - SIGMA2
                sums[0, k].addcmul_(m * m, delta)
                sums[1, k].add_(delta.square().square_())
                sums[2, k].addcmul_(o, o)
    per_run = sums / samples  # time averages: one estimate per independent run
    est, se = per_run.mean(-1).numpy(), (per_run.std(-1) / math.sqrt(n)).numpy()
    ctx.note(
        "tolerance",
        f"{Z_MAX:g} standard errors of the mean over {n} independent runs, each averaged over "
        f"{samples} steps after {burn} steps of burn-in",
    )
    rows = []
    for k, b2 in enumerate(beta2s):
        ctx.close(
            f"S.14, b2 = {b2}: E[M^2 Delta] = (m4 - sigma^4)(1-b1)^2(1-b2)/(1 - b1^2 b2)",
            _s14(b2),
            est[0, k],
            atol=Z_MAX * se[0, k],
        )
        ctx.close(
            f"S.15, b2 = {b2}: E[Delta^4] = (kappa4 - 3 tau^4) sum b^4 + 3 tau^4 (sum b^2)^2",
            _s15(b2),
            est[1, k],
            atol=Z_MAX * se[1, k],
        )
        rms = math.sqrt(est[2, k])
        rows.append((b2, rms, Z_MAX * se[2, k] / (2 * rms)))
    lead = math.sqrt((1 - BETA1) / (1 + BETA1))
    one_minus = np.array([1 - b2 for b2 in beta2s])
    # S.14 and S.15 as rates: E[M^2 Delta] / (1 - b2) and E[Delta^4] / (1 - b2)^2 stay bounded as b2 -> 1
    ctx.le(
        "S.14: E[M^2 Delta]/(1 - b2) at the largest b2 vs its limit (m4 - sigma^4)(1-b1)^2/(1-b1^2), + 5 s.e.",
        est[0, -1] / one_minus[-1],
        (M4 - 1) * (1 - BETA1) ** 2 / (1 - BETA1**2),
        atol=Z_MAX * se[0, -1] / one_minus[-1],
    )
    # sum_i b_i^2 / (1 - b2) = 1/(1 + b2) <= 1 and sum_i b_i^4 / (1 - b2)^2 = (1 - b2)/((1 + b2)(1 + b2^2)) <= 1 - b2
    ctx.le(
        "S.15: E[Delta^4]/(1 - b2)^2 at the largest b2 vs the proof's bound 3 tau^4 + (kappa4 - 3 tau^4)(1 - b2), "
        "+ 5 s.e.",
        est[1, -1] / one_minus[-1] ** 2,
        3 * TAU2**2 + (KAPPA4 - 3 * TAU2**2) * one_minus[-1],
        atol=Z_MAX * se[1, -1] / one_minus[-1] ** 2,
    )
    # S.16: |sqrt(E O^2) - sqrt((1-b1)/(1+b1))| <= C (1 - b2); C = sqrt((1-b1)/(1+b1)) (a relative error of at most
    # 1 - b2 for (51)'s rule of thumb) holds with room: the proof's first-order terms, -E[M^2 Delta]/sigma^4 (S.14)
    # + E[M^2] E[Delta^2]/sigma^6 ((170)), give a relative error of (1 - b2)/2 as b2 -> 1 for Gaussian g
    gap = np.array([lead - rms for _, rms, _ in rows])
    for (b2, _, tol), g in zip(rows, gap):
        ctx.le(
            f"S.16, b2 = {b2}: |sqrt(E[O^2]) - sqrt((1-b1)/(1+b1))| <= (1 - b2) sqrt((1-b1)/(1+b1)), + 5 s.e.",
            abs(g),
            (1 - b2) * lead,
            atol=tol,
        )
    ctx.note(
        f"S.16 sqrt(E[O^2]) by b2 (the rule of thumb (51): {lead:.4f})", {str(b2): f"{r:.4f}" for b2, r, _ in rows}
    )

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(one_minus, est[0], "o", label="S.14 E[M^2 Delta] (measured)")
    ax.loglog(one_minus, [_s14(b) for b in beta2s], "-", label="S.14 formula")
    ax.loglog(one_minus, est[1], "s", label="S.15 E[Delta^4] (measured)")
    ax.loglog(one_minus, [_s15(b) for b in beta2s], "-", label="S.15 formula")
    ax.loglog(one_minus, np.abs(gap), "^", label="S.16 |sqrt(E[O^2]) - sqrt((1-b1)/(1+b1))| (measured)")
    ax.loglog(one_minus, one_minus * lead, ":", color="gray", label="S.16 check: (1 - b2) sqrt((1-b1)/(1+b1))")
    ax.set_xlabel("1 - b2")
    ax.set_ylabel("stationary moment")
    ax.set_title(f"adam-moment-lemmas (S.14-S.16), b1 = {BETA1}, g ~ N(0, 1)")
    ax.legend(fontsize=7)
    return fig


CLAIM = Claim(
    name="adam-moment-lemmas",
    section="4.5, Lemmas S.14-S.16",
    statement="For iid centered gradients, Adam's stationary moments satisfy E[M^2 Delta] = (m4 - sigma^4)(1-b1)^2"
    "(1-b2)/(1-b1^2 b2) = O(1-b2) (S.14), E[Delta^4] = (kappa4 - 3 tau^4) sum b_i^4 + 3 tau^4 (sum b_i^2)^2 = "
    "O((1-b2)^2) (S.15), and sqrt(E[(M/sqrt(V))^2]) = sqrt((1-b1)/(1+b1)) + O(1-b2) (S.16).",
    run=run,
)
