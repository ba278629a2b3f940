"""Appendix B: against the random ±1 adversary every learner's expected regret is E|sum_t x_t| ≈ sqrt(2T/pi)."""

from __future__ import annotations

import math

import numpy as np
import torch

import adaptim
from adaptim.claims._core import Claim, Context
from adaptim.online import RandomSign, run_online


def _expected_abs_sum(T: int) -> float:
    """E|S_T| for S_T a sum of T fair ±1 signs, exactly: S_T = 2K - T with K ~ Binomial(T, 1/2)."""
    return sum(math.comb(T, k) * abs(2 * k - T) for k in range(T + 1)) / 2**T  # exact integers, then one division


def run(ctx: Context):
    import matplotlib.pyplot as plt

    T = ctx.size(100, 400)
    copies = ctx.size(2000, 10000)  # independent games, one per coordinate (the learners are coordinatewise)
    learners = {
        "SGD, lr 0.1": lambda p: adaptim.SGD(p, lr=0.1, foreach=True),
        "AdaGrad, lr 0.5": lambda p: adaptim.AdaGrad(p, lr=0.5, foreach=True),
        "Adam, lr 0.1": lambda p: adaptim.Adam(p, lr=0.1, foreach=True),
        "plays 0": lambda p: torch.optim.SGD(p, lr=0.0),
    }
    asym = math.sqrt(2 * T / math.pi)
    exact = _expected_abs_sum(T)
    gap = abs(exact - asym)  # E|S_T| = sqrt(2T/pi) (1 + O(1/T)): the CLT limit at finite T
    ctx.close(f"E|S_T| (exact, binomial) against sqrt(2T/pi), T = {T}", asym, exact, rtol=1.0 / T)
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ts = np.arange(1, T + 1)
    for i, (name, make) in enumerate(learners.items()):
        adv = RandomSign(T, seed=1000 + i, copies=copies)
        r = run_online(make, adv, projection=adv.domain)
        per = adv.per_copy_regret(r).numpy()  # -sum_t x_t w_t + |S_T| for each game
        mean, se = float(per.mean()), float(per.std(ddof=1) / math.sqrt(copies))
        ctx.close(
            f"{name}: mean regret over {copies} games, T = {T}, against sqrt(2T/pi) (4 SE + |E|S_T| - sqrt(2T/pi)|)",
            asym,
            mean,
            atol=4 * se + gap,
        )
        # the learner's own loss has mean 0: w_t depends on x_1..x_(t-1) only
        own = -(adv.signs * r.iterates).sum(0).numpy()
        ctx.close(
            f"{name}: mean cumulative loss -sum_t x_t w_t (4 SE)",
            0.0,
            float(own.mean()),
            atol=4 * float(own.std(ddof=1)) / math.sqrt(copies) + 1e-12,
        )
        # prefix regrets for the figure: -sum_(s<=t) x_s w_s + |S_t|
        S = torch.cumsum(adv.signs, 0)
        prefix = (-torch.cumsum(adv.signs * r.iterates, 0) + S.abs()).mean(1).numpy()
        ax.plot(ts, prefix, label=name, lw=1)
    ctx.note(
        "tolerance",
        "4 standard errors of the mean over independent games, plus the exact finite-T gap "
        "|E|S_T| - sqrt(2T/pi)| (E|S_T| from the binomial law)",
    )
    ax.plot(ts, np.sqrt(2 * ts / math.pi), "k--", label="sqrt(2t/pi)")
    ax.set_xlabel("round t")
    ax.set_ylabel(f"mean regret over {copies} games")
    ax.set_title("regret-lower-bound (Appendix B): every learner pays sqrt(2T/pi)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


CLAIM = Claim(
    name="regret-lower-bound",
    section="B",
    statement="Against the randomized adversary l_t(w) = -x_t w with fair signs x_t = ±1 on [-1, 1], every learner's "
    "expected regret is E|sum_t x_t| -> sqrt(2T/pi): Omega(sqrt(T)), whatever the learner.",
    run=run,
)
